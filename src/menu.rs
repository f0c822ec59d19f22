//! The tmux menu of runs that need a human (`metawsm-tick menu`): what each run needs and
//! the tmux command strings its items run. Every value crosses up to three parsers (the
//! menu's format expansion, tmux's command parser, and `run-shell`'s expansion plus `sh`),
//! so each is escaped once per layer, innermost first.

use crate::escape::{escape_format, human, sh_word, Refused};
use crate::tmux::{Cmd, Target};

/// One run that needs a human, and what can be done about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub run_id: String,
    /// Why it is listed, shown as the run's heading (outside text: escaped here).
    pub why: String,
    /// A question to answer (typed into the pane or by file).
    pub question: bool,
    /// An action held for approval.
    pub approval: bool,
    /// The pane to go to.
    pub pane: Option<String>,
}

/// A word of a tmux command string: double-quoted, with `\`, `"` and `$` escaped.
pub fn tmux_word(s: &str) -> String {
    format!(
        "\"{}\"",
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('$', "\\$")
    )
}

/// `run-shell -b` of our binary (`inv`: shell words with `#` already doubled for
/// run-shell's own expansion), output discarded: the bar and the log show the result.
fn run_shell(inv: &str, tail: &[&str]) -> Result<String, Refused> {
    let mut words = vec![inv.to_string()];
    for w in tail {
        words.push(escape_format(&sh_word("argument", w)?));
    }
    let shell = format!("exec {} >/dev/null 2>&1", words.join(" "));
    Ok(format!("run-shell -b {}", tmux_word(&shell)))
}

/// The answer prompt: the typed text goes into a tmux buffer (`%%%`: quotes escaped, no
/// shell ever sees it), then `guide --answer-buffer` takes it from there.
fn answer_prompt(inv: &str, run: &str) -> Result<String, Refused> {
    let buf = crate::question::buffer_name(run);
    let template = format!(
        "set-buffer -b {} -- \"%%%\" ; {}",
        tmux_word(&buf),
        run_shell(inv, &["guide", run, "--answer-buffer", &buf])?
    );
    Ok(format!(
        "command-prompt -p {} {}",
        tmux_word(&format!("answer {run}:")),
        tmux_word(&template)
    ))
}

/// Menu items (name, key, command) for these runs. Names and commands are formats to
/// tmux, so both are escaped for that last.
pub fn items(entries: &[Entry], inv: &str) -> Result<Vec<(String, String)>, Refused> {
    let mut out = Vec::new();
    for e in entries {
        let why: String = human(&e.why).chars().take(60).collect();
        // A leading '-' makes the line a disabled heading.
        out.push((format!("-{} — {}", e.run_id, why), String::new()));
        let r = e.run_id.as_str();
        if e.question {
            out.push(("  answer…".into(), answer_prompt(inv, r)?));
        }
        if e.approval {
            out.push(("  approve".into(), run_shell(inv, &["approve", r])?));
            out.push(("  dismiss".into(), run_shell(inv, &["dismiss", r])?));
        }
        out.push(("  restart".into(), run_shell(inv, &["run", "restart", r])?));
        out.push((
            "  stop".into(),
            format!(
                "confirm-before -p {} {}",
                tmux_word(&format!("stop {r}? (y/n)")),
                tmux_word(&run_shell(inv, &["run", "stop", r])?)
            ),
        ));
        if let Some(p) = &e.pane {
            out.push((
                "  go there".into(),
                format!("switch-client -t {}", tmux_word(p)),
            ));
        }
    }
    Ok(out
        .into_iter()
        .map(|(name, cmd)| (escape_format(&name), escape_format(&cmd)))
        .collect())
}

/// The `display-menu` command (or a message when nothing needs a human).
pub fn menu_cmd(entries: &[Entry], inv: &str, client: Option<&str>) -> Result<Cmd, Refused> {
    let mut c = if entries.is_empty() {
        Cmd::new("display-message")
    } else {
        Cmd::new("display-menu")
    };
    if let Some(cl) = client {
        c = c.target_flag("-c", Target::Client(cl));
    }
    if entries.is_empty() {
        return Ok(c.message("metawsm: nothing needs you"));
    }
    c = c
        .flag("-T")
        .format("#[align=centre] metawsm ")
        .flags(&["-x", "C", "-y", "C"])
        .end_of_flags();
    for (name, cmd) in items(entries, inv)? {
        let heading = name.starts_with('-');
        c = c.word("menu item", &name);
        // A heading line still takes a key and a command (both empty).
        c = c
            .word("menu key", "")
            .word("menu command", if heading { "" } else { &cmd });
    }
    c.argv()?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_survive_tmux_double_quotes() {
        assert_eq!(
            tmux_word("a \"b\" $HOME \\"),
            "\"a \\\"b\\\" \\$HOME \\\\\""
        );
    }

    #[test]
    fn hostile_text_stays_text() {
        let e = Entry {
            run_id: "r1".into(),
            why: "asks: #(touch pwned) \"; kill-server; \u{1b}[2J".into(),
            question: true,
            approval: true,
            pane: Some("%3".into()),
        };
        let items = items(&[e], "'/bin/x' --db '/a b/#'").expect("items");
        let heading = &items[0].0;
        assert!(heading.starts_with("-r1"));
        assert!(heading.contains("##(touch pwned)"), "{heading}");
        assert!(!heading.contains('\u{1b}'));
        assert!(items.iter().any(|(n, _)| n == "  answer…"));
    }
}
