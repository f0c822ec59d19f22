//! `metawsm-tick tmux-setup`: what the plugin entry file runs inside the tmux server.
//! Idempotent: hooks live at a fixed index, the segment is only added once.

use crate::cli::{self, CliError, CliResult, Ctx, Globals};
use crate::lock::{StateLock, Wait};
use crate::store::{self, OpenMode};
use crate::timeutil::now_unix;
use crate::tmux::{self, sh_quote};
use lexopt::prelude::*;
use std::path::PathBuf;
use std::time::Duration;

const HELP: &str = "\
Usage: metawsm-tick tmux-setup [--bin PATH] [--print]

Run inside tmux by tmux/metawsm.tmux. Reads @metawsm-db, @metawsm-policy,
@metawsm-interval and @metawsm-status-auto; replaces #{metawsm_status} in status-right
and status-left with #(exec <bin> status), or prepends the segment to status-right unless
@metawsm-status-auto is off; registers hooks at index 91 (pane-died, pane-exited,
session-closed, alert-silence, client-attached); arms the no-client timer. Silent.

Options:
  --bin PATH   Absolute path of the binary tmux should run [default: this binary]
  --print      Print the tmux commands instead of running them
";

pub const HOOK_INDEX: u32 = 91;
pub const PLACEHOLDER: &str = "#{metawsm_status}";

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    let (mut bin, mut print) = (None, false);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("bin") => bin = Some(PathBuf::from(parser.value()?)),
            Long("print") => print = true,
            Short('h') | Long("help") => {
                cli::print_help(HELP);
                return Ok(0);
            }
            other => return Err(other.unexpected().into()),
        }
    }
    let bin = cli::absolute(&bin.unwrap_or_else(cli::current_exe));
    let opts = read_options(ctx)?;
    // tmux options choose the state and policy the plugin uses, unless given explicitly.
    let g = Globals {
        db: opts
            .db
            .clone()
            .map(PathBuf::from)
            .or_else(|| Some(ctx.db.clone())),
        policy: opts
            .policy
            .clone()
            .map(PathBuf::from)
            .or_else(|| Some(ctx.policy_path.clone())),
        socket: ctx.tmux.socket().map(str::to_string),
    };
    let ctx = Ctx::resolve(&g);
    let cmds = setup_cmds(&ctx, &bin, &opts);
    if print {
        for c in &cmds {
            println!(
                "{}",
                c.iter().map(|w| sh_quote(w)).collect::<Vec<_>>().join(" ")
            );
        }
        return Ok(0);
    }
    ctx.tmux
        .run(&cmds)
        .map_err(|e| CliError::Failure(format!("tmux: {e}")))?;
    let policy = ctx.policy()?;
    store::ensure_state_dir(&ctx.db)?;
    let _lock = StateLock::acquire(&ctx.db, Wait::Bounded(Duration::from_secs(5)))
        .map_err(|e| CliError::Failure(format!("lock: {e}")))?
        .ok_or_else(|| CliError::Failure("state lock busy".into()))?;
    let mut st = ctx.open(OpenMode::Create, true)?;
    {
        let tx = st.write()?;
        store::meta_set(&tx, "plugin_setup", "1")?;
        match opts
            .interval
            .as_deref()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|v| *v > 0)
        {
            Some(i) => store::meta_set(&tx, "tick_interval", &i.to_string())?,
            None => {
                tx.execute("DELETE FROM meta WHERE key = 'tick_interval'", [])?;
            }
        }
        tx.commit().map_err(store::StoreError::from)?;
    }
    // The status line reads its interval from the cache: a new @metawsm-interval applies now.
    let _ = crate::status_cache::refresh(&st);
    crate::cmd::timer::arm_new_chain(&mut st, &ctx, &policy, now_unix());
    Ok(0)
}

#[derive(Debug, Default)]
pub struct PluginOptions {
    pub db: Option<String>,
    pub policy: Option<String>,
    pub interval: Option<String>,
    pub status_auto: Option<String>,
    pub status_right: String,
    pub status_left: String,
    /// The segment a previous load installed (`@metawsm-job`), if any.
    pub previous_job: String,
}

