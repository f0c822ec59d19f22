//! Restarts that continue the agent's conversation instead of starting it over
//! (docs/restarts.md). Pure: which command a start or restart runs. The only I/O here
//! is reading random bytes for a new conversation id.

use std::path::Path;

// The vocabulary lives in model (rows carry it); re-exported for the callers here.
pub use crate::model::rows::{Resume, StartKind};

/// The known agents whose start commands we understand well enough to resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Claude,
    Codex,
}

fn basename(word: &str) -> &str {
    Path::new(word)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(word)
}

/// Options carried from the start command into the resume command: the ones that set how
/// the agent works (model, sandbox, permissions), never the prompt. `true` = takes a value.
const CLAUDE_CARRIED: [(&str, bool); 7] = [
    ("--model", true),
    ("--permission-mode", true),
    ("--settings", true),
    ("--effort", true),
    ("--agent", true),
    ("--dangerously-skip-permissions", false),
    ("--allow-dangerously-skip-permissions", false),
];
const CODEX_CARRIED: [(&str, bool); 16] = [
    ("-c", true),
    ("--config", true),
    ("--enable", true),
    ("--disable", true),
    ("-m", true),
    ("--model", true),
    ("-p", true),
    ("--profile", true),
    ("-s", true),
    ("--sandbox", true),
    ("-a", true),
    ("--ask-for-approval", true),
    ("--add-dir", true),
    ("--approve-for-me", false),
    ("--dangerously-bypass-approvals-and-sandbox", false),
    ("--search", false),
];
/// Codex options that take a value but are not carried (the value is not the prompt).
const CODEX_OTHER_VALUED: [&str; 6] = [
    "-C",
    "--cd",
    "-i",
    "--image",
    "--local-provider",
    "--remote",
];
/// Codex subcommands: a start command using one is not the interactive TUI.
const CODEX_SUBCOMMANDS: [&str; 12] = [
    "exec",
    "e",
    "review",
    "login",
    "logout",
    "mcp",
    "resume",
    "fork",
    "apply",
    "a",
    "cloud",
    "app-server",
];

/// Splits `--opt=value` / `--opt value`; returns (option, inline value).
fn split_opt(word: &str) -> (&str, Option<&str>) {
    match word.split_once('=') {
        Some((o, v)) if o.starts_with("--") => (o, Some(v)),
        _ => (word, None),
    }
}

/// The carried options of `args`, and the first positional word (prompt or subcommand).
fn scan<'a>(
    args: &'a [String],
    carried: &[(&str, bool)],
    other_valued: &[&str],
) -> (Vec<String>, Option<&'a str>) {
    let mut keep = Vec::new();
    let mut first_positional = None;
    let mut i = 0;
    while i < args.len() {
        let w = args[i].as_str();
        if w == "--" {
            first_positional = first_positional.or(args.get(i + 1).map(String::as_str));
            break;
        }
        let (opt, inline) = split_opt(w);
        if let Some((_, valued)) = carried.iter().find(|(o, _)| *o == opt) {
            keep.push(w.to_string());
            if *valued && inline.is_none() {
                if let Some(v) = args.get(i + 1) {
                    keep.push(v.clone());
                }
                i += 1;
            }
        } else if other_valued.contains(&opt) && inline.is_none() {
            i += 1;
        } else if !w.starts_with('-') && first_positional.is_none() {
            first_positional = Some(w);
        }
        i += 1;
    }
    (keep, first_positional)
}

fn known(argv: &[String]) -> Option<Known> {
    let prog = basename(argv.first()?);
    let args = &argv[1..];
    match prog {
        "claude" => {
            // Print mode is a batch call; a start command that already resumes is the
            // user's own choice.
            let batch_or_resumes = args.iter().any(|a| {
                matches!(
                    split_opt(a).0,
                    "-p" | "--print" | "-r" | "--resume" | "-c" | "--continue"
                )
            });
            (!batch_or_resumes).then_some(Known::Claude)
        }
        "codex" => {
            let (_, first) = scan(args, &CODEX_CARRIED, &CODEX_OTHER_VALUED);
            match first {
                Some(s) if CODEX_SUBCOMMANDS.contains(&s) => None,
                _ => Some(Known::Codex),
            }
        }
        _ => None,
    }
}

