//! Statistics, timing one process, and the printed results table.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile (p in 0..=100) of durations in milliseconds.
pub fn pct(samples: &[f64], p: f64) -> f64 {
    assert!(!samples.is_empty(), "no samples");
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

pub fn median(samples: &[f64]) -> f64 {
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Runs `c` to completion with output discarded; panics with its stderr on failure.
pub fn timed(c: &mut Command) -> f64 {
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let t = Instant::now();
    let out = c.output().expect("spawn");
    let d = t.elapsed();
    assert!(
        out.status.success(),
        "{c:?} failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    ms(d)
}

pub struct Row {
    metric: String,
    value: String,
    target: String,
    pass: Option<bool>,
}

pub fn row(metric: &str, value: String, target: &str, pass: Option<bool>) -> Row {
    Row {
        metric: metric.into(),
        value,
        target: target.into(),
        pass,
    }
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The three load averages, space-separated.
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn machine_info(real_tmux: &Path) -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let mut s = String::new();
    let _ = writeln!(s, "- nproc: {nproc}");
    let _ = writeln!(s, "- CPU: {cpu}");
    let _ = writeln!(
        s,
        "- tmux: {}",
        first_line(&real_tmux.to_string_lossy(), &["-V"])
    );
    let _ = writeln!(s, "- rustc: {}", first_line(&rustc, &["-V"]));
    let _ = writeln!(s, "- kernel: {}", first_line("uname", &["-sr"]));
    let _ = writeln!(s, "- load average at start: {}", load_average());
    s
}

/// The results table; the number of goals missed (exit 1 with `strict`).
pub fn print_rows(rows: &[Row], strict: bool) -> usize {
    println!();
    println!("| metric | value | target | result |");
    println!("|---|---|---|---|");
    let mut missed = 0;
    for r in rows {
        let res = match r.pass {
            Some(true) => "PASS",
            Some(false) => {
                missed += 1;
                "**MISS**"
            }
            None => "—",
        };
        println!("| {} | {} | {} | {} |", r.metric, r.value, r.target, res);
    }
    if strict && missed > 0 {
        println!("{missed} goal(s) missed.");
        std::process::exit(1);
    }
    missed
}
