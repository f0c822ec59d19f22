//! `metawsm-tick tmux-setup`: what the plugin entry file runs inside the tmux server.
//! Idempotent: hooks live at a fixed index, the segment is only added once.

use crate::cli::{self, CliError, CliResult, Ctx, Globals};
use crate::escape;
use crate::lock::{StateLock, Wait};
use crate::store::{self, OpenMode};
use crate::timeutil::now_unix;
use crate::tmux::{self, sh_quote, Cmd};
use lexopt::prelude::*;
use std::path::PathBuf;
use std::time::Duration;

pub const HELP: &str = "\
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
        // The default (XDG) policy is not pinned: runs' project policies must still apply.
        policy: opts
            .policy
            .clone()
            .map(PathBuf::from)
            .or_else(|| ctx.policy_given_by.map(|_| ctx.policy_path.clone())),
        socket: ctx.tmux.socket().map(str::to_string),
    };
    let ctx = Ctx::resolve(&g);
    let cmds = setup_cmds(&ctx, &bin, &opts)?;
    if print {
        for c in &cmds {
            println!(
                "{}",
                c.argv()
                    .map_err(|e| CliError::Usage(format!("tmux-setup: {e}")))?
                    .iter()
                    .map(|w| sh_quote(w))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        return Ok(0);
    }
    ctx.tmux
        .run(&cmds)
        .map_err(|e| CliError::Failure(format!("tmux: {e}")))?;
    let policy = ctx.policy()?;
    store::ensure_state_dir(&ctx.db)?;
    // Arming the timer must not depend on winning the lock: the holder may be the very
    // `run start` whose new-session made this server load its config. Without the lock,
    // an existing database is still written (SQLite's own locking; chain numbers are
    // taken atomically), and only creating one needs the lock.
    let lock = StateLock::acquire(&ctx.db, Wait::Bounded(Duration::from_secs(2)))
        .map_err(|e| CliError::Failure(format!("lock: {e}")))?;
    let mut st = match &lock {
        Some(_) => ctx.open(OpenMode::Create, true)?,
        None => ctx.open(OpenMode::Existing, false)?,
    };
    {
        let tx = st.write()?;
        tx.meta_set("plugin_setup", "1")?;
        match opts
            .interval
            .as_deref()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|v| *v > 0)
        {
            Some(i) => tx.meta_set("tick_interval", &i.to_string())?,
            None => {
                tx.meta_delete("tick_interval")?;
            }
        }
        tx.commit()?;
    }
    // The status line reads its interval from the cache: a new @metawsm-interval applies now.
    let _ = crate::status_cache::refresh(&st);
    // The server's own PATH: what its ticks will find.
    crate::llm_command::record(&mut st, &policy);
    crate::schedule::arm_new_chain(&mut st, &ctx, &policy, now_unix());
    // A server that starts and finds its predecessor's runs (a reboot) says so once, and
    // revives them only when the policy asks (operator.revive_on_server_start). Starting
    // agents needs the lock: without it, the tick's marker still shows them.
    if lock.is_some() {
        if let Err(e) = crate::revive::on_server_start(&mut st, &ctx, &policy, now_unix()) {
            eprintln!("{}", crate::escape::human(&format!("metawsm-tick: {e}")));
        }
    }
    Ok(0)
}

#[derive(Debug, Default)]
pub struct PluginOptions {
    pub db: Option<String>,
    pub policy: Option<String>,
    pub interval: Option<String>,
    pub status_auto: Option<String>,
    /// `@metawsm-key`: the prefix key that opens the menu (`none`: no binding).
    pub key: Option<String>,
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
        ("K", "@metawsm-key"),
    ];
    let tag = |t: &'static str| Cmd::new("display-message").flag("-p").flag(t);
    let mut cmds: Vec<Cmd> = names
        .iter()
        .map(|(tag, opt)| {
            Cmd::new("display-message")
                .flag("-p")
                .format(&format!("{tag}#{{{opt}}}"))
        })
        .collect();
    // Option values come back raw (not format-expanded) from show-options -v.
    cmds.push(tag("R"));
    cmds.push(Cmd::new("show-options").flags(&["-gv", "status-right"]));
    cmds.push(tag("L"));
    cmds.push(Cmd::new("show-options").flags(&["-gv", "status-left"]));
    cmds.push(tag("J"));
    cmds.push(Cmd::new("show-options").flags(&["-gqv", "@metawsm-job"]));
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
            "K" => o.key = value,
            "R" if line == "R" => section = 'R',
            "L" if line == "L" => section = 'L',
            "J" if line == "J" => section = 'J',
            _ => {}
        }
    }
    Ok(o)
}