/// The value of `--session-id` in a Claude start command, and where it sits.
fn claude_session_id(argv: &[String]) -> Option<(usize, String)> {
    argv.iter()
        .enumerate()
        .find_map(|(i, w)| match split_opt(w) {
            ("--session-id", Some(v)) => Some((i, v.to_string())),
            ("--session-id", None) => argv.get(i + 1).map(|v| (i, v.clone())),
            _ => None,
        })
}

/// The command a start runs and what a later resume needs. `fresh_restart`: a conversation
/// id already used (by an earlier start) is replaced by a new one, since Claude Code
/// refuses to start a second conversation under the same id.
pub fn prepare(
    argv: &[String],
    explicit: Option<&[String]>,
    prior: Option<&Resume>,
    fresh_restart: bool,
    new_id: &mut dyn FnMut() -> String,
    now: i64,
) -> (Vec<String>, Resume) {
    let mut argv = argv.to_vec();
    let explicit = explicit
        .map(<[String]>::to_vec)
        .or_else(|| prior.filter(|p| p.explicit).and_then(|p| p.argv.clone()));
    let mut r = Resume {
        kind: StartKind::Fresh,
        since: Some(now),
        explicit: explicit.is_some(),
        ..Resume::default()
    };
    if let Some(e) = explicit {
        r.argv = Some(e);
        return (argv, r);
    }
    match known(&argv) {
        Some(Known::Claude) => {
            let id = match claude_session_id(&argv) {
                Some((i, old)) if fresh_restart => {
                    let id = new_id();
                    // `--session-id X` or `--session-id=X`: replace the value either way.
                    if argv[i].contains('=') {
                        argv[i] = format!("--session-id={id}");
                    } else if i + 1 < argv.len() {
                        argv[i + 1] = id.clone();
                    }
                    let _ = old;
                    id
                }
                Some((_, id)) => id,
                None => {
                    let id = new_id();
                    argv.insert(1, id.clone());
                    argv.insert(1, "--session-id".into());
                    id
                }
            };
            let (carried, _) = scan(&argv[1..], &CLAUDE_CARRIED, &[]);
            let mut resume = vec![argv[0].clone(), "--resume".into(), id.clone()];
            resume.extend(carried);
            r.argv = Some(resume);
            r.conversation = Some(id);
        }
        Some(Known::Codex) => {
            let (carried, _) = scan(&argv[1..], &CODEX_CARRIED, &CODEX_OTHER_VALUED);
            let mut resume = vec![argv[0].clone(), "resume".into()];
            // An id the notify adapter reported is exact; `--last` is this directory's
            // most recent session (Codex filters by the working directory).
            match prior
                .and_then(|p| p.conversation.clone())
                .filter(|_| !fresh_restart)
            {
                Some(id) => {
                    resume.push(id.clone());
                    r.conversation = Some(id);
                }
                None => resume.push("--last".into()),
            }
            resume.extend(carried);
            r.argv = Some(resume);
        }
        None => {}
    }
    (argv, r)
}

/// An adopted agent's resume command: its conversation already exists and is older than
/// our record of it. A Claude Code started without a fixed id continues the most recent
/// conversation of its directory (`--continue`).
pub fn for_adopted(argv: &[String], explicit: Option<&[String]>) -> Resume {
    let mut r = Resume {
        since: Some(0),
        explicit: explicit.is_some(),
        argv: explicit.map(<[String]>::to_vec),
        ..Resume::default()
    };
    if r.explicit {
        return r;
    }
    if known(argv) == Some(Known::Claude) {
        let (carried, _) = scan(&argv[1..], &CLAUDE_CARRIED, &[]);
        let mut resume = vec![argv[0].clone()];
        match claude_session_id(argv) {
            Some((_, id)) => {
                resume.extend(["--resume".to_string(), id.clone()]);
                r.conversation = Some(id);
            }
            None => resume.push("--continue".into()),
        }
        resume.extend(carried);
        r.argv = Some(resume);
    } else {
        let (_, derived) = prepare(argv, None, None, false, &mut String::new, 0);
        r.argv = derived.argv;
    }
    r
}

/// `--resume-cmd STRING`: a shell command, run like the notify command (`sh -c`).
pub fn shell_command(cmd: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), cmd.into()]
}

