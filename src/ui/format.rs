//! What goes into a cell: text made safe and bounded, ages. A leaf: the panes use it, it uses
//! none of them (re-exported from `ui`).

use std::time::Duration;

/// Text made safe to draw ([`crate::text::sanitize`]) and bounded to `max` terminal cells
/// (display width, [`crate::text::width`]), ending in `…` when it was cut
/// ([`crate::text::clip`]): device text is already sanitised where it enters the model; this
/// also covers error texts, file names and log lines.
pub fn clean(s: &str, max: usize) -> String {
    crate::text::printable(s, max)
}

/// "now", "5s", "3m", "2h", "4d".
pub fn age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=NOW_UNTIL => "now".into(),
        2..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// The last whole second an age still reads "now".
const NOW_UNTIL: u64 = 1;

/// How much longer [`age`]`(d)` reads as it does: the label of `d + age_lasts(d)` is the next
/// one. The UI loop redraws for a changed age only then (`runtime::pacer`).
pub fn age_lasts(d: Duration) -> Duration {
    let s = d.as_secs();
    let step = match s {
        0..=NOW_UNTIL => NOW_UNTIL + 1,
        2..=59 => s + 1,
        60..=3599 => (s / 60 + 1) * 60,
        3600..=86_399 => (s / 3600 + 1) * 3600,
        _ => (s / 86_400 + 1) * 86_400,
    };
    Duration::from_secs(step).saturating_sub(d)
}

/// `line` cut to `width` terminal cells, ending in `…` when it was cut, each span keeping its
/// style: a pane's line wider than the pane never loses its end without saying so.
pub fn fit(line: ratatui::text::Line<'_>, width: usize) -> ratatui::text::Line<'_> {
    let total: usize = line
        .spans
        .iter()
        .map(|s| crate::text::width(&s.content))
        .sum();
    if total <= width {
        return line;
    }
    let mut left = width;
    let mut spans = Vec::new();
    for span in line.spans {
        let w = crate::text::width(&span.content);
        if w < left {
            left -= w;
            spans.push(span);
            continue;
        }
        // This span reaches the edge: it takes the rest, the ellipsis in its last cell.
        let cut = crate::text::clip(&span.content, left).into_owned();
        let cut = if cut.ends_with('…') || left == 0 {
            cut
        } else {
            let mut c = crate::text::clip(&cut, left.saturating_sub(1)).into_owned();
            c.push('…');
            c
        };
        spans.push(ratatui::text::Span::styled(cut, span.style));
        break;
    }
    ratatui::text::Line::from(spans).style(line.style)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_age_reads_the_same_until_age_lasts_says_it_changes() {
        let ms = Duration::from_millis;
        for d in [
            0,
            999,
            1000,
            1999,
            2000,
            2500,
            59_999,
            60_000,
            61_500,
            3_599_000,
            3_600_000,
            86_399_999,
            86_400_000,
            200_000_000,
        ] {
            let d = ms(d);
            let lasts = age_lasts(d);
            assert!(lasts > Duration::ZERO, "{d:?}");
            assert_eq!(age(d + lasts - ms(1)), age(d), "{d:?} + {lasts:?}");
            assert_ne!(age(d + lasts), age(d), "{d:?} + {lasts:?}");
        }
    }

    #[test]
    fn a_line_wider_than_its_pane_ends_in_an_ellipsis_and_keeps_its_styles() {
        use ratatui::style::Style;
        use ratatui::text::{Line, Span};
        let l = Line::from(vec![
            Span::styled("  F", Style::new().bold()),
            Span::raw(" override: off"),
            Span::raw(" — also updates unknown-target plugs"),
        ]);
        let cut = fit(l.clone(), 30);
        let text: String = cut.spans.iter().map(|s| s.content.as_ref()).collect();
        assert_eq!(crate::text::width(&text), 30, "{text}");
        assert!(
            text.ends_with('…') && text.starts_with("  F override: off"),
            "{text}"
        );
        assert_eq!(cut.spans[0].style, Style::new().bold());
        // Exactly at the edge of a span, and wide enough: untouched.
        assert_eq!(fit(l.clone(), 17).spans.len(), 2);
        let at_edge: String = fit(l.clone(), 17)
            .spans
            .iter()
            .map(|s| s.content.as_ref())
            .collect();
        assert!(
            at_edge.ends_with('…') && crate::text::width(&at_edge) == 17,
            "{at_edge}"
        );
        assert_eq!(fit(l.clone(), 200), l);
    }

    #[test]
    fn ages_are_short() {
        assert_eq!(age(Duration::from_secs(1)), "now");
        assert_eq!(age(Duration::from_secs(59)), "59s");
        assert_eq!(age(Duration::from_secs(3600)), "1h");
        assert_eq!(age(Duration::from_secs(2 * 86_400)), "2d");
    }

    #[test]
    fn clean_bounds_and_sanitises() {
        assert_eq!(clean("abcdef", 3), "ab…");
        assert_eq!(clean("台所のケトル", 7), "台所の…");
        assert!(!clean("a\u{1b}[2Jb", 10).contains('\u{1b}'));
    }
}
