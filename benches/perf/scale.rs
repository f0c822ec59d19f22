//! `cargo bench --bench perf -- --scale`: the per-command costs that must not grow with
//! the number of registered runs (`run start`, `run list`, the hooks tmux-setup
//! installs), at N = 1 and N = 500 on private servers, sampled interleaved (every case
//! and both N in each round) so load hits them alike. Goal: median at 500 ≤ 1.5 × at 1.
//! Each call's tmux server CPU is read too (`/proc/<pid>/schedstat`, before and after
//! the call, once the server has settled): tmux's own cost per request grows with the
//! panes it holds, whoever asks (docs/performance.md, "tmux's own cost per request").
//!
//! `run list` prints one row per run, so its total grows with N by nature: it is reported
//! with its marginal cost per row, not judged against the ratio; its tmux spawns are
//! counted like every case's (what each asks tmux for, at N = 500).
//!
//! `METAWSM_BENCH_BIN_B=<another build>` times that build too, in the same rounds (before
//! and after under the same load), and prints its own table.

use crate::cadence::children_cpu_ms;
use crate::report::{median, pct, row, timed, Row};
use crate::world::{bench_policy, pane_format, with_program, World};
use crate::Opts;
use std::ffi::OsStr;
use std::process::Command;

const GOAL: f64 = 1.5;

/// One measured command: a label and how to build it for a world and a round.
struct Case {
    label: &'static str,
    /// Judged against the goal (run list is reported per row instead).
    judged: bool,
}

const CASES: [Case; 12] = [
    Case {
        label: "run start (new run, sleep agent)",
        judged: true,
    },
    Case {
        label: "run list",
        judged: false,
    },
    Case {
        label: "hook pane-died, our session",
        judged: true,
    },
    Case {
        label: "hook pane-died, foreign pane",
        judged: true,
    },
    Case {
        label: "hook pane-exited, our pane",
        judged: true,
    },
    Case {
        label: "hook session-closed, our session still there",
        judged: true,
    },
    Case {
        label: "hook session-closed, our session gone (the real case)",
        judged: true,
    },
    Case {
        label: "hook alert-silence, our session",
        judged: true,
    },
    Case {
        label: "hook client-attached (no tick due)",
        judged: true,
    },
    Case {
        label: "bare tmux has-session (tmux's own floor, reference)",
        judged: false,
    },
    Case {
        label: "bare tmux list-panes -s of one session (reference)",
        judged: false,
    },
    Case {
        label: "bare tmux start of an agent session, as run start batches it (reference)",
        judged: false,
    },
];

/// The case whose session was closed: the run `run start` added this round.
const GONE: usize = 6;

/// The pane id of the first registered agent (recorded by the warm-up ticks).
fn first_pane(w: &World) -> String {
    let c = w.db();
    c.query_row(
        "SELECT pane_id FROM agents WHERE run_id = 'bench-0000'",
        [],
        |r| r.get::<_, Option<String>>(0),
    )
    .expect("pane id")
    .expect("the warm-up tick recorded the pane id")
}