/// The policy's say in the choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumePolicy {
    pub fresh_only: bool,
    /// A conversation younger than this is not worth resuming.
    pub min_conversation_seconds: i64,
    /// A resumed agent that ended within this many seconds failed to resume.
    pub resume_failed_within_seconds: i64,
}

/// Which kind of start a restart makes, and why (for the log and the changelog).
/// `died_at`: when the last process ended, if known (a dead pane); None when it is alive
/// or its pane is gone with its server (then it did not fail to resume: it was seen).
pub fn choose(
    r: &Resume,
    started_at: i64,
    died_at: Option<i64>,
    now: i64,
    p: &ResumePolicy,
    fresh_requested: bool,
) -> (StartKind, String) {
    let fresh = |why: String| (StartKind::Fresh, why);
    if fresh_requested {
        return fresh("fresh start requested".into());
    }
    if r.argv.is_none() {
        return fresh("no resume command".into());
    }
    if p.fresh_only {
        return fresh("operator.restart_mode is fresh".into());
    }
    if let Some(died) = died_at {
        let lived = died.saturating_sub(started_at).max(0);
        if r.kind == StartKind::Resume && lived < p.resume_failed_within_seconds {
            return fresh(format!("the last resume ended after {lived}s"));
        }
    }
    let ended_at = died_at.unwrap_or(now);
    let age = ended_at
        .saturating_sub(r.since.unwrap_or(started_at))
        .max(0);
    if age < p.min_conversation_seconds {
        return fresh(format!("the conversation is only {age}s old"));
    }
    (
        StartKind::Resume,
        format!("continuing a {age}s conversation"),
    )
}

