//! The credentials prompt (`c`): user name as typed, the password as one `•` per character.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::{Theme, centered, clean};
use crate::app::account::{AccountPrompt, Field};

/// Widest field shown (characters); longer input scrolls to its end.
const FIELD: usize = 40;

/// The end of `s` that fits in the field (what was typed last stays in view).
fn tail(s: &str) -> String {
    let n = s.chars().count();
    s.chars().skip(n.saturating_sub(FIELD)).collect()
}

pub fn render_account(frame: &mut Frame, area: Rect, p: &AccountPrompt, theme: &Theme) {
    let cursor = |f: Field| if p.field == f { "▏" } else { "" };
    let field = |label: &str, value: String, f: Field| {
        let style = if p.field == f {
            theme.selected()
        } else {
            theme.label()
        };
        Line::from(vec![
            Span::styled(format!("  {label:<9}"), theme.label()),
            Span::styled(format!("{value}{}", cursor(f)), style),
        ])
    };
    let dots = "•".repeat(p.password_len().min(FIELD));
    let mut lines = vec![
        Line::styled(
            "  Newer-protocol plugs (◆ needs credentials, ⊘ auth failed)",
            theme.dim(),
        ),
        Line::raw(""),
        field("e-mail", tail(&clean(&p.username, 200)), Field::Username),
        field("password", dots, Field::Password),
        Line::raw(""),
    ];
    if let Some(e) = p.error {
        lines.push(Line::styled(format!("  {e}"), theme.error()));
    }
    lines.push(Line::styled(
        "  kept in memory for this session only, never saved",
        theme.dim(),
    ));
    lines.push(Line::from(vec![
        Span::styled("  Enter", theme.key()),
        Span::raw(match p.field {
            Field::Username => " next    ",
            Field::Password => " use it    ",
        }),
        Span::styled("Esc", theme.key()),
        Span::raw(" cancel"),
    ]));
    let title = " TP-Link account ";
    let h = lines.len() as u16 + 2;
    let w = lines
        .iter()
        .map(|l| l.width() as u16)
        .max()
        .unwrap_or(20)
        .max(FIELD as u16 + 12)
        + 4;
    let rect = centered(area, w, h);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(Span::styled(title, theme.title()))
                .border_style(theme.border()),
        ),
        rect,
    );
}
