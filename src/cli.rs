//! Global options, path resolution, errors and exit codes shared by every subcommand.

use crate::policy::{Policy, PolicyError};
use crate::store::{OpenMode, Store, StoreError};
use crate::tmux::TmuxClient;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Exit codes scripts can rely on.
pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILURE: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

#[derive(Debug)]
pub enum CliError {
    /// Bad arguments or configuration: exit 2.
    Usage(String),
    /// Something failed at run time: exit 1.
    Failure(String),
}

impl CliError {
    pub fn code(&self) -> i32 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Failure(_) => EXIT_FAILURE,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(m) | CliError::Failure(m) => f.write_str(m),
        }
    }
}

impl From<lexopt::Error> for CliError {
    fn from(e: lexopt::Error) -> Self {
        CliError::Usage(e.to_string())
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Transition(m) | StoreError::NotFound(m) => CliError::Failure(m),
            other => CliError::Failure(other.to_string()),
        }
    }
}

impl From<rusqlite::Error> for CliError {
    fn from(e: rusqlite::Error) -> Self {
        CliError::Failure(StoreError::from(e).to_string())
    }
}

impl From<PolicyError> for CliError {
    fn from(e: PolicyError) -> Self {
        CliError::Usage(e.to_string())
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;

/// `--db`, `--policy`, `--tmux-socket` as given (before env and defaults apply).
#[derive(Debug, Default, Clone)]
pub struct Globals {
    pub db: Option<PathBuf>,
    pub policy: Option<PathBuf>,
    pub socket: Option<String>,
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn home() -> PathBuf {
    env_path("HOME").unwrap_or_else(|| PathBuf::from("/"))
}

fn xdg(var: &str, fallback: &str) -> PathBuf {
    env_path(var)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| home().join(fallback))
}

/// Everything a command needs to know about where things are.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub db: PathBuf,
    pub policy_path: PathBuf,
    /// Who named `policy_path`: `--policy` or `METAWSM_POLICY` (then it must exist and
    /// wins over every run's project policy), or None for the user's XDG default.
    pub policy_given_by: Option<&'static str>,
    pub tmux: TmuxClient,
}

impl Ctx {
    pub fn resolve(g: &Globals) -> Ctx {
        let db =
            g.db.clone()
                .or_else(|| env_path("METAWSM_DB"))
                .unwrap_or_else(|| xdg("XDG_STATE_HOME", ".local/state").join("metawsm/state.db"));
        let (policy_path, policy_given_by) = match (g.policy.clone(), env_path("METAWSM_POLICY")) {
            (Some(p), _) => (p, Some("--policy")),
            (None, Some(p)) => (p, Some("METAWSM_POLICY")),
            (None, None) => (
                xdg("XDG_CONFIG_HOME", ".config").join("metawsm/policy.json"),
                None,
            ),
        };
        let socket = g
            .socket
            .clone()
            .or_else(|| {
                std::env::var("METAWSM_TMUX_SOCKET")
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .or_else(|| {
                // $TMUX is "socket,pid,session": the server that runs us.
                std::env::var("TMUX")
                    .ok()
                    .and_then(|t| t.split(',').next().map(str::to_string))
                    .filter(|s| !s.is_empty())
            });
        Ctx {
            db: absolute(&db),
            policy_path: absolute(&policy_path),
            policy_given_by,
            tmux: TmuxClient::new(socket),
        }
    }

    /// The same context, talking to the tmux server the run's agents live on.
    pub fn for_run(&self, run: &crate::store::RunRow) -> Ctx {
        match &run.tmux_socket {
            Some(s) => Ctx {
                tmux: TmuxClient::new(Some(s.clone())),
                ..self.clone()
            },
            None => self.clone(),
        }
    }

    /// The policy that applies outside any run (or to every run when given explicitly).
    /// A policy named by `--policy`/`METAWSM_POLICY` that does not exist is an error,
    /// never silently the defaults.
    pub fn policy(&self) -> Result<Policy, CliError> {
        if let Some(by) = self.policy_given_by {
            if !self.policy_path.exists() {
                return Err(CliError::Usage(format!(
                    "policy {}: no such file (given by {by})",
                    self.policy_path.display()
                )));
            }
        }
        Ok(Policy::load(&self.policy_path)?)
    }

    pub fn open(&self, mode: OpenMode, held: bool) -> Result<Store, CliError> {
        Ok(Store::open(&self.db, mode, held)?)
    }

    /// Arguments that make a spawned copy of ourselves use the same state and server.
    pub fn self_args(&self) -> Vec<String> {
        let mut v = vec!["--db".to_string(), self.db.to_string_lossy().into_owned()];
        // The default is found again by the child; only an explicit policy is passed on.
        if self.policy_given_by.is_some() {
            v.push("--policy".into());
            v.push(self.policy_path.to_string_lossy().into_owned());
        }
        if let Some(s) = self.tmux.socket() {
            v.push("--tmux-socket".into());
            v.push(s.to_string());
        }
        v
    }
}

pub fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

pub fn os_to_string(v: OsString, what: &str) -> CliResult<String> {
    v.into_string()
        .map_err(|v| CliError::Usage(format!("{what} is not valid UTF-8: {v:?}")))
}

/// Prints help when asked; shared by every subcommand's parser.
pub fn print_help(text: &str) {
    print!("{text}");
}

pub fn current_exe() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("metawsm-tick"))
}

extern "C" fn exit_quietly(_: nix::libc::c_int) {
    // SAFETY: _exit is async-signal-safe; nothing else runs.
    unsafe { nix::libc::_exit(0) }
}

/// The line the status watchdog prints, rendered in the caller's format beforehand (a
/// signal handler can only write bytes that already exist).
static WATCHDOG_LINE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

extern "C" fn exit_with_marker(_: nix::libc::c_int) {
    // SAFETY: OnceLock::get is an atomic load; write(2) and _exit(2) are
    // async-signal-safe.
    unsafe {
        if let Some(line) = WATCHDOG_LINE.get() {
            nix::libc::write(1, line.as_ptr().cast(), line.len());
        }
        nix::libc::_exit(0)
    }
}

/// A wedged tmux (or a planted FIFO) must never leave tmux waiting on us: after `secs`
/// the process ends with exit 0 — silently for hooks and timers, printing `marker` (a
/// whole line in the output's own format) for the status line (tmux shows a job's
/// output and dumps a hook's failure into a pane).
pub fn watchdog(secs: u32, marker: Option<String>) {
    use nix::sys::signal::{signal, SigHandler, Signal};
    let handler = match marker {
        Some(m) => {
            let _ = WATCHDOG_LINE.set(format!("{m}\n").into_bytes());
            exit_with_marker
        }
        None => exit_quietly,
    };
    // SAFETY: the handlers only call async-signal-safe functions.
    unsafe {
        let _ = signal(Signal::SIGALRM, SigHandler::Handler(handler));
    }
    let _ = nix::unistd::alarm::set(secs);
}
