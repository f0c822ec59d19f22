//! Which policy judges a run, as the original metawsm read `.metawsm/policy.json` from
//! the project: `--policy`, then `$METAWSM_POLICY`, then the run's own project policy
//! (found when it was started, adopted or imported, re-read at every use), then the
//! user's XDG file, then the defaults.

use crate::cli::{CliError, Ctx};
use crate::policy::Policy;
use crate::store::RunRow;
use std::path::{Path, PathBuf};

/// The project policy file, relative to a project directory (the original's default).
pub const PROJECT_FILE: &str = ".metawsm/policy.json";

/// The first `<dir>/.metawsm/policy.json` that exists, absolute.
pub fn find(dirs: &[&Path]) -> Option<String> {
    dirs.iter()
        .map(|d| crate::cli::absolute(&d.join(PROJECT_FILE)))
        .find(|p| p.is_file())
        .map(|p| p.to_string_lossy().into_owned())
}

/// The project policy for a run being registered in `workspace` from the current
/// directory: the current directory's first, then the workspace's.
pub fn find_for(workspace: &Path) -> Option<String> {
    let cwd = std::env::current_dir().ok();
    let mut dirs: Vec<&Path> = Vec::new();
    if let Some(c) = &cwd {
        dirs.push(c);
    }
    dirs.push(workspace);
    find(&dirs)
}

/// Where the policy of `run` comes from: the file and why that one.
pub fn source(ctx: &Ctx, run: &RunRow) -> (PathBuf, &'static str) {
    if let Some(by) = ctx.policy_given_by {
        return (ctx.policy_path.clone(), by);
    }
    if let Some(p) = run.policy_path.as_deref().map(PathBuf::from) {
        if p.exists() {
            return (p, "project");
        }
    }
    (ctx.policy_path.clone(), "user")
}

/// The policy that judges `run` (loaded now: an edited file applies at once).
pub fn for_run(ctx: &Ctx, run: &RunRow) -> Result<Policy, CliError> {
    match source(ctx, run) {
        (p, "project") => Ok(Policy::load(&p)?),
        _ => ctx.policy(),
    }
}

/// One line for humans: `~/proj/.metawsm/policy.json (project)`, `… (user, absent: defaults)`.
pub fn describe(ctx: &Ctx, run: &RunRow) -> String {
    let (p, why) = source(ctx, run);
    let mut s = format!("{} ({why}", p.display());
    if !p.exists() {
        s.push_str(", absent: defaults");
    }
    if let Some(rec) = run.policy_path.as_deref() {
        if why != "project" {
            let state = if Path::new(rec).exists() {
                "overridden"
            } else {
                "missing"
            };
            s.push_str(&format!("; project policy {rec} {state}"));
        }
    }
    s.push(')');
    s
}

/// Every run's policy for one tick (each file loaded once), and why a run's project
/// policy could not be used: such a run is judged by `global`, and the tick line, doctor
/// and `run show` say so.
pub type PerRun = (
    std::collections::HashMap<String, std::rc::Rc<Policy>>,
    std::collections::HashMap<String, String>,
);

pub fn per_run<'a>(ctx: &Ctx, global: &Policy, runs: impl Iterator<Item = &'a RunRow>) -> PerRun {
    use std::collections::HashMap;
    use std::rc::Rc;
    let shared = Rc::new(global.clone());
    let mut files: HashMap<PathBuf, Result<Rc<Policy>, String>> = HashMap::new();
    let mut out = HashMap::new();
    let mut errors = HashMap::new();
    for run in runs {
        let pol = match source(ctx, run) {
            (p, "project") => {
                match files
                    .entry(p.clone())
                    .or_insert_with(|| Policy::load(&p).map(Rc::new).map_err(|e| e.to_string()))
                {
                    Ok(pol) => pol.clone(),
                    Err(e) => {
                        errors.insert(run.id.clone(), e.clone());
                        shared.clone()
                    }
                }
            }
            _ => shared.clone(),
        };
        out.insert(run.id.clone(), pol);
    }
    (out, errors)
}
