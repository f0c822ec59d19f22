//! Agents we did not start: finding them (`run adopt --scan`), reading what tmux knows of a
//! pane, and the tmux commands that stop or restart an adopted pane without touching the
//! user's session around it.

use crate::cli::Ctx;
use crate::policy::Policy;
use crate::store::AgentRow;
use crate::tmux::{self, Cmd, Target};
use std::collections::{HashMap, HashSet};

/// Agent CLIs recognised by name; `operator.agent_names` adds more.
pub const KNOWN_AGENTS: [&str; 8] = [
    "codex",
    "claude",
    "aider",
    "gemini",
    "opencode",
    "goose",
    "amp",
    "cursor-agent",
];

pub fn known_agents(policy: &Policy) -> Vec<String> {
    let mut v: Vec<String> = KNOWN_AGENTS.iter().map(|s| s.to_string()).collect();
    for n in &policy.operator.agent_names {
        if !v.contains(n) {
            v.push(n.clone());
        }
    }
    v
}

/// What tmux tells us about one pane we may adopt.
#[derive(Debug, Clone, PartialEq)]
pub struct PaneInfo {
    pub session: String,
    pub target: String,
    pub pane_id: String,
    pub pid: Option<i64>,
    pub dead: bool,
    pub socket: String,
    pub path: String,
    pub current_command: String,
    /// `#{pane_start_command}`, still in tmux's quoting; empty when the pane runs the
    /// default shell.
    pub start_command: String,
}

/// Free text goes last (split with `splitn`): tabs cannot appear in the fields before it.
/// A pane's path and command are printed raw by tmux, and any process can put a TAB or
/// newline in them to forge a row: tmux replaces control characters with a space (see
/// tmux::PANE_FORMAT).
pub const PANE_INFO_FORMAT: &str = concat!(
    "#{session_name}\t#{session_name}:#{window_index}.#{pane_index}\t#{pane_id}\t",
    "#{pane_pid}\t#{pane_dead}\t#{socket_path}\t#{s/[\u{1}-\u{1f}\u{7f}]/ /:pane_current_path}\t",
    "#{s/[\u{1}-\u{1f}\u{7f}]/ /:pane_current_command}\t#{pane_start_command}"
);

pub fn parse_pane_info(line: &str) -> Option<PaneInfo> {
    let f: Vec<&str> = line.splitn(9, '\t').collect();
    if f.len() < 9 || !f[2].starts_with('%') {
        return None;
    }
    Some(PaneInfo {
        session: f[0].to_string(),
        target: f[1].to_string(),
        pane_id: f[2].to_string(),
        pid: f[3].trim().parse().ok(),
        dead: f[4] == "1",
        socket: f[5].to_string(),
        path: f[6].to_string(),
        current_command: f[7].to_string(),
        start_command: f[8].to_string(),
    })
}

/// An exact tmux target for what the user typed: `%N` a pane, `=name` (or `name`) the
/// session's current pane.
pub fn exact_target(t: &str) -> Target<'_> {
    if t.starts_with('%') {
        Target::Pane(t)
    } else {
        let s = t.strip_prefix('=').unwrap_or(t);
        Target::SessionPane(s.strip_suffix(':').unwrap_or(s))
    }
}

/// The pane behind one target, or why not.
pub fn pane_info(ctx: &Ctx, target: &str) -> Result<PaneInfo, String> {
    let out = ctx
        .tmux
        .run(&[Cmd::new("display-message")
            .flag("-p")
            .target(exact_target(target))
            .format(PANE_INFO_FORMAT)])
        .map_err(|e| format!("tmux: {target}: {e}"))?;
    out.lines()
        .next()
        .and_then(parse_pane_info)
        .ok_or_else(|| format!("tmux: {target}: no such pane"))
}

/// `#{pane_start_command}` back to an argv. tmux quotes each word (double quotes with
/// backslash escapes); a single word is a shell command line (tmux ran it with `sh -c`).
pub fn restart_argv(start_command: &str) -> Option<Vec<String>> {
    let words = split_tmux_words(start_command)?;
    match words.len() {
        0 => None,
        1 => Some(vec!["/bin/sh".into(), "-c".into(), words[0].clone()]),
        _ => Some(words),
    }
}

