//! The command definitions: each command's `--help` text is its one definition. Shell
//! completions, the man page and docs/reference.md are derived from these texts, so
//! they cannot disagree with `--help`.

use crate::cmd;

pub struct CommandDef {
    /// Words after the binary name: "tick", "run start".
    pub path: &'static str,
    pub help: &'static str,
}

/// `metawsm-tick --help`.
pub const TOP_HELP: &str = "\
metawsm-tick — keeps AI coding agents in tmux moving without a human watching them.

Usage: metawsm-tick [GLOBAL OPTIONS] [COMMAND]

Commands:
  tick          Observe every active run, decide, act (default when no command is given)
  status        Print the compact status-line segment (for #(…) in status-right)
  run           Register and manage runs: start, add-agent, list, show, stop, restart, forget
  guide         Answer a run's pending question (by file, or typed into the agent's pane)
  approve       Run the action assist mode holds for a run, if still wanted
  dismiss       Drop the action assist mode holds for a run
  menu          A tmux menu of the runs that need you (prefix + M)
  signal        Report an agent's state (working|waiting|done) from its pane
  log           Show the audit log
  policy        init | show | check the policy file
  doctor        Check tmux, the server, the database, the policy and the plugin
  import        Take over the original metawsm's active runs (its database is only read)
  hook          Entry point for tmux hooks (silent, always exits 0)
  timer         Entry point for the no-client timer tmux runs (ticks when due, re-arms)
  tmux-setup    Install the status segment, hooks and timer into the running tmux server
  init          Print the tmux, Claude Code or Codex hook configuration (tmux|claude|codex)
  completions   Print a shell completion script (bash|zsh|fish)
  man           Print the man page (roff)

Global options:
  --db PATH            State database [env METAWSM_DB; default $XDG_STATE_HOME/metawsm/state.db]
  --policy PATH        Policy file [env METAWSM_POLICY; default $XDG_CONFIG_HOME/metawsm/policy.json]
  --tmux-socket PATH   tmux server socket [env METAWSM_TMUX_SOCKET; default: the server in $TMUX]
  -h, --help           Show help (also after any command)
  -V, --version        Show the version

Exit codes: 0 ok, 1 failure, 2 usage or configuration error.
";

// The two commands that print this table keep their help here, so the table imports
// nothing that imports it back.
pub const COMPLETIONS_HELP: &str = "\
Usage: metawsm-tick completions bash|zsh|fish

Prints a completion script for the shell: commands, flags, flag values (paths, choices)
and run ids for the commands that take one (read from the state database at completion
time). install.sh installs them; by hand:
  bash: metawsm-tick completions bash > ~/.local/share/bash-completion/completions/metawsm-tick
  zsh:  metawsm-tick completions zsh > ~/.zfunc/_metawsm-tick  (with ~/.zfunc in $fpath)
  fish: metawsm-tick completions fish > ~/.config/fish/completions/metawsm-tick.fish
";

pub const MAN_HELP: &str = "\
Usage: metawsm-tick man

Prints the man page (roff), made from the same definitions as --help. install.sh puts it
in ~/.local/share/man/man1/metawsm-tick.1; to read it without installing:
  metawsm-tick man | man -l -
";

/// Every user-facing command (hidden `__…` ones are not listed).
pub const COMMANDS: &[CommandDef] = &[
    def("tick", cmd::tick::HELP),
    def("status", cmd::status::HELP),
    def("run", cmd::run::HELP),
    def("run start", cmd::run_start::HELP),
    def("run adopt", cmd::run_adopt::HELP),
    def("run add-agent", cmd::run_add_agent::HELP),
    def("run list", cmd::run_list::HELP),
    def("run show", cmd::run_show::HELP),
    def("run stop", cmd::run_stop::HELP),
    def("run restart", cmd::run_restart::HELP),
    def("run forget", cmd::run_forget::HELP),
    def("run revive", cmd::run_revive::HELP),
    def("guide", cmd::guide::HELP),
    def("signal", cmd::signal::HELP),
    def("log", cmd::log::HELP),
    def("policy", cmd::policy::HELP),
    def("doctor", cmd::doctor::HELP),
    def("import", cmd::import::HELP),
    def("approve", cmd::approve::HELP),
    def("dismiss", cmd::dismiss::HELP),
    def("menu", cmd::menu::HELP),
    def("hook", cmd::hook::HELP),
    def("timer", cmd::timer::HELP),
    def("tmux-setup", cmd::tmux_setup::HELP),
    def("init", cmd::init::HELP),
    def("completions", COMPLETIONS_HELP),
    def("man", MAN_HELP),
];

const fn def(path: &'static str, help: &'static str) -> CommandDef {
    CommandDef { path, help }
}

