//! Drawing only: the state is read, never changed. One file per screen part.

pub mod account;
pub mod detail;
pub mod energy;
pub mod firmware;
pub mod format;
pub mod help;
pub mod layout;
pub mod log;
pub mod table;
pub mod theme;

use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use crate::app::keymap::{Context, KEYMAP};
use crate::app::state::{App, Overlay};
pub use format::{age, clean, fit};
pub use layout::centered;
pub use theme::Theme;

/// The smallest terminal the screens are drawn in: the table's essential columns (health,
/// alias, IP, W) and a few rows. Below it a plain notice is drawn instead of a cut table.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 8;

/// Draws the whole screen.
pub fn render(frame: &mut Frame, app: &App) {
    let theme = Theme::new(app.settings.color);
    let area = frame.area();
    // Until the table says what it drew (`table::render_table`): nothing known.
    app.view.cells.set_onscreen(None);
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        // No table drawn: the mouse has nothing to click.
        app.view.drawn.set(None);
        render_too_small(frame, area, app, &theme);
        return;
    }
    let filter_line = app.view.editing_filter || !app.view.filter.is_empty();
    let [title, summary, body, filter, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(u16::from(filter_line)),
        Constraint::Length(1),
    ])
    .areas(area);
    render_title(frame, title, app, &theme);
    render_summary(frame, summary, app, &theme);
    let progress = app.view.progress && app.firmware.is_some();
    if progress {
        let [t, p] =
            Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(body);
        table::render_table(frame, t, app, &theme);
        if let Some(b) = &app.firmware {
            firmware::render_progress(frame, p, b, app.now, &theme);
        }
    } else if app.view.detail && app.selected().is_some() {
        let [table_area, detail_area] =
            Layout::vertical([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(body);
        table::render_table(frame, table_area, app, &theme);
        detail::render_detail(frame, detail_area, app, &theme);
    } else {
        table::render_table(frame, body, app, &theme);
    }
    if filter_line {
        render_filter(frame, filter, app, &theme);
    }
    render_status(frame, status, app, &theme);
    match &app.view.overlay {
        Overlay::None => {}
        Overlay::Help => help::render_help(frame, body, app, &theme),
        Overlay::Confirm(c) => render_confirm(frame, body, c, &theme),
        Overlay::Picker(p) => firmware::render_picker(frame, body, p, &theme),
        Overlay::FirmwareConfirm(c) => firmware::render_confirm(frame, body, c, &theme),
        Overlay::Log { .. } => log::render_log(frame, body, app, &theme),
        Overlay::Account(p) => account::render_account(frame, body, p, &theme),
    }
}

/// Below [`MIN_WIDTH`]×[`MIN_HEIGHT`]: what size is needed, and that a question is waiting
/// (its `y` still needs the dialog seen: n/Esc cancels it blind).
fn render_too_small(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let mut notes: Vec<(String, ratatui::style::Style)> = vec![
        ("terminal too small".into(), theme.title()),
        (
            format!(
                "{}×{}, needs {MIN_WIDTH}×{MIN_HEIGHT}",
                area.width, area.height
            ),
            ratatui::style::Style::new(),
        ),
        ("enlarge it, or q quits".into(), theme.dim()),
    ];
    if !matches!(app.view.overlay, Overlay::None) {
        notes.push((
            "a dialog is open: Esc closes it".into(),
            theme.verdict(crate::app::Verdict::Suspect),
        ));
    }
    if app.firmware.is_some() {
        notes.push(("a firmware batch is running".into(), theme.dim()));
    }
    let w = usize::from(area.width);
    let lines: Vec<Line> = notes
        .iter()
        .map(|(t, st)| Line::styled(crate::text::clip(t, w).into_owned(), *st).centered())
        .collect();
    let top = area.height.saturating_sub(lines.len() as u16) / 2;
    let body = Rect {
        y: area.y + top,
        height: area.height - top,
        ..area
    };
    frame.render_widget(Paragraph::new(lines), body);
}

fn render_title(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let mut left = vec![Span::styled(" plugfleet ", theme.title())];
    if let Some(label) = &app.settings.label {
        left.push(Span::styled(format!(" {label} "), theme.label()));
        left.push(Span::raw(" simulated fleet on loopback"));
    }
    let mut right = Vec::new();
    if app.discovering {
        right.push(Span::styled("discovering… ", theme.dim()));
    }
    right.push(Span::styled(
        format!("every {}s ", fmt_secs(app.settings.interval)),
        theme.dim(),
    ));
    if app.settings.read_only {
        right.push(Span::styled(" READ-ONLY ", theme.label()));
    }
    let right = Line::from(right);
    let rw = right.width() as u16;
    let [l, r] = Layout::horizontal([Constraint::Min(0), Constraint::Length(rw)]).areas(area);
    frame.render_widget(Line::from(left), l);
    frame.render_widget(right.right_aligned(), r);
}

fn fmt_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if (s - s.round()).abs() < 1e-9 {
        format!("{}", s.round() as u64)
    } else {
        format!("{s:.1}")
    }
}

