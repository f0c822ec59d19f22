//! The detached LLM worker (`__llm-worker`, hidden) and how ticks start and reap it.
//! It never takes the tick lock: it reads its request row, runs the LLM under a hard
//! wall-clock limit that kills the whole process group, and writes the validated result.

use crate::cli::{self, CliError, CliResult, Ctx};
use crate::llm::{self, AnswerSource, ProviderKind};
use crate::policy::LlmProvider;
use crate::store::{self, NewEvent, OpenMode, Store};
use crate::timeutil::now_unix;
use crate::tmux;
use lexopt::prelude::*;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

const PANE_LINES: usize = 40;
const MAX_CONTEXT: usize = 4096;
/// How long a TERMed process group gets before KILL.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// How much of the LLM's stderr an error message quotes.
const STDERR_TAIL_CHARS: usize = 200;

/// Starts the worker detached: its own session (setsid), stdio to null, never waited on.
/// `Command` execs, so the close-on-exec lock fd is not inherited.
pub fn spawn(ctx: &Ctx, run_id: &str, fingerprint: &str) -> std::io::Result<u32> {
    let mut c = Command::new(cli::current_exe());
    c.args(ctx.self_args())
        .args([
            "__llm-worker",
            "--run",
            run_id,
            "--fingerprint",
            fingerprint,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        c.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    Ok(c.spawn()?.id())
}

/// `/proc/<pid>/stat` fields after the command name: (state, pgrp, session).
fn proc_stat(pid: i32) -> Option<(char, i32, i32)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain spaces or ')'.
    let mut f = s.get(s.rfind(')')? + 1..)?.split_whitespace();
    let state = f.next()?.chars().next()?;
    let _ppid = f.next()?;
    Some((state, f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

fn have_proc() -> bool {
    Path::new("/proc/self/stat").exists()
}

/// Every process as (pid, state, pgrp, session); empty without /proc.
fn all_procs() -> Vec<(i32, char, i32, i32)> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| proc_stat(pid).map(|(st, pg, sid)| (pid, st, pg, sid)))
        .collect()
}

fn is_zombie(state: char) -> bool {
    matches!(state, 'Z' | 'X' | 'x')
}

/// A process that exists and is not a zombie (a dead worker whose parent never reaped it
/// must not look alive).
pub fn pid_alive(pid: i64) -> bool {
    let Ok(p) = i32::try_from(pid) else {
        return false;
    };
    if p <= 0 || kill(Pid::from_raw(p), None).is_err() {
        return false;
    }
    match proc_stat(p) {
        Some((state, ..)) => !is_zombie(state),
        // Exited between the two checks, or no /proc to ask (then kill(0) is all we have).
        None => !have_proc(),
    }
}

/// The pid is alive and is the worker for `run_id` (not a reused pid).
pub fn worker_alive(pid: i64, run_id: &str) -> bool {
    pid_alive(pid) && is_worker(pid, run_id)
}

fn is_worker(pid: i64, run_id: &str) -> bool {
    let Ok(raw) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return !have_proc();
    };
    let args: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
    args.iter().any(|a| *a == b"__llm-worker")
        && args
            .windows(2)
            .any(|w| w[0] == b"--run" && w[1] == run_id.as_bytes())
}

/// Whether any non-zombie process is left in one of `groups`.
fn groups_alive(groups: &[i32]) -> bool {
    if have_proc() {
        all_procs()
            .iter()
            .any(|(_, st, pg, _)| groups.contains(pg) && !is_zombie(*st))
    } else {
        groups
            .iter()
            .any(|g| killpg(Pid::from_raw(*g), None).is_ok())
    }
}

/// TERM, up to `grace` for the groups to go, then KILL. Zombies count as gone.
fn kill_groups(groups: &[i32], grace: Duration) {
    let groups: Vec<i32> = groups.iter().copied().filter(|g| *g > 1).collect();
    for g in &groups {
        let _ = killpg(Pid::from_raw(*g), Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !groups_alive(&groups) {
            return;
        }
        sleep(Duration::from_millis(20));
    }
    for g in &groups {
        let _ = killpg(Pid::from_raw(*g), Signal::SIGKILL);
    }
}

/// TERM then KILL to a whole process group.
pub fn kill_group(pgid: i64) {
    if let Ok(p) = i32::try_from(pgid) {
        kill_groups(&[p], KILL_GRACE);
    }
}

/// Ends a worker the tick gave up on, and everything it started. The worker leads its
/// own session (setsid) and the LLM runs in a separate group inside it, so killing the
/// worker's group alone would orphan the LLM. While any member of session `pid` lives,
/// the kernel does not reuse `pid`; a live process under that pid that is not our worker
/// means the session is long gone and nothing is ours to kill.
pub fn reap_worker(pid: i64, run_id: &str) {
    let Ok(p) = i32::try_from(pid) else { return };
    if p <= 1 {
        return;
    }
    if !have_proc() {
        if pid_alive(pid) {
            kill_group(pid);
        }
        return;
    }
    if pid_alive(pid) && !is_worker(pid, run_id) {
        return;
    }
    let mut groups: Vec<i32> = all_procs()
        .into_iter()
        .filter(|(_, st, _, sid)| *sid == p && !is_zombie(*st))
        .map(|(_, _, pg, _)| pg)
        .collect();
    groups.sort_unstable();
    groups.dedup();
    if !groups.is_empty() {
        kill_groups(&groups, KILL_GRACE);
    }
}

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    let (mut run, mut fp) = (None, None);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("run") => run = Some(cli::os_to_string(parser.value()?, "--run")?),
            Long("fingerprint") => fp = Some(cli::os_to_string(parser.value()?, "--fingerprint")?),
            other => return Err(other.unexpected().into()),
        }
    }
    let (Some(run), Some(fp)) = (run, fp) else {
        return Err(CliError::Usage(
            "__llm-worker: --run and --fingerprint are required".into(),
        ));
    };
    let policy = ctx.policy()?;
    let timeout = policy.operator.llm.timeout_seconds.max(1) as u64;
    // Watchdog for the worker itself, beyond the child's deadline.
    let _ = nix::unistd::alarm::set((timeout + 15).min(u64::from(u32::MAX)) as u32);
    let mut st = ctx.open(OpenMode::Existing, false)?;
    let Some(call) = st.llm_call(&run)? else {
        return Ok(0);
    };
    if call.fingerprint != fp || call.state != "in_flight" {
        return Ok(0);
    }
    let result = consult(ctx, &policy, &run, &call.request, timeout);
    let now = now_unix();
    let (proposal, error) = match &result {
        Ok(p) => (serde_json::to_string(p).ok(), None),
        Err(e) => (None, Some(e.clone())),
    };
    let message = match &result {
        Ok(p) => format!(
            "proposal intent={} confidence={:.2} needs_human={} reason={}",
            p.intent, p.confidence, p.needs_human, p.reason
        ),
        Err(e) => format!("error: {e}"),
    };
    write_result(
        &mut st,
        &run,
        &fp,
        proposal.as_deref(),
        error.as_deref(),
        &message,
        now,
    )?;
    Ok(0)
}

