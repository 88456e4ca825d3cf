//! What goes into a cell: text made safe and bounded, ages. A leaf: the panes use it, it uses
//! none of them (re-exported from `ui`).

use std::time::Duration;

/// Text made safe to draw ([`crate::text::sanitize`]) and bounded to `max` characters: device
/// text is already sanitised where it enters the model; this also covers error texts, file
/// names and log lines. (Cut as before, without an ellipsis: the panes wrap or cut at their
/// edge.)
pub fn clean(s: &str, max: usize) -> String {
    crate::text::sanitize(s).chars().take(max).collect()
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
        assert_eq!(clean("abcdef", 3), "abc");
        assert!(!clean("a\u{1b}[2Jb", 10).contains('\u{1b}'));
    }
}
