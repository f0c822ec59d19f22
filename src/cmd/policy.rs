//! `metawsm-tick policy init|show|check`.

use crate::cli::{self, CliError, CliResult, Ctx};
use crate::policy::Policy;
use lexopt::prelude::*;
use std::fs;
use std::path::PathBuf;

pub const HELP: &str = "\
Usage: metawsm-tick policy <init [--force] | show | check [PATH] | mode>

  init [--force]   Write the default policy to the policy path (refuses to overwrite)
  show             Print the effective policy (file merged over defaults) as JSON
  check [PATH]     Validate PATH (or the policy path); exit 2 with the bad field if invalid
  mode             Say which operator.llm.mode is active and what it means, in one line
";

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    let mut sub: Option<String> = None;
    let (mut force, mut path) = (false, None::<PathBuf>);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("force") => force = true,
            Short('h') | Long("help") => {
                cli::print_help(HELP);
                return Ok(0);
            }
            Value(v) if sub.is_none() => sub = Some(cli::os_to_string(v, "policy command")?),
            Value(v) if sub.as_deref() == Some("check") && path.is_none() => path = Some(v.into()),
            other => return Err(other.unexpected().into()),
        }
    }
    match sub.as_deref() {
        Some("init") => {
            let p = &ctx.policy_path;
            if p.exists() && !force {
                return Err(CliError::Failure(format!(
                    "policy {} already exists (use --force to overwrite)",
                    p.display()
                )));
            }
            if let Some(dir) = p.parent() {
                fs::create_dir_all(dir)
                    .map_err(|e| CliError::Failure(format!("create {}: {e}", dir.display())))?;
            }
            fs::write(p, Policy::default().to_pretty_json())
                .map_err(|e| CliError::Failure(format!("write {}: {e}", p.display())))?;
            crate::say!("wrote {}", p.display());
            println!("{}", Policy::default().operator.llm.mode.meaning());
            Ok(0)
        }
        Some("mode") => {
            println!("{}", ctx.policy()?.operator.llm.mode.meaning());
            Ok(0)
        }
        Some("show") => {
            print!("{}", ctx.policy()?.to_pretty_json());
            Ok(0)
        }
        Some("check") => {
            let p = cli::absolute(&path.unwrap_or_else(|| ctx.policy_path.clone()));
            if !p.exists() {
                return Err(CliError::Usage(format!(
                    "policy {}: file not found",
                    p.display()
                )));
            }
            Policy::load(&p)?;
            crate::say!("policy {}: ok", p.display());
            Ok(0)
        }
        Some(other) => Err(CliError::Usage(format!(
            "policy: unknown command '{other}' (init|show|check|mode)"
        ))),
        None => {
            cli::print_help(HELP);
            Err(CliError::Usage(
                "policy: missing command (init|show|check|mode)".into(),
            ))
        }
    }
}

/// `__policy-keys`: the policy key table of docs/reference.md, from `policy::KEYS`.
pub fn keys(parser: &mut lexopt::Parser, _ctx: &Ctx) -> CliResult<i32> {
    if super::no_args(parser, "Usage: metawsm-tick __policy-keys\n")? {
        return Ok(0);
    }
    print!("{}", crate::policy::markdown_table());
    Ok(0)
}
