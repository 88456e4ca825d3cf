//! One vocabulary for everything plugfleet prints: the function that makes device-supplied text
//! safe for a terminal, one formatter per unit, and one glyph per verdict and per health state.
//!
//! This module is the lowest layer: it imports nothing from the crate, so every other module
//! (protocol decoders, views, the CLI) can use it.
//!
//! # Sanitising
//!
//! [`sanitize`] is the one function that makes text from a device printable. Every unsafe run —
//! a whole ANSI escape sequence (CSI, OSC, DCS, …, 7-bit or C1 form), a C0/C1 control character,
//! a bidi override or isolate, an invisible format character, a line or paragraph separator —
//! becomes exactly one [`REPLACEMENT`] character (`U+FFFD`, `�`), so the reader sees that
//! something was there. Plain text comes back borrowed.
//!
//! ```
//! use plugfleet::text::sanitize;
//! assert_eq!(sanitize("Kitchen"), "Kitchen");
//! assert_eq!(sanitize("evil\x1b[2Jname"), "evil\u{FFFD}name");
//! assert_eq!(sanitize("abc\u{202E}fed"), "abc\u{FFFD}fed");
//! ```
//!
//! # Numbers
//!
//! [`fmt`] writes a value with the precision that suits its size and unit (`28000 W`,
//! `7.68 W`, `0.128 A`). [`fmt_fit`] does the same within a width: a value that does not fit
//! switches to a shorter, still honest form (`234 A`, `1.25 MW`, `28.0 kW`, `2e20 W`); it is
//! never cut and never rounded into another value. Parsing the text back gives the value to the
//! precision shown. NaN and infinities are shown as `NaN`, `inf`, `-inf`.
//!
//! ```
//! use plugfleet::text::{Unit, fmt, fmt_fit};
//! assert_eq!(fmt(28000.0, Unit::Watt), "28000 W");
//! assert_eq!(fmt_fit(233.5279, Unit::Amp, 6), "234 A");
//! assert_eq!(fmt_fit(1_250_000.0, Unit::Watt, 8), "1.25 MW");
//! ```
//!
//! # Glyphs
//!
//! [`glyph`] holds one glyph per verdict and per health state, and [`glyph::LEGEND`] is the
//! table the README's legend is checked against (`tests/text_vocab.rs`).

use std::borrow::Cow;

/// What every unsafe run of device text becomes: `U+FFFD REPLACEMENT CHARACTER` (`�`).
pub const REPLACEMENT: char = '\u{FFFD}';

/// Invisible format characters that reorder or hide text: bidi embeddings, overrides and
/// isolates, zero-width characters and marks, the byte-order mark, line/paragraph separators.
pub fn is_format_char(c: char) -> bool {
    matches!(c,
        '\u{00AD}'                  // soft hyphen
        | '\u{061C}'                // Arabic letter mark
        | '\u{180E}'                // Mongolian vowel separator
        | '\u{200B}'..='\u{200F}'   // zero-width space/non-joiner/joiner, LRM, RLM
        | '\u{2028}' | '\u{2029}'   // line and paragraph separators
        | '\u{202A}'..='\u{202E}'   // LRE, RLE, PDF, LRO, RLO
        | '\u{2060}'..='\u{2064}'   // word joiner, invisible operators
        | '\u{2066}'..='\u{206F}'   // LRI, RLI, FSI, PDI, deprecated format characters
        | '\u{FEFF}'                // byte-order mark / zero-width no-break space
        | '\u{FFF9}'..='\u{FFFB}' // interlinear annotation
    )
}

/// Whether `c` must never reach a terminal: a C0/C1 control character (DEL included) or an
/// invisible format character ([`is_format_char`]).
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control() || is_format_char(c)
}

