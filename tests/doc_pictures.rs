//! The pictures in the docs are generated, not drawn: docs/img/generate.sh renders the
//! bar and the menu of a real tmux client with the plugin and four demo runs; the committed SVG must
//! be what the current code renders. Regenerate with `docs/img/generate.sh`.

use std::path::Path;
use std::process::Command;

#[test]
fn committed_pictures_are_what_the_code_renders() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(root.join("docs/img/generate.sh"))
        .arg(out.path())
        .env("METAWSM_BIN", env!("CARGO_BIN_EXE_metawsm-tick"))
        .output()
        .expect("run docs/img/generate.sh");
    assert!(run.status.success(), "generate.sh: {run:?}");
    let fresh = std::fs::read_to_string(out.path().join("bar.svg")).unwrap();
    let committed = std::fs::read_to_string(root.join("docs/img/bar.svg")).unwrap();
    for bucket in ["⚙1", "?1", "✖1", "✔1"] {
        assert!(
            fresh.contains(&format!(">{bucket}</text>")),
            "{bucket} missing:\n{fresh}"
        );
    }
    assert!(
        fresh == committed,
        "docs/img/bar.svg is stale: run docs/img/generate.sh (fresh one:\n{fresh})"
    );
    let menu = std::fs::read_to_string(out.path().join("menu.svg")).unwrap();
    assert!(
        menu.contains("Which database?"),
        "the menu lists the question:\n{menu}"
    );
    assert!(
        menu == std::fs::read_to_string(root.join("docs/img/menu.svg")).unwrap(),
        "docs/img/menu.svg is stale: run docs/img/generate.sh"
    );
}
