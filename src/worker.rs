//! The detached LLM worker: how a tick starts it, tells it from a reused pid and reaps
//! it, and what it does (read its request row, run the LLM under a hard wall-clock limit
//! that kills the whole process group, write the validated result). It never takes the
//! tick lock.

use crate::cli::{self, CliResult, Ctx};
use crate::llm::{self, AnswerSource, ProviderKind};
use crate::llm_request::Request;
use crate::policy::LlmProvider;
use crate::proc::KILL_GRACE;
use crate::proc::{self, all_procs, have_proc, is_zombie, kill_group, kill_groups, pid_alive};
use crate::store::{self, NewEvent, OpenMode, Store};
use crate::timeutil::{now_unix, poll_until};
use crate::tmux;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

const PANE_LINES: usize = 40;
const MAX_CONTEXT: usize = 4096;
const REAP_GRACE: Duration = Duration::from_millis(150);
/// Per-call directories in the temp dir are `<prefix><worker pid>-<hex>`.
const DIR_PREFIX: &str = "metawsm-llm-";
/// How much of the LLM's stderr an error message quotes.
const STDERR_TAIL_CHARS: usize = 200;
/// What a worker keeps of the provider's output (stdout, stderr and answer file
/// together): past it the provider is killed. A provider printing `yes` once wrote
/// 1.1 GB in 5 s.
pub const MAX_LLM_OUTPUT: u64 = 4 << 20;
/// How often the worker looks at the child and the size of its output.
const POLL: Duration = Duration::from_millis(25);

/// Starts the worker detached (see `proc::spawn_detached`).
pub fn spawn(ctx: &Ctx, run_id: &str, fingerprint: &str) -> std::io::Result<u32> {
    let mut c = Command::new(cli::current_exe());
    c.args(ctx.self_args()).args([
        "__llm-worker",
        "--run",
        run_id,
        "--fingerprint",
        fingerprint,
    ]);
    proc::spawn_detached(&mut c)
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
    // Reaping runs inside a tick (maybe the status line's): a short grace, not KILL_GRACE.
    if !groups.is_empty() {
        kill_groups(&groups, REAP_GRACE);
    }
    // A killed worker could not clean up after itself.
    poll_until(REAP_GRACE, Duration::from_millis(10), || {
        (!pid_alive(pid)).then_some(())
    });
    remove_dirs_of(p);
}

/// Removes the per-call directories (see `private_dir`) of a worker that is gone.
fn remove_dirs_of(pid: i32) {
    remove_call_dirs(|p| p == pid, Duration::ZERO);
}