/// Device-supplied text made safe to print. Every ANSI escape sequence (the whole sequence, not
/// only its ESC), every control character and every bidi/format character becomes one
/// [`REPLACEMENT`]. Text that needs nothing is returned borrowed.
pub fn sanitize(s: &str) -> Cow<'_, str> {
    // Printable ASCII (nearly every alias, model and id a device sends) needs nothing: checked
    // bytewise, before the per-character Unicode tables.
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) || !s.chars().any(is_unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if !is_unsafe_char(c) {
            out.push(c);
            continue;
        }
        out.push(REPLACEMENT);
        match c {
            '\u{1B}' => match it.peek().copied() {
                Some('[') => {
                    it.next();
                    skip_csi(&mut it);
                }
                Some(']' | 'P' | 'X' | '^' | '_') => {
                    it.next();
                    skip_string(&mut it);
                }
                // nF escapes: intermediates 0x20–0x2F, then one final byte 0x30–0x7E.
                Some(' '..='/') => {
                    while it.next_if(|c| matches!(c, ' '..='/')).is_some() {}
                    it.next_if(|c| matches!(c, '0'..='~'));
                }
                // Fp/Fe/Fs escapes: one final byte.
                Some('0'..='~') => {
                    it.next();
                }
                _ => {}
            },
            '\u{9B}' => skip_csi(&mut it),
            '\u{90}' | '\u{98}' | '\u{9D}' | '\u{9E}' | '\u{9F}' => skip_string(&mut it),
            _ => {}
        }
    }
    Cow::Owned(out)
}

/// Skips the parameter (0x30–0x3F), intermediate (0x20–0x2F) and final (0x40–0x7E) bytes of a
/// control sequence. A character outside those ranges ends it without being consumed.
fn skip_csi(it: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while it.next_if(|c| matches!(c, '0'..='?')).is_some() {}
    while it.next_if(|c| matches!(c, ' '..='/')).is_some() {}
    it.next_if(|c| matches!(c, '@'..='~'));
}

/// Skips a control string (OSC, DCS, SOS, PM, APC) up to and including its terminator: BEL,
/// ST (`ESC \`) or the C1 ST. An unterminated string runs to the end of the text, as it would
/// on a terminal.
fn skip_string(it: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(c) = it.next() {
        match c {
            '\u{07}' | '\u{9C}' => return,
            '\u{1B}' => {
                it.next_if_eq(&'\\');
                return;
            }
            _ => {}
        }
    }
}

/// How many terminal cells `s` takes: its display width (`unicode-width`), not its length in
/// bytes or characters — a CJK character or an emoji takes two cells, a combining mark none.
/// Every place that measures text for a column or a box uses this.
///
/// ```
/// use plugfleet::text::width;
/// assert_eq!(width("Kitchen"), 7);
/// assert_eq!(width("台所"), 4);
/// ```
pub fn width(s: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(s)
}

/// The display width of one character (0 for a combining mark).
pub fn char_width(c: char) -> usize {
    unicode_width::UnicodeWidthChar::width(c).unwrap_or(0)
}

/// `s` cut to at most `max` terminal cells ([`width`]), the last of them `…` when something
/// was cut; a wide character that would straddle the edge is left out whole.
///
/// ```
/// use plugfleet::text::clip;
/// assert_eq!(clip("Kitchen kettle", 8), "Kitchen…");
/// assert_eq!(clip("台所の電気ケトル", 7), "台所の…");
/// ```
pub fn clip(s: &str, max: usize) -> Cow<'_, str> {
    // No character is wider than its UTF-8 length (ASCII 1 byte, at most 1 cell; wide
    // characters 3–4 bytes, 2 cells), so a string of at most `max` bytes fits as it is.
    if s.len() <= max || width(s) <= max {
        return Cow::Borrowed(s);
    }
    if max == 0 {
        return Cow::Borrowed("");
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = char_width(c);
        if used + w > max - 1 {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    Cow::Owned(out)
}

/// Where `needle` occurs in `hay`, ignoring case: non-overlapping byte ranges of `hay`, for
/// highlighting what a filter matched. An empty needle matches nothing.
///
/// ```
/// use plugfleet::text::find_ci;
/// assert_eq!(find_ci("Kitchen kettle", "KET"), vec![8..11]);
/// ```
pub fn find_ci(hay: &str, needle: &str) -> Vec<std::ops::Range<usize>> {
    let needle: Vec<char> = needle.chars().flat_map(char::to_lowercase).collect();
    let mut out = Vec::new();
    if needle.is_empty() {
        return out;
    }
    let starts: Vec<usize> = hay.char_indices().map(|(i, _)| i).collect();
    let mut i = 0;
    while i < starts.len() {
        let mut want = needle.iter();
        let mut end = None;
        let mut pending = want.next();
        for (j, c) in hay[starts[i]..].char_indices() {
            for lc in c.to_lowercase() {
                match pending {
                    Some(w) if *w == lc => pending = want.next(),
                    _ => {
                        pending = Some(&'\0');
                        break;
                    }
                }
            }
            if pending == Some(&'\0') {
                break;
            }
            if pending.is_none() {
                end = Some(starts[i] + j + c.len_utf8());
                break;
            }
        }
        match end {
            Some(e) => {
                out.push(starts[i]..e);
                while i < starts.len() && starts[i] < e {
                    i += 1;
                }
            }
            None => i += 1,
        }
    }
    out
}

/// `s` clipped to `cells` ([`clip`]) and padded with spaces to exactly `cells` display cells:
/// for text laid out in columns by hand.
pub fn fit_to(s: &str, cells: usize) -> String {
    let c = clip(s, cells);
    let pad = cells.saturating_sub(width(&c));
    format!("{c}{}", " ".repeat(pad))
}

/// [`sanitize`] then [`clip`]: device text for a bounded place (a table cell, a log line).
pub fn printable(s: &str, max: usize) -> String {
    clip(&sanitize(s), max).into_owned()
}

/// A unit plugfleet shows values in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    Watt,
    Volt,
    Amp,
    KilowattHour,
    Dbm,
    Percent,
}

