//! Every tmux call: one server (socket), `-u`, stdin null, commands batched into one spawn.

pub use crate::escape::{escape_drawn, escape_format, sh_quote, Target, TmuxCmd};
use std::io;
use std::process::{Command, Stdio};

/// TAB cannot appear in our session names and is never escaped by tmux 3.3–3.6; the
/// free-text field (current command) goes last and is split with `splitn`. tmux prints
/// a pane's command (its argv[0]) and path raw, and any process can put a newline in
/// them to forge a row for another session: for every free-text variable the format has
/// tmux replace control characters (TAB and newline among them) with a space. The range
/// is written with its end bytes, so the format itself holds no newline or TAB. The pane
/// title (free text too, set by the program) goes just before the command.
pub const PANE_FORMAT: &str = concat!(
    "#{session_name}\t#{window_id}\t#{pane_id}\t#{pane_pid}\t#{?pane_dead,1:#{pane_dead_time},0}\t",
    "#{pane_dead_status}\t#{pane_dead_signal}\t#{window_activity}\t",
    "#{s/[\u{1}-\u{1f}\u{7f}]/ /:pane_title}\t",
    "#{s/[\u{1}-\u{1f}\u{7f}]/ /:pane_current_command}"
);

/// The free-text fields the observation asks for only when some agent needs them: at
/// 500 panes `pane_current_command` alone (tmux reads each pane's process from /proc)
/// was 38% of `list-panes`' time. A field not asked for is left empty in its column, so
/// every row keeps the same shape.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Wants {
    /// `pane_title`: interactive agents (an approval dialog shows in the title).
    pub title: bool,
    /// `pane_current_command`: the original metawsm's wrapper panes (back at a shell?).
    pub command: bool,
}

impl Wants {
    pub const ALL: Wants = Wants {
        title: true,
        command: true,
    };

    /// Whether a listing made with `self` has every field `need` asks for.
    pub fn covers(self, need: Wants) -> bool {
        (self.title || !need.title) && (self.command || !need.command)
    }
}

/// `PANE_FORMAT` with the unwanted free-text fields left empty.
pub fn pane_format(w: Wants) -> String {
    // The last two fields are the title and the command (the format holds no other TAB).
    let fields: Vec<&str> = PANE_FORMAT.split('\t').collect();
    let n = fields.len();
    let mut out = fields[..n - 2].join("\t");
    for (on, f) in [(w.title, fields[n - 2]), (w.command, fields[n - 1])] {
        out.push('\t');
        if on {
            out.push_str(f);
        }
    }
    out
}

thread_local! {
    static RIDERS: std::cell::RefCell<Vec<Cmd>> = const { std::cell::RefCell::new(Vec::new()) };
    static TRAILERS: std::cell::RefCell<Vec<Cmd>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `cmd` runs first in this process's next tmux spawn (the timer re-arms itself inside
/// the tick's observation: one spawn per firing). It must always succeed (`run-shell
/// -b`), since tmux stops a batch at the first failing command.
pub fn ride_along(cmd: Cmd) {
    RIDERS.with(|r| r.borrow_mut().push(cmd));
}

/// Takes back the commands no spawn carried (true when there were some).
pub fn take_riders() -> Vec<Cmd> {
    RIDERS.with(|r| std::mem::take(&mut *r.borrow_mut()))
}

/// `cmd` runs last in this process's next observation by session (a hook's re-arm
/// rides on its tick's observation, `observe_sessions`), which reads what tmux printed
/// before a failing command. The caller sends what no observation took.
pub fn ride_after(cmd: Cmd) {
    TRAILERS.with(|r| r.borrow_mut().push(cmd));
}

/// Takes back the commands `ride_after` left that no spawn carried.
pub fn take_trailers() -> Vec<Cmd> {
    TRAILERS.with(|r| std::mem::take(&mut *r.borrow_mut()))
}

const OPTS_MARK: &str = "METAWSM-OPTS";
const CLIENT_MARK: &str = "METAWSM-CLIENT";
/// User options read in the same spawn as the observation.
pub const USER_OPTIONS: [&str; 4] = [
    "@metawsm-icon-ok",
    "@metawsm-icon-guidance",
    "@metawsm-icon-blocked",
    "@metawsm-icon-done",
];

#[derive(Debug, Clone)]
pub struct TmuxClient {
    socket: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TmuxError {
    /// The binary could not be run at all.
    Missing(String),
    /// tmux ran and failed (no server, bad target, …).
    Failed(String),
    /// A value could not be passed to tmux as it is; tmux was not called.
    Refused(String),
}

impl std::fmt::Display for TmuxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TmuxError::Missing(m) | TmuxError::Failed(m) | TmuxError::Refused(m) => f.write_str(m),
        }
    }
}

