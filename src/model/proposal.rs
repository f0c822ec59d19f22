//! The LLM's proposal, as the gate judges it and the worker stores it (serde).

use super::Intent;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Proposal {
    #[serde(
        serialize_with = "serialize_intent",
        deserialize_with = "deserialize_intent"
    )]
    pub intent: Intent,
    pub target_run: String,
    pub reason: String,
    pub confidence: f64,
    pub needs_human: bool,
}

fn serialize_intent<S: serde::Serializer>(intent: &Intent, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(intent.as_str())
}

fn deserialize_intent<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Intent, D::Error> {
    let s = <String as serde::Deserialize>::deserialize(d)?;
    s.parse()
        .map_err(|_| serde::de::Error::custom("unknown intent"))
}