impl Unit {
    /// The symbol written after a value.
    pub fn symbol(self) -> &'static str {
        match self {
            Unit::Watt => "W",
            Unit::Volt => "V",
            Unit::Amp => "A",
            Unit::KilowattHour => "kWh",
            Unit::Dbm => "dBm",
            Unit::Percent => "%",
        }
    }

    /// Decimals that suit a value of this size in this unit.
    pub fn decimals(self, v: f64) -> usize {
        let a = v.abs();
        match self {
            Unit::KilowattHour => 3,
            Unit::Amp if a < 10.0 => 3,
            Unit::Dbm => 0,
            Unit::Percent if a >= 10.0 => 0,
            Unit::Percent => 1,
            _ if a >= 100.0 => 0,
            _ if a >= 10.0 => 1,
            _ => 2,
        }
    }

    /// The base unit SI prefixes attach to, and how many of it make one of `self`:
    /// `kWh` is 1000 `Wh`. `None` where a prefix makes no sense (dBm is logarithmic, % a ratio).
    pub fn prefix_base(self) -> Option<(&'static str, f64)> {
        match self {
            Unit::Watt => Some(("W", 1.0)),
            Unit::Volt => Some(("V", 1.0)),
            Unit::Amp => Some(("A", 1.0)),
            Unit::KilowattHour => Some(("Wh", 1000.0)),
            Unit::Dbm | Unit::Percent => None,
        }
    }
}

/// SI prefixes used by the short forms, with their power of ten.
pub const PREFIXES: [(&str, i32); 6] = [
    ("k", 3),
    ("M", 6),
    ("G", 9),
    ("T", 12),
    ("P", 15),
    ("E", 18),
];

/// `NaN`, `inf`, `-inf`, or `None` for a finite value.
fn non_finite(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("NaN")
    } else if v == f64::INFINITY {
        Some("inf")
    } else if v == f64::NEG_INFINITY {
        Some("-inf")
    } else {
        None
    }
}

/// A value with the precision that suits its size and unit: `28000 W`, `7.68 W`, `119 V`,
/// `0.128 A`, `30.404 kWh`, `-38 dBm`.
pub fn fmt(v: f64, unit: Unit) -> String {
    fmt_with(v, unit, unit.decimals(v))
}

/// A value with exactly `decimals` decimals and its unit.
pub fn fmt_with(v: f64, unit: Unit, decimals: usize) -> String {
    match non_finite(v) {
        Some(s) => format!("{s} {}", unit.symbol()),
        None => format!("{v:.decimals$} {}", unit.symbol()),
    }
}

/// A value with its unit in at most `width` characters: the form [`fmt`] writes when it fits,
/// else fewer decimals, else an SI prefix with up to three significant digits (`1.25 MW`), else
/// scientific notation (`2e20 W`). When not even that fits, `…` (never a cut number).
pub fn fmt_fit(v: f64, unit: Unit, width: usize) -> String {
    fit(v, unit, unit.decimals(v), width, true)
}

/// A table cell under a header that names the unit: the bare number with `decimals` decimals
/// when it fits, else fewer decimals, else a prefixed value *with* its unit (`1.25 MW`: the
/// header's unit no longer applies), else scientific notation in the header's unit. `…` when
/// nothing fits.
pub fn fmt_cell(v: f64, unit: Unit, decimals: usize, width: usize) -> String {
    fit(v, unit, decimals, width, false)
}