pub use crate::model::panes::{Client, Observation, PaneRow, SessionState, Snapshot};

/// A tmux batch, run now or started for the caller to collect later
/// (`TmuxClient::start`). Dropped unfinished, it is still waited for: its commands
/// (riders among them) run to the end.
enum Started {
    Done(io::Result<std::process::Output>),
    /// Spawned, not yet waited for: tmux answers while the caller does its own work.
    /// Spawned from the caller's thread, not a thread of its own: the spawn blocks only
    /// until tmux is exec'd (vfork, 0.3 ms here), while a new thread waited 0.25-1 ms
    /// for a CPU on this 2-vCPU VM before it even began to spawn (docs/performance.md,
    /// "tmux spawned from the tick's own thread").
    Child(Option<std::process::Child>),
    Refused(TmuxError),
}

impl Started {
    /// Waits for the process: its stdout, or the error and what it printed before.
    fn finish(mut self) -> Result<String, (String, TmuxError)> {
        let out = match &mut self {
            Started::Refused(e) => return Err((String::new(), e.clone())),
            Started::Done(out) => std::mem::replace(out, Err(io::ErrorKind::Other.into())),
            // Reads stdout and stderr together (std polls both), so neither pipe fills.
            Started::Child(child) => match child.take() {
                Some(c) => c.wait_with_output(),
                None => Err(io::Error::other("tmux was already collected")),
            },
        };
        let out = out.map_err(|e| {
            let e = match e.kind() {
                io::ErrorKind::NotFound => TmuxError::Missing("tmux not found on PATH".into()),
                _ => TmuxError::Missing(format!("cannot run tmux: {e}")),
            };
            (String::new(), e)
        })?;
        // Valid UTF-8 (always, but for a hostile title) is taken as it is, not copied.
        let stdout = String::from_utf8(out.stdout)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        if out.status.success() {
            return Ok(stdout);
        }
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let err = err.lines().next().unwrap_or("").to_string();
        Err((
            stdout,
            TmuxError::Failed(if err.is_empty() {
                format!("tmux exited with {:?}", out.status.code())
            } else {
                err
            }),
        ))
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if let Started::Child(c) = self {
            if let Some(c) = c.take() {
                let _ = c.wait_with_output();
            }
        }
    }
}