fn render_summary(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let s = app.summary();
    let mut spans = vec![
        Span::raw(format!(
            " {} {}",
            s.devices,
            crate::text::plural(s.devices, "device")
        )),
        Span::styled(" · ", theme.dim()),
        Span::raw(format!("{} online", s.online)),
    ];
    if s.offline > 0 {
        spans.push(Span::styled(" · ", theme.dim()));
        spans.push(Span::styled(format!("{} offline", s.offline), theme.dim()));
    }
    if s.newer > 0 {
        spans.push(Span::styled(" · ", theme.dim()));
        // Found by their UDP 20002 reply but not read (no account yet, refused, or a
        // transport plugfleet does not speak): the newer-protocol plugs that are read count
        // as online like any other.
        spans.push(Span::raw(format!("{} not read", s.newer)));
    }
    spans.push(Span::styled(" · ", theme.dim()));
    if s.flagged > 0 {
        spans.push(Span::styled(
            format!(
                "{} {} flagged",
                theme::verdict_glyph(crate::app::Verdict::Bogus),
                s.flagged
            ),
            theme.verdict(crate::app::Verdict::Bogus),
        ));
    } else {
        spans.push(Span::raw("0 flagged"));
    }
    if s.marked > 0 {
        spans.push(Span::styled(" · ", theme.dim()));
        spans.push(Span::styled(format!("{} marked", s.marked), theme.marked()));
    }
    if s.power_w > 0.0 {
        spans.push(Span::styled(" · ", theme.dim()));
        spans.push(Span::raw(crate::text::fmt_with(
            s.power_w,
            crate::text::Unit::Watt,
            0,
        )));
        spans.push(Span::styled(" (flagged excluded)", theme.dim()));
    }
    if !s.versions.is_empty() {
        const LEAD: &str = " · versions ";
        let v: Vec<String> = s
            .versions
            .iter()
            .map(|(v, n)| format!("{}×{n}", clean(v, 12)))
            .collect();
        // The list ends in `…` where the line ends, rather than at the terminal's edge.
        let used = Line::from(spans.clone()).width() + crate::text::width(LEAD);
        let room = usize::from(area.width).saturating_sub(used);
        if room >= 8 {
            spans.push(Span::styled(LEAD, theme.dim()));
            spans.push(Span::raw(
                crate::text::clip(&v.join(" "), room).into_owned(),
            ));
        }
    }
    frame.render_widget(Line::from(spans), area);
}

fn render_filter(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let mut spans = vec![
        Span::styled(" filter: ", theme.key()),
        Span::raw(app.view.filter.clone()),
    ];
    if app.view.editing_filter {
        spans.push(Span::styled("▏", theme.key()));
        spans.push(Span::styled("  Enter keep · Esc clear", theme.dim()));
    } else {
        spans.push(Span::styled("  (Esc clears)", theme.dim()));
    }
    frame.render_widget(Line::from(spans), area);
}