fn fit(v: f64, unit: Unit, decimals: usize, width: usize, with_unit: bool) -> String {
    let sym = unit.symbol();
    let plain = |s: String| {
        if with_unit { format!("{s} {sym}") } else { s }
    };
    let fits = |s: &str| self::width(s) <= width;
    if let Some(s) = non_finite(v) {
        let s = plain(s.to_owned());
        return if fits(&s) { s } else { ellipsis(width) };
    }
    for d in (0..=decimals).rev() {
        let s = plain(format!("{v:.d$}"));
        if fits(&s) {
            return s;
        }
    }
    if let Some(s) = prefixed(v, unit, width) {
        return s;
    }
    for d in (0..=2usize).rev() {
        let n = format!("{v:.d$e}");
        // Rounding near f64::MAX can overflow (`-1.68e308` → `-2e308`, which reads as -inf):
        // such a form names another value, so it is never shown.
        if n.parse::<f64>().is_ok_and(f64::is_finite) {
            let s = plain(n);
            if fits(&s) {
                return s;
            }
        }
    }
    ellipsis(width)
}

/// What is shown when no honest form fits: `…`, or nothing in a zero-width cell.
fn ellipsis(width: usize) -> String {
    if width == 0 {
        String::new()
    } else {
        "…".into()
    }
}

/// `v` with an SI prefix (k, M, …, E) and three significant digits or fewer, if one fits.
fn prefixed(v: f64, unit: Unit, width: usize) -> Option<String> {
    let (base, per_unit) = unit.prefix_base()?;
    let b = v * per_unit;
    if !b.is_finite() || b.abs() < 1000.0 {
        return None;
    }
    for (p, e) in PREFIXES {
        let m = b / 10f64.powi(e);
        // 999.6 k rounds to "1000": the next prefix says it as "1.00 M"; a smaller mantissa
        // would lose digits.
        if m.abs() < 0.9995 {
            continue;
        }
        let int_digits = if m.abs() >= 1.0 {
            m.abs().log10().floor() as usize + 1
        } else {
            1
        };
        if int_digits > 3 {
            continue;
        }
        for d in (0..=3 - int_digits).rev() {
            let n = format!("{m:.d$}");
            if n.trim_start_matches('-')
                .split('.')
                .next()
                .map_or(0, str::len)
                > 3
            {
                break;
            }
            let s = format!("{n} {p}{base}");
            if self::width(&s) <= width {
                return Some(s);
            }
        }
    }
    None
}

/// One glyph per verdict and per health state, for every view and the README's legend.
///
/// Every glyph is one terminal cell wide and reads on a monochrome terminal: meaning never rests
/// on colour alone.
pub mod glyph {
    /// After a plausible value: nothing (the value speaks for itself).
    pub const VERDICT_OK: &str = "";
    /// After a doubtful value (voltage off-band, an unconfirmed jump).
    pub const SUSPECT: &str = "?";
    /// After a value that cannot be true (above the rating, the unit-scale bug, P > V×I).
    pub const BOGUS: &str = "‼";
    /// Before a reason that is information only (a counter reset), in `status` notes.
    pub const NOTE: &str = "·";

    /// Health: answers, last readings plausible.
    pub const OK: &str = "●";
    /// Health: found, not polled yet.
    pub const NEW: &str = "○";
    /// Health: missed recent polls, retrying.
    pub const FAILING: &str = "◐";
    /// Health: missed several polls in a row; last values dimmed.
    pub const OFFLINE: &str = "✗";
    /// Health: a firmware update is under way.
    pub const UPDATING: &str = "↻";
    /// Health: answers, but its meter gave no reading (a timeout, a device error).
    pub const NO_READING: &str = "∅";
    /// Health: found over the newer authenticated protocol, not read (yet).
    pub const NEEDS_CREDENTIALS: &str = "◇";
    /// Health: a newer-protocol device and no TP-Link account given.
    pub const ACCOUNT_NEEDED: &str = "◆";
    /// Health: a newer-protocol device refuses the account given.
    pub const AUTH_FAILED: &str = "⊘";