/// Until the caller collects it, tmux's answer waits in the pipe: a full one (64 KiB,
/// about 450 panes) would stall tmux until then. Linux lets a pipe grow to 1 MiB
/// without privilege (`/proc/sys/fs/pipe-max-size`); elsewhere, or if refused, tmux
/// waits for the reader as before.
fn roomy_pipe(out: Option<&std::process::ChildStdout>) {
    #[cfg(target_os = "linux")]
    if let Some(out) = out {
        let _ = nix::fcntl::fcntl(out, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
    }
    #[cfg(not(target_os = "linux"))]
    let _ = out;
}

/// The observation `TmuxClient::start_observe` started: the caller reads the database
/// while tmux answers, then `collect`s it.
pub struct PendingObservation {
    started: Started,
    wants: Wants,
}

impl PendingObservation {
    /// The free-text fields this listing asks for.
    pub fn wants(&self) -> Wants {
        self.wants
    }

    /// Waits for tmux and parses what it printed, with every free-text field outside
    /// `keep` left empty: the same observation as a listing that asked for `keep` alone.
    pub fn collect(self, keep: Wants) -> Observation {
        match finish_panes(self.started) {
            Ok(mut snap) => {
                keep_only(&mut snap, keep);
                Observation::Known(snap)
            }
            Err((_, e)) => Observation::Unknown(e.to_string()),
        }
    }
}

/// One tmux command, built argument by argument by kind (see `escape`).
pub type Cmd = TmuxCmd;

impl TmuxClient {
    pub fn new(socket: Option<String>) -> TmuxClient {
        TmuxClient { socket }
    }

    pub fn socket(&self) -> Option<&str> {
        self.socket.as_deref()
    }

    /// Run every command in one tmux process (`;` between them). tmux stops at the
    /// first failing command, so callers only batch commands expected to succeed. Every
    /// argument is checked first: one refused value and tmux is not called at all.
    /// Commands left by `ride_along` go first.
    pub fn run(&self, cmds: &[Cmd]) -> Result<String, TmuxError> {
        self.run_keeping(cmds).map_err(|(_, e)| e)
    }

    /// `run`; a failure also returns what the commands before the failing one printed.
    fn run_keeping(&self, cmds: &[Cmd]) -> Result<String, (String, TmuxError)> {
        self.start(cmds, false).finish()
    }

    /// One tmux process for `cmds` (riders first): run now, or with `background`
    /// spawned now and waited for when the caller `finish`es it.
    fn start(&self, cmds: &[Cmd], background: bool) -> Started {
        let riders = take_riders();
        let mut args: Vec<&str> = Vec::new();
        for c in riders.iter().chain(cmds) {
            match c.argv() {
                Ok(argv) => {
                    if !args.is_empty() {
                        args.push(";");
                    }
                    args.extend(argv.iter().map(String::as_str));
                }
                Err(e) => return Started::Refused(TmuxError::Refused(e.to_string())),
            }
        }
        let command = || {
            let mut c = Command::new("tmux");
            c.arg("-u");
            if let Some(s) = &self.socket {
                c.arg("-S").arg(s);
            }
            c.args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            c
        };
        if background {
            return match command().spawn() {
                Ok(child) => {
                    roomy_pipe(child.stdout.as_ref());
                    Started::Child(Some(child))
                }
                Err(e) => Started::Done(Err(e)),
            };
        }
        Started::Done(command().output())
    }

    /// The tick's single observation call: every pane on the server plus our options.
    pub fn observe(&self) -> Observation {
        self.observe_with(Wants::ALL)
    }

    /// `observe`, asking tmux only for the free-text fields in `wants`.
    pub fn observe_with(&self, wants: Wants) -> Observation {
        self.listing(wants, false).collect(wants)
    }

    /// `observe_with` without waiting: tmux answers while the caller does its own work.
    pub fn start_observe(&self, wants: Wants) -> PendingObservation {
        self.listing(wants, true)
    }

    fn listing(&self, wants: Wants, background: bool) -> PendingObservation {
        let all = Cmd::new("list-panes")
            .flags(&["-a", "-F"])
            .format(&pane_format(wants));
        PendingObservation {
            started: self.start_panes(vec![all], background),
            wants,
        }
    }

    /// The server's options and clients, no panes: whether a server answers, at a cost
    /// that does not grow with the panes it holds.
    pub fn observe_server(&self) -> Observation {
        match self.observe_panes(Vec::new()) {
            Ok(snap) => Observation::Known(snap),
            Err((_, e)) => Observation::Unknown(e.to_string()),
        }
    }

    /// A one-run tick (a hook's): only the panes of `sessions`, one `list-panes -s` each,
    /// in the same spawn. tmux stops at a session that is gone (a `session-closed`
    /// hook's always is), naming it: what it printed before is kept, the gone session
    /// reads as absent, and only the sessions after it are asked again (none when it
    /// came last). An error naming none of them lists every pane after all. Commands
    /// left by `ride_after` go last.
    pub fn observe_sessions(&self, wants: Wants, sessions: &[&str]) -> Observation {
        if sessions.is_empty() {
            return self.observe_with(wants);
        }
        let fmt = pane_format(wants);
        let mut seen: crate::model::FastMap<String, Vec<PaneRow>> = Default::default();
        let mut left = sessions;
        loop {
            let cmds = left
                .iter()
                .map(|s| {
                    Cmd::new("list-panes")
                        .flag("-s")
                        .target(Target::Session(s))
                        .flag("-F")
                        .format(&fmt)
                })
                .chain(take_trailers())
                .collect();
            let (printed, e) = match self.observe_panes(cmds) {
                Ok(mut snap) => {
                    snap.sessions.extend(seen);
                    return Observation::Known(snap);
                }
                Err(failed) => failed,
            };
            let gone = match &e {
                TmuxError::Failed(m) => left.iter().position(|s| names_gone(m, s)),
                _ => None,
            };
            let mut partial = parse_snapshot(&printed);
            match gone {
                // The options line came first: the listings before the gone session
                // are whole.
                Some(i) if partial.socket.is_some() => {
                    seen.extend(std::mem::take(&mut partial.sessions));
                    left = &left[i + 1..];
                    if left.is_empty() {
                        partial.sessions = seen;
                        return Observation::Known(partial);
                    }
                }
                _ => {
                    return match e {
                        // tmux missing or no server: asking again would not help.
                        TmuxError::Missing(_) => Observation::Unknown(e.to_string()),
                        TmuxError::Failed(m)
                            if m.contains("no server running")
                                || m.contains("error connecting") =>
                        {
                            Observation::Unknown(m)
                        }
                        _ => self.observe_with(wants),
                    };
                }
            }
        }
    }

    /// On failure, also what tmux printed before the failing command.
    fn observe_panes(&self, panes: Vec<Cmd>) -> Result<Snapshot, (String, TmuxError)> {
        finish_panes(self.start_panes(panes, false))
    }

    /// Starts one spawn: our options, the clients, then `panes` (see `finish_panes`).
    fn start_panes(&self, panes: Vec<Cmd>, background: bool) -> Started {
        let opts_fmt = std::iter::once(OPTS_MARK.to_string())
            .chain(USER_OPTIONS.iter().map(|o| format!("#{{{o}}}")))
            .chain([
                "#{socket_path}".to_string(),
                "#{pid}:#{start_time}".to_string(),
            ])
            .collect::<Vec<_>>()
            .join("\t");
        let client_fmt = format!("{CLIENT_MARK}\t#{{client_name}}\t#{{client_tty}}");
        let mut cmds = vec![
            Cmd::new("display-message").flag("-p").format(&opts_fmt),
            Cmd::new("list-clients").flag("-F").format(&client_fmt),
        ];
        cmds.extend(panes);
        self.start(&cmds, background)
    }

    pub fn version(&self) -> Result<String, TmuxError> {
        let out = std::process::Command::new("tmux")
            .arg("-V")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => TmuxError::Missing("tmux not found on PATH".into()),
                _ => TmuxError::Missing(format!("cannot run tmux: {e}")),
            })?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

/// Empties the free-text fields outside `keep`, as if tmux had not been asked for them.
fn keep_only(snap: &mut Snapshot, keep: Wants) {
    for row in snap.sessions.values_mut().flatten() {
        if !keep.title {
            row.title.clear();
        }
        if !keep.command {
            row.current_command.clear();
        }
    }
}

/// What a `start_panes` spawn printed, parsed; on failure, also what tmux printed
/// before the failing command.
fn finish_panes(started: Started) -> Result<Snapshot, (String, TmuxError)> {
    match started.finish() {
        Ok(text) => Ok(parse_snapshot(&text)),
        // A server with no sessions (exit-empty off) answers but has nothing to list:
        // every agent session is definitely gone.
        Err((_, TmuxError::Failed(e)))
            if e.contains("no current target") || e.contains("no sessions") =>
        {
            Ok(Snapshot::default())
        }
        Err(failed) => Err(failed),
    }
}

/// Whether a tmux version (`tmux 3.3a`, `3.4`, `next-3.6`, `openbsd-7.5`) is at least
/// `want`. One without a number (`master`: a git build) counts as the newest.
pub fn version_at_least(v: &str, want: (u32, u32)) -> bool {
    let num: String = v
        .split_whitespace()
        .last()
        .unwrap_or("")
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = num.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    num.is_empty() || (major, minor) >= want
}

fn num(s: &str) -> Option<i64> {
    s.trim().parse().ok()
}

/// The first N-1 TAB-separated fields of `line` and the rest (as `splitn(N, '\t')`),
/// None when it has fewer: a byte scan, no allocation (500 rows a tick).
fn fields<const N: usize>(line: &str) -> Option<[&str; N]> {
    let mut out = [""; N];
    let (mut i, mut start) = (0, 0);
    for (pos, b) in line.bytes().enumerate() {
        if b == b'\t' && i < N - 1 {
            out[i] = &line[start..pos];
            i += 1;
            start = pos + 1;
        }
    }
    if i < N - 1 {
        return None;
    }
    out[N - 1] = &line[start..];
    Some(out)
}

pub fn parse_snapshot(text: &str) -> Snapshot {
    let mut snap = Snapshot::default();
    // One session a row, mostly: sized once instead of grown (and rehashed) eight times.
    snap.sessions
        .reserve(text.bytes().filter(|b| *b == b'\n').count());
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(OPTS_MARK) {
            let values: Vec<&str> = rest
                .strip_prefix('\t')
                .unwrap_or(rest)
                .split('\t')
                .collect();
            for (name, value) in USER_OPTIONS.iter().zip(&values) {
                if !value.is_empty() {
                    snap.options.insert((*name).to_string(), value.to_string());
                }
            }
            snap.socket = values
                .get(USER_OPTIONS.len())
                .filter(|s| !s.is_empty())
                .map(|s| s.to_string());
            snap.server = values
                .get(USER_OPTIONS.len() + 1)
                .filter(|s| s.len() > 1)
                .map(|s| s.to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix(CLIENT_MARK) {
            let mut f = rest.trim_start_matches('\t').splitn(2, '\t');
            if let (Some(name), Some(tty)) = (f.next(), f.next()) {
                snap.clients.push(Client {
                    name: name.to_string(),
                    tty: tty.to_string(),
                });
            }
            continue;
        }
        let Some(f) = fields::<10>(line) else {
            continue;
        };
        let row = PaneRow {
            session: f[0].to_string(),
            window_id: f[1].to_string(),
            pane_id: f[2].to_string(),
            pid: num(f[3]),
            dead: f[4].starts_with('1'),
            dead_at: f[4].strip_prefix("1:").and_then(num),
            dead_status: num(f[5]),
            dead_signal: num(f[6]),
            window_activity: num(f[7]),
            title: f[8].to_string(),
            current_command: f[9].to_string(),
        };
        // Most sessions hold one pane: a Vec's first growth would make room for four
        // (800 bytes of fresh heap a session, 400 KB at 500 runs).
        snap.sessions
            .entry(row.session.clone())
            .or_insert_with(|| Vec::with_capacity(1))
            .push(row);
    }
    snap
}

/// Commands that create an agent session running `argv` directly (no shell), keeping
/// the pane after exit. The session starts on a placeholder and the agent replaces it
/// with `respawn-pane -k` only after `remain-on-exit` is set, so an agent that exits
/// at once still leaves a dead pane with its status.
pub fn start_agent_cmds(
    session: &str,
    workdir: &str,
    argv: &[String],
    env: &[(String, String)],
    silence_seconds: i64,
) -> Vec<Cmd> {
    let mut new = Cmd::new("new-session")
        .flag("-d")
        .flag("-s")
        .session_name("session name", session)
        .flag("-c")
        .expanded("working directory", workdir);
    for (k, v) in env {
        new = new.flag("-e").word("environment", &format!("{k}={v}"));
    }
    let new = new.end_of_flags().flags(&["sleep", "86400"]);
    let mut respawn = Cmd::new("respawn-pane")
        .flag("-k")
        .target(Target::SessionPane(session))
        .flag("-c")
        .expanded("working directory", workdir)
        .end_of_flags();
    if argv.len() == 1 {
        // A single argument would go through `sh -c`; env execs it as an argv.
        respawn = respawn.flags(&["/usr/bin/env", "--"]);
    }
    for a in argv {
        respawn = respawn.word("agent command", a);
    }
    // Window and session options alike need the `=name:` form: a bare `=name` target is
    // refused by set-option on tmux 3.3.
    let pane = Target::SessionPane(session);
    vec![
        new,
        Cmd::new("set-option")
            .flag("-w")
            .target(pane)
            .flags(&["remain-on-exit", "on"]),
        Cmd::new("set-option")
            .target(pane)
            .flags(&["silence-action", "any"]),
        Cmd::new("set-option")
            .flag("-w")
            .target(pane)
            .flag("monitor-silence")
            .num(silence_seconds),
        respawn,
    ]
}

/// An argv as one shell-quoted line, for humans to read or paste.
pub fn sh_quote_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|w| sh_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// tmux's error for `list-panes -s -t =SESSION` when the session is gone (3.3 says
/// "window", other versions may say "session"; anything else is not taken as gone).
fn names_gone(err: &str, session: &str) -> bool {
    ["can't find window: ", "can't find session: "]
        .iter()
        .any(|p| err.strip_prefix(p) == Some(session))
}

pub fn kill_session_cmd(session: &str) -> Cmd {
    Cmd::new("kill-session").target(Target::Session(session))
}

#[cfg(test)]
#[path = "tmux_tests.rs"]
mod tests;