/// A random (version 4) UUID, from the kernel's random source.
pub fn new_uuid() -> String {
    use std::io::Read;
    let mut b = [0u8; 16];
    let got = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if got.is_err() {
        // Never reached on Linux or macOS; the time and pid still make a unique id here.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b[..16].copy_from_slice(&(t ^ u128::from(std::process::id())).to_le_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    fn ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("id-{n}")
        }
    }

    #[test]
    fn derived_resume_commands() {
        type Case<'a> = (&'a [&'a str], Option<&'a [&'a str]>, &'a [&'a str]);
        let cases: &[Case] = &[
            // (start command, resume command, start command as run)
            (
                &["claude", "--model", "opus", "fix the bug"],
                Some(&["claude", "--resume", "id-1", "--model", "opus"]),
                &[
                    "claude",
                    "--session-id",
                    "id-1",
                    "--model",
                    "opus",
                    "fix the bug",
                ],
            ),
            (
                &["/opt/bin/claude", "--session-id", "u-1", "go"],
                Some(&["/opt/bin/claude", "--resume", "u-1"]),
                &["/opt/bin/claude", "--session-id", "u-1", "go"],
            ),
            (&["claude", "-p", "once"], None, &["claude", "-p", "once"]),
            (&["claude", "--continue"], None, &["claude", "--continue"]),
            (
                &[
                    "codex",
                    "-s",
                    "workspace-write",
                    "--approve-for-me",
                    "-C",
                    "/x",
                    "implement",
                ],
                Some(&[
                    "codex",
                    "resume",
                    "--last",
                    "-s",
                    "workspace-write",
                    "--approve-for-me",
                ]),
                &[
                    "codex",
                    "-s",
                    "workspace-write",
                    "--approve-for-me",
                    "-C",
                    "/x",
                    "implement",
                ],
            ),
            (
                &["codex", "exec", "do it"],
                None,
                &["codex", "exec", "do it"],
            ),
            (
                &["codex", "-m", "o3", "exec", "x"],
                None,
                &["codex", "-m", "o3", "exec", "x"],
            ),
            (&["aider"], None, &["aider"]),
            (&["sh", "-c", "claude"], None, &["sh", "-c", "claude"]),
        ];
        for (start, resume, run) in cases {
            let (argv, r) = prepare(&v(start), None, None, false, &mut ids(), 100);
            assert_eq!(argv, v(run), "{start:?}");
            assert_eq!(r.argv, resume.map(v), "{start:?}");
            assert_eq!(r.kind, StartKind::Fresh);
            assert_eq!(r.since, Some(100));
        }
    }

    #[test]
    fn fresh_restart_gets_a_new_claude_conversation() {
        let mut next = ids();
        let (argv, r) = prepare(&v(&["claude", "go"]), None, None, false, &mut next, 1);
        assert_eq!(r.conversation.as_deref(), Some("id-1"));
        let (argv2, r2) = prepare(&argv, None, Some(&r), true, &mut next, 50);
        assert_eq!(argv2, v(&["claude", "--session-id", "id-2", "go"]));
        assert_eq!(r2.argv, Some(v(&["claude", "--resume", "id-2"])));
        let (argv3, _) = prepare(
            &v(&["claude", "--session-id=a"]),
            None,
            None,
            true,
            &mut next,
            1,
        );
        assert_eq!(argv3, v(&["claude", "--session-id=id-3"]));
    }

    #[test]
    fn explicit_and_reported_ids() {
        let e = v(&["my-agent", "--continue"]);
        let (argv, r) = prepare(&v(&["claude"]), Some(&e), None, false, &mut ids(), 1);
        assert_eq!(
            argv,
            v(&["claude"]),
            "an explicit resume command leaves the start alone"
        );
        assert_eq!(r.argv.as_ref(), Some(&e));
        assert!(r.explicit);
        // Kept across later restarts without being passed again.
        let (_, r2) = prepare(&argv, None, Some(&r), true, &mut ids(), 9);
        assert_eq!(r2.argv.as_ref(), Some(&e));
        let reported = Resume {
            conversation: Some("sess-9".into()),
            ..Resume::default()
        };
        let (_, r3) = prepare(&v(&["codex"]), None, Some(&reported), false, &mut ids(), 1);
        assert_eq!(r3.argv, Some(v(&["codex", "resume", "sess-9"])));
    }

    #[test]
    fn adopted_agents_continue_what_runs() {
        let r = for_adopted(&v(&["claude", "--model", "x"]), None);
        assert_eq!(r.argv, Some(v(&["claude", "--continue", "--model", "x"])));
        let r = for_adopted(&v(&["claude", "--session-id", "abc"]), None);
        assert_eq!(r.argv, Some(v(&["claude", "--resume", "abc"])));
        let r = for_adopted(&v(&["codex", "hi"]), None);
        assert_eq!(r.argv, Some(v(&["codex", "resume", "--last"])));
        assert_eq!(for_adopted(&v(&["vim"]), None).argv, None);
        let e = shell_command("my-agent --continue");
        assert_eq!(for_adopted(&v(&["vim"]), Some(&e)).argv, Some(e));
    }

    #[test]
    fn choice_table() {
        let p = ResumePolicy {
            fresh_only: false,
            min_conversation_seconds: 60,
            resume_failed_within_seconds: 10,
        };
        let with = |kind, since| Resume {
            argv: Some(v(&["a", "--resume"])),
            kind,
            since,
            ..Resume::default()
        };
        use StartKind::{Fresh, Resume as Resumed};
        // (resume state, started_at, died_at, policy fresh, requested fresh) → kind
        let cases = [
            (with(Fresh, Some(0)), 0, Some(600), false, false, Resumed),
            (with(Fresh, Some(0)), 0, Some(30), false, false, Fresh), // too young
            (with(Resumed, Some(0)), 500, Some(503), false, false, Fresh), // resume died at once
            (
                with(Resumed, Some(0)),
                500,
                Some(700),
                false,
                false,
                Resumed,
            ),
            (with(Fresh, Some(0)), 0, Some(600), true, false, Fresh),
            (with(Fresh, Some(0)), 0, Some(600), false, true, Fresh),
            (super::Resume::default(), 0, Some(600), false, false, Fresh), // no resume command
            // Its pane went with its server: alive when last seen, not a failed resume.
            (with(Resumed, Some(0)), 500, None, false, false, Resumed),
        ];
        for (i, (r, s, e, only, req, want)) in cases.into_iter().enumerate() {
            let pol = ResumePolicy {
                fresh_only: only,
                ..p
            };
            assert_eq!(choose(&r, s, e, 800, &pol, req).0, want, "case {i}");
        }
    }

    #[test]
    fn uuids_are_v4_and_distinct() {
        let (a, b) = (new_uuid(), new_uuid());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }
}