    /// Firmware plan: the image can be flashed.
    pub const PLAN_OK: &str = "✓";
    /// Firmware plan: flashable, but look first (a downgrade, a move to the newer protocol).
    pub const PLAN_CAUTION: &str = "!";
    /// Firmware plan: the plug already runs this version.
    pub const PLAN_SAME: &str = "=";
    /// Firmware plan: unknown target or unrecognised content, only with the override
    /// (`--force`, `F`). Not `?`, which is the suspect reading's glyph.
    pub const PLAN_OVERRIDE: &str = "*";
    /// Firmware plan: blocked (wrong target, corrupt, out of bounds, refused file).
    pub const PLAN_BLOCKED: &str = "✗";

    /// The legend: (glyph, name, meaning), as the README shows it.
    pub const LEGEND: [(&str, &str, &str); 12] = [
        (OK, "ok", "answers; last readings plausible"),
        (NEW, "new", "found, not polled yet"),
        (
            SUSPECT,
            "suspect",
            "a doubtful value (voltage off-band, unconfirmed jump)",
        ),
        (
            BOGUS,
            "bogus",
            "a value that cannot be true (above rating, unit-scale bug, P > V×I)",
        ),
        (FAILING, "failing", "missed recent polls, retrying"),
        (OFFLINE, "offline", "missed several polls in a row"),
        (UPDATING, "updating", "a firmware update is under way"),
        (
            NO_READING,
            "no data",
            "answers, but its meter gave no reading (timeout, device error): never ok",
        ),
        (
            NEEDS_CREDENTIALS,
            "klap",
            "newer authenticated protocol only: listed, not read yet",
        ),
        (
            ACCOUNT_NEEDED,
            "needs creds",
            "newer protocol: no TP-Link account given (--username/--password)",
        ),
        (
            AUTH_FAILED,
            "auth failed",
            "newer protocol: the device refuses the account given",
        ),
        (NOTE, "note", "information only (a counter reset)"),
    ];
}

