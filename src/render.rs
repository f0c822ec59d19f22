//! The status-line segment: counts of runs by what they need, in tmux, plain or JSON form.

use crate::model::{Intent, RunStatus};
use crate::policy::StatusPolicy;
use crate::store::StatusRow;
use crate::tmux::escape_drawn;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    pub ok: i64,
    pub guidance: i64,
    pub blocked: i64,
    pub done: i64,
    /// Of `blocked`: runs whose tmux server is certainly gone.
    pub orphaned: i64,
    /// Runs with an action assist mode holds for `metawsm-tick approve`.
    #[serde(default)]
    pub approval: i64,
}

impl Counts {
    pub fn total(&self) -> i64 {
        self.ok + self.guidance + self.blocked + self.done + self.approval
    }
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.ok += o.ok;
        self.guidance += o.guidance;
        self.blocked += o.blocked;
        self.done += o.done;
        self.orphaned += o.orphaned;
        self.approval += o.approval;
    }
}

/// Each active run lands in exactly one bucket; the most urgent wins.
pub fn classify(rows: &[StatusRow]) -> Counts {
    let mut c = Counts::default();
    for r in rows {
        let escalated_blocked = r
            .last_alert
            .as_deref()
            .is_some_and(|a| Intent::of_alert(a) == Some(Intent::EscalateBlocked));
        if r.orphaned {
            // Nothing supervises it any more: a human must stop, forget or revive it.
            c.blocked += 1;
            c.orphaned += 1;
        } else if r.status == RunStatus::AwaitingGuidance
            || r.pending_guidance > 0
            || r.waiting_agents > 0
        {
            c.guidance += 1;
        } else if r.awaiting_approval {
            c.approval += 1;
        } else if r.dead_agents > 0 || escalated_blocked {
            c.blocked += 1;
        } else if r.agents > 0 && r.done_agents == r.agents {
            c.done += 1;
        } else {
            c.ok += 1;
        }
    }
    c
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Tmux,
    Plain,
    Json,
}

/// In display order: ok, guidance, awaiting approval, blocked, done.
pub struct Style {
    pub icons: [String; 5],
    pub colors: [String; 5],
}

/// tmux `@metawsm-icon-*` options (captured at the last full tick) override the policy.
pub fn style(p: &StatusPolicy, tmux_opts: &HashMap<String, String>) -> Style {
    let pick = |opt: &str, dflt: &str| {
        tmux_opts
            .get(opt)
            .cloned()
            .unwrap_or_else(|| dflt.to_string())
    };
    Style {
        icons: [
            pick("@metawsm-icon-ok", &p.icon_ok),
            pick("@metawsm-icon-guidance", &p.icon_guidance),
            p.icon_approval.clone(),
            pick("@metawsm-icon-blocked", &p.icon_blocked),
            pick("@metawsm-icon-done", &p.icon_done),
        ],
        colors: [
            p.color_ok.clone(),
            p.color_guidance.clone(),
            p.color_approval.clone(),
            p.color_blocked.clone(),
            p.color_done.clone(),
        ],
    }
}

/// Colours go inside `#[fg=…]`: anything but a plain name or hex would end the style.
fn safe_color(c: &str) -> String {
    c.chars()
        .filter(|ch| ch.is_ascii_alphanumeric() || *ch == '#')
        .collect()
}

pub fn render(c: &Counts, s: &Style, f: Format, marker: Option<&str>) -> String {
    if f == Format::Json {
        let mut v = serde_json::json!({
            "runs": c.total(), "ok": c.ok, "guidance": c.guidance, "blocked": c.blocked, "done": c.done,
            "orphaned": c.orphaned, "approval": c.approval,
        });
        if let Some(m) = marker {
            v["error"] = serde_json::Value::String(m.to_string());
        }
        return v.to_string();
    }
    let values = [c.ok, c.guidance, c.approval, c.blocked, c.done];
    let mut parts = Vec::new();
    for (i, n) in values.iter().enumerate() {
        // The working count is shown whenever there are runs; the others only when non-zero.
        let show = if i == 0 {
            c.total() > 0 && *n > 0
        } else {
            *n > 0
        };
        if !show {
            continue;
        }
        let text = format!("{}{}", s.icons[i], n);
        parts.push(match f {
            Format::Tmux => {
                let color = safe_color(&s.colors[i]);
                if color.is_empty() {
                    escape_drawn(&text)
                } else {
                    format!("#[fg={color}]{}#[default]", escape_drawn(&text))
                }
            }
            _ => text,
        });
    }
    if let Some(m) = marker {
        parts.push(match f {
            Format::Tmux => format!("#[fg=red]{}#[default]", escape_drawn(m)),
            _ => m.to_string(),
        });
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    fn row(status: RunStatus) -> StatusRow {
        StatusRow {
            status,
            pending_guidance: 0,
            dead_agents: 0,
            waiting_agents: 0,
            done_agents: 0,
            agents: 1,
            last_alert: None,
            tmux_socket: None,
            orphaned: false,
            awaiting_approval: false,
        }
    }

    #[test]
    fn buckets_and_rendering() {
        let rows = vec![
            row(RunStatus::Running),
            row(RunStatus::Running),
            StatusRow {
                dead_agents: 1,
                ..row(RunStatus::Running)
            },
            StatusRow {
                pending_guidance: 1,
                dead_agents: 1,
                ..row(RunStatus::AwaitingGuidance)
            },
            StatusRow {
                last_alert: Some("escalate_blocked:x".into()),
                ..row(RunStatus::Running)
            },
            StatusRow {
                done_agents: 1,
                ..row(RunStatus::Running)
            },
            StatusRow {
                dead_agents: 1,
                awaiting_approval: true,
                ..row(RunStatus::Running)
            },
        ];
        let c = classify(&rows);
        assert_eq!(
            c,
            Counts {
                ok: 2,
                guidance: 1,
                blocked: 2,
                done: 1,
                orphaned: 0,
                approval: 1,
            }
        );
        let st = style(&Policy::default().status, &HashMap::new());
        assert_eq!(render(&c, &st, Format::Plain, None), "⚙2 ?1 ⏸1 ✖2 ✔1");
        assert_eq!(
            render(&c, &st, Format::Tmux, None),
            "#[fg=green]⚙2#[default] #[fg=yellow]?1#[default] #[fg=magenta]⏸1#[default] #[fg=red]✖2#[default] #[fg=blue]✔1#[default]"
        );
        assert_eq!(render(&Counts::default(), &st, Format::Tmux, None), "");
        assert!(render(&c, &st, Format::Json, None).contains("\"blocked\":2"));
    }

    #[test]
    fn icons_from_tmux_options_are_escaped() {
        let mut opts = HashMap::new();
        opts.insert("@metawsm-icon-ok".to_string(), "#(rm -rf ~)".to_string());
        let mut p = Policy::default().status;
        p.color_ok = "green]#[bg=red".into();
        let st = style(&p, &opts);
        let out = render(
            &Counts {
                ok: 1,
                ..Default::default()
            },
            &st,
            Format::Tmux,
            None,
        );
        assert_eq!(out, "#[fg=green#bgred]##(rm -rf ~)1#[default]");
        let m = render(
            &Counts::default(),
            &st,
            Format::Tmux,
            Some("metawsm:!policy"),
        );
        assert_eq!(m, "#[fg=red]metawsm:!policy#[default]");
    }
}
