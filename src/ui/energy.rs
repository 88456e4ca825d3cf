//! The energy history in the detail pane (issue 16): bar charts (ratatui's `BarChart`) of the
//! last 30 days and the last 12 months the plug keeps, flagged bars in the flagged glyph and
//! colour (the glyph sits in the bar, readable without colour), today's bar from the live total;
//! then the flagged days and months with their reasons.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Bar, BarChart, BarGroup, Paragraph};

use super::theme::{Theme, verdict_glyph};
use crate::app::rows::RowRef;
use crate::app::state::{App, Verdict};
use crate::fleet::energy::{EnergyHistory, Entry};
use crate::fleet::ratings::Limits;
use crate::fleet::reading::Field;

/// Rows a chart takes (bars, no labels).
const CHART_ROWS: u16 = 4;

/// The history of the row's meter, its rating and live total (a strip's own row has none: its
/// outlets' rows do).
fn of<'a>(r: &RowRef<'a>) -> Option<(&'a EnergyHistory, Limits, Option<f64>)> {
    let d = r.device;
    let limits = d
        .limits
        .clone()
        .unwrap_or_else(|| crate::fleet::ratings::limits_for(d.model()));
    let child = r.outlet.map(|o| o.id.as_str());
    if child.is_none() && d.is_strip() {
        return None;
    }
    if crate::fleet::stats::metered(d).is_empty() {
        return None;
    }
    let h = crate::fleet::stats::history_of(d, child)?;
    Some((h, limits, crate::fleet::stats::live_total(d, child)))
}

/// How many rows the section would like in an area of `height` rows.
pub fn wanted(r: &RowRef<'_>, height: u16) -> u16 {
    let Some((h, limits, _)) = of(r) else {
        return 0;
    };
    // Nothing read yet: no room taken; a failed read takes its one line.
    if h.is_empty() {
        return u16::from(h.error.is_some() && height >= 1);
    }
    // A line per flagged day or month under the charts (up to 3; the rest wrap or are cut).
    let flagged = h.summary(&limits).1.clamp(1, 3) as u16;
    match height {
        h if h >= 2 * CHART_ROWS + 5 + flagged => 2 * CHART_ROWS + 3 + flagged,
        h if h >= CHART_ROWS + 4 => CHART_ROWS + 2,
        h if h >= 2 => 1,
        _ => 0,
    }
}

fn kwh(v: f64) -> String {
    Field::Total.fmt(v)
}

/// The bars, scaled so a bogus day does not flatten the others: the top is the largest
/// unflagged bar (× 1.25); flagged bars above it are drawn full height, with their glyph.
fn chart<'a>(values: &[(f64, Verdict)], theme: &Theme) -> BarChart<'a> {
    let wh = |v: f64| (v.max(0.0) * 1000.0).round() as u64;
    let top = values
        .iter()
        .filter(|(v, verdict)| *verdict == Verdict::Ok && v.is_finite())
        .map(|(v, _)| wh(*v))
        .max()
        .filter(|m| *m > 0)
        .unwrap_or_else(|| values.iter().map(|(v, _)| wh(*v)).max().unwrap_or(1));
    let top = (top + top / 4).max(1);
    let bars: Vec<Bar<'a>> = values
        .iter()
        .map(|(v, verdict)| {
            let value = if v.is_finite() { wh(*v).min(top) } else { top };
            let b = Bar::default().value(value);
            if *verdict == Verdict::Ok {
                b.text_value(String::new()).style(theme.sparkline())
            } else {
                // A flagged bar is at least one cell high so its glyph shows.
                b.value(value.max(top.div_ceil(u64::from(CHART_ROWS))))
                    .text_value(verdict_glyph(*verdict).to_owned())
                    .style(theme.verdict(*verdict))
                    .value_style(theme.verdict(*verdict))
            }
        })
        .collect();
    BarChart::default()
        .data(BarGroup::default().bars(&bars))
        .bar_width(1)
        .bar_gap(0)
        .max(top)
}

/// A line per flagged day or month, each cut to `width` with an ellipsis (a wrapped reason
/// would lose its end below the section's last row without saying so).
fn flagged_lines<'a>(entries: &[Entry], theme: &Theme, width: u16) -> Vec<Line<'a>> {
    entries
        .iter()
        .filter(|e| e.verdict > Verdict::Ok)
        .map(|e| {
            let head = format!("{} {} ", verdict_glyph(e.verdict), e.label());
            let room = usize::from(width).saturating_sub(crate::text::width(&head));
            let body = format!("{}: {}", kwh(e.kwh), e.texts().join("; "));
            Line::from(vec![
                Span::styled(head, theme.verdict(e.verdict)),
                Span::raw(crate::text::clip(&body, room).into_owned()),
            ])
        })
        .collect()
}

