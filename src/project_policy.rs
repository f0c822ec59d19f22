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
    match project_file(ctx, run) {
        Some(p) => (p.to_path_buf(), "project"),
        None => (ctx.policy_path.clone(), "user"),
    }
}

/// The run's own project policy file when it judges the run (`source` says "project").
fn project_file<'a>(ctx: &Ctx, run: &'a RunRow) -> Option<&'a Path> {
    if ctx.policy_given_by.is_some() {
        return None;
    }
    run.policy_path
        .as_deref()
        .map(Path::new)
        .filter(|p| p.exists())
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

/// The project policies of one tick's runs (each file loaded once), and why a run's
/// project policy could not be used: such a run is judged by the global policy, and the
/// tick line, doctor and `run show` say so.
pub type PerRun = (
    std::collections::HashMap<String, std::rc::Rc<Policy>>,
    std::collections::HashMap<String, String>,
);

/// Runs judged by the global policy are left out of the first map (the plan falls back
/// to it): at 500 runs, an entry each cost a tenth of a millisecond.
pub fn per_run<'a>(ctx: &Ctx, runs: impl Iterator<Item = &'a RunRow>) -> PerRun {
    use std::collections::HashMap;
    use std::rc::Rc;
    let mut files: HashMap<PathBuf, Result<Rc<Policy>, String>> = HashMap::new();
    let mut out = HashMap::new();
    let mut errors = HashMap::new();
    for run in runs {
        let Some(p) = project_file(ctx, run) else {
            continue;
        };
        match files
            .entry(p.to_path_buf())
            .or_insert_with(|| Policy::load(p).map(Rc::new).map_err(|e| e.to_string()))
        {
            Ok(pol) => {
                out.insert(run.id.clone(), pol.clone());
            }
            Err(e) => {
                errors.insert(run.id.clone(), e.clone());
            }
        }
    }
    (out, errors)
}
