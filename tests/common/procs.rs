//! Reading processes from `/proc` (Linux): CPU times, sessions.

use std::fs;

/// The fields of `/proc/<pid>/stat` after the command name (state first, so field `k`
/// of proc(5) is at index `k - 3`); the name may hold spaces, hence the split after ')'.
/// None when the process is gone.
pub fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// The live (not zombie) processes whose session id is `sid`.
pub fn processes_in_session(sid: i32) -> Vec<i32> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            // state ppid pgrp session …
            stat_fields(pid).is_some_and(|f| {
                f.first().map(String::as_str) != Some("Z")
                    && f.get(3).and_then(|s| s.parse::<i32>().ok()) == Some(sid)
            })
        })
        .collect()
}

/// (utime + stime, cutime + cstime) in seconds: the process's own CPU and that of the
/// children it reaped. (0, 0) when the process is gone.
pub fn cpu_seconds(pid: i32) -> (f64, f64) {
    let f = stat_fields(pid).unwrap_or_default();
    // USER_HZ is 100 on Linux; utime is field 14 of proc(5), so index 11 here.
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
    (get(11) + get(12), get(13) + get(14))
}
