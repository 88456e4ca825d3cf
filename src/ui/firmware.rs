//! Firmware screens: the file picker, the plan to confirm, the progress pane.

use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table};

use super::theme::Theme;
use super::{centered, clean, fit};
use crate::app::Verdict as Plaus;
use crate::app::state::{Batch, FirmwareConfirm, Picker};
use crate::firmware::job::{Outcome, Stage};
use crate::firmware::plan::Verdict;

fn kib(b: u64) -> String {
    if b < 1024 {
        format!("{b} B")
    } else if b >= 1024 * 1024 {
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
    let w = usize::from(inner.width);
    let lines: Vec<Line> = lines.into_iter().map(|l| fit(l, w)).collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

/// One image, inspected: name, size, SHA-256 (short) and its target (header or file name).
fn image_line(img: &crate::firmware::image::ImageInfo) -> String {
    use crate::firmware::image::ImageTarget;
    if img.refused.is_some() {
        return format!("{}  REFUSED (not read)", img.file_name);
    }
    let target = match img.target() {
        Some(ImageTarget::Header {
            model,
            hw_major,
            region,
            version,
        }) => format!(
            "{model}({region}) hw {hw_major} {} (header)",
            version.short()
        ),
        Some(ImageTarget::Name(n)) => format!(
            "{} hw {}, {} (file name only)",
            n.model.as_deref().unwrap_or(&n.model_token),
            n.hw_major.as_deref().unwrap_or("unknown"),
            n.version
                .as_ref()
                .map(|v| v.short())
                .unwrap_or_else(|| "version unknown".into())
        ),
        None => "unknown target".into(),
    };
    format!(
        "{}  {}  sha256 {}…  for {target}",
        img.file_name,
        kib(img.size),
        &img.sha256[..12.min(img.sha256.len())]
    )
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

/// The plan to confirm. Every plug is listed with its current → new version and the verdict
/// (glyph and colour); blocked plugs are listed as such and skipped. When the terminal is short,
/// the image details go first, then each plug's second line; the `y`/`n` line always shows.
pub fn render_confirm(frame: &mut Frame, area: Rect, c: &FirmwareConfirm, theme: &Theme) {
    let n = c.updating();
    let inner_h = usize::from(area.height.saturating_sub(2));
    let wide = area.width >= 120;

    let head = vec![Line::styled(
        format!("  from {}", clean(&c.source.display().to_string(), 100)),
        theme.dim(),
    )];
    // Each image used: size, SHA-256 (short), target (header or file name).
    // …and under it what was checked (file type, size against the bounds, structure, hash,
    // allowlist), as judged for the first plug it is planned for.
    let mut images: Vec<Line> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for e in &c.entries {
        let Some(img) = e.image.as_ref() else {
            continue;
        };
        if seen.contains(&img.file_name.as_str()) {
            continue;
        }
        seen.push(&img.file_name);
        images.push(Line::styled(
            format!("  image {}", clean(&image_line(img), 150)),
            theme.dim(),
        ));
        if let Some(ch) = &e.assessment.checks {
            let bad = img.refused.is_some() || !ch.size_ok || !ch.structure.is_recognised();
            images.push(Line::styled(
                format!("        checked: {}", clean(&ch.short(), 150)),
                if bad {
                    theme.verdict(Plaus::Bogus)
                } else {
                    theme.dim()
                },
            ));
        }
    }
    let waiting = crate::app::firmware::downgrade_lines(c);
    let allowed = c.downgrade_allowed();
    let mut over: Vec<Line> = Vec::new();
    if c.override_applies() {
        let (state, style) = if c.force {
            ("ON ", theme.verdict(Plaus::Bogus))
        } else {
            ("off", theme.dim())
        };
        over.push(Line::from(vec![
            Span::styled("  F", theme.key()),
            Span::styled(format!(" override (like --force): {state}"), style),
            Span::styled(
                " — also updates unknown-target, same-version and unrecognised-content plugs; \
                 never blocked ones or downgrades",
                theme.dim(),
            ),
        ]));
    }
    if !waiting.is_empty() || allowed {
        let (state, style) = if allowed {
            ("ON ", theme.verdict(Plaus::Bogus))
        } else {
            ("off", theme.dim())
        };
        over.push(Line::from(vec![
            Span::styled("  D", theme.key()),
            Span::styled(
                format!(" allow downgrade (like --allow-downgrade): {state}"),
                style,
            ),
            Span::styled(
                " — y alone never flashes an older version; D asks, D again allows",
                theme.dim(),
            ),
        ]));
    }
    if c.downgrade_prompt {
        over.push(Line::styled(
            format!(
                "  DOWNGRADE {} plug(s) to OLDER firmware? D again allows it · n/Esc cancels · \
                 y waits for this answer",
                waiting.len()
            ),
            theme.verdict(Plaus::Bogus),
        ));
        for w in waiting.iter().take(3) {
            over.push(Line::styled(
                format!("    downgrade {}", clean(w, 100)),
                theme.verdict(Plaus::Bogus),
            ));
        }
        if waiting.len() > 3 {
            over.push(Line::styled(
                format!("    … and {} more", waiting.len() - 3),
                theme.verdict(Plaus::Bogus),
            ));
        }
    }
    let footer = Line::from(vec![
        Span::styled("  y", theme.key()),
        Span::raw(format!(" update {n} plug(s)    ")),
        Span::styled("n/Esc", theme.key()),
        Span::raw(" cancel    "),
        Span::styled(
            "(Enter does nothing; cancelling stops being possible once a flash is requested)",
            theme.dim(),
        ),
    ]);

    // Two lines per plug when there is room, else one (the verdict's words after a dash).
    let fixed = head.len() + over.len() + 3;
    let two_lines = fixed + images.len() + 2 * c.entries.len() <= inner_h
        || fixed + 2 * c.entries.len() <= inner_h;
    let show_images = fixed + images.len() + 2 * c.entries.len() <= inner_h
        || (!two_lines && fixed + images.len() + c.entries.len() <= inner_h);
    let per = if two_lines { 2 } else { 1 };
    let room = inner_h.saturating_sub(fixed + if show_images { images.len() } else { 0 }) / per;
    let shown = if c.entries.len() <= room {
        c.entries.len()
    } else {
        room.saturating_sub(1)
    };

    let mut lines = head;
    if show_images {
        lines.extend(images);
    }
    lines.extend(over);
    lines.push(Line::raw(""));
    for e in c.entries.iter().take(shown) {
        let (from, to) = e.versions();
        let v = e.verdict();
        let what = if e.will_update(c.force) {
            "update"
        } else if v.is_blocked() {
            "BLOCKED"
        } else {
            "skip"
        };
        let style = verdict_style(v, theme);
        let explain = if e.awaits_downgrade_consent(c.force) {
            format!(
                "downgrade {from} → {to}: skipped; D allows it (y alone never downgrades){}",
                if *v == Verdict::Downgrade {
                    String::new()
                } else {
                    format!(" — {}", v.explain())
                }
            )
        } else if e.assessment.downgrade && e.will_update(c.force) {
            format!("DOWNGRADE ALLOWED: {from} → {to} is flashed")
        } else if c.force && e.will_update(true) && v.needs_override() {
            format!("OVERRIDE: updated anyway — {}", v.explain())
        } else {
            v.explain()
        };
        let mut spans = vec![
            Span::styled(
                format!("  {} {what:<7} ", crate::app::firmware::verdict_glyph(v)),
                style,
            ),
            Span::raw(format!(
                "{} {}  {}  {} → {}  ",
                clean(&e.plug.alias, 24),
                e.plug.ip,
                clean(&e.plug.model, 12),
                clean(&from, 12),
                clean(&to, 12)
            )),
        ];
        if two_lines {
            if wide {
                let image = e
                    .image
                    .as_ref()
                    .map(|i| clean(&i.file_name, 48))
                    .unwrap_or_else(|| "no image".into());
                spans.push(Span::styled(image, theme.dim()));
            }
            lines.push(Line::from(spans));
            lines.push(Line::styled(
                format!("            {}", clean(&explain, 110)),
                style,
            ));
        } else {
            spans.push(Span::styled(format!("— {}", clean(&explain, 110)), style));
            lines.push(Line::from(spans));
        }
    }
    if shown < c.entries.len() {
        let rest = &c.entries[shown..];
        let blocked = rest.iter().filter(|e| e.verdict().is_blocked()).count();
        let updating = rest.iter().filter(|e| e.will_update(c.force)).count();
        lines.push(Line::styled(
            format!(
                "  … and {} more: {updating} to update, {blocked} blocked, {} skipped \
                 (a taller terminal shows them)",
                rest.len(),
                rest.len() - updating - blocked
            ),
            theme.verdict(Plaus::Suspect),
        ));
    }
    lines.push(Line::raw(""));
    lines.push(footer);
    let h = (lines.len() as u16 + 2).min(area.height);
    let rect = centered(area, area.width.saturating_sub(4).min(130), h);
    let inner_w = usize::from(rect.width.saturating_sub(2));
    let lines: Vec<Line> = lines.into_iter().map(|l| fit(l, inner_w)).collect();
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(theme.verdict(Plaus::Suspect))
                .title(Span::styled(
                    format!(
                        " Update firmware of {n} of {} plug(s)?{}{} ",
                        c.entries.len(),
                        if c.force { " [OVERRIDE ON]" } else { "" },
                        if allowed { " [DOWNGRADE ALLOWED]" } else { "" }
                    ),
                    theme.verdict(Plaus::Suspect),
                )),
        ),
        rect,
    );
}

/// `7s`, `1m05s`, `1h02m`: elapsed and remaining times (never "now" for a running job).
fn dur(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
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

/// The progress pane: one row per plug (stage, the plug's own ratio as a gauge, bytes served,
/// elapsed, expected remaining, result). Once the batch ended the title carries the counts and
/// the plugs that did not update are listed below with their reasons. Below 110 columns the
/// version and IP columns give way.
pub fn render_progress(frame: &mut Frame, area: Rect, b: &Batch, now: Instant, theme: &Theme) {
    use crate::firmware::runner::PlugResult;
    let title = match (&b.finished, b.started) {
        (Some(r), _) => {
            let mut counts = format!("{} updated", r.count(PlugResult::Updated));
            for (n, word) in [
                (r.count(PlugResult::Failed), "failed"),
                (r.count(PlugResult::Cancelled), "cancelled"),
                (r.count(PlugResult::Skipped), "skipped"),
            ] {
                if n > 0 {
                    counts.push_str(&format!(", {n} {word}"));
                }
            }
            format!(
                " Firmware update finished in {} — {counts} · p hides ",
                dur(r.elapsed)
            )
        }
        (None, Some(t)) => format!(
            " Firmware update running for {} · x cancels (until a flash is requested) · p hides ",
            dur(now.saturating_duration_since(t))
        ),
        (None, None) => " Firmware update ".into(),
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border())
        .title(Span::styled(title, theme.title()));
    let inner = block.inner(area);
    frame.render_widget(block, area);

    // The summary: every plug that was not updated, with why.
    let mut summary: Vec<Line> = Vec::new();
    if let Some(r) = &b.finished {
        for p in r.plugs.iter().filter(|p| p.result != PlugResult::Updated) {
            let (glyph, word, style) = match p.result {
                PlugResult::Failed => ("✗", "failed", theme.error()),
                PlugResult::Cancelled => ("–", "cancelled", theme.dim()),
                PlugResult::Skipped => ("–", "skipped", theme.dim()),
                PlugResult::Updated => ("✓", "updated", theme.dim()),
            };
            let stage = p.stage.map(|s| format!(" in {s}")).unwrap_or_default();
            let why = p
                .error
                .as_deref()
                .map(|e| format!(": {}", clean(e, 120)))
                .unwrap_or_default();
            summary.push(Line::styled(
                format!(
                    "{glyph} {} ({}) {word}{stage}{why}",
                    clean(&p.alias, 24),
                    p.ip
                ),
                style,
            ));
        }
        if summary.is_empty() && !r.plugs.is_empty() {
            summary.push(Line::styled(
                format!("✓ every plug updated and verified ({})", r.plugs.len()),
                theme.health(crate::app::Health::Ok),
            ));
        }
    }
    let room = inner.height.saturating_sub(2);
    let summary_h = (summary.len() as u16).min(room / 2);
    let [table_area, summary_area] =
        ratatui::layout::Layout::vertical([Constraint::Min(2), Constraint::Length(summary_h)])
            .areas(inner);

    let narrow = area.width < 110;
    let header: Vec<&str> = if narrow {
        vec![
            "Plug", "Stage", "Plug %", "Served", "Time", "Left", "Result",
        ]
    } else {
        vec![
            "IP",
            "Alias",
            "Version",
            "Stage",
            "Download (plug)",
            "Served",
            "Elapsed",
            "Left",
            "Result",
        ]
    };
    let header = Row::new(header).style(theme.header());
    // When not every plug fits, the ones still running come first, then those that did not
    // update, and the verified ones give way (counted on the last line).
    let capacity = usize::from(table_area.height.saturating_sub(1));
    let mut shown: Vec<&(crate::firmware::job::JobSnapshot, Instant)> = b.rows.iter().collect();
    let mut more_done = 0;
    if shown.len() > capacity {
        shown.sort_by_key(|(s, _)| match s.stage {
            Stage::Done => 2,
            st if st.is_final() => 1,
            _ => 0,
        });
        let keep = capacity.saturating_sub(1);
        more_done = shown.len() - keep;
        shown.truncate(keep);
    }
    let rows = shown.into_iter().map(|(s, at)| {
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
        let stage = match &s.outcome {
            Some(Outcome::Failed { stage, .. }) => {
                Cell::from(format!("✗ {}", stage.label())).style(stage_style)
            }
            _ => Cell::from(s.stage.label()).style(stage_style),
        };
        let served = match s.served_bytes {
            Some(b) if s.image_len > 0 && !narrow => format!("{}/{}", kib(b), kib(s.image_len)),
            Some(b) => kib(b),
            None => "—".into(),
        };
        let elapsed = Cell::from(dur(s.elapsed + since));
        let left = Cell::from(match s.expected_remaining {
            Some(r) if !s.stage.is_final() => dur(r.saturating_sub(since)),
            _ => "—".into(),
        });
        if narrow {
            let name = if s.alias.trim().is_empty() {
                s.ip.to_string()
            } else {
                clean(&s.alias, 14)
            };
            Row::new(vec![
                Cell::from(name),
                stage,
                Cell::from(gauge(s.fraction(), 4)),
                Cell::from(served),
                elapsed,
                left,
                result,
            ])
        } else {
            Row::new(vec![
                Cell::from(s.ip.to_string()),
                Cell::from(clean(&s.alias, 20)),
                Cell::from(format!("{} → {}", short(&s.from), short(&s.to))),
                stage,
                Cell::from(gauge(s.fraction(), 10)),
                Cell::from(served),
                elapsed,
                left,
                result,
            ])
        }
    });
    let widths: Vec<Constraint> = if narrow {
        vec![
            Constraint::Length(14),
            Constraint::Length(12),
            Constraint::Length(9),
            Constraint::Length(8),
            Constraint::Length(5),
            Constraint::Length(5),
            Constraint::Min(8),
        ]
    } else {
        vec![
            Constraint::Length(15),
            Constraint::Length(16),
            Constraint::Length(16),
            Constraint::Length(18),
            Constraint::Length(15),
            Constraint::Length(15),
            Constraint::Length(7),
            Constraint::Length(5),
            Constraint::Min(10),
        ]
    };
    let mut rows: Vec<Row> = rows.collect();
    if more_done > 0 {
        rows.push(Row::new(vec![Cell::from(format!("… {more_done} more"))]).style(theme.dim()));
    }
    let table = Table::new(rows, widths).header(header).column_spacing(1);
    frame.render_widget(table, table_area);
    if summary_h > 0 {
        let hidden = summary.len() - usize::from(summary_h);
        let mut lines: Vec<Line> = summary.into_iter().take(usize::from(summary_h)).collect();
        if hidden > 0
            && let Some(last) = lines.last_mut()
        {
            *last = Line::styled(
                format!("… and {} more not updated", hidden + 1),
                theme.dim(),
            );
        }
        let w = usize::from(summary_area.width);
        let lines: Vec<Line> = lines.into_iter().map(|l| fit(l, w)).collect();
        frame.render_widget(Paragraph::new(lines), summary_area);
    }
}