/// Draws the section into `area` (as many rows as [`wanted`] gave).
pub fn render(frame: &mut Frame, area: Rect, app: &App, r: &RowRef<'_>, theme: &Theme) {
    let Some((h, limits, live)) = of(r) else {
        return;
    };
    if area.height == 0 {
        return;
    }
    let today = crate::app::export::today_of(app, r.device, app.now);
    let days = h.chart_days(&limits, today, live);
    let months = h.chart_months(&limits, today, live);
    let judged: Vec<Entry> = h
        .judged_days(&limits, None)
        .into_iter()
        .chain(h.judged_months(&limits, None))
        .collect();
    let flagged = judged.iter().filter(|e| e.verdict > Verdict::Ok).count();
    let worst = judged
        .iter()
        .map(|e| e.verdict)
        .max()
        .unwrap_or(Verdict::Ok);
    let mut head = vec![Span::styled(" energy history ", theme.dim())];
    if h.is_empty() {
        let why = match &h.error {
            Some(e) => format!("not read: {}", super::clean(e, 60)),
            None => "not read yet".into(),
        };
        head.push(Span::raw(why));
        frame.render_widget(Line::from(head), area);
        return;
    }
    let t = h
        .today_kwh(today, live)
        .map(kwh)
        .unwrap_or_else(|| "—".into());
    let m = h
        .month_kwh(today, live)
        .map(kwh)
        .unwrap_or_else(|| "—".into());
    head.push(Span::raw(format!("today {t} · this month {m}")));
    if flagged > 0 {
        head.push(Span::styled(
            format!(" · {flagged} flagged {}", verdict_glyph(worst)),
            theme.verdict(worst),
        ));
    }
    if let Some(e) = &h.error {
        head.push(Span::styled(
            format!(" · last read failed: {}", super::clean(e, 40)),
            theme.error(),
        ));
    }
    if area.height == 1 {
        frame.render_widget(Line::from(head), area);
        return;
    }
    let two = area.height >= 2 * CHART_ROWS + 4;
    let day_vals: Vec<(f64, Verdict)> = days.iter().map(|(_, v, x)| (*v, *x)).collect();
    let month_vals: Vec<(f64, Verdict)> = months.iter().map(|(_, v, x)| (*v, *x)).collect();
    let first = days.first().map(|d| d.0.to_string()).unwrap_or_default();
    let from_month = months
        .first()
        .map(|((y, m), _, _)| format!("{y:04}-{m:02}"))
        .unwrap_or_default();
    if two {
        let [hd, dl, dc, ml, mc, rest] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(1),
            Constraint::Length(CHART_ROWS),
            Constraint::Length(1),
            Constraint::Length(CHART_ROWS),
            Constraint::Min(0),
        ])
        .areas(area);
        frame.render_widget(Line::from(head), hd);
        frame.render_widget(
            Line::styled(format!(" 30 days from {first} to today"), theme.dim()),
            dl,
        );
        frame.render_widget(chart(&day_vals, theme), dc);
        frame.render_widget(
            Line::styled(format!(" 12 months from {from_month}"), theme.dim()),
            ml,
        );
        frame.render_widget(chart(&month_vals, theme), mc);
        frame.render_widget(
            Paragraph::new(flagged_lines(&judged, theme, rest.width)),
            rest,
        );
    } else {
        let [hd, dc, rest] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(CHART_ROWS),
            Constraint::Min(0),
        ])
        .areas(area);
        frame.render_widget(Line::from(head), hd);
        frame.render_widget(chart(&day_vals, theme), dc);
        frame.render_widget(
            Paragraph::new(flagged_lines(&judged, theme, rest.width)),
            rest,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::plausibility::{Reason, Rule};

    #[test]
    fn a_flagged_day_too_long_for_the_pane_ends_in_an_ellipsis_within_its_width() {
        let day = Entry {
            year: 2026,
            month: 12,
            day: Some(1),
            kwh: 600.545,
            verdict: Verdict::Bogus,
            reasons: vec![Reason {
                rule: Rule::EnergyAboveRating,
                field: None,
                severity: Verdict::Bogus,
                text: "600.545 kWh in 24 h is more than 1800 W rated can draw".into(),
            }],
        };
        let ok = Entry {
            verdict: Verdict::Ok,
            reasons: vec![],
            ..day.clone()
        };
        let theme = Theme::new(false);
        let lines = flagged_lines(&[day.clone(), ok], &theme, 40);
        assert_eq!(lines.len(), 1, "only the flagged day");
        let text: String = lines[0].spans.iter().map(|s| s.content.as_ref()).collect();
        assert_eq!(crate::text::width(&text), 40, "{text}");
        assert!(text.starts_with("‼ 2026-12-01 600.545"), "{text}");
        assert!(text.ends_with('…'), "{text}");
        let wide = flagged_lines(&[day], &theme, 200);
        let text: String = wide[0].spans.iter().map(|s| s.content.as_ref()).collect();
        assert!(text.ends_with("can draw"), "whole when it fits: {text}");
    }
}
