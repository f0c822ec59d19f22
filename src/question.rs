//! Questions an agent asks at its prompt (it reported `waiting`, or its screen shows a
//! dialog): recorded as pending guidance with the pane's last lines as context, source
//! `signal` or `screen`, and answered by typing into the pane (`guide`). A request from a
//! guidance file (source `file`) keeps the file protocol.

use crate::model::AgentSignal;
use crate::store::AgentRow;
use crate::tmux::{Cmd, Observation, SessionState, Target};

/// Lines of the pane kept as a question's context.
pub const CONTEXT_LINES: usize = 20;
/// A question longer than this is cut (the context keeps the rest).
pub const QUESTION_MAX_CHARS: usize = 300;
/// Shown when the pane could not be read.
pub const NO_TEXT: &str = "(waiting for input at its prompt)";

pub use crate::model::asks::NewQuestion;

/// From a pane's last lines (already cleaned): the question is its last non-blank line,
/// the context the lines themselves.
pub fn from_tail(tail: &str) -> (String, String) {
    let last = tail
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let question = if last.is_empty() {
        NO_TEXT.to_string()
    } else {
        last.chars().take(QUESTION_MAX_CHARS).collect()
    };
    (question, tail.trim_end().to_string())
}

/// The agent's live pane (id) in this observation, if any.
pub fn live_pane(obs: &Observation, a: &AgentRow) -> Option<String> {
    match obs.agent(a) {
        SessionState::Present(p) => p.iter().find(|x| !x.dead).map(|x| x.pane_id.clone()),
        _ => None,
    }
}

/// Whether a question an agent's `waiting` raised still stands: the agent is alive and
/// still reports waiting. (Screen questions close when their dialog leaves the screen.)
pub fn still_pending(agent: Option<&AgentRow>, obs: &Observation) -> bool {
    let Some(a) = agent else {
        return false;
    };
    if let Observation::Unknown(_) = obs {
        return true;
    }
    live_pane(obs, a).is_some() && a.signal == Some(AgentSignal::Waiting)
}

/// The answer as the agent should receive it: CRLF as LF, no trailing newline (Enter is
/// sent after it); control characters other than newline and tab are refused.
pub fn normalise(answer: &str) -> Result<String, String> {
    let text = answer.replace("\r\n", "\n");
    let text = text.trim_end_matches('\n').to_string();
    if text.trim().is_empty() {
        return Err("the answer is empty".into());
    }
    if let Some(c) = text
        .chars()
        .find(|c| c.is_control() && *c != '\n' && *c != '\t')
    {
        return Err(format!(
            "the answer contains a control character ({:?}); only newlines and tabs are typed",
            c
        ));
    }
    Ok(text)
}

/// The tmux buffer a multi-line answer goes through (one per run, deleted by the paste).
pub fn buffer_name(run_id: &str) -> String {
    format!("metawsm-answer-{run_id}")
}

/// The tmux commands that type `text` (normalised) into `pane` as one message, then
/// Enter: literal keys for one line; a named buffer pasted with bracketed-paste markers
/// (`paste-buffer -p`) for several, so the agent receives one message, not one per line.
pub fn answer_cmds(pane: &str, run_id: &str, text: &str) -> Vec<Cmd> {
    let target = Target::Pane(pane);
    let enter = Cmd::new("send-keys").target(target).flag("Enter");
    if !text.contains('\n') && !text.contains('\t') {
        return vec![
            Cmd::new("send-keys")
                .target(target)
                .literal_keys("answer", text),
            enter,
        ];
    }
    let buf = buffer_name(run_id);
    vec![
        Cmd::new("set-buffer")
            .flag("-b")
            .word("buffer name", &buf)
            .end_of_flags()
            .word("answer", text),
        Cmd::new("paste-buffer")
            .flags(&["-p", "-d", "-b"])
            .word("buffer name", &buf)
            .target(target),
        enter,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_is_the_last_line() {
        let (q, c) = from_tail("working…\n\nWhich database? [pg/sqlite]\n  \n");
        assert_eq!(q, "Which database? [pg/sqlite]");
        assert_eq!(c, "working…\n\nWhich database? [pg/sqlite]");
        assert_eq!(from_tail("").0, NO_TEXT);
        let long = "x".repeat(1000);
        assert_eq!(from_tail(&long).0.chars().count(), QUESTION_MAX_CHARS);
    }

    #[test]
    fn answers_are_normalised_or_refused() {
        assert_eq!(normalise("a\r\nb\n\n").as_deref(), Ok("a\nb"));
        assert!(normalise(" \n").is_err());
        assert!(normalise("a\u{1b}[2Jb").is_err());
        assert_eq!(normalise("tab\there").as_deref(), Ok("tab\there"));
    }

    #[test]
    fn one_line_is_typed_several_are_pasted() {
        let one = answer_cmds("%3", "r1", "it's \"q\" #(x) ; y;");
        assert_eq!(one.len(), 2);
        let argv = one[0].argv().expect("ok").to_vec();
        assert_eq!(
            argv.last().map(String::as_str),
            Some("it's \"q\" #(x) ; y\\;")
        );
        let two = answer_cmds("%3", "r1", "a\nb");
        assert_eq!(two.len(), 3);
        assert_eq!(two[1].argv().expect("ok")[0], "paste-buffer");
        assert!(answer_cmds("bogus", "r1", "a")[0].argv().is_err());
    }
}
