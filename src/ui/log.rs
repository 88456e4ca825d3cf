//! The log pane: the recent log lines (a copy the runtime took of the in-memory ring), newest at
//! the bottom.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::theme::Theme;
use crate::app::state::{App, Overlay, Verdict};

fn style_of(line: &str, theme: &Theme) -> ratatui::style::Style {
    // `HH:MM:SS LEVEL target: message`
    match line.get(9..14).map(str::trim) {
        Some("ERROR") => theme.verdict(Verdict::Bogus),
        Some("WARN") => theme.verdict(Verdict::Suspect),
        Some("DEBUG" | "TRACE") => theme.dim(),
        _ => ratatui::style::Style::default(),
    }
}

pub fn render_log(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let scroll = match app.view.overlay {
        Overlay::Log { scroll } => usize::from(scroll),
        _ => 0,
    };
    let inner_h = usize::from(area.height.saturating_sub(2));
    let inner_w = usize::from(area.width.saturating_sub(2));
    let n = app.log_lines.len();
    let end = n.saturating_sub(scroll.min(n.saturating_sub(1)));
    let start = end.saturating_sub(inner_h);
    let shown: Vec<Line> = if n == 0 {
        vec![Line::styled("no log lines yet", theme.dim())]
    } else {
        app.log_lines[start..end]
            .iter()
            // Cut at the pane's edge with `…`, never mid-character.
            .map(|l| Line::styled(super::clean(l, inner_w), style_of(l, theme)))
            .collect()
    };
    let where_ = if end < n {
        format!(" {}–{} of {n} · ↓/G newer ", start + 1, end)
    } else {
        format!(" last {} of {n} ", end - start)
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border())
        .title(Line::styled(" Recent log ", theme.title()))
        .title_bottom(Line::styled(where_, theme.dim()))
        .title_bottom(Line::styled(" ↑↓ scroll · Esc close ", theme.dim()).right_aligned());
    frame.render_widget(Clear, area);
    frame.render_widget(Paragraph::new(shown).block(block), area);
}
