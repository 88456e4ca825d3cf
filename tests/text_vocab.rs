#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The one vocabulary (`plugfleet::text`): the README's glyph legend is the table every view
//! draws, the sanitiser lets nothing unsafe through, and no formatted number lies.

use std::borrow::Cow;

use plugfleet::app::state::Health;
use plugfleet::fleet::plausibility::Verdict;
use plugfleet::text::{self, Unit, glyph, sanitize};
use plugfleet::ui::theme::{health_glyph, verdict_glyph};
use proptest::prelude::*;

/// The rows of the README's legend: (glyph, state, meaning).
fn readme_legend() -> Vec<(String, String, String)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme
        .find("<!-- glyph legend")
        .expect("README has a glyph legend");
    let end = readme
        .find("<!-- end glyph legend -->")
        .expect("README's legend ends");
    readme[start..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            assert_eq!(cells.len(), 3, "legend row {l:?}");
            (
                cells[0].trim_matches('`').to_owned(),
                cells[1].to_owned(),
                cells[2].to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_readme_legend_is_the_glyph_table() {
    let readme = readme_legend();
    let table: Vec<(String, String, String)> = glyph::LEGEND
        .iter()
        .map(|(g, n, m)| ((*g).to_owned(), (*n).to_owned(), (*m).to_owned()))
        .collect();
    assert_eq!(
        readme, table,
        "README legend and text::glyph::LEGEND differ"
    );
    let mut glyphs: Vec<&str> = glyph::LEGEND.iter().map(|r| r.0).collect();
    glyphs.sort_unstable();
    glyphs.dedup();
    assert_eq!(glyphs.len(), glyph::LEGEND.len(), "one glyph per meaning");
}

fn legend_glyph(state: &str) -> &'static str {
    glyph::LEGEND
        .iter()
        .find(|r| r.1 == state)
        .map(|r| r.0)
        .unwrap_or_else(|| panic!("no legend row for {state:?}"))
}

#[test]
fn every_view_draws_the_legend_glyphs() {
    // `status` and the record/JSON views use Verdict::glyph; the TUI uses the theme.
    for v in [Verdict::Suspect, Verdict::Bogus] {
        assert_eq!(v.glyph(), legend_glyph(v.as_str()), "{v:?}");
        assert_eq!(verdict_glyph(v), legend_glyph(v.as_str()), "TUI {v:?}");
    }
    assert_eq!(Verdict::Ok.glyph(), "");
    assert_eq!(verdict_glyph(Verdict::Ok).trim(), "");
    for h in [
        Health::Ok,
        Health::Pending,
        Health::Suspect,
        Health::Failing,
        Health::Bogus,
        Health::Offline,
        Health::Newer,
    ] {
        let state = h.label().to_lowercase();
        assert_eq!(health_glyph(h), legend_glyph(&state), "{h:?}");
    }
    assert_eq!(glyph::BOGUS, "‼");
    assert_eq!(glyph::SUSPECT, "?");
}

/// Characters a hostile plug might send, mixed with ordinary text.
fn hostile_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        2 => prop::char::range('a', 'z'),
        1 => prop::sample::select(vec![
            '\x1b', '[', ']', '\x07', '\\', '\u{9b}', '\u{9d}', '\u{9c}', '\n', '\r', '\t', '\0',
            '\u{7f}', '\u{85}', '\u{202e}', '\u{2066}', '\u{2069}', '\u{200b}', '\u{200f}',
            '\u{feff}', '\u{061c}', '\u{2028}', '\u{2029}', ';', '2', 'J', 'm', 'P', '_',
        ]),
    ]
}

fn forbidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{200B}'..='\u{200F}'
            | '\u{FEFF}'
            | '\u{061C}'
            | '\u{2028}'
            | '\u{2029}')
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn sanitised_text_holds_nothing_unsafe(s in prop::collection::vec(hostile_char(), 0..48)) {
        let s: String = s.into_iter().collect();
        let out = sanitize(&s);
        prop_assert!(!out.chars().any(forbidden), "{s:?} -> {out:?}");
        // Plain text comes back as it was, borrowed.
        if !s.chars().any(forbidden) && !s.chars().any(text::is_format_char) {
            prop_assert!(matches!(out, Cow::Borrowed(_)), "{s:?} was copied");
            prop_assert_eq!(&*out, s.as_str());
        }
        // Sanitising twice changes nothing more.
        prop_assert_eq!(&*sanitize(&out), &*out);
    }

    #[test]
    fn a_whole_escape_sequence_becomes_one_replacement(
        before in "[a-zA-Z0-9 ]{0,12}",
        params in "[0-9;?]{0,8}",
        fin in "[@-~]",
        after in "[a-zA-Z0-9 ]{0,12}",
    ) {
        let s = format!("{before}\x1b[{params}{fin}{after}");
        prop_assert_eq!(sanitize(&s).into_owned(), format!("{before}\u{FFFD}{after}"));
        let osc = format!("{before}\x1b]0;{params}{fin}\x07{after}");
        prop_assert_eq!(sanitize(&osc).into_owned(), format!("{before}\u{FFFD}{after}"));
    }
}

