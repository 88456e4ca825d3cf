//! Device-supplied names are untrusted: [`printable`] makes one safe to show.
//!
//! Identity itself (keys, MAC validation, the merge, local names by MAC) lives in one place,
//! the fleet model: [`crate::fleet::identity`] and [`crate::fleet::model::Fleet::observe`].

use std::borrow::Cow;

/// At most this many characters of a device-supplied name are shown.
pub const MAX_NAME_CHARS: usize = 64;

/// A device-supplied string made safe to show: control characters (escape sequences, new
/// lines, …) become `�`, and it is cut to [`MAX_NAME_CHARS`] characters (with `…`).
pub fn printable(s: &str) -> Cow<'_, str> {
    let clean = !s.chars().any(char::is_control) && s.chars().count() <= MAX_NAME_CHARS;
    if clean {
        return Cow::Borrowed(s);
    }
    let mut out: String = s
        .chars()
        .take(MAX_NAME_CHARS)
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect();
    if s.chars().count() > MAX_NAME_CHARS {
        out.pop();
        out.push('…');
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_neutralises_control_characters_and_length() {
        assert_eq!(printable("Kitchen"), Cow::Borrowed("Kitchen"));
        assert_eq!(printable("a\x1b[2Jb\nc"), "a\u{FFFD}[2Jb\u{FFFD}c");
        let long = "x".repeat(200);
        let p = printable(&long);
        assert_eq!(p.chars().count(), MAX_NAME_CHARS);
        assert!(p.ends_with('…'));
    }
}