fn render_status(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let mut spans = Vec::new();
    if let Some(label) = &app.settings.label {
        spans.push(Span::styled(format!(" {label} "), theme.label()));
        spans.push(Span::raw(" "));
    }
    if app.settings.read_only {
        spans.push(Span::styled(" READ-ONLY: writes disabled ", theme.label()));
        spans.push(Span::raw(" "));
    }
    render_exports(&mut spans, app, theme);
    if app.view.flagged_only {
        spans.push(Span::styled(
            "[flagged only] ",
            theme.verdict(crate::app::Verdict::Suspect),
        ));
    }
    if let Some(msg) = app.status() {
        spans.push(Span::raw(clean(msg, 200)));
    } else {
        // Hints from the key map, the most useful first.
        let ctx = match app.view.overlay {
            Overlay::Help => Context::Help,
            Overlay::Confirm(_) | Overlay::FirmwareConfirm(_) => Context::Confirm,
            Overlay::Picker(_) => Context::Picker,
            Overlay::Log { .. } => Context::Log,
            Overlay::Account(_) => Context::Account,
            Overlay::None if app.view.editing_filter => Context::Filter,
            Overlay::None => Context::Table,
        };
        use crate::app::keymap::Action as A;
        let wanted = [
            A::Confirm,
            A::Cancel,
            A::CloseHelp,
            A::CloseLog,
            A::FilterAccept,
            A::FilterClear,
            A::Help,
            A::ToggleDetail,
            A::StartFilter,
            A::FlaggedOnly,
            A::Mark,
            A::ToggleRelay,
            A::Reboot,
            A::SortNext,
            A::Expand,
            A::Quit,
        ];
        for a in wanted {
            if let Some(b) = KEYMAP.iter().find(|b| b.context == ctx && b.action == a) {
                if b.writes && app.settings.read_only {
                    continue;
                }
                let short = b.help.split([' ', '(']).next().unwrap_or("");
                let short = match a {
                    A::ToggleDetail => "detail",
                    A::StartFilter => "filter",
                    A::FlaggedOnly => "flagged",
                    A::ToggleRelay => "relay",
                    A::SortNext => "sort",
                    A::Expand => "expand",
                    A::Mark => "mark",
                    A::Help => "help",
                    A::Confirm => "yes",
                    A::Cancel => "cancel",
                    A::CloseHelp | A::CloseLog => "close",
                    A::FilterAccept => "keep",
                    A::FilterClear => "clear",
                    _ => short,
                };
                spans.push(Span::styled(b.keys[0].label(), theme.key()));
                spans.push(Span::styled(format!(" {short}  "), theme.dim()));
            }
        }
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// The end of `s`, at most `max` terminal cells (`…` in front when cut).
fn tail(s: &str, max: usize) -> String {
    if crate::text::width(s) <= max {
        return s.to_owned();
    }
    let room = max.saturating_sub(1);
    let mut used = 0;
    let mut start = s.len();
    for (i, c) in s.char_indices().rev() {
        let w = crate::text::char_width(c);
        if used + w > room {
            break;
        }
        used += w;
        start = i;
    }
    format!("…{}", &s[start..])
}

/// Recording (file and count, or why it stopped) and the metrics URL, in the status bar.
fn render_exports(spans: &mut Vec<Span<'static>>, app: &App, theme: &Theme) {
    let r = &app.recording;
    let path = r
        .path
        .as_ref()
        .map(|p| tail(&clean(&p.display().to_string(), 500), 40))
        .unwrap_or_default();
    if r.active {
        spans.push(Span::styled(
            format!(" ● REC {path} ({}) ", r.count),
            theme.label(),
        ));
        spans.push(Span::raw(" "));
    } else if let Some(e) = &r.error {
        spans.push(Span::styled(
            format!(" REC stopped: {} ", clean(e, 60)),
            theme.error(),
        ));
        spans.push(Span::raw(" "));
    }
    if let Some(url) = &app.settings.metrics_url {
        spans.push(Span::styled(format!("{url} "), theme.dim()));
    }
}

fn render_confirm(frame: &mut Frame, area: Rect, c: &crate::app::state::Confirm, theme: &Theme) {
    let title = format!(" {} {}? ", capitalise(c.kind.label()), clean(&c.what, 60));
    let mut lines: Vec<Line> = c
        .lines
        .iter()
        .take(usize::from(area.height.saturating_sub(6)).max(1))
        .map(|l| Line::from(format!("  {}", clean(l, 120))))
        .collect();
    if c.lines.len() > lines.len() {
        lines.push(Line::styled(
            format!("  … and {} more", c.lines.len() - lines.len()),
            theme.dim(),
        ));
    }
    lines.push(Line::raw(""));
    lines.push(Line::from(vec![
        Span::styled("  y", theme.key()),
        Span::raw(" yes, do it    "),
        Span::styled("n/Esc", theme.key()),
        Span::raw(" cancel    "),
        Span::styled("(Enter does nothing)", theme.dim()),
    ]));
    let h = lines.len() as u16 + 2;
    let w = lines
        .iter()
        .map(|l| l.width() as u16)
        .max()
        .unwrap_or(20)
        .max(u16::try_from(crate::text::width(&title)).unwrap_or(u16::MAX))
        + 4;
    let rect = centered(area, w, h);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::default()
                .borders(Borders::ALL)
                .title(Span::styled(
                    title,
                    theme.verdict(crate::app::Verdict::Suspect),
                ))
                .border_style(theme.verdict(crate::app::Verdict::Suspect)),
        ),
        rect,
    );
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