fn command(w: &World, case: usize, round: usize, pane: &str) -> Command {
    let s = "bench-0000-agent";
    match case {
        0 => {
            let id = format!("scale-{round:04}");
            let session = format!("scale-{round:04}-s");
            let ws = w.env.ws.to_string_lossy().into_owned();
            w.cmd(
                &[
                    "run",
                    "start",
                    "--ticket",
                    "T-1",
                    "--workspace",
                    &ws,
                    "--id",
                    &id,
                    "--session",
                    &session,
                    "--",
                    "sleep",
                    "1000000",
                ],
                true,
            )
        }
        1 => w.cmd(&["run", "list"], true),
        2 => w.cmd(&["hook", "pane-died", pane, s, "0"], true),
        3 => w.cmd(&["hook", "pane-died", "%99999", "not-ours", "1"], true),
        4 => w.cmd(&["hook", "pane-exited", pane], true),
        5 => w.cmd(&["hook", "session-closed", s], true),
        GONE => w.cmd(
            &["hook", "session-closed", &format!("scale-{round:04}-s")],
            true,
        ),
        7 => w.cmd(&["hook", "alert-silence", s], true),
        8 => w.cmd(&["hook", "client-attached"], true),
        9 => {
            let mut c = w.tmux();
            c.args(["has-session", "-t", "=bench-0000-agent"]);
            c
        }
        10 => {
            let mut c = w.tmux();
            c.args(["list-panes", "-s", "-t", "=bench-0000-agent", "-F"])
                .arg(pane_format());
            c
        }
        _ => {
            let s = format!("ref-{round:04}");
            let t = format!("={s}:");
            let mut c = w.tmux();
            c.args(["new-session", "-d", "-s", &s, "-c"]).arg(&w.env.ws);
            c.args(["--", "sleep", "86400", ";"]);
            c.args(["set-option", "-w", "-t", &t, "remain-on-exit", "on", ";"]);
            c.args(["respawn-pane", "-k", "-t", &t, "sleep", "1000000", ";"]);
            c.args([
                "display-message",
                "-p",
                "-t",
                &t,
                "#{pane_id}\t#{socket_path}",
            ]);
            c
        }
    }
}

/// Untimed set-up of a case: the session-closed hook comes after its session is gone.
fn prepare(w: &World, case: usize, round: usize) {
    if case == GONE {
        w.tmux_ok(&["kill-session", "-t", &format!("=scale-{round:04}-s")]);
    }
}

/// Removes the run `run start` added in this round (its session is gone already), so N
/// stays what it says.
fn forget_started(w: &World, round: usize) {
    let id = format!("scale-{round:04}");
    let _ = w
        .tmux()
        .args(["kill-session", "-t", &format!("=ref-{round:04}")])
        .output();
    let c = w.db();
    c.execute_batch("PRAGMA foreign_keys = ON").expect("fk");
    for t in ["events", "inbox", "llm_calls"] {
        c.execute(&format!("DELETE FROM {t} WHERE run_id = ?1"), [&id])
            .expect("delete");
    }
    c.execute("DELETE FROM runs WHERE id = ?1", [&id])
        .expect("delete run");
}

/// Round numbers of the second build's samples (`METAWSM_BENCH_BIN_B`): its runs and
/// sessions never meet the first build's.
const B_ROUNDS: usize = 10_000;

/// `command`, run by `bin` when given (the second build).
fn command_by(w: &World, bin: Option<&OsStr>, case: usize, round: usize, pane: &str) -> Command {
    let c = command(w, case, round, pane);
    match bin {
        Some(b) if case < 9 => with_program(&c, b, &[]),
        _ => c,
    }
}

/// The tmux calls of one command at N = 500 (one line per spawn), outside the timing.
fn spawns(w: &World, bin: Option<&OsStr>, case: usize, round: usize, pane: &str) -> Vec<String> {
    if case == GONE {
        timed(&mut command_by(w, bin, 0, round, pane));
    }
    prepare(w, case, round);
    w.reset_count();
    timed(&mut command_by(w, bin, case, round, pane));
    let calls = w.tmux_spawns();
    if case == 0 || case == GONE {
        let _ = w
            .tmux()
            .args(["kill-session", "-t", &format!("=scale-{round:04}-s")])
            .output();
        forget_started(w, round);
    }
    calls
}

