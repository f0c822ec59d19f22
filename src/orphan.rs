//! "Orphaned": a run whose tmux server is certainly gone. Decided from socket evidence
//! alone (no tmux spawn, so the status path can afford it): the socket file is absent,
//! or it refuses connections (a stale file left by a server that died). Anything else —
//! a server that accepts, a busy backlog, a permission error — is not proof, so the run
//! is never called orphaned then. An orphaned run is neither healthy nor dead: the rules
//! never act on it (they only act on servers they can observe); a human stops, forgets
//! or revives it.

use crate::store::RunRow;
use std::collections::HashMap;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerState {
    /// Something accepts connections on the socket.
    Alive,
    /// Certainly gone, with the evidence.
    Gone(String),
    /// No proof either way (permissions, odd file, path too long…).
    Unknown(String),
}

/// Probes a tmux socket with one non-blocking `connect(2)`.
pub fn server_state(socket: &str) -> ServerState {
    use std::os::unix::fs::FileTypeExt;
    let path = Path::new(socket);
    // Something that is not a socket was never a tmux server: no proof of anything.
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if !m.file_type().is_socket() {
            return ServerState::Unknown(format!("{socket} is not a socket"));
        }
    }
    match connect(path) {
        Ok(()) => ServerState::Alive,
        Err(e) => match e.raw_os_error() {
            Some(nix::libc::ENOENT) => ServerState::Gone(format!("socket {socket} is absent")),
            Some(nix::libc::ECONNREFUSED) => {
                ServerState::Gone(format!("socket {socket} refuses connections"))
            }
            // A full backlog means a live (if busy) server.
            Some(nix::libc::EAGAIN) | Some(nix::libc::EINPROGRESS) => ServerState::Alive,
            _ => ServerState::Unknown(format!("socket {socket}: {e}")),
        },
    }
}

/// Why the run is orphaned, or None when its server may still be there. A run that
/// never recorded its server (older databases) is never judged by its socket.
pub fn orphaned(run: &RunRow) -> Option<String> {
    run.orphaned
        .clone()
        .or_else(|| socket_gone(run.tmux_socket.as_deref()?))
}

/// The run's agents were last seen on another instance of this server (it restarted on
/// the same socket: a reboot), and none of their sessions is here: they died with it.
/// Orphaned, never judged dead (which would start agents nobody asked for after a reboot).
pub fn left_by_restart(
    run: &RunRow,
    agents: &[crate::store::AgentRow],
    obs: &crate::tmux::Observation,
) -> Option<String> {
    let crate::tmux::Observation::Known(snap) = obs else {
        return None;
    };
    let (seen, here) = (run.tmux_server.as_deref()?, snap.server.as_deref()?);
    let none_here = agents
        .iter()
        .all(|a| matches!(obs.agent(a), crate::tmux::SessionState::Absent));
    (seen != here && none_here)
        .then(|| format!("tmux server restarted (was {seen}, now {here}); its agents died with it"))
}

/// `Some(evidence)` when the server on this socket is certainly gone.
pub fn socket_gone(socket: &str) -> Option<String> {
    match server_state(socket) {
        ServerState::Gone(why) => Some(format!("tmux server gone ({why})")),
        _ => None,
    }
}

/// Memoised per socket: many runs share one server; one probe each.
#[derive(Debug, Default)]
pub struct Probe {
    seen: HashMap<String, Option<String>>,
}

impl Probe {
    /// A probe that takes `alive` as accepting connections without connecting: the
    /// socket of a tmux server that has just answered (a tick's observation). Probing it
    /// again woke the server for nothing, at the end of every tick.
    pub fn answered(alive: Option<&str>) -> Probe {
        let mut p = Probe::default();
        if let Some(s) = alive {
            p.seen.insert(s.to_string(), None);
        }
        p
    }

    pub fn gone(&mut self, socket: Option<&str>) -> Option<String> {
        let s = socket?;
        // Looked up before the key is built: most runs share one socket.
        if let Some(seen) = self.seen.get(s) {
            return seen.clone();
        }
        let gone = socket_gone(s);
        self.seen.insert(s.to_string(), gone.clone());
        gone
    }
}

/// Marks the status rows whose server is certainly gone (one probe per socket): the
/// row-by-row rule the tests hold `status_cache::total` to (which counts by server).
#[cfg(test)]
pub fn mark(rows: &mut [crate::store::StatusRow]) {
    let mut probe = Probe::default();
    for r in rows.iter_mut() {
        r.orphaned = r.orphaned || probe.gone(r.tmux_socket.as_deref()).is_some();
    }
}

fn connect(path: &Path) -> io::Result<()> {
    use nix::libc;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: plain socket syscalls on a zeroed sockaddr_un; the fd is always closed.
    unsafe {
        let mut addr: libc::sockaddr_un = std::mem::zeroed();
        if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        let rc = libc::connect(fd, (&addr as *const libc::sockaddr_un).cast(), len);
        let err = io::Error::last_os_error();
        libc::close(fd);
        if rc == 0 {
            Ok(())
        } else {
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn absent_refusing_and_listening_sockets() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("sock");
        let s = p.to_string_lossy().into_owned();
        assert!(matches!(server_state(&s), ServerState::Gone(w) if w.contains("absent")));
        let l = UnixListener::bind(&p).expect("bind");
        assert_eq!(server_state(&s), ServerState::Alive);
        drop(l); // the file stays, nobody listens: a dead server's leftover
        assert!(matches!(server_state(&s), ServerState::Gone(w) if w.contains("refuses")));
        let f = dir.path().join("plain");
        std::fs::write(&f, b"x").expect("w");
        assert!(matches!(
            server_state(&f.to_string_lossy()),
            ServerState::Unknown(_)
        ));
        let mut probe = Probe::default();
        assert!(probe.gone(Some(&s)).is_some());
        assert!(probe.gone(None).is_none());
    }

    #[test]
    fn a_socket_that_answered_is_not_probed_again() {
        let dir = tempfile::tempdir().expect("tmp");
        let gone = dir.path().join("gone").to_string_lossy().into_owned();
        let other = dir.path().join("other").to_string_lossy().into_owned();
        // No file at either path: a probe would call both gone.
        let mut probe = Probe::answered(Some(&gone));
        assert_eq!(
            probe.gone(Some(&gone)),
            None,
            "taken as alive, not connected to"
        );
        assert!(
            probe.gone(Some(&other)).is_some(),
            "any other socket is probed"
        );
    }
}