/// `word` for one, `words` otherwise ("1 plug", "6 outlets").
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_owned()
    } else {
        format!("{word}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(sanitize("Living room é ✓"), Cow::Borrowed(_)));
    }

    #[test]
    fn whole_escape_sequences_go() {
        assert_eq!(sanitize("a\x1b[2Jb"), "a\u{FFFD}b");
        assert_eq!(sanitize("a\x1b[38;5;196mred"), "a\u{FFFD}red");
        assert_eq!(sanitize("t\x1b]0;owned\x07x"), "t\u{FFFD}x");
        assert_eq!(sanitize("t\x1b]8;;http://x\x1b\\link"), "t\u{FFFD}link");
        assert_eq!(sanitize("a\u{9b}31mb"), "a\u{FFFD}b");
        assert_eq!(sanitize("a\x1b(Bb"), "a\u{FFFD}b");
        assert_eq!(sanitize("a\x1bcb"), "a\u{FFFD}b");
        assert_eq!(sanitize("end\x1b"), "end\u{FFFD}");
        assert_eq!(sanitize("a\nb\tc\u{7f}"), "a\u{FFFD}b\u{FFFD}c\u{FFFD}");
        assert_eq!(
            sanitize("\u{FEFF}x\u{200B}\u{2066}"),
            "\u{FFFD}x\u{FFFD}\u{FFFD}"
        );
    }

    #[test]
    fn clip_marks_the_cut() {
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abcd", 4), "abcd");
        assert_eq!(clip("abc", 0), "");
        // Display width, not characters: wide characters take two cells each.
        assert_eq!(clip("日本語テキスト", 6), "日本…");
        assert_eq!(width(&clip("日本語テキスト", 6)), 5);
        assert_eq!(clip("🔌🔌🔌", 4), "🔌…");
        assert_eq!(clip("日本", 4), "日本");
        assert_eq!(fit_to("日本語", 5), "日本…");
        assert_eq!(fit_to("ab", 4), "ab  ");
    }

    #[test]
    fn no_text_is_wider_than_its_utf8_length() {
        // What `clip`'s fast path relies on: every character, and the sequences that join
        // characters into one wide glyph (emoji presentation, keycaps, ZWJ, flags).
        for c in (0..=0x10FFFF_u32).filter_map(char::from_u32) {
            let s = c.to_string();
            assert!(width(&s) <= s.len(), "{c:?}: {} > {}", width(&s), s.len());
        }
        for s in [
            "#\u{FE0F}\u{20E3}",
            "a\u{FE0F}",
            "\u{263A}\u{FE0F}",
            "👩\u{200D}💻",
            "🇯🇵",
            "\r\n",
        ] {
            assert!(width(s) <= s.len(), "{s:?}");
        }
    }

    #[test]
    fn printable_ascii_is_borrowed_and_unchanged() {
        let s = "Kitchen kettle ~ 1.0.5 Build 201030 Rel.01!";
        assert!(matches!(sanitize(s), Cow::Borrowed(b) if b == s));
        assert!(matches!(clip(s, s.len()), Cow::Borrowed(b) if b == s));
        assert_eq!(sanitize("tab\there"), "tab\u{FFFD}here");
        assert_eq!(sanitize("del\u{7F}"), "del\u{FFFD}");
    }

    #[test]
    fn find_ci_finds_every_match_ignoring_case() {
        assert_eq!(find_ci("abcABCabc", "bC"), vec![1..3, 4..6, 7..9]);
        assert_eq!(find_ci("aaaa", "aa"), vec![0..2, 2..4]);
        assert_eq!(find_ci("Küche", "KÜ"), vec![0..3]);
        assert_eq!(find_ci("台所 kettle", "KETTLE"), vec![7..13]);
        assert!(find_ci("abc", "").is_empty());
        assert!(find_ci("abc", "abcd").is_empty());
        assert_eq!(printable("a\x1b[2Jbcdef", 4), "a\u{FFFD}b…");
    }

    #[test]
    fn formats_by_size() {
        assert_eq!(fmt(28000.0, Unit::Watt), "28000 W");
        assert_eq!(fmt(7.677094, Unit::Watt), "7.68 W");
        assert_eq!(fmt(118.917389, Unit::Volt), "119 V");
        assert_eq!(fmt(0.128037, Unit::Amp), "0.128 A");
        assert_eq!(fmt(30.404, Unit::KilowattHour), "30.404 kWh");
        assert_eq!(fmt(-38.0, Unit::Dbm), "-38 dBm");
        assert_eq!(fmt(f64::NAN, Unit::Watt), "NaN W");
        assert_eq!(fmt(f64::NEG_INFINITY, Unit::Watt), "-inf W");
    }

    #[test]
    fn too_wide_values_take_a_shorter_honest_form() {
        assert_eq!(fmt_fit(233.5279, Unit::Amp, 7), "234 A");
        assert_eq!(fmt_fit(23.5279, Unit::Amp, 5), "24 A");
        assert_eq!(fmt_fit(28000.0, Unit::Watt, 7), "28000 W");
        assert_eq!(fmt_fit(28000.0, Unit::Watt, 6), "28 kW");
        assert_eq!(fmt_fit(28040.0, Unit::Watt, 7), "28040 W");
        assert_eq!(fmt_cell(28040.0, Unit::Watt, 1, 4), "3e4");
        assert_eq!(fmt_fit(1_250_000.0, Unit::Watt, 7), "1.25 MW");
        assert_eq!(fmt_fit(28_000.0, Unit::KilowattHour, 9), "28000 kWh");
        assert_eq!(fmt_fit(28_000.0, Unit::KilowattHour, 8), "28.0 MWh");
        assert_eq!(fmt_fit(999_600.0, Unit::Watt, 7), "1.00 MW");
        assert_eq!(fmt_fit(999_600.0, Unit::Watt, 6), "1.0 MW");
        assert_eq!(fmt_fit(2e20, Unit::Watt, 8), "200 EW");
        assert_eq!(fmt_fit(2e25, Unit::Watt, 8), "2.0e25 W");
        assert_eq!(fmt_fit(f64::INFINITY, Unit::Watt, 5), "inf W");
        assert_eq!(fmt_fit(1e300, Unit::Watt, 3), "…");
        assert_eq!(fmt_cell(28000.0, Unit::Watt, 1, 8), "28000.0");
        assert_eq!(fmt_cell(1_000_000.0, Unit::Watt, 1, 8), "1000000");
        assert_eq!(fmt_cell(1.25e9, Unit::Watt, 1, 8), "1.25 GW");
        assert_eq!(fmt_cell(233.5279, Unit::Amp, 3, 6), "233.53");
        assert_eq!(fmt_cell(-1e300, Unit::Dbm, 0, 8), "-1.0e300");
    }
}