fn write_result(
    st: &mut Store,
    run: &str,
    fp: &str,
    proposal: Option<&str>,
    error: Option<&str>,
    message: &str,
    now: i64,
) -> CliResult {
    let tx = st.write()?;
    if store::llm_call_finish(&tx, run, fp, proposal, error, now)? {
        store::add_event(
            &tx,
            now,
            &NewEvent {
                run_id: Some(run),
                kind: "llm",
                to_state: if error.is_some() { "error" } else { "proposal" },
                message,
                source: "llm",
                ..Default::default()
            },
        )?;
    }
    tx.commit().map_err(store::StoreError::from)?;
    Ok(())
}

/// Pane tails of unhealthy agents, ANSI stripped, in one tmux call.
fn pane_tails(ctx: &Ctx, context: &mut serde_json::Value) {
    let Some(agents) = context.get_mut("agents").and_then(|a| a.as_array_mut()) else {
        return;
    };
    let sessions: Vec<String> = agents
        .iter()
        .filter(|a| a.get("unhealthy").and_then(|u| u.as_bool()) == Some(true))
        .filter_map(|a| {
            a.get("session")
                .and_then(|s| s.as_str())
                .map(str::to_string)
        })
        .collect();
    if sessions.is_empty() {
        return;
    }
    let mut cmds = Vec::new();
    for (i, s) in sessions.iter().enumerate() {
        cmds.push(tmux::cmd([
            "display-message",
            "-p",
            &format!("METAWSM-PANE\t{i}"),
        ]));
        cmds.push(tmux::cmd([
            "capture-pane",
            "-p",
            "-J",
            "-S",
            &format!("-{PANE_LINES}"),
            "-t",
            &tmux::pane_target(s),
        ]));
    }
    // A session that vanished fails the batch; then there is simply no tail to show.
    let Ok(out) = ctx.tmux.run(&cmds) else { return };
    let mut tails: Vec<Vec<&str>> = vec![Vec::new(); sessions.len()];
    let mut cur = None;
    for line in out.lines() {
        if let Some(i) = line
            .strip_prefix("METAWSM-PANE\t")
            .and_then(|i| i.parse::<usize>().ok())
        {
            cur = Some(i);
        } else if let Some(i) = cur {
            if let Some(t) = tails.get_mut(i) {
                t.push(line);
            }
        }
    }
    for a in agents.iter_mut() {
        let Some(s) = a
            .get("session")
            .and_then(|s| s.as_str())
            .map(str::to_string)
        else {
            continue;
        };
        if let Some(i) = sessions.iter().position(|x| *x == s) {
            let lines: Vec<&str> = tails[i]
                .iter()
                .rev()
                .skip_while(|l| l.trim().is_empty())
                .copied()
                .collect();
            let text: Vec<&str> = lines
                .into_iter()
                .take(PANE_LINES)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let mut tail = llm::strip_ansi(&text.join("\n"));
            if tail.len() > MAX_CONTEXT {
                let mut cut = tail.len() - MAX_CONTEXT;
                while !tail.is_char_boundary(cut) {
                    cut += 1;
                }
                tail = tail[cut..].to_string();
            }
            a["pane_tail"] = serde_json::Value::String(tail);
        }
    }
}