/// What a flag's value is, for completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    None,
    /// A file or directory path.
    Path,
    /// A run id of the state database.
    Run,
    /// One of these words.
    Choice(Vec<String>),
    /// Anything else (free text).
    Text,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub long: String,
    pub short: Option<char>,
    pub value: Value,
    pub about: String,
}

impl CommandDef {
    /// The one-line summary the parent's `Commands:` list gives this command.
    pub fn summary(&self) -> String {
        let (parent, last) = match self.path.rsplit_once(' ') {
            Some((p, l)) => (find(p).map(|c| c.help).unwrap_or(""), l),
            None => (TOP_HELP, self.path),
        };
        listed(parent)
            .into_iter()
            .find(|(n, _)| n == last)
            .map(|(_, s)| s)
            .unwrap_or_default()
    }

    /// The `Usage:` line without its prefix.
    pub fn usage(&self) -> &'static str {
        self.help
            .lines()
            .find_map(|l| l.strip_prefix("Usage: "))
            .unwrap_or(self.path)
    }

    pub fn subcommands(&self) -> Vec<&'static CommandDef> {
        let prefix = format!("{} ", self.path);
        COMMANDS
            .iter()
            .filter(|c| {
                c.path
                    .strip_prefix(&prefix)
                    .is_some_and(|r| !r.contains(' '))
            })
            .collect()
    }

    /// Bare words the command takes where a subcommand would go (`signal working|…`,
    /// `policy init|show|check`).
    pub fn words(&self) -> Vec<String> {
        let usage = self.usage();
        let mut out: Vec<String> = Vec::new();
        let mut after_flag = false;
        for tok in usage.split_whitespace() {
            let t = tok.trim_matches(|c| matches!(c, '<' | '>' | '[' | ']' | '(' | ')'));
            // `--format tmux|plain|json`: the flag's choices, not bare words.
            let is_value = std::mem::replace(&mut after_flag, t.starts_with("--"));
            if is_value {
                continue;
            }
            let parts: Vec<&str> = t.split('|').collect();
            if parts.len() > 1
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
            {
                out.extend(parts.iter().map(|p| p.to_string()));
            }
        }
        // `policy <init [--force] | show | check [PATH]>` lists them spaced out.
        if out.is_empty() && usage.contains('<') {
            for t in usage.split(['<', '|', '>']).skip(1) {
                if let Some(w) = t.split_whitespace().next() {
                    if w.chars().all(|c| c.is_ascii_lowercase()) && !w.is_empty() {
                        out.push(w.to_string());
                    }
                }
            }
        }
        out.dedup();
        out
    }

    /// Whether a bare RUN argument is taken (completed with run ids).
    pub fn takes_run(&self) -> bool {
        self.usage().split_whitespace().any(|t| {
            t.trim_matches(|c| matches!(c, '[' | ']' | '(' | ')'))
                .split('|')
                .any(|p| p == "RUN")
        })
    }

    /// Every flag the help text shows, in its usage line and its option lines.
    pub fn flags(&self) -> Vec<Flag> {
        let mut out: Vec<Flag> = Vec::new();
        let mut lines: Vec<&str> = vec![self.usage()];
        lines.extend(
            self.help
                .lines()
                .filter(|l| l.starts_with("  -") || l.starts_with("  --")),
        );
        for (i, line) in lines.iter().enumerate() {
            let option_line = i > 0;
            let toks: Vec<&str> = line.split_whitespace().collect();
            let mut j = 0;
            while j < toks.len() {
                let raw = toks[j].trim_start_matches(['[', '(']);
                let (short, long) = if let Some(s) = raw.strip_prefix("-").filter(|s| {
                    s.len() == 2
                        && s.ends_with(',')
                        && s.chars().next().is_some_and(char::is_alphabetic)
                }) {
                    // "-h, --help"
                    j += 1;
                    let next = toks.get(j).copied().unwrap_or("");
                    (s.chars().next(), next)
                } else {
                    (None, raw)
                };
                let Some(name) = long.strip_prefix("--") else {
                    if option_line {
                        break;
                    }
                    j += 1;
                    continue;
                };
                let name_end = name
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                    .unwrap_or(name.len());
                let (name, rest) = name.split_at(name_end);
                if name.is_empty() {
                    j += 1;
                    continue;
                }
                // "--run/--agent" in prose, "--json]" at the end of a usage group.
                let glued = !rest.is_empty() && !rest.starts_with([']', ')']);
                let mut value = Value::None;
                if !glued && !rest.starts_with([']', ')']) {
                    if let Some(v) = toks.get(j + 1) {
                        let v = v.trim_end_matches([']', ')']);
                        if let Some(kind) = value_kind(name, v) {
                            value = kind;
                            j += 1;
                        }
                    }
                }
                let about = if option_line {
                    toks[j + 1..].join(" ")
                } else {
                    String::new()
                };
                match out.iter_mut().find(|f| f.long == name) {
                    Some(f) => {
                        if matches!(f.value, Value::None | Value::Text) && value != Value::None {
                            f.value = value;
                        }
                        if f.short.is_none() {
                            f.short = short;
                        }
                        if f.about.is_empty() {
                            f.about = about;
                        }
                    }
                    None => out.push(Flag {
                        long: name.to_string(),
                        short,
                        value,
                        about,
                    }),
                }
                if option_line {
                    break;
                }
                j += 1;
            }
        }
        if !out.iter().any(|f| f.long == "help") {
            out.push(Flag {
                long: "help".into(),
                short: Some('h'),
                value: Value::None,
                about: "Show this help".into(),
            });
        }
        out
    }
}