/// `'<bin>' --db '<db>' --policy '<policy>' <tail…>`, shell-quoted, `#` doubled (tmux
/// expands formats in both `#()` jobs and run-shell commands). A path that cannot be
/// carried through a `#()` job (a newline, or not UTF-8) is refused, naming the path.
pub fn invocation(ctx: &Ctx, bin: &std::path::Path, tail: &[&str]) -> CliResult<String> {
    let word = |what: &str, p: &std::path::Path| -> CliResult<String> {
        let s = p.to_str().ok_or_else(|| {
            CliError::Usage(format!(
                "tmux-setup: {what} {:?} is not valid UTF-8; tmux cannot run it from the status line",
                p
            ))
        })?;
        escape::sh_word(what, s).map_err(|e| {
            CliError::Usage(format!(
                "tmux-setup: {e}; tmux cannot run it from the status line, choose another path"
            ))
        })
    };
    let mut words = vec![
        word("binary path", bin)?,
        "--db".into(),
        word("database path", &ctx.db)?,
    ];
    if ctx.policy_given_by.is_some() {
        words.push("--policy".into());
        words.push(word("policy path", &ctx.policy_path)?);
    }
    words.extend(tail.iter().map(|w| w.to_string()));
    Ok(tmux::escape_format(&words.join(" ")))
}

/// `exec` so tmux's SIGTERM on a forced refresh reaches us, not an orphaning `sh`.
pub fn status_job(ctx: &Ctx, bin: &std::path::Path) -> CliResult<String> {
    Ok(format!("#(exec {})", invocation(ctx, bin, &["status"])?))
}

/// The hook command tmux parses when the hook fires: run-shell in the background, exec,
/// all output discarded.
pub fn hook_command(
    ctx: &Ctx,
    bin: &std::path::Path,
    event: &str,
    args: &str,
) -> CliResult<String> {
    let shell = format!(
        "exec {} {args} >/dev/null 2>&1",
        invocation(ctx, bin, &["hook", event])?
    );
    // Inside tmux double quotes, `\`, `"` and `$` are special.
    let quoted = shell
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('$', "\\$");
    Ok(format!("run-shell -b \"{quoted}\""))
}

pub fn hooks(ctx: &Ctx, bin: &std::path::Path) -> CliResult<Vec<(String, String)>> {
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
        Ok((
            format!("{ev}[{HOOK_INDEX}]"),
            hook_command(ctx, bin, ev, args)?,
        ))
    })
    .collect()
}

pub fn setup_cmds(ctx: &Ctx, bin: &std::path::Path, o: &PluginOptions) -> CliResult<Vec<Cmd>> {
    let job = status_job(ctx, bin)?;
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
    // The bars are formats on purpose: the user's own plus our job, whose words are
    // escaped above.
    if right != o.status_right {
        cmds.push(
            Cmd::new("set-option")
                .flags(&["-g", "status-right"])
                .format(&right),
        );
    }
    if left != o.status_left {
        cmds.push(
            Cmd::new("set-option")
                .flags(&["-g", "status-left"])
                .format(&left),
        );
    }
    for (name, command) in hooks(ctx, bin)? {
        // A hook's value is a tmux command line, parsed when the hook fires.
        cmds.push(
            Cmd::new("set-hook")
                .flag("-g")
                .word("hook name", &name)
                .format(&command),
        );
    }
    // prefix + M (`@metawsm-key`) opens the menu of runs that need a human. Last in the
    // batch: a key tmux refuses must not undo the rest.
    let key = o.key.as_deref().map(str::trim).unwrap_or("M");
    let plain_key = !key.is_empty()
        && key.len() <= 16
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let mut bind = None;
    if key != "none" && plain_key {
        let shell = format!(
            "exec {} --client '#{{client_name}}' >/dev/null 2>&1",
            invocation(ctx, bin, &["menu"])?
        );
        bind = Some(
            Cmd::new("bind-key")
                .word("key", key)
                .flags(&["run-shell", "-b"])
                .format(&shell),
        );
    }
    cmds.push(
        Cmd::new("set-option")
            .flags(&["-g", "@metawsm-loaded"])
            .flag(crate::cli::VERSION),
    );
    cmds.push(
        Cmd::new("set-option")
            .flags(&["-g", "@metawsm-job"])
            .format(&job),
    );
    cmds.extend(bind);
    Ok(cmds)
}