fn consult(
    ctx: &Ctx,
    policy: &crate::policy::Policy,
    run: &str,
    request: &str,
    timeout: u64,
) -> Result<llm::Proposal, String> {
    let mut context: serde_json::Value =
        serde_json::from_str(request).map_err(|e| format!("bad request context: {e}"))?;
    pane_tails(ctx, &mut context);
    let permitted: Vec<crate::model::Intent> = context
        .get("permitted")
        .and_then(|p| p.as_array())
        .map(|a| a.iter().filter_map(|i| i.as_str()?.parse().ok()).collect())
        .unwrap_or_default();
    let prompt = llm::build_prompt(&context, &permitted);
    let dir =
        std::env::temp_dir().join(format!("metawsm-llm-{}-{}", std::process::id(), now_unix()));
    fs::create_dir_all(&dir).map_err(|e| format!("temp dir: {e}"))?;
    let out = run_llm(policy, &dir, &prompt, timeout, run);
    let _ = fs::remove_dir_all(&dir);
    out
}

fn run_llm(
    policy: &crate::policy::Policy,
    dir: &std::path::Path,
    prompt: &str,
    timeout: u64,
    run: &str,
) -> Result<llm::Proposal, String> {
    let l = &policy.operator.llm;
    let kind = match l.provider {
        LlmProvider::Codex => ProviderKind::Codex,
        LlmProvider::Claude => ProviderKind::Claude,
        LlmProvider::Command => ProviderKind::Command,
    };
    let schema = dir.join("schema.json");
    let answer_file = dir.join("answer.json");
    let stdout_file = dir.join("stdout.txt");
    fs::write(&schema, llm::response_schema().to_string())
        .map_err(|e| format!("write schema: {e}"))?;
    let inv = llm::build_invocation(
        kind,
        &l.command,
        &l.args,
        &l.model,
        l.max_tokens,
        &schema,
        &answer_file,
    );
    let stdout = fs::File::create(&stdout_file).map_err(|e| format!("stdout file: {e}"))?;
    let mut child = Command::new(&inv.program)
        .args(&inv.args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("{} failed to start: {e}", inv.program))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A child that ignores stdin must not wedge us: the prompt is far below a pipe buffer.
        let _ = stdin.write_all(prompt.as_bytes());
    }
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() < deadline => sleep(Duration::from_millis(25)),
            Ok(None) => {
                kill_group(i64::from(child.id()));
                let _ = child.wait();
                return Err(format!(
                    "{} timed out after {timeout}s (process group killed)",
                    inv.program
                ));
            }
            Err(e) => return Err(format!("wait: {e}")),
        }
    };
    // Children the LLM left behind in its group go too.
    let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
    if !status.success() {
        return Err(format!(
            "{} exited with {}",
            inv.program,
            status
                .code()
                .map(|c| c.to_string())
                .unwrap_or_else(|| "a signal".into())
        ));
    }
    let raw = match &inv.answer {
        AnswerSource::OutputFile(p) => fs::read(p).map_err(|e| format!("no answer file: {e}"))?,
        AnswerSource::Stdout => fs::read(&stdout_file).map_err(|e| format!("read stdout: {e}"))?,
    };
    llm::parse_answer(kind, &raw, run)
        .map_err(|e| format!("rejected answer: {}", llm::sanitize_text(&e)))
}
