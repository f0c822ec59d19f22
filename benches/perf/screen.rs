//! 5. The cost of reading quiet interactive agents' screens (docs/screen.md).

use crate::back_to_back::bench_status_cached;
use crate::report::{median, pct, row, timed, Row};
use crate::world::{bench_policy, World};
use crate::Opts;
use std::path::Path;
use std::time::Duration;

/// A tick over ten runs whose agents are interactive (`codex`) and quiet at their prompt,
/// against the same tick where the quiet agents are batch programs (no screen read),
/// interleaved; and the cached status path over the interactive world (still no tmux).
pub fn bench_quiet_interactive(o: &Opts, real_tmux: &Path, rows: &mut Vec<Row>) {
    let n = 10;
    // Quiet after 1 s, never stalled: every tick reads (and keeps) the same screens.
    let policy = bench_policy(serde_json::json!({"health": {"idle_seconds": 1}}));
    let screen =
        "printf '› Ask Codex to do anything\\n\\n  ? for shortcuts\\n'; exec sleep 1000000";
    let with = World::with_agents(n, &policy, real_tmux, r#"["codex"]"#, screen);
    let without = World::with_agents(n, &policy, real_tmux, r#"["sleep","1000000"]"#, screen);
    std::thread::sleep(Duration::from_millis(1500));
    for w in [&with, &without] {
        for _ in 0..2 {
            timed(&mut w.cmd(&["tick"], false));
        }
    }
    let idle = with.sql_i64(
        "SELECT count(*) FROM events WHERE kind = 'health' AND message LIKE 'idle at its prompt%'",
    );
    assert_eq!(
        idle, n as i64,
        "every interactive agent read as idle at its prompt"
    );
    // Spawns per tick: 1 observation + 1 capture with screens, 1 without.
    for (w, want) in [(&with, 2), (&without, 1)] {
        w.reset_count();
        for _ in 0..3 {
            timed(&mut w.cmd(&["tick"], true));
        }
        let spawned = w.tmux_spawns();
        assert_eq!(spawned.len(), 3 * want, "tmux spawns: {spawned:#?}");
    }
    let captures = with
        .tmux_spawns()
        .iter()
        .filter(|l| l.contains("capture-pane"))
        .count();
    assert_eq!(captures, 3, "one capture spawn per tick");
    let iters = o.iters(200, 50);
    let (mut a, mut b) = (Vec::with_capacity(iters), Vec::with_capacity(iters));
    for _ in 0..iters {
        a.push(timed(&mut with.cmd(&["tick"], false)));
        b.push(timed(&mut without.cmd(&["tick"], false)));
    }
    let actions =
        with.sql_i64("SELECT count(*) FROM events WHERE kind IN ('restart','stop','decision')");
    assert_eq!(actions, 0, "reading screens changed nothing else");
    let (ma, mb) = (median(&a), median(&b));
    rows.push(row(
        &format!("tick, {n} quiet interactive panes / {n} quiet batch panes: median"),
        format!(
            "{ma:.2} / {mb:.2} ms = ratio {:.2} (p95 {:.2} / {:.2}, {iters} pairs, tmux spawns 2 / 1)",
            ma / mb,
            pct(&a, 95.0),
            pct(&b, 95.0)
        ),
        "reported; 1 extra spawn",
        None,
    ));
    println!("N={n}: tick with screens {ma:.2} ms, without {mb:.2} ms over {iters} pairs");
    // The status path never reads screens: the same with and without interactive agents.
    bench_status_cached(o, &without, n, rows);
    bench_status_cached(o, &with, n, rows);
}