/// One tmux call, one line per value, each tagged so empty values stay in place.
pub fn read_options(ctx: &Ctx) -> CliResult<PluginOptions> {
    let names = [
        ("D", "@metawsm-db"),
        ("P", "@metawsm-policy"),
        ("I", "@metawsm-interval"),
        ("A", "@metawsm-status-auto"),
    ];
    let mut cmds: Vec<tmux::Cmd> = names
        .iter()
        .map(|(tag, opt)| tmux::cmd(["display-message", "-p", &format!("{tag}#{{{opt}}}")]))
        .collect();
    // Option values come back raw (not format-expanded) from show-options -v.
    cmds.push(tmux::cmd(["display-message", "-p", "R"]));
    cmds.push(tmux::cmd(["show-options", "-gv", "status-right"]));
    cmds.push(tmux::cmd(["display-message", "-p", "L"]));
    cmds.push(tmux::cmd(["show-options", "-gv", "status-left"]));
    cmds.push(tmux::cmd(["display-message", "-p", "J"]));
    cmds.push(tmux::cmd(["show-options", "-gqv", "@metawsm-job"]));
    let out = ctx
        .tmux
        .run(&cmds)
        .map_err(|e| CliError::Failure(format!("tmux: {e}")))?;
    let mut o = PluginOptions::default();
    let mut section = ' ';
    for line in out.lines() {
        match section {
            'R' => {
                o.status_right = line.to_string();
                section = ' ';
                continue;
            }
            'L' => {
                o.status_left = line.to_string();
                section = ' ';
                continue;
            }
            'J' => {
                o.previous_job = line.to_string();
                section = ' ';
                continue;
            }
            _ => {}
        }
        let (tag, value) = line.split_at(line.len().min(1));
        let value = (!value.is_empty()).then(|| value.to_string());
        match tag {
            "D" => o.db = value,
            "P" => o.policy = value,
            "I" => o.interval = value,
            "A" => o.status_auto = value,
            "R" if line == "R" => section = 'R',
            "L" if line == "L" => section = 'L',
            "J" if line == "J" => section = 'J',
            _ => {}
        }
    }
    Ok(o)
}

/// `'<bin>' --db '<db>' --policy '<policy>' <tail…>`, shell-quoted, `#` doubled (tmux
/// expands formats in both `#()` jobs and run-shell commands).
fn invocation(ctx: &Ctx, bin: &std::path::Path, tail: &[&str]) -> String {
    let mut words = vec![
        sh_quote(&bin.to_string_lossy()),
        "--db".into(),
        sh_quote(&ctx.db.to_string_lossy()),
        "--policy".into(),
        sh_quote(&ctx.policy_path.to_string_lossy()),
    ];
    words.extend(tail.iter().map(|w| w.to_string()));
    tmux::escape_format(&words.join(" "))
}

/// `exec` so tmux's SIGTERM on a forced refresh reaches us, not an orphaning `sh`.
pub fn status_job(ctx: &Ctx, bin: &std::path::Path) -> String {
    format!("#(exec {})", invocation(ctx, bin, &["status"]))
}

/// The hook command tmux parses when the hook fires: run-shell in the background, exec,
/// all output discarded.
pub fn hook_command(ctx: &Ctx, bin: &std::path::Path, event: &str, args: &str) -> String {
    let shell = format!(
        "exec {} {args} >/dev/null 2>&1",
        invocation(ctx, bin, &["hook", event])
    );
    // Inside tmux double quotes, `\`, `"` and `$` are special.
    let quoted = shell
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('$', "\\$");
    format!("run-shell -b \"{quoted}\"")
}

pub fn hooks(ctx: &Ctx, bin: &std::path::Path) -> Vec<(String, String)> {
    [
        (
            "pane-died",
            "#{hook_pane} #{q:session_name} #{pane_dead_status}",
        ),
        ("pane-exited", "#{hook_pane}"),
        ("session-closed", "#{q:hook_session_name}"),
        ("alert-silence", "#{q:hook_session_name}"),
        ("client-attached", ""),
    ]
    .iter()
    .map(|(ev, args)| {
        (
            format!("{ev}[{HOOK_INDEX}]"),
            hook_command(ctx, bin, ev, args),
        )
    })
    .collect()
}

pub fn setup_cmds(ctx: &Ctx, bin: &std::path::Path, o: &PluginOptions) -> Vec<tmux::Cmd> {
    let job = status_job(ctx, bin);
    let mut cmds = Vec::new();
    let auto = o.status_auto.as_deref().map(str::trim) != Some("off");
    // A segment a previous load installed with other paths (another binary, db or
    // policy) is replaced in place, so reloading never leaves two segments behind.
    let stale = |bar: &str| {
        let prev = o.previous_job.as_str();
        if !prev.is_empty() && prev != job && prev.starts_with("#(exec ") {
            bar.replace(prev, &job)
        } else {
            bar.to_string()
        }
    };
    let right = stale(&o.status_right).replace(PLACEHOLDER, &job);
    let left = stale(&o.status_left).replace(PLACEHOLDER, &job);
    let present = right.contains(&job) || left.contains(&job);
    let right = if !present && auto {
        // Prepended: status-right-length (40 by default) truncates from the right.
        let sep = if right.is_empty() { "" } else { " " };
        format!("{job}{sep}{right}")
    } else {
        right
    };
    if right != o.status_right {
        cmds.push(tmux::cmd(["set-option", "-g", "status-right", &right]));
    }
    if left != o.status_left {
        cmds.push(tmux::cmd(["set-option", "-g", "status-left", &left]));
    }
    for (name, command) in hooks(ctx, bin) {
        cmds.push(tmux::cmd(["set-hook", "-g", &name, &command]));
    }
    cmds.push(tmux::cmd([
        "set-option",
        "-g",
        "@metawsm-loaded",
        crate::cli::VERSION,
    ]));
    cmds.push(tmux::cmd(["set-option", "-g", "@metawsm-job", &job]));
    cmds
}
