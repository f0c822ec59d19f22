//! What agents ask, as read this tick and not recorded yet: a guidance request from a
//! signal file (signals.rs reads it), a question from a pane (question.rs reads it).

#[derive(Debug, Clone, PartialEq)]
pub struct GuidanceRequest {
    pub run_id: Option<String>,
    pub agent: Option<String>,
    pub question: String,
    pub context: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub run_id: Option<String>,
    pub agent: Option<String>,
    pub summary: String,
}

/// A question seen this tick, not recorded yet.
#[derive(Debug, Clone, PartialEq)]
pub struct NewQuestion {
    pub agent: String,
    /// signal | screen
    pub source: &'static str,
    pub question: String,
    pub context: String,
}
