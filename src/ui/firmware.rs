//! Firmware screens: the file picker, the plan to confirm, the progress pane.

use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table};

use super::theme::Theme;
use super::{age, centered, clean};
use crate::app::Verdict as Plaus;
use crate::app::state::{Batch, FirmwareConfirm, Picker};
use crate::firmware::job::{Outcome, Stage};
use crate::firmware::plan::Verdict;

fn kib(b: u64) -> String {
    if b >= 1024 * 1024 {
        format!("{:.1} MiB", b as f64 / 1_048_576.0)
    } else {
        format!("{:.0} KiB", b as f64 / 1024.0)
    }
}

pub fn render_picker(frame: &mut Frame, area: Rect, p: &Picker, theme: &Theme) {
    let rect = centered(area, 76, area.height.saturating_sub(2).max(8));
    frame.render_widget(Clear, rect);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border())
        .title(Span::styled(
            format!(
                " Firmware for {} plug(s): pick an image or a folder ",
                p.targets.len()
            ),
            theme.title(),
        ))
        .title_bottom(
            Line::styled(
                " Enter open/choose · ← parent · . this folder · Esc cancel ",
                theme.dim(),
            )
            .right_aligned(),
        );
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    let mut lines = vec![Line::styled(
        clean(&p.dir.display().to_string(), 200),
        theme.key(),
    )];
    if let Some(e) = &p.error {
        lines.push(Line::styled(clean(e, 200), theme.error()));
    }
    if p.loading {
        lines.push(Line::styled("reading…", theme.dim()));
    } else if p.items.is_empty() {
        lines.push(Line::styled("(empty folder)", theme.dim()));
    }
    let room = usize::from(inner.height).saturating_sub(lines.len()).max(1);
    let offset = p.selected.saturating_sub(room.saturating_sub(1));
    for (i, item) in p.items.iter().enumerate().skip(offset).take(room) {
        let name = clean(&item.name, 60);
        let text = if item.is_dir {
            format!("  {name}/")
        } else {
            format!("  {name:<58} {:>9}", kib(item.size))
        };
        let line = if i == p.selected {
            Line::styled(text, theme.selected())
        } else if item.is_dir {
            Line::styled(text, theme.key())
        } else {
            Line::raw(text)
        };
        lines.push(line);
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn verdict_style(v: &Verdict, theme: &Theme) -> ratatui::style::Style {
    if v.is_blocked() {
        theme.verdict(Plaus::Bogus)
    } else if v.is_warning() || v.needs_override() {
        theme.verdict(Plaus::Suspect)
    } else {
        theme.health(crate::app::Health::Ok)
    }
}

pub fn render_confirm(frame: &mut Frame, area: Rect, c: &FirmwareConfirm, theme: &Theme) {
    let n = c.updating();
    let mut lines = vec![Line::styled(
        format!("  from {}", clean(&c.source.display().to_string(), 100)),
        theme.dim(),
    )];
    lines.push(Line::raw(""));
    for e in &c.entries {
        let (from, to) = e.versions();
        let image = e
            .image
            .as_ref()
            .map(|i| clean(&i.file_name, 48))
            .unwrap_or_else(|| "no image".into());
        let v = e.verdict();
        let what = if e.will_update(false) {
            "update"
        } else if v.is_blocked() {
            "BLOCKED"
        } else {
            "skip"
        };
        lines.push(Line::from(vec![
            Span::styled(format!("  {what:<7} "), verdict_style(v, theme)),
            Span::raw(format!(
                "{} {}  {}  {} → {}  ",
                clean(&e.plug.alias, 24),
                e.plug.ip,
                clean(&e.plug.model, 12),
                clean(&from, 12),
                clean(&to, 12)
            )),
            Span::styled(image, theme.dim()),
        ]));
        lines.push(Line::styled(
            format!("          {}", clean(&v.explain(), 110)),
            verdict_style(v, theme),
        ));
    }
    lines.push(Line::raw(""));
    lines.push(Line::from(vec![
        Span::styled("  y", theme.key()),
        Span::raw(format!(" update {n} plug(s)    ")),
        Span::styled("n/Esc", theme.key()),
        Span::raw(" cancel    "),
        Span::styled(
            "(Enter does nothing; cancelling stops being possible once a flash is requested)",
            theme.dim(),
        ),
    ]));
    let h = (lines.len() as u16 + 2).min(area.height);
    let rect = centered(area, area.width.saturating_sub(4).min(130), h);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(theme.verdict(Plaus::Suspect))
                .title(Span::styled(
                    format!(" Update firmware of {n} of {} plug(s)? ", c.entries.len()),
                    theme.verdict(Plaus::Suspect),
                )),
        ),
        rect,
    );
}