const UNITS: [Unit; 6] = [
    Unit::Watt,
    Unit::Volt,
    Unit::Amp,
    Unit::KilowattHour,
    Unit::Dbm,
    Unit::Percent,
];

/// Parses a formatted value back: (value in `unit`, half the step of the shown precision, in
/// `unit`). `bare`: a number without a unit means the header's unit.
fn parse_back(s: &str, unit: Unit, bare: bool) -> (f64, f64) {
    let (num, scale) = match s.rsplit_once(' ') {
        Some((num, u)) if u == unit.symbol() => (num, 1.0),
        Some((num, u)) => {
            let (base, per_unit) = unit
                .prefix_base()
                .expect("only prefixable units get a prefix");
            let prefix = u
                .strip_suffix(base)
                .unwrap_or_else(|| panic!("unit of {s:?}"));
            let e = text::PREFIXES
                .iter()
                .find(|p| p.0 == prefix)
                .unwrap_or_else(|| panic!("prefix of {s:?}"))
                .1;
            (num, 10f64.powi(e) / per_unit)
        }
        None => {
            assert!(bare, "{s:?} has no unit");
            (s, 1.0)
        }
    };
    let x: f64 = num.parse().unwrap_or_else(|e| panic!("{s:?}: {e}"));
    let half_step = match num.split_once(['e', 'E']) {
        Some((mantissa, exp)) => {
            let d = mantissa.split_once('.').map_or(0, |(_, f)| f.len());
            let exp: i32 = exp.parse().expect("exponent");
            0.5 * 10f64.powi(exp - d as i32)
        }
        None => {
            let d = num.split_once('.').map_or(0, |(_, f)| f.len());
            0.5 * 10f64.powi(-(d as i32))
        }
    };
    (x * scale, half_step * scale)
}

fn check_honest(v: f64, unit: Unit, out: &str, width: usize, bare: bool) -> Result<(), String> {
    if out.chars().count() > width {
        return Err(format!("{v} {unit:?} in {width}: {out:?} is too wide"));
    }
    if out.is_empty() {
        return if width == 0 {
            Ok(())
        } else {
            Err(format!("{v} {unit:?} in {width}: empty"))
        };
    }
    if out == "…" {
        return if width < 10 {
            Ok(())
        } else {
            Err(format!("{v} {unit:?} in {width}: nothing shown"))
        };
    }
    let (x, tol) = parse_back(out, unit, bare);
    if v.is_nan() {
        return if x.is_nan() {
            Ok(())
        } else {
            Err(format!("NaN shown as {out:?}"))
        };
    }
    if v.is_infinite() {
        return if x == v {
            Ok(())
        } else {
            Err(format!("{v} shown as {out:?}"))
        };
    }
    // Beyond the shown precision only floating-point noise is allowed.
    let slack = tol * 1e-9 + v.abs() * 1e-12;
    if (x - v).abs() <= tol + slack {
        Ok(())
    } else {
        Err(format!(
            "{v} {unit:?} in {width}: {out:?} reads back as {x} (± {tol})"
        ))
    }
}

/// Finite values of every size: small, typical, huge, subnormal.
fn any_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => any::<f64>(),
        3 => -1e7f64..1e7f64,
        2 => ((-9.999f64..9.999f64), (-12i32..309)).prop_map(|(m, e)| m * 10f64.powi(e)),
        1 => prop::sample::select(vec![0.0, -0.0, 999.6, 999_999.5, 233.5279, 28_000.0, 1e308, -1e308]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn a_value_that_fits_reads_back_within_its_precision(
        v in any_value(),
        unit in prop::sample::select(UNITS.to_vec()),
        width in 0usize..16,
    ) {
        let out = text::fmt_fit(v, unit, width);
        if let Err(e) = check_honest(v, unit, &out, width, false) {
            return Err(TestCaseError::fail(e));
        }
    }

    #[test]
    fn a_table_cell_reads_back_within_its_precision(
        v in any_value(),
        unit in prop::sample::select(UNITS.to_vec()),
        decimals in 0usize..4,
        width in 0usize..12,
    ) {
        let out = text::fmt_cell(v, unit, decimals, width);
        if let Err(e) = check_honest(v, unit, &out, width, true) {
            return Err(TestCaseError::fail(e));
        }
    }

    #[test]
    fn the_preferred_form_reads_back(v in any_value(), unit in prop::sample::select(UNITS.to_vec())) {
        let out = text::fmt(v, unit);
        if let Err(e) = check_honest(v, unit, &out, usize::MAX, false) {
            return Err(TestCaseError::fail(e));
        }
    }
}

/// Found by the property above: rounding `-1.68e308` to one significant digit gives `-2e308`,
/// which is beyond f64 and reads back as -inf. The cell keeps digits that name the value.
#[test]
fn a_value_near_f64_max_never_rounds_into_infinity() {
    for v in [-1.681_287_709_070_531_5e308, 1.7e308, f64::MAX, f64::MIN] {
        let s = plugfleet::text::fmt_fit(v, plugfleet::text::Unit::KilowattHour, 10);
        let n: f64 = s.trim_end_matches(" kWh").parse().unwrap_or(f64::NAN);
        assert!(n.is_finite() || s == "…", "{v} shown as {s:?}");
    }
}