/// Removes per-call directories whose worker is gone (it was killed before it could clean
/// up), if `which` selects its pid and the directory is at least `min_age` old. Only real
/// 0700 directories of ours are touched, never through a symlink.
fn remove_call_dirs(which: impl Fn(i32) -> bool, min_age: Duration) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    // Our uid without nix's `user` feature; elsewhere the sticky temp dir guards others'.
    let uid = fs::metadata("/proc/self").ok().map(|m| m.uid());
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if !which(pid) || pid_alive(i64::from(pid)) {
            continue;
        }
        let ours = fs::symlink_metadata(e.path()).is_ok_and(|m| {
            m.is_dir()
                && m.mode() & 0o777 == 0o700
                && uid.is_none_or(|u| m.uid() == u)
                && m.modified()
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age >= min_age)
        });
        if ours {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// Why a call produced no proposal. `unstarted` is set where the LLM program failed to
/// start (not installed, not on PATH): such a call is retried sooner, and no text in the
/// message (a provider's stderr may say anything) decides that.
#[derive(Debug, Clone, PartialEq)]
pub struct CallError {
    pub message: String,
    pub unstarted: bool,
}

impl From<String> for CallError {
    fn from(message: String) -> Self {
        CallError {
            message,
            unstarted: false,
        }
    }
}

/// The worker's whole life, once its arguments are parsed.
pub fn serve(ctx: &Ctx, run: &str, fp: &str) -> CliResult<i32> {
    // The run's own policy (its project's), as the tick that asked used.
    let policy = match ctx.open(OpenMode::Existing, false)?.run(run) {
        Ok(r) => crate::project_policy::for_run(ctx, &r)?,
        Err(_) => ctx.policy()?,
    };
    let timeout = policy.operator.llm.timeout_seconds.max(1) as u64;
    // Watchdog for the worker itself, beyond the child's deadline.
    let grace = crate::gate::WORKER_GRACE_SECONDS as u64;
    let _ = nix::unistd::alarm::set((timeout + grace).min(u64::from(u32::MAX)) as u32);
    let mut st = ctx.open(OpenMode::Existing, false)?;
    let Some(call) = st.llm_call(run)? else {
        return Ok(0);
    };
    if call.fingerprint != fp || call.state != store::CallState::InFlight {
        return Ok(0);
    }
    // Orphans of the provider are re-parented to us (Linux), so we can end them all.
    let subreaper = proc::become_subreaper();
    // The path recorded where the user configured it, not whatever our PATH finds.
    let program = crate::llm_command::program(&st, &policy.operator.llm.command);
    let result = consult(ctx, &policy, run, &call.request, timeout, &program);
    if subreaper {
        proc::kill_descendants();
    }
    let now = now_unix();
    let (proposal, error) = match &result {
        Ok(p) => (serde_json::to_string(p).ok(), None),
        Err(e) => (None, Some(e)),
    };
    let message = match &result {
        Ok(p) => format!(
            "proposal intent={} confidence={:.2} needs_human={} reason={}",
            p.intent, p.confidence, p.needs_human, p.reason
        ),
        Err(e) => format!("error: {}", e.message),
    };
    write_result(&mut st, run, fp, proposal.as_deref(), error, &message, now)?;
    Ok(0)
}

/// Writes the result in its own BEGIN IMMEDIATE transaction (never the tick lock). A
/// tick holding the database longer than the busy timeout costs a retry, not the answer.
fn write_result(
    st: &mut Store,
    run: &str,
    fp: &str,
    proposal: Option<&str>,
    error: Option<&CallError>,
    message: &str,
    now: i64,
) -> CliResult {
    let mut attempt = 0;
    loop {
        match write_once(st, run, fp, proposal, error, message, now) {
            Err(store::StoreError::Busy(_)) if attempt < 3 => {
                attempt += 1;
                sleep(Duration::from_millis(200));
            }
            other => return other.map_err(Into::into),
        }
    }
}

fn write_once(
    st: &mut Store,
    run: &str,
    fp: &str,
    proposal: Option<&str>,
    error: Option<&CallError>,
    message: &str,
    now: i64,
) -> Result<(), store::StoreError> {
    let tx = st.write()?;
    let (text, unstarted) = match error {
        Some(e) => (Some(e.message.as_str()), e.unstarted),
        None => (None, false),
    };
    if tx.llm_call_finish(run, fp, proposal, text, unstarted, now)? {
        tx.add_event(
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
    tx.commit()?;
    Ok(())
}

/// Pane tails of unhealthy agents, ANSI stripped, in one tmux call.
fn pane_tails(ctx: &Ctx, request: &mut Request) {
    let sessions: Vec<String> = request
        .agents
        .iter()
        .filter(|a| a.unhealthy)
        .map(|a| a.session.clone())
        .collect();
    if sessions.is_empty() {
        return;
    }
    let mut cmds = Vec::new();
    for (i, s) in sessions.iter().enumerate() {
        cmds.push(
            tmux::Cmd::new("display-message")
                .flag("-p")
                .format(&format!("METAWSM-PANE\t{i}")),
        );
        cmds.push(
            tmux::Cmd::new("capture-pane")
                .flags(&["-p", "-J", "-S"])
                .num(-(PANE_LINES as i64))
                .target(tmux::Target::SessionPane(s)),
        );
    }
    // A session that vanished fails the whole batch: then ask per session (rare), so the
    // other agents still get their tails.
    let out = match ctx.tmux.run(&cmds) {
        Ok(out) => out,
        Err(_) => cmds
            .chunks(2)
            .filter_map(|pair| ctx.tmux.run(pair).ok())
            .collect::<String>(),
    };
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
    for a in request.agents.iter_mut() {
        if let Some(i) = sessions.iter().position(|x| *x == a.session) {
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
            a.pane_tail = Some(tail);
        }
    }
}

fn consult(
    ctx: &Ctx,
    policy: &crate::policy::Policy,
    run: &str,
    request: &str,
    timeout: u64,
    program: &str,
) -> Result<llm::Proposal, CallError> {
    let mut request: Request =
        serde_json::from_str(request).map_err(|e| format!("bad request context: {e}"))?;
    pane_tails(ctx, &mut request);
    let prompt = llm::build_prompt(&request.to_value(), &request.permitted_intents());
    // Leftovers of killed workers; the age rules out a fresh one whose pid was reused.
    remove_call_dirs(|_| true, Duration::from_secs(60));
    let dir = private_dir().map_err(|e| format!("temp dir: {e}"))?;
    let out = run_llm(policy, &dir, &prompt, timeout, run, program);
    let _ = fs::remove_dir_all(&dir);
    out
}

/// A fresh 0700 directory for the schema and answer files: created exclusively, so a
/// name planted in the shared temp dir is never reused (the prompt holds pane text).
fn private_dir() -> std::io::Result<PathBuf> {
    let base = std::env::temp_dir();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut last = None;
    for i in 0..16u32 {
        let dir = base.join(format!(
            "{DIR_PREFIX}{}-{:08x}",
            std::process::id(),
            nanos.wrapping_add(i.wrapping_mul(0x9e37_79b9))
        ));
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free name")))
}

/// The last line the LLM printed on stderr, sanitised and short, for the error message.
fn stderr_tail(path: &Path) -> String {
    let Ok(mut f) = fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(4096)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let line = text
        .lines()
        .rev()
        .map(llm::sanitize_text)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    let n = line.chars().count();
    line.chars()
        .skip(n.saturating_sub(STDERR_TAIL_CHARS))
        .collect()
}

fn run_llm(
    policy: &crate::policy::Policy,
    dir: &std::path::Path,
    prompt: &str,
    timeout: u64,
    run: &str,
    program: &str,
) -> Result<llm::Proposal, CallError> {
    let l = &policy.operator.llm;
    let kind = match l.provider {
        LlmProvider::Codex => ProviderKind::Codex,
        LlmProvider::Claude => ProviderKind::Claude,
        LlmProvider::Command => ProviderKind::Command,
        LlmProvider::Metawsm => ProviderKind::Metawsm,
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
    let stderr_file = dir.join("stderr.txt");
    let stdout = fs::File::create(&stdout_file).map_err(|e| format!("stdout file: {e}"))?;
    let stderr = fs::File::create(&stderr_file).map_err(|e| format!("stderr file: {e}"))?;
    // Our own handles on the same files, to watch how much the provider wrote.
    let watched = [stdout.try_clone(), stderr.try_clone()]
        .into_iter()
        .collect::<std::io::Result<Vec<fs::File>>>()
        .map_err(|e| format!("output files: {e}"))?;
    // Output goes to files, never pipes: a grandchild holding them open cannot stall us.
    // Its own process group, so the deadline can kill everything it started.
    // Messages name the command as configured; the recorded absolute path is what runs.
    let mut command = Command::new(program);
    command.args(&inv.args);
    if inv.prompt_in_argv {
        command.arg(prompt);
    }
    let mut child = command
        .current_dir(dir)
        .stdin(if inv.prompt_in_argv {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .spawn()
        .map_err(|e| CallError {
            message: format!("{} {}: {e}", inv.program, llm::START_FAILED),
            unstarted: true,
        })?;
    let pgid = child.id() as i32;
    if let Some(mut stdin) = child.stdin.take() {
        // On a thread: a child that never reads stdin must not keep us from the deadline.
        let prompt = prompt.to_owned();
        std::thread::spawn(move || {
            let _ = stdin.write_all(prompt.as_bytes());
        });
    }
    let written = || -> u64 {
        let answer = fs::symlink_metadata(&answer_file).map_or(0, |m| m.len());
        watched
            .iter()
            .map(|f| f.metadata().map_or(0, |m| m.len()))
            .sum::<u64>()
            + answer
    };
    // Some(Ok(status)): it ended; Some(Err(())): it wrote too much; None (or an error
    // waiting): out of time.
    let ended = poll_until(Duration::from_secs(timeout), POLL, || {
        match child.try_wait() {
            Ok(Some(st)) => Some(Some(Ok(st))),
            Ok(None) if written() > MAX_LLM_OUTPUT => Some(Some(Err(()))),
            Ok(None) => None,
            Err(_) => Some(None),
        }
    });
    let status = match ended.flatten() {
        Some(Ok(st)) => st,
        Some(Err(())) => {
            kill_groups(&[pgid], Duration::ZERO);
            let _ = child.wait();
            // Keep no more than the cap of what it wrote.
            for f in &watched {
                let _ = f.set_len(f.metadata().map_or(0, |m| m.len()).min(MAX_LLM_OUTPUT));
            }
            let _ = fs::remove_file(&answer_file);
            return Err(format!(
                "{} wrote more than {MAX_LLM_OUTPUT} bytes (killed)",
                inv.program
            )
            .into());
        }
        None => {
            kill_groups(&[pgid], KILL_GRACE);
            let _ = child.wait();
            return Err(format!(
                "{} timed out after {timeout}s (process group killed)",
                inv.program
            )
            .into());
        }
    };
    // Children the LLM left behind in its group go too.
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    if !status.success() {
        let tail = stderr_tail(&stderr_file);
        return Err(format!(
            "{} exited with {}{}",
            inv.program,
            status
                .code()
                .map(|c| c.to_string())
                .unwrap_or_else(|| "a signal".into()),
            if tail.is_empty() {
                String::new()
            } else {
                format!(": {tail}")
            }
        )
        .into());
    }
    let (path, what) = match &inv.answer {
        AnswerSource::OutputFile(p) => (p.as_path(), "answer file"),
        AnswerSource::Stdout => (stdout_file.as_path(), "stdout"),
    };
    let raw = crate::fsio::read_bounded(path, MAX_LLM_OUTPUT)
        .map_err(|e| format!("read {what}: {e}"))?
        .ok_or_else(|| format!("no {what}"))?;
    llm::parse_answer(kind, &raw, run)
        .map_err(|e| format!("rejected answer: {}", llm::sanitize_text(&e)).into())
}

#[cfg(test)]
#[path = "worker_tests.rs"]
mod tests;
