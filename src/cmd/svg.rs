//! Hidden `__svg`: renders a `tmux capture-pane -e -p` screen (text with SGR colour
//! escapes) as an SVG picture, for docs/img/ (docs/img/generate.sh). Deterministic: the
//! same bytes in give the same SVG out.

use crate::cli::CliResult;
use crate::cli::Ctx;
use std::io::Read;

const CELL_W: f64 = 8.4;
const CELL_H: f64 = 18.0;
const FG: &str = "#d0d0d0";
const BG: &str = "#1c1c1c";

/// The xterm 16-colour palette.
const BASIC: [&str; 16] = [
    "#000000", "#cd0000", "#00cd00", "#cdcd00", "#0000ee", "#cd00cd", "#00cdcd", "#e5e5e5",
    "#7f7f7f", "#ff0000", "#00ff00", "#ffff00", "#5c5cff", "#ff00ff", "#00ffff", "#ffffff",
];

fn color256(n: u32) -> String {
    match n {
        0..=15 => BASIC[n as usize].to_string(),
        16..=231 => {
            let n = n - 16;
            let level = |v: u32| if v == 0 { 0 } else { 55 + v * 40 };
            format!(
                "#{:02x}{:02x}{:02x}",
                level(n / 36),
                level((n / 6) % 6),
                level(n % 6)
            )
        }
        _ => {
            let v = 8 + (n.min(255) - 232) * 10;
            format!("#{v:02x}{v:02x}{v:02x}")
        }
    }
}

#[derive(Clone, Default, PartialEq)]
struct Style {
    fg: Option<String>,
    bg: Option<String>,
    bold: bool,
    reverse: bool,
}

impl Style {
    fn apply(&mut self, params: &str) {
        let nums: Vec<u32> = params
            .split([';', ':'])
            .map(|p| p.parse().unwrap_or(0))
            .collect();
        let mut i = 0;
        while i < nums.len() {
            match nums[i] {
                0 => *self = Style::default(),
                1 => self.bold = true,
                22 => self.bold = false,
                7 => self.reverse = true,
                27 => self.reverse = false,
                n @ 30..=37 => self.fg = Some(BASIC[(n - 30) as usize].into()),
                n @ 90..=97 => self.fg = Some(BASIC[(n - 90 + 8) as usize].into()),
                n @ 40..=47 => self.bg = Some(BASIC[(n - 40) as usize].into()),
                n @ 100..=107 => self.bg = Some(BASIC[(n - 100 + 8) as usize].into()),
                39 => self.fg = None,
                49 => self.bg = None,
                n @ (38 | 48) => {
                    let c = match nums.get(i + 1) {
                        Some(5) => {
                            i += 2;
                            nums.get(i).map(|&v| color256(v))
                        }
                        Some(2) => {
                            i += 4;
                            match (nums.get(i - 2), nums.get(i - 1), nums.get(i)) {
                                (Some(r), Some(g), Some(b)) => {
                                    Some(format!("#{r:02x}{g:02x}{b:02x}"))
                                }
                                _ => None,
                            }
                        }
                        _ => None,
                    };
                    if n == 38 {
                        self.fg = c;
                    } else {
                        self.bg = c;
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }

    fn colours(&self) -> (String, Option<String>) {
        let fg = self.fg.clone().unwrap_or_else(|| FG.to_string());
        if self.reverse {
            (self.bg.clone().unwrap_or_else(|| BG.to_string()), Some(fg))
        } else {
            (fg, self.bg.clone())
        }
    }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Runs of same-styled text per line.
fn parse(input: &str) -> Vec<Vec<(Style, String)>> {
    let mut lines = Vec::new();
    let mut style = Style::default();
    for line in input.lines() {
        let mut runs: Vec<(Style, String)> = Vec::new();
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    let mut params = String::new();
                    for p in chars.by_ref() {
                        if p.is_ascii_alphabetic() {
                            if p == 'm' {
                                style.apply(&params);
                            }
                            break;
                        }
                        params.push(p);
                    }
                }
                continue;
            }
            if c.is_control() {
                continue;
            }
            match runs.last_mut() {
                Some((s, text)) if *s == style => text.push(c),
                _ => runs.push((style.clone(), c.to_string())),
            }
        }
        lines.push(runs);
    }
    lines
}

pub fn render(input: &str) -> String {
    let lines = parse(input);
    let cols = lines
        .iter()
        .map(|l| l.iter().map(|(_, t)| t.chars().count()).sum::<usize>())
        .max()
        .unwrap_or(0);
    let (w, h) = (
        cols as f64 * CELL_W + 16.0,
        lines.len() as f64 * CELL_H + 16.0,
    );
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" \
         viewBox=\"0 0 {w:.0} {h:.0}\" font-family=\"DejaVu Sans Mono, Menlo, Consolas, monospace\" \
         font-size=\"14\">\n<rect width=\"100%\" height=\"100%\" rx=\"6\" fill=\"{BG}\"/>\n"
    );
    for (row, runs) in lines.iter().enumerate() {
        let y = 8.0 + row as f64 * CELL_H;
        let mut col = 0usize;
        for (style, text) in runs {
            let n = text.chars().count();
            let (fg, bg) = style.colours();
            let x = 8.0 + col as f64 * CELL_W;
            if let Some(bg) = bg {
                s.push_str(&format!(
                    "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{CELL_H:.1}\" fill=\"{bg}\"/>\n",
                    n as f64 * CELL_W
                ));
            }
            if !text.trim().is_empty() {
                let weight = if style.bold {
                    " font-weight=\"bold\""
                } else {
                    ""
                };
                s.push_str(&format!(
                    "<text x=\"{x:.1}\" y=\"{:.1}\" fill=\"{fg}\"{weight} xml:space=\"preserve\" \
                     textLength=\"{:.1}\" lengthAdjust=\"spacingAndGlyphs\">{}</text>\n",
                    y + CELL_H - 5.0,
                    n as f64 * CELL_W,
                    xml(text)
                ));
            }
            col += n;
        }
    }
    s.push_str("</svg>\n");
    s
}

pub fn main(parser: &mut lexopt::Parser, _ctx: &Ctx) -> CliResult<i32> {
    if super::no_args(parser, "Usage: metawsm-tick __svg < capture\n")? {
        return Ok(0);
    }
    let mut raw = Vec::new();
    std::io::stdin()
        .take(1 << 20)
        .read_to_end(&mut raw)
        .map_err(|e| crate::cli::CliError::Failure(format!("stdin: {e}")))?;
    print!("{}", render(&String::from_utf8_lossy(&raw)));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_and_escaping() {
        let svg = render("\u{1b}[32m⚙1\u{1b}[39m <b>&\u{1b}[48;5;196mx\u{1b}[0m\n");
        assert!(
            svg.contains("fill=\"#00cd00\"") && svg.contains(">⚙1</text>"),
            "{svg}"
        );
        assert!(svg.contains("&lt;b&gt;&amp;"), "{svg}");
        assert!(svg.contains("fill=\"#ff0000\""), "{svg}");
    }
}
