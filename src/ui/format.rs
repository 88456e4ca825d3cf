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
        0..=1 => "now".into(),
        2..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
