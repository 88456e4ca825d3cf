//! The help screen, generated from the key map.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::theme::{Theme, health_glyph, verdict_glyph};
use crate::app::keymap::help_sections;
use crate::app::state::{App, Health, Verdict};

pub fn help_lines(read_only: bool, theme: &Theme) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    for (title, entries) in help_sections(read_only) {
        lines.push(Line::styled(title, theme.title()));
        for (keys, help) in entries {
            lines.push(Line::from(vec![
                Span::styled(format!("  {keys:<14}"), theme.key()),
                Span::raw(help),
            ]));
        }
        lines.push(Line::raw(""));
    }
    lines.push(Line::styled("Health and flags", theme.title()));
    for h in [
        Health::Ok,
        Health::Suspect,
        Health::Bogus,
        Health::Failing,
        Health::Offline,
        Health::Pending,
        Health::NoReading,
        Health::Updating,
        Health::Newer,
        Health::NeedsCredentials,
        Health::AuthFailed,
    ] {
        let what = match h {
            Health::Ok => "answers; last readings plausible",
            Health::Suspect => "a reading is doubtful (e.g. voltage off-band, unconfirmed jump)",
            Health::Bogus => "a reading cannot be true (above rating, unit-scale bug, P > V×I)",
            Health::Failing => "missed recent polls, retrying with backoff",
            Health::Offline => "missed 3 polls in a row; last values dimmed",
            Health::Pending => "found, not polled yet",
            Health::NoReading => "answers, but its meter gave no reading (timeout, device error)",
            Health::Updating => "being flashed: not answering is expected",
            Health::Newer => "newer authenticated protocol only: listed, not read yet",
            Health::NeedsCredentials => "newer protocol: give the TP-Link account (c, --username)",
            Health::AuthFailed => "newer protocol: the device refuses the account given",
        };
        lines.push(Line::from(vec![
            Span::styled(
                format!("  {} {:<8}", health_glyph(h), h.label()),
                theme.health(h),
            ),
            Span::raw(what),
        ]));
    }
    lines.push(Line::from(vec![
        Span::raw("  A value followed by "),
        Span::styled(verdict_glyph(Verdict::Bogus), theme.verdict(Verdict::Bogus)),
        Span::raw(" is bogus, by "),
        Span::styled(
            verdict_glyph(Verdict::Suspect),
            theme.verdict(Verdict::Suspect),
        ),
        Span::raw(" suspect; Enter shows why."),
    ]));
    lines
}

pub fn render_help(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let lines = help_lines(app.settings.read_only, theme);
    let width = lines.iter().map(Line::width).max().unwrap_or(40) as u16 + 4;
    let rect = super::centered(area, width, lines.len() as u16 + 2);
    let max_scroll = (lines.len() as u16).saturating_sub(rect.height.saturating_sub(2));
    let scroll = app.view.help_scroll.min(max_scroll);
    let more = if scroll < max_scroll {
        " ↓ j more "
    } else {
        ""
    };
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).scroll((scroll, 0)).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(theme.border())
                .title(Span::styled(
                    " Help — keys from the live key map ",
                    theme.title(),
                ))
                .title_bottom(
                    Line::styled(format!("{more} ? / Esc close "), theme.dim()).right_aligned(),
                ),
        ),
        rect,
    );
}