fn gauge(fraction: f64, width: usize) -> String {
    let f = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let full = (f * width as f64).round() as usize;
    format!(
        "{}{} {:>3.0}%",
        "█".repeat(full),
        "░".repeat(width - full.min(width)),
        f * 100.0
    )
}

pub fn render_progress(frame: &mut Frame, area: Rect, b: &Batch, now: Instant, theme: &Theme) {
    let title = match (&b.finished, b.started) {
        (Some(r), _) => format!(
            " Firmware update finished in {} — {} updated, {} failed, {} skipped · p hides ",
            age(r.elapsed),
            r.count(crate::firmware::runner::PlugResult::Updated),
            r.count(crate::firmware::runner::PlugResult::Failed),
            r.count(crate::firmware::runner::PlugResult::Skipped),
        ),
        (None, Some(t)) => format!(
            " Firmware update running for {} · x cancels (until a flash is requested) · p hides ",
            age(now.saturating_duration_since(t))
        ),
        (None, None) => " Firmware update ".into(),
    };
    let header = Row::new([
        "IP",
        "Alias",
        "Version",
        "Stage",
        "Download (plug)",
        "Served",
        "Elapsed",
        "Left",
        "Result",
    ])
    .style(theme.header());
    let rows = b.rows.iter().map(|(s, at)| {
        let since = if s.stage.is_final() {
            std::time::Duration::ZERO
        } else {
            now.saturating_duration_since(*at)
        };
        let short = |v: &str| clean(v.split_whitespace().next().unwrap_or(""), 12);
        let result = match &s.outcome {
            None => Cell::from(""),
            Some(Outcome::Updated) => {
                Cell::from("✓ updated").style(theme.health(crate::app::Health::Ok))
            }
            Some(Outcome::Failed { reason, .. }) => {
                Cell::from(format!("✗ {}", clean(reason, 100))).style(theme.error())
            }
            Some(Outcome::Cancelled { stage }) => {
                Cell::from(format!("cancelled in {stage}")).style(theme.dim())
            }
        };
        let stage_style = match s.stage {
            Stage::Failed => theme.error(),
            Stage::Done => theme.health(crate::app::Health::Ok),
            Stage::FlashRequested | Stage::Flashing | Stage::Rebooting => {
                theme.verdict(Plaus::Suspect)
            }
            _ => ratatui::style::Style::new(),
        };
        Row::new(vec![
            Cell::from(s.ip.to_string()),
            Cell::from(clean(&s.alias, 20)),
            Cell::from(format!("{} → {}", short(&s.from), short(&s.to))),
            match &s.outcome {
                Some(Outcome::Failed { stage, .. }) => {
                    Cell::from(format!("✗ {}", stage.label())).style(stage_style)
                }
                _ => Cell::from(s.stage.label()).style(stage_style),
            },
            Cell::from(gauge(s.fraction(), 10)),
            Cell::from(match s.served_bytes {
                Some(b) if s.image_len > 0 => format!("{}/{}", kib(b), kib(s.image_len)),
                Some(b) => kib(b),
                None => "—".into(),
            }),
            Cell::from(age(s.elapsed + since)),
            Cell::from(match s.expected_remaining {
                Some(r) if !s.stage.is_final() => age(r.saturating_sub(since)),
                _ => "—".into(),
            }),
            result,
        ])
    });
    let widths = [
        Constraint::Length(15),
        Constraint::Length(16),
        Constraint::Length(16),
        Constraint::Length(18),
        Constraint::Length(15),
        Constraint::Length(15),
        Constraint::Length(7),
        Constraint::Length(5),
        Constraint::Min(10),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(theme.border())
                .title(Span::styled(title, theme.title())),
        );
    frame.render_widget(table, area);
}
