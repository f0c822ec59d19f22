//! `metawsm-tick init tmux|claude|codex`: the hook configuration with this binary's
//! absolute path written in, so nothing has to search for the binary at hook time.

use crate::cli::{self, CliError, CliResult, Ctx};
use lexopt::prelude::*;

pub const HELP: &str = "\
Usage: metawsm-tick init tmux|claude|codex [--bin PATH]

Prints the configuration that wires metawsm-tick in, naming this binary by its absolute
path:
  tmux     lines for your tmux.conf (set @metawsm-bin, run tmux-setup)
  claude   a Claude Code settings \"hooks\" object (merge it into settings.json)
  codex    the notify line for the top level of ~/.codex/config.toml

Options:
  --bin PATH   Name this binary instead of the running one
  -h, --help   Show this help
";

const CLAUDE_TEMPLATE: &str = include_str!("../../hooks/claude-hooks.json");
const SCRIPT: &str = "\"__METAWSM_HOOKS_DIR__/claude-hook.sh\" ";

pub fn main(parser: &mut lexopt::Parser, _ctx: &Ctx) -> CliResult<i32> {
    let (mut what, mut bin) = (None, None);
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => {
                cli::print_help(HELP);
                return Ok(0);
            }
            Long("bin") => bin = Some(parser.value()?.into()),
            Value(v) if what.is_none() => what = Some(cli::os_to_string(v, "init")?),
            other => return Err(other.unexpected().into()),
        }
    }
    let bin = cli::absolute(&bin.unwrap_or_else(cli::current_exe));
    let bin = bin
        .to_str()
        .ok_or_else(|| CliError::Failure(format!("binary path is not UTF-8: {}", bin.display())))?;
    let out = match what.as_deref() {
        Some("tmux") => tmux(bin)?,
        Some("claude") => claude(bin)?,
        Some("codex") => codex(bin)?,
        Some(o) => {
            return Err(CliError::Usage(format!(
                "init: unknown target {o:?} (tmux|claude|codex)"
            )))
        }
        None => {
            return Err(CliError::Usage(
                "init: tmux|claude|codex is required".into(),
            ))
        }
    };
    print!("{out}");
    Ok(0)
}

/// tmux.conf lines. The path goes into a tmux single-quoted string and, in `run-shell`,
/// into sh double quotes: characters special to either are refused rather than escaped.
pub fn tmux(bin: &str) -> Result<String, CliError> {
    if let Some(c) = bin
        .chars()
        .find(|c| "'\"$`\\#\n\r\0".contains(*c) || c.is_control())
    {
        return Err(CliError::Failure(format!(
            "binary path {:?} contains {c:?}, which a tmux.conf line cannot carry; use tmux/metawsm.tmux",
            bin
        )));
    }
    Ok(format!(
        "# metawsm-tick (printed by `metawsm-tick init tmux`)\n\
         set -g @metawsm-bin '{bin}'\n\
         run-shell '\"{bin}\" tmux-setup --bin \"{bin}\" >/dev/null 2>&1 </dev/null'\n"
    ))
}

/// The hook command Claude Code runs with `sh -c`: silent and always exit 0 (Claude Code
/// shows hook output and treats exit 2 as "block").
fn claude_command(bin: &str, state: &str) -> String {
    format!(
        "{} signal {state} </dev/null >/dev/null 2>&1; exit 0",
        crate::escape::sh_quote(bin)
    )
}

pub fn claude(bin: &str) -> Result<String, CliError> {
    let mut v: serde_json::Value = serde_json::from_str(CLAUDE_TEMPLATE)
        .map_err(|e| CliError::Failure(format!("hooks/claude-hooks.json: {e}")))?;
    fn walk(v: &mut serde_json::Value, bin: &str) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    match (k.as_str(), x.as_str().and_then(|s| s.strip_prefix(SCRIPT))) {
                        ("command", Some(state)) => {
                            *x = serde_json::Value::String(claude_command(bin, state))
                        }
                        _ => walk(x, bin),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| walk(x, bin)),
            _ => {}
        }
    }
    walk(&mut v, bin);
    let text = serde_json::to_string_pretty(&v)
        .map_err(|e| CliError::Failure(format!("claude hooks: {e}")))?;
    Ok(text + "\n")
}

/// Codex appends its JSON after these arguments; `signal --codex` reads it.
pub fn codex(bin: &str) -> Result<String, CliError> {
    let words: Vec<String> = [bin, "signal", "--codex"]
        .iter()
        .map(|w| serde_json::Value::String(w.to_string()).to_string())
        .collect();
    Ok(format!("notify = [{}]\n", words.join(", ")))
}
