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

/// Where a pending question came from, and so how it is answered: a file request by a
/// response file, the others by typing into the agent's pane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuestionSource {
    File,
    /// The agent reported `waiting`.
    Signal,
    /// A dialog read from the agent's screen.
    Screen,
}

super::words!(QuestionSource, "question source", "", {
    File => "file",
    Signal => "signal",
    Screen => "screen",
});

/// A question seen this tick, not recorded yet.
#[derive(Debug, Clone, PartialEq)]
pub struct NewQuestion {
    pub agent: String,
    /// Signal or Screen.
    pub source: QuestionSource,
    pub question: String,
    pub context: String,
}
