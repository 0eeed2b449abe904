//! The demo's narration: headings, wrapped paragraphs and plain-language explanations of the
//! finding codes, written for a reader who has never used Bytebase.
//!
//! Lines stay within [`WIDTH`] columns; styling (bold headings) is used only when stdout is a
//! terminal, so a pipe, a CI log or a test sees plain text.

use std::fmt::Write as _;

/// The widest line the demo prints.
pub const WIDTH: usize = 100;

/// Builds the narration of one section, to be printed as a whole.
#[derive(Debug, Default)]
pub struct Text {
    out: String,
    color: bool,
}

impl Text {
    /// An empty text; `color` enables bold headings.
    pub fn new(color: bool) -> Text {
        Text { out: String::new(), color }
    }

    /// A numbered section heading, underlined.
    pub fn heading(&mut self, title: &str) {
        let rule = "-".repeat(title.chars().count().min(WIDTH));
        if self.color {
            let _ = writeln!(self.out, "\n\x1b[1m{title}\x1b[0m\n{rule}");
        } else {
            let _ = writeln!(self.out, "\n{title}\n{rule}");
        }
    }

    /// A paragraph, wrapped at [`WIDTH`] with `indent` spaces before every line.
    pub fn para(&mut self, indent: usize, text: &str) {
        for line in wrap(text, indent, WIDTH) {
            let _ = writeln!(self.out, "{line}");
        }
    }

    /// A paragraph whose first line starts with `label` and whose next lines align after it.
    pub fn labelled(&mut self, indent: usize, label: &str, text: &str) {
        let hang = indent + label.chars().count();
        let lines = wrap(text, hang, WIDTH);
        for (i, line) in lines.iter().enumerate() {
            if i == 0 {
                let _ = writeln!(self.out, "{}{label}{}", " ".repeat(indent), &line[hang..]);
            } else {
                let _ = writeln!(self.out, "{line}");
            }
        }
    }

    /// A line as it is (cut at [`WIDTH`] if longer).
    pub fn line(&mut self, text: &str) {
        let _ = writeln!(self.out, "{}", cut(text, WIDTH));
    }

    /// A line as it is, never cut (a command to paste).
    pub fn raw(&mut self, text: &str) {
        let _ = writeln!(self.out, "{text}");
    }

    /// An empty line.
    pub fn blank(&mut self) {
        self.out.push('\n');
    }

    /// Takes the text built so far.
    pub fn take(&mut self) -> String {
        std::mem::take(&mut self.out)
    }
}

/// Cuts `text` to `width` characters, marking the cut with `…`.
pub fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(width.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// Word-wraps `text` into lines of at most `width` characters, each starting with `indent`
/// spaces. A word longer than a line (a URL) is split across lines rather than cut, so no fact
/// is lost.
pub fn wrap(text: &str, indent: usize, width: usize) -> Vec<String> {
    let room = width.saturating_sub(indent).max(20);
    let pad = " ".repeat(indent);
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            let chars: Vec<char> = word.chars().collect();
            for piece in chars.chunks(room) {
                let piece: String = piece.iter().collect();
                let used = line.chars().count();
                if used > 0 && used + 1 + piece.chars().count() > room {
                    lines.push(format!("{pad}{line}"));
                    line.clear();
                }
                if !line.is_empty() {
                    line.push(' ');
                }
                line.push_str(&piece);
            }
        }
        lines.push(format!("{pad}{line}"));
    }
    lines
}

/// Why a finding lets a change escape the CAB, in plain words; the catalogue's description for
/// codes the demo world does not raise.
pub fn why(code: &str) -> String {
    let text = match code {
        "lockdown/unexpected-holder" => {
            "Running a rollout's tasks is what actually changes a database. Whoever may run them \
             can ship a change to production whether or not the CAB approved it, so only the \
             bridge's service account may hold that permission."
        }
        "lockdown/all-users" => {
            "Every user of the workspace can run tasks, so anyone can ship a change to production \
             without the CAB."
        }
        "lockdown/project-setting" => {
            "Project settings decide whether Bytebase waits for an approval at all. With \
             self-approval on, the author of a change can approve it in place of the CAB's step; \
             with required approval off, tasks run with no approval at all."
        }
        "bypass/skipped-issue" => {
            "Bytebase marks an issue SKIPPED when no approval rule matched it: it needs no \
             approval and can roll out at once. The CAB never saw it, so cabgate raises an alert."
        }
        "approval/no-catch-all" => {
            "An issue that no approval rule matches needs no approval at all (SKIPPED). A \
             catch-all rule makes every change wait for the CAB's approver."
        }
        "approval/catch-all-flow" | "approval/shadowed-catch-all" | "approval/empty-flow" => {
            "Some changes are approved by someone other than the CAB's approver role, or by \
             nobody, so they can go ahead without a CHG."
        }
        "rollout/automatic" => {
            "In an automatic environment, tasks start as soon as the rollout exists, without \
             waiting for anyone to press run."
        }
        "rollout/roles" => {
            "Roles listed in a rollout policy may run tasks in that environment, in addition to \
             everyone who holds the permission."
        }
        _ => {
            return crate::finding::code_info(code)
                .map(|info| info.description.clone())
                .unwrap_or_else(|| "See the finding codes reference in the README.".to_owned());
        }
    };
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_lines_within_the_width_and_indents_them() {
        let text = "word ".repeat(60);
        let lines = wrap(&text, 4, 40);
        assert!(lines.len() > 1);
        assert!(lines.iter().all(|l| l.chars().count() <= 40 && l.starts_with("    w")));
        let long = wrap(&"x".repeat(200), 0, 50);
        assert!(long.iter().all(|l| l.chars().count() <= 50), "{long:?}");
    }

    #[test]
    fn labelled_hangs_the_next_lines_after_the_label() {
        let mut t = Text::new(false);
        t.labelled(2, "why: ", &"because ".repeat(30));
        let out = t.take();
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("  why: because"));
        assert!(lines[1].starts_with("       because"));
        assert!(lines.iter().all(|l| l.chars().count() <= WIDTH));
    }

    #[test]
    fn every_code_has_an_explanation() {
        for info in crate::finding::catalogue() {
            assert!(!why(&info.code).is_empty(), "{}", info.code);
        }
    }
}
