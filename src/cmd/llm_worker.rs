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
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

const PANE_LINES: usize = 40;
const MAX_CONTEXT: usize = 4096;

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

pub fn pid_alive(pid: i64) -> bool {
    i32::try_from(pid).is_ok_and(|p| p > 0 && kill(Pid::from_raw(p), None).is_ok())
}

/// TERM then KILL to a whole process group (the worker leads its own).
pub fn kill_group(pgid: i64) {
    let Ok(p) = i32::try_from(pgid) else { return };
    if p <= 1 {
        return;
    }
    let pg = Pid::from_raw(p);
    let _ = killpg(pg, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if killpg(pg, None).is_err() {
            return;
        }
        sleep(Duration::from_millis(20));
    }
    let _ = killpg(pg, Signal::SIGKILL);
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
