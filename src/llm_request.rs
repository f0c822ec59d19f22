//! What a tick asks the LLM about a run: one serde type, written by the tick (`tick::ask`)
//! into `llm_calls.request` and read back by the detached worker, which adds the pane
//! tails and builds the prompt from it. No hand-built JSON, no lookups by key.

use crate::model::Intent;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub run_id: String,
    pub status: String,
    pub tickets: Vec<String>,
    pub rule: Rule,
    /// The intents the gate lets the LLM choose.
    pub permitted: Vec<String>,
    pub restart: Restart,
    pub agents: Vec<AgentContext>,
    pub guidance: Option<Guidance>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub intent: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Restart {
    pub attempts: i64,
    pub budget: i64,
    pub cooldown_until: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentContext {
    pub name: String,
    pub session: String,
    pub health: String,
    pub unhealthy: bool,
    pub activity_age_seconds: Option<i64>,
    pub exit_status: Option<i64>,
    pub exit_signal: Option<i64>,
    pub signal: Option<String>,
    pub reason: String,
    /// The pane's last lines, added by the worker for unhealthy agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pane_tail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Guidance {
    pub agent: String,
    pub question: String,
    pub context: String,
}

impl Request {
    pub fn permitted_intents(&self) -> Vec<Intent> {
        self.permitted
            .iter()
            .filter_map(|i| i.parse().ok())
            .collect()
    }

    /// The JSON the prompt shows the model.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_keeps_the_shape_the_prompt_shows() {
        let r = Request {
            run_id: "r1".into(),
            status: "running".into(),
            tickets: vec!["T-1".into()],
            rule: Rule {
                intent: "auto_restart".into(),
                reason: "why".into(),
            },
            permitted: vec![
                "auto_restart".into(),
                "escalate_blocked".into(),
                "bogus".into(),
            ],
            restart: Restart {
                attempts: 1,
                budget: 3,
                cooldown_until: None,
            },
            agents: vec![AgentContext {
                name: "a".into(),
                session: "s".into(),
                health: "dead".into(),
                unhealthy: true,
                activity_age_seconds: Some(5),
                exit_status: None,
                exit_signal: None,
                signal: None,
                reason: "gone".into(),
                pane_tail: None,
            }],
            guidance: None,
        };
        let text = serde_json::to_string(&r).expect("json");
        let back: Request = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, r);
        assert_eq!(
            r.permitted_intents(),
            vec![Intent::AutoRestart, Intent::EscalateBlocked]
        );
        let v = r.to_value();
        assert!(v["guidance"].is_null() && v["restart"]["cooldown_until"].is_null());
        assert!(v["agents"][0].get("pane_tail").is_none());
    }
}
