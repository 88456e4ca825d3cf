//! Device-supplied names are untrusted: [`printable`] makes one safe to show.
//!
//! Identity itself (keys, MAC validation, the merge, local names by MAC) lives in one place,
//! the fleet model: [`crate::fleet::identity`] and [`crate::fleet::model::Fleet::observe`].

use std::borrow::Cow;

/// At most this many characters of a device-supplied name are shown.
pub const MAX_NAME_CHARS: usize = 64;

/// A device-supplied string made safe to show ([`crate::text::sanitize`]: escape sequences,
/// control and bidi characters become `�`), cut to [`MAX_NAME_CHARS`] characters (with `…`).
pub fn printable(s: &str) -> Cow<'_, str> {
    match crate::text::sanitize(s) {
        Cow::Borrowed(b) => crate::text::clip(b, MAX_NAME_CHARS),
        Cow::Owned(o) => Cow::Owned(crate::text::clip(&o, MAX_NAME_CHARS).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_neutralises_control_characters_and_length() {
        assert_eq!(printable("Kitchen"), Cow::Borrowed("Kitchen"));
        assert_eq!(printable("a\x1b[2Jb\nc"), "a\u{FFFD}b\u{FFFD}c");
        let long = "x".repeat(200);
        let p = printable(&long);
        assert_eq!(p.chars().count(), MAX_NAME_CHARS);
        assert!(p.ends_with('…'));
    }
}
