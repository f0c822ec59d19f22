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
Usage: metawsm-tick tmux-setup [--bin PATH] [--print] [--tmux-version V]

Run inside tmux by tmux/metawsm.tmux. Reads @metawsm-db, @metawsm-policy,
@metawsm-interval and @metawsm-status-auto; replaces #{metawsm_status} in status-right
and status-left with #(exec <bin> status), or prepends the segment to status-right unless
@metawsm-status-auto is off; registers hooks at index 91 (pane-died, pane-exited,
session-closed, alert-silence, client-attached); arms the no-client timer. On tmux 3.4
or later (unless @metawsm-click is off) the segment is a clickable range whose click
opens the menu. Silent.

Options:
  --bin PATH          Absolute path of the binary tmux should run [default: this binary]
  --print             Print the tmux commands instead of running them
  --tmux-version V    Act as if the server were tmux V [default: the server's #{version}]
";

pub const HOOK_INDEX: u32 = 91;
pub const PLACEHOLDER: &str = "#{metawsm_status}";

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    let (mut bin, mut print, mut version) = (None, false, None);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("bin") => bin = Some(PathBuf::from(parser.value()?)),
            Long("print") => print = true,
            Long("tmux-version") => {
                version = Some(cli::os_to_string(parser.value()?, "--tmux-version")?)
            }
            Short('h') | Long("help") => {
                cli::print_help(HELP);
                return Ok(0);
            }
            other => return Err(other.unexpected().into()),
        }
    }
    let bin = cli::absolute(&bin.unwrap_or_else(cli::current_exe));
    let mut opts = read_options(ctx)?;
    if version.is_some() {
        opts.version = version;
    }
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
    /// `@metawsm-click`: `off` keeps the segment unclickable even where tmux could.
    pub click: Option<String>,
    /// The server's `#{version}` (`3.3a`, `3.4`, `next-3.6`).
    pub version: Option<String>,
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
        ("C", "@metawsm-click"),
        ("V", "version"),
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
            "C" => o.click = value,
            "V" => o.version = value,
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
    Ok(run_shell_line(&shell))
}

/// `run-shell -b "<shell>"` as a tmux command line (parsed later, by a hook or if-shell).
fn run_shell_line(shell: &str) -> String {
    // Inside tmux double quotes, `\`, `"` and `$` are special.
    let quoted = shell
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('$', "\\$");
    format!("run-shell -b \"{quoted}\"")
}

/// The name of our status range: what `#{mouse_status_range}` says for a click on it.
pub const CLICK_RANGE: &str = "metawsm";

/// tmux 3.4 added user ranges (`#[range=user|X]`) and `#{mouse_status_range}` ("CHANGES
/// FROM 3.3a TO 3.4"); older servers would draw nothing clickable.
pub fn supports_user_ranges(version: &str) -> bool {
    tmux::version_at_least(version, (3, 4))
}

fn range_open() -> String {
    format!("#[range=user|{CLICK_RANGE}]")
}

/// The segment as drawn in the bar: the job, wrapped in our range when clicks are on.
pub fn segment(job: &str, clickable: bool) -> String {
    if clickable {
        format!("{}{job}#[norange]", range_open())
    } else {
        job.to_string()
    }
}

/// `MouseDown1Status`: a click on our range opens the menu on the clicked client; any
/// other click does what tmux's own binding does in the versions that have user ranges
/// (`switch-client -t=`: the window, session or pane under the mouse).
pub fn click_binding(ctx: &Ctx, bin: &std::path::Path) -> CliResult<Cmd> {
    Ok(Cmd::new("bind-key")
        .flags(&["-T", "root", "MouseDown1Status", "if-shell", "-F"])
        .format(&format!("#{{==:#{{mouse_status_range}},{CLICK_RANGE}}}"))
        .format(&run_shell_line(&menu_shell(ctx, bin)?))
        .flag("switch-client -t="))
}