fn split_tmux_words(s: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut it = s.chars();
    while let Some(c) = it.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match it.next()? {
                        '"' => break,
                        '\\' => cur.push(it.next()?),
                        c => cur.push(c),
                    }
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match it.next()? {
                        '\'' => break,
                        c => cur.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                cur.push(it.next()?);
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Some(out)
}

/// Stops one agent: an adopted agent's pane only (the user's session stays), else its
/// whole session. Nothing when it is already gone.
pub fn stop_cmds(a: &AgentRow, present: bool) -> Vec<Cmd> {
    if !present {
        return Vec::new();
    }
    match (a.adopted, a.pane_id.as_deref()) {
        (true, Some(p)) => vec![Cmd::new("kill-pane").target(Target::Pane(p))],
        (true, None) => Vec::new(),
        (false, _) => vec![tmux::kill_session_cmd(&a.session)],
    }
}

/// Restarts one agent. An adopted pane is respawned in place (same pane id, same place in
/// the user's layout); if it is gone, the agent starts in a session of its own. Err when
/// there is nothing to restart it with.
pub fn restart_cmds(
    ctx: &Ctx,
    policy: &Policy,
    a: &AgentRow,
    present: bool,
) -> Result<Vec<Cmd>, String> {
    if a.argv.is_empty() {
        return Err(format!("agent {} has no restart command", a.name));
    }
    if !a.adopted {
        let mut cmds = stop_cmds(a, present);
        cmds.extend(crate::agents::agent_start_cmds(ctx, policy, a));
        return Ok(cmds);
    }
    match (present, a.pane_id.as_deref()) {
        (true, Some(p)) => {
            let mut c = Cmd::new("respawn-pane")
                .flag("-k")
                .target(Target::Pane(p))
                .flag("-c")
                .expanded("working directory", &a.workdir);
            for (k, v) in crate::agents::agent_env(ctx, &a.run_id, &a.name) {
                c = c.flag("-e").word("environment", &format!("{k}={v}"));
            }
            c = c.end_of_flags();
            if a.argv.len() == 1 {
                // A single argument would go through `sh -c`; env execs it as an argv.
                c = c.flags(&["/usr/bin/env", "--"]);
            }
            for w in &a.argv {
                c = c.word("agent command", w);
            }
            Ok(vec![c])
        }
        _ => Ok(crate::agents::agent_start_cmds(ctx, policy, a)),
    }
}

/// What a human should know about what the tick can and cannot see of an adopted agent.
pub fn observability(a: &AgentRow) -> Vec<String> {
    if !a.adopted {
        return Vec::new();
    }
    let mut v = vec![format!(
        "adopted pane {}: activity is its window's (tmux has no per-pane activity time)",
        a.pane_id.as_deref().unwrap_or("?")
    )];
    if a.keep_dead_pane {
        v.push("remain-on-exit on: an exit leaves a dead pane with its status".into());
    } else {
        v.push(
            "exit status not observable: the pane closes when the agent exits and is then \
             seen as gone (dead); adopt with --keep-dead-pane to keep it"
                .into(),
        );
    }
    if a.argv.is_empty() {
        v.push("no restart command: the rules escalate instead of restarting".into());
    }
    v
}

// ---- scan -------------------------------------------------------------------------

/// Processes by pid: parent and the names that identify them (comm, argv[0] basename and,
/// for an interpreter, its script's basename).
#[derive(Debug, Default)]
pub struct ProcTable {
    pub children: HashMap<i64, Vec<i64>>,
    pub names: HashMap<i64, Vec<String>>,
}

fn basename(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

/// Names a process is known by: `node /…/bin/codex.js` is `codex` as well as `node`.
pub fn proc_names(comm: &str, argv: &[String]) -> Vec<String> {
    let mut v = vec![comm.trim().to_string()];
    if let Some(a0) = argv.first() {
        let b = basename(a0).to_string();
        if let Some(a1) = argv.get(1).filter(|_| {
            matches!(
                b.as_str(),
                "node" | "bun" | "deno" | "python" | "python3" | "ruby"
            )
        }) {
            let s = basename(a1);
            v.push(s.split('.').next().unwrap_or(s).to_string());
        }
        v.push(b);
    }
    v.retain(|n| !n.is_empty());
    v
}

#[cfg(target_os = "linux")]
pub fn proc_table() -> ProcTable {
    let mut t = ProcTable::default();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return t;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i64>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // comm may hold spaces and parentheses: the fields after it start at the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let ppid = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<i64>().ok());
        let argv: Vec<String> = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| {
                b.split(|c| *c == 0)
                    .filter(|s| !s.is_empty())
                    .take(2)
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        if let Some(pp) = ppid {
            t.children.entry(pp).or_default().push(pid);
        }
        t.names.insert(pid, proc_names(comm, &argv));
    }
    t
}

#[cfg(not(target_os = "linux"))]
pub fn proc_table() -> ProcTable {
    let mut t = ProcTable::default();
    let Ok(out) = std::process::Command::new("ps")
        .args(["-A", "-o", "pid=", "-o", "ppid=", "-o", "comm="])
        .stdin(std::process::Stdio::null())
        .output()
    else {
        return t;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut f = line.split_whitespace();
        let (Some(pid), Some(ppid)) = (
            f.next().and_then(|p| p.parse::<i64>().ok()),
            f.next().and_then(|p| p.parse::<i64>().ok()),
        ) else {
            continue;
        };
        let comm: String = f.collect::<Vec<_>>().join(" ");
        t.children.entry(ppid).or_default().push(pid);
        t.names.insert(
            pid,
            proc_names(basename(&comm), std::slice::from_ref(&comm)),
        );
    }
    t
}

/// The known agent a pane runs, and how it was seen: its current command, or a process
/// below the pane's (npm's `node` launcher runs the real `codex` as its child).
pub fn detect(
    current_command: &str,
    pid: Option<i64>,
    procs: &ProcTable,
    known: &[String],
) -> Option<(String, &'static str)> {
    let is_known = |n: &str| known.iter().any(|k| k == n);
    if is_known(basename(current_command)) {
        return Some((basename(current_command).to_string(), "current_command"));
    }
    let root = pid?;
    let mut queue = vec![(root, 0)];
    let mut seen = HashSet::new();
    while let Some((p, depth)) = queue.pop() {
        if !seen.insert(p) {
            continue;
        }
        if let Some(n) = procs
            .names
            .get(&p)
            .and_then(|ns| ns.iter().find(|n| is_known(n)))
        {
            let via = if p == root {
                "pane_process"
            } else {
                "child_process"
            };
            return Some((n.clone(), via));
        }
        if depth < 4 {
            for c in procs.children.get(&p).into_iter().flatten() {
                queue.push((*c, depth + 1));
            }
        }
    }
    None
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Found {
    pub pane: String,
    pub session: String,
    pub target: String,
    pub agent: String,
    pub via: String,
    pub path: String,
    /// The command that adopts it (shell-quoted).
    pub adopt: String,
}

/// Every live pane that runs a known agent and is not supervised yet.
pub fn scan(
    infos: &[PaneInfo],
    supervised: &HashSet<String>,
    procs: &ProcTable,
    known: &[String],
) -> Vec<Found> {
    let mut out = Vec::new();
    for p in infos {
        if p.dead || supervised.contains(&p.pane_id) {
            continue;
        }
        let Some((agent, via)) = detect(&p.current_command, p.pid, procs, known) else {
            continue;
        };
        let adopt = format!(
            "metawsm-tick run adopt --ticket TICKET --agent {} {}",
            tmux::sh_quote(&agent),
            tmux::sh_quote(&p.pane_id)
        );
        out.push(Found {
            pane: p.pane_id.clone(),
            session: p.session.clone(),
            target: p.target.clone(),
            agent,
            via: via.to_string(),
            path: p.path.clone(),
            adopt,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_commands_become_argvs() {
        assert_eq!(restart_argv(""), None);
        assert_eq!(
            restart_argv("\"sh -c \\\"echo a; exit 3\\\"\""),
            Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                "sh -c \"echo a; exit 3\"".into()
            ])
        );
        assert_eq!(
            restart_argv("codex --model \"o 3\""),
            Some(vec!["codex".into(), "--model".into(), "o 3".into()])
        );
        assert_eq!(restart_argv("\"unterminated"), None);
    }

    #[test]
    fn npm_codex_is_found_below_node() {
        let mut t = ProcTable::default();
        t.children.insert(10, vec![11]);
        t.children.insert(11, vec![12]);
        t.names.insert(10, proc_names("bash", &["-bash".into()]));
        t.names.insert(
            11,
            proc_names(
                "node",
                &["node".into(), "/usr/lib/node_modules/x/bin/codex.js".into()],
            ),
        );
        t.names
            .insert(12, proc_names("codex", &["/opt/vendor/bin/codex".into()]));
        let known = known_agents(&Policy::default());
        let hit = detect("node", Some(10), &t, &known).expect("found");
        assert_eq!(hit, ("codex".to_string(), "child_process"));
        assert_eq!(
            detect("claude", Some(10), &ProcTable::default(), &known),
            Some(("claude".to_string(), "current_command"))
        );
        assert_eq!(detect("vim", Some(99), &t, &known), None);
    }

    #[test]
    fn targets_are_exact() {
        assert_eq!(exact_target("%3"), Target::Pane("%3"));
        assert_eq!(exact_target("=work"), Target::SessionPane("work"));
        assert_eq!(exact_target("work:"), Target::SessionPane("work"));
    }
}
