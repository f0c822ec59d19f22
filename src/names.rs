//! Run ids and tmux session names (the original's sanitising rules, reference §1.6).

/// Shown where a name is missing (a guidance request without `agent`): never a bare
/// `agent=` or `#1 :`.
pub const NO_NAME: &str = "(unnamed)";

pub fn or_placeholder(name: &str) -> &str {
    if name.trim().is_empty() {
        NO_NAME
    } else {
        name
    }
}

/// Trim, lower-case, map separators tmux or paths dislike to `-`, collapse, `x` if empty.
pub fn sanitize_token(s: &str) -> String {
    let mapped: String = s
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_whitespace() || "/\\:,.@#[]{}()$;'\"`!&|<>*?=%~^".contains(c) || c.is_control()
            {
                '-'
            } else {
                c
            }
        })
        .collect();
    let mut out = String::with_capacity(mapped.len());
    for c in mapped.chars() {
        if c == '-' && out.ends_with('-') {
            continue;
        }
        out.push(c);
    }
    let out = out.trim_matches('-').to_string();
    if out.is_empty() {
        "x".into()
    } else {
        out
    }
}

/// `{agent}` and `{workspace}` substituted with sanitised tokens; blank → `agent-workspace`.
pub fn session_name(pattern: &str, agent: &str, workspace: &str) -> String {
    let a = sanitize_token(agent);
    let w = sanitize_token(workspace);
    let rendered = pattern.replace("{agent}", &a).replace("{workspace}", &w);
    let clean = sanitize_token(&rendered);
    if rendered.trim().is_empty() {
        format!("{a}-{w}")
    } else {
        clean
    }
}

/// Ids become session names, file names and log keys: keep them boring.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !id.starts_with('.')
        && !id.starts_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitises_like_the_original() {
        assert_eq!(sanitize_token(" Agent One "), "agent-one");
        assert_eq!(sanitize_token("a//b..c"), "a-b-c");
        assert_eq!(sanitize_token("---"), "x");
        assert_eq!(
            session_name("{agent}-{workspace}", "Codex", "MW-3 ws"),
            "codex-mw-3-ws"
        );
        assert_eq!(session_name("{agent}:{workspace}", "a", "b"), "a-b");
        assert_eq!(session_name("  ", "a", "b"), "a-b");
    }

    #[test]
    fn ids() {
        assert!(valid_id("run-20261125-101010"));
        assert!(!valid_id("../x"));
        assert!(!valid_id("a b"));
        assert!(!valid_id(""));
    }
}