/// The shell line that opens the menu on the client that pressed the key or clicked.
fn menu_shell(ctx: &Ctx, bin: &std::path::Path) -> CliResult<String> {
    Ok(format!(
        "exec {} --client '#{{client_name}}' >/dev/null 2>&1",
        invocation(ctx, bin, &["menu"])?
    ))
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
    let clickable = o.click.as_deref().map(str::trim) != Some("off")
        && o.version.as_deref().is_some_and(supports_user_ranges);
    let job = segment(&status_job(ctx, bin)?, clickable);
    let mut cmds = Vec::new();
    let auto = o.status_auto.as_deref().map(str::trim) != Some("off");
    // A segment a previous load installed with other paths (another binary, db or
    // policy, or with clicks turned on or off) is replaced in place, so reloading never
    // leaves two segments behind.
    let stale = |bar: &str| {
        let prev = o.previous_job.as_str();
        let ours = prev.starts_with("#(exec ") || prev.starts_with(&range_open());
        if !prev.is_empty() && prev != job && ours {
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
        let shell = menu_shell(ctx, bin)?;
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
    if clickable {
        cmds.push(click_binding(ctx, bin)?);
    } else if o.previous_job.starts_with(&range_open())
        && o.version.as_deref().is_some_and(supports_user_ranges)
    {
        // Clicks were on and are now off: tmux's own binding back.
        cmds.push(Cmd::new("bind-key").flags(&[
            "-T",
            "root",
            "MouseDown1Status",
            "switch-client",
            "-t=",
        ]));
    }
    Ok(cmds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Ctx, Globals};
    use std::path::Path;

    #[test]
    fn user_ranges_start_at_tmux_3_4() {
        for v in [
            "3.4",
            "3.5a",
            "next-3.6",
            "3.10",
            "4.0",
            "openbsd-7.5",
            "master",
        ] {
            assert!(supports_user_ranges(v), "{v}");
        }
        for v in ["3.3a", "3.3", "3.2a", "2.9", "3", "tmux 3.3a"] {
            assert!(!supports_user_ranges(v), "{v}");
        }
    }

    fn ctx() -> Ctx {
        Ctx::resolve(&Globals {
            db: Some("/s/state.db".into()),
            policy: None,
            socket: None,
        })
    }

    fn argvs(o: &PluginOptions) -> Vec<Vec<String>> {
        setup_cmds(&ctx(), Path::new("/b/m"), o)
            .unwrap()
            .iter()
            .map(|c| c.argv().unwrap().to_vec())
            .collect()
    }

    fn bind_click(command: &[&str]) -> Vec<String> {
        let mut argv = ["bind-key", "-T", "root", "MouseDown1Status"].to_vec();
        argv.extend(command);
        argv.into_iter().map(String::from).collect()
    }

    fn set_global(option: &str, value: &str) -> Vec<String> {
        ["set-option", "-g", option, value]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn tmux_3_4_gets_a_clickable_segment_and_its_binding() {
        let o = PluginOptions {
            version: Some("3.4".into()),
            ..Default::default()
        };
        let cmds = argvs(&o);
        let job = "#(exec /b/m --db /s/state.db status)";
        let seg = format!("#[range=user|metawsm]{job}#[norange]");
        assert!(cmds.contains(&set_global("status-right", &seg)));
        assert!(cmds.contains(&set_global("@metawsm-job", &seg)));
        let menu = "run-shell -b \"exec /b/m --db /s/state.db menu \
                    --client '#{client_name}' >/dev/null 2>&1\"";
        let expected = bind_click(&[
            "if-shell",
            "-F",
            "#{==:#{mouse_status_range},metawsm}",
            menu,
            "switch-client -t=",
        ]);
        assert_eq!(cmds.last().unwrap(), &expected);
    }

    #[test]
    fn older_tmux_or_click_off_leaves_the_bar_and_mouse_alone() {
        for (version, click) in [
            (Some("3.3a"), None),
            (None, None),
            (Some("3.4"), Some("off")),
        ] {
            let o = PluginOptions {
                version: version.map(str::to_string),
                click: click.map(str::to_string),
                ..Default::default()
            };
            let cmds = argvs(&o).concat().join(" ");
            assert!(
                !cmds.contains("range=") && !cmds.contains("MouseDown1Status"),
                "{cmds}"
            );
        }
    }

    #[test]
    fn turning_clicks_off_unwraps_the_segment_and_restores_the_default_binding() {
        let job = "#(exec /b/m --db /s/state.db status)";
        let seg = format!("#[range=user|metawsm]{job}#[norange]");
        let o = PluginOptions {
            version: Some("3.4".into()),
            click: Some("off".into()),
            status_right: format!("{seg} %H:%M"),
            previous_job: seg,
            ..Default::default()
        };
        let cmds = argvs(&o);
        assert!(cmds.contains(&set_global("status-right", &format!("{job} %H:%M"))));
        let expected = bind_click(&["switch-client", "-t="]);
        assert_eq!(cmds.last().unwrap(), &expected);
    }
}
