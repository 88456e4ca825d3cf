#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The quiet rules (issue 15) as the user reads them: `config init`'s commented
//! `[plausibility.*]` values are the defaults the code uses, and the README's "Judges every
//! reading" section names every rule with each of its config keys and that default.

use plugfleet::config::{DEFAULT_FILE, QuietRules};
use plugfleet::fleet::quiet::QuietRule;

/// The `[plausibility.*]` part of the default file with its commented `key = value` lines
/// uncommented (trailing comments dropped), and the example list of resistive MACs left out.
fn uncommented_plausibility() -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in DEFAULT_FILE.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            inside = t.starts_with("[plausibility.");
            if inside {
                out.push_str(t);
                out.push('\n');
            }
            continue;
        }
        if !inside {
            continue;
        }
        let Some(kv) = t.strip_prefix("# ") else {
            continue;
        };
        let Some((k, v)) = kv.split_once(" = ") else {
            continue;
        };
        if k.contains(' ') || k == "resistive" {
            continue;
        }
        let v = v.split(" #").next().unwrap_or(v).trim();
        out.push_str(&format!("{k} = {v}\n"));
    }
    out
}

#[derive(serde::Deserialize)]
struct File {
    plausibility: QuietRules,
}

#[test]
fn the_commented_defaults_are_the_defaults() {
    let text = uncommented_plausibility();
    // Every key of every rule is written out (and `resistive`, an example, is left out here).
    let keys = text.lines().filter(|l| l.contains(" = ")).count();
    assert_eq!(keys, 7 + 3 + 4 + 4 + 3, "{text}");
    let f: File = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(f.plausibility, QuietRules::default(), "{text}");
}

/// The README from "**Judges every reading**" to the next bullet of its list.
fn readme_rules() -> String {
    let readme = include_str!("../README.md");
    let at = readme
        .find("**Judges every reading**")
        .expect("the README's judges-every-reading section");
    let rest = &readme[at..];
    let end = rest[1..].find("\n- **").map_or(rest.len(), |i| i + 1);
    // Lines are wrapped: compare with single spaces.
    rest[..end].split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_readme_lists_every_rule_with_its_keys_and_defaults() {
    let readme = readme_rules();
    for rule in QuietRule::ALL {
        assert!(
            readme.contains(&format!("`{}`", rule.name())),
            "{}: {readme}",
            rule.name()
        );
    }
    let mut table = String::new();
    for line in uncommented_plausibility().lines() {
        if let Some(t) = line.strip_prefix('[') {
            table = t.trim_end_matches(']').to_owned();
            assert!(readme.contains(&format!("`[{table}]`")), "{table}");
            continue;
        }
        let (k, v) = line.split_once(" = ").expect("key = value");
        assert!(
            readme.contains(&format!("`{k} = {v}`")),
            "[{table}] {k} = {v} is not in the README's rules: {readme}"
        );
    }
    assert!(readme.contains("`resistive = []`"), "{readme}");
}