/// `METAWSM_BENCH_BIN_B=<another build>` measures that build too, interleaved with this
/// one in the same rounds (its own table and servers), so before and after see the same
/// load.
pub fn bench_scale(o: &Opts, real_tmux: &std::path::Path, rows: &mut Vec<Row>) {
    let sizes = [1usize, 500];
    let rounds = o.iters(40, 15);
    let other = std::env::var_os("METAWSM_BENCH_BIN_B");
    let builds: Vec<(Option<&OsStr>, usize)> = std::iter::once((None, 0))
        .chain(other.as_deref().map(|b| (Some(b), B_ROUNDS)))
        .collect();
    // Each build on worlds of its own, created by it: an older build refuses a database
    // a newer one migrated.
    let worlds: Vec<Vec<World>> = builds
        .iter()
        .map(|(bin, _)| {
            let own = std::env::var_os("METAWSM_BENCH_BIN");
            if let Some(b) = bin {
                std::env::set_var("METAWSM_BENCH_BIN", b);
            }
            let ws = sizes
                .iter()
                .map(|&n| World::new(n, &bench_policy(serde_json::json!({})), real_tmux))
                .collect();
            match own {
                Some(v) => std::env::set_var("METAWSM_BENCH_BIN", v),
                None => std::env::remove_var("METAWSM_BENCH_BIN"),
            }
            ws
        })
        .collect();
    let panes: Vec<Vec<String>> = worlds
        .iter()
        .map(|ws| ws.iter().map(first_pane).collect())
        .collect();
    // samples[build][case][world]: wall time, and the CPU time of the command and its
    // children (our process, its tmux clients; not the tmux server's).
    let mut samples =
        vec![vec![vec![Vec::with_capacity(rounds); sizes.len()]; CASES.len()]; builds.len()];
    let mut cpu = samples.clone();
    // The tmux server's own CPU for each call: what grows with N whoever asks.
    let mut srv = samples.clone();
    let pids: Vec<Vec<i32>> = worlds
        .iter()
        .map(|ws| ws.iter().map(World::server_pid).collect())
        .collect();
    // Timed without the counting wrapper (a shell per tmux spawn); `spawns` counts.
    let path = std::env::var_os("PATH").unwrap_or_default();
    for round in 0..rounds {
        for (c, _) in CASES.iter().enumerate() {
            // Alternate which N goes first, and which build.
            let order: Vec<usize> = if round % 2 == 0 {
                vec![0, 1]
            } else {
                vec![1, 0]
            };
            for wi in order {
                for k in 0..builds.len() {
                    let bi = if round % 2 == 0 {
                        k
                    } else {
                        builds.len() - 1 - k
                    };
                    if bi > 0 && c >= 9 {
                        continue;
                    }
                    let (bin, offset) = builds[bi];
                    let (w, r) = (&worlds[bi][wi], round + offset);
                    prepare(w, c, r);
                    let mut cmd = command_by(w, bin, c, r, &panes[bi][wi]);
                    cmd.env("PATH", &path);
                    let srv0 = World::server_cpu_ns(pids[bi][wi]);
                    let cpu0 = children_cpu_ms();
                    samples[bi][c][wi].push(timed(&mut cmd));
                    cpu[bi][c][wi].push(children_cpu_ms() - cpu0);
                    if let (Some(a), Some(b)) = (srv0, World::server_cpu_ns(pids[bi][wi])) {
                        srv[bi][c][wi].push(b.saturating_sub(a) as f64 / 1e6);
                    }
                }
            }
        }
        for (ws, (_, offset)) in worlds.iter().zip(&builds) {
            for w in ws {
                forget_started(w, round + offset);
            }
        }
    }
    // tmux's own cost per spawn grows with the panes its server holds (it polls every
    // pane's fd in each turn of its event loop): each spawn of a command is charged the
    // bare reference it resembles, and the rest is ours.
    let refs: Vec<[f64; 3]> = (0..2)
        .map(|wi| [9, 10, 11].map(|c| median(&samples[0][c][wi])))
        .collect();
    for (bi, (bin, offset)) in builds.iter().enumerate() {
        println!();
        match bin {
            None => println!("## Per-command cost against N (goal: at N=500 ≤ {GOAL} × at N=1)"),
            Some(b) => println!(
                "## The same, METAWSM_BENCH_BIN_B = {} (interleaved with the above)",
                b.to_string_lossy()
            ),
        }
        println!();
        println!("| command | N=1 median (p99) | N=500 median (p99) | ratio | tmux spawns at N=500: what they list | ours (minus its spawns' bare references) N=1 → N=500 = ratio | CPU of the command and its tmux clients, median N=1 → N=500 = ratio | tmux server's CPU for it, median N=1 → N=500 = ratio | result |");
        println!("|---|---|---|---|---|---|---|---|---|");
        for (c, case) in CASES.iter().enumerate() {
            if bi > 0 && c >= 9 {
                continue;
            }
            let (a, b) = (&samples[bi][c][0], &samples[bi][c][1]);
            let (ma, mb) = (median(a), median(b));
            let ratio = mb / ma;
            let calls = if c >= 9 {
                Vec::new()
            } else {
                spawns(
                    &worlds[bi][1],
                    *bin,
                    c,
                    rounds + 1 + c + offset,
                    &panes[bi][1],
                )
            };
            let listed = if c >= 9 {
                "(tmux itself)".to_string()
            } else {
                describe(&calls)
            };
            let ours = if c >= 9 {
                "—".to_string()
            } else {
                let (oa, ob) = (
                    ma - tmux_part(&calls, &refs[0]),
                    mb - tmux_part(&calls, &refs[1]),
                );
                format!("{oa:.2} → {ob:.2} ms = {:.2}", ob / oa)
            };
            let (ca, cb) = (median(&cpu[bi][c][0]), median(&cpu[bi][c][1]));
            let cpu_col = format!("{ca:.2} → {cb:.2} ms = {:.2}", cb / ca);
            let srv_col = if srv[bi][c][0].is_empty() || srv[bi][c][1].is_empty() {
                "— (no /proc/<pid>/schedstat)".to_string()
            } else {
                let (sa, sb) = (median(&srv[bi][c][0]), median(&srv[bi][c][1]));
                format!("{sa:.2} → {sb:.2} ms = {:.1}", sb / sa.max(1e-6))
            };
            let (verdict, pass) = if case.judged {
                let p = ratio <= GOAL;
                (if p { "PASS" } else { "MISS" }.to_string(), Some(p))
            } else if c >= 9 {
                ("reference".to_string(), None)
            } else {
                let per_row = (mb - ma) / 499.0 * 1000.0;
                (format!("{per_row:.1} µs per row (reported)"), None)
            };
            println!(
                "| {} | {ma:.2} ({:.2}) ms | {mb:.2} ({:.2}) ms | {ratio:.2} | {listed} | {ours} | {cpu_col} | {srv_col} | {verdict} |",
                case.label,
                pct(a, 99.0),
                pct(b, 99.0)
            );
            // The goals judge this build only.
            if bi == 0 {
                rows.push(row(
                    &format!("{} at N=500 / N=1 ({rounds} rounds)", case.label),
                    format!(
                        "{mb:.2} / {ma:.2} ms = {ratio:.2}; {listed}; ours {ours}; CPU {cpu_col}; tmux server CPU {srv_col}"
                    ),
                    if case.judged { "≤ 1.5" } else { "reported" },
                    pass,
                ));
            }
        }
    }
}

/// What a command's tmux spawns cost tmux itself, from the bare references (has-session,
/// list-panes -s, the start batch) measured at the same N.
fn tmux_part(calls: &[String], refs: &[f64; 3]) -> f64 {
    calls
        .iter()
        .map(|l| {
            if l.contains("new-session") {
                refs[2]
            } else if l.contains("list-panes") {
                refs[1]
            } else {
                refs[0]
            }
        })
        .sum()
}

/// "2 spawns: list-panes -a ×1, list-panes -s ×1…": what the tmux calls asked for.
fn describe(calls: &[String]) -> String {
    if calls.is_empty() {
        return "0 spawns".into();
    }
    let all = calls.iter().filter(|l| l.contains("list-panes -a")).count();
    let sessions = calls.iter().filter(|l| l.contains("list-panes -s")).count();
    let list_sessions = calls.iter().filter(|l| l.contains("list-sessions")).count();
    format!(
        "{} spawn(s); list-panes -a in {all}, list-panes -s in {sessions}, list-sessions in {list_sessions}",
        calls.len()
    )
}