/// A metavariable after a flag: PATH, DIR, ID, `tmux|plain|json`…; None when the next
/// token is not one (another flag, prose).
fn value_kind(flag: &str, v: &str) -> Option<Value> {
    if v.is_empty() || v.starts_with('-') {
        return None;
    }
    let parts: Vec<&str> = v.split('|').collect();
    if parts.len() > 1
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
    {
        return Some(Value::Choice(parts.iter().map(|p| p.to_string()).collect()));
    }
    let meta = v.trim_start_matches('%');
    if !meta.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
        return None;
    }
    Some(match (flag, meta) {
        (_, "PATH" | "DIR") => Value::Path,
        ("run", _) | (_, "RUN") => Value::Run,
        _ => Value::Text,
    })
}

pub fn find(path: &str) -> Option<&'static CommandDef> {
    COMMANDS.iter().find(|c| c.path == path)
}

/// The `Commands:` list of a help text: (name, summary).
pub fn listed(help: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in help.lines() {
        if line == "Commands:" {
            inside = true;
            continue;
        }
        if inside {
            let Some(body) = line.strip_prefix("  ") else {
                break;
            };
            let mut it = body.splitn(2, "  ");
            let name = it.next().unwrap_or("").trim();
            let about = it.next().unwrap_or("").trim();
            if !name.is_empty() {
                out.push((name.to_string(), about.to_string()));
            }
        }
    }
    out
}

/// Top-level commands, in the order `--help` lists them.
pub fn top_level() -> Vec<&'static CommandDef> {
    COMMANDS.iter().filter(|c| !c.path.contains(' ')).collect()
}

/// Global flags (before the command), from the top-level help.
pub fn global_flags() -> Vec<Flag> {
    CommandDef {
        path: "",
        help: TOP_HELP,
    }
    .flags()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_command_has_a_definition_and_every_definition_is_listed() {
        for (name, _) in listed(TOP_HELP) {
            assert!(
                find(&name).is_some(),
                "{name} listed in --help, not in COMMANDS"
            );
        }
        for (name, _) in listed(cmd::run::HELP) {
            assert!(find(&format!("run {name}")).is_some(), "run {name}");
        }
        for c in COMMANDS {
            assert!(!c.summary().is_empty(), "{} has no summary", c.path);
        }
    }

    #[test]
    fn flags_come_from_usage_and_option_lines() {
        let start = find("run start").unwrap().flags();
        let names: Vec<&str> = start.iter().map(|f| f.long.as_str()).collect();
        for n in [
            "ticket",
            "workspace",
            "id",
            "agent",
            "doc-home-repo",
            "ticket-dir",
            "session",
            "help",
        ] {
            assert!(names.contains(&n), "run start --{n}: {names:?}");
        }
        let ws = start.iter().find(|f| f.long == "workspace").unwrap();
        assert_eq!(ws.value, Value::Path);
        let status = find("status").unwrap().flags();
        let format = status.iter().find(|f| f.long == "format").unwrap();
        assert_eq!(
            format.value,
            Value::Choice(vec!["tmux".into(), "plain".into(), "json".into()])
        );
        let log = find("log").unwrap().flags();
        assert_eq!(
            log.iter().find(|f| f.long == "run").unwrap().value,
            Value::Run
        );
        assert_eq!(
            log.iter().find(|f| f.long == "json").unwrap().value,
            Value::None
        );
        let help = start.iter().find(|f| f.long == "help").unwrap();
        assert_eq!(help.short, Some('h'));
        assert!(find("run stop").unwrap().takes_run());
        assert!(!find("run list").unwrap().takes_run());
        assert_eq!(
            find("signal").unwrap().words(),
            vec!["working", "waiting", "done"]
        );
        assert_eq!(
            find("policy").unwrap().words(),
            vec!["init", "show", "check", "mode"]
        );
        assert!(find("status").unwrap().words().is_empty());
        let g: Vec<String> = global_flags().into_iter().map(|f| f.long).collect();
        for n in ["db", "policy", "tmux-socket", "help", "version"] {
            assert!(g.contains(&n.to_string()), "global --{n}: {g:?}");
        }
    }
}
