#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The simulator's own layering: `src/sim/` never imports the product's `firmware` module (it
//! judges images by digest, `sim::images`), and its files import one another without cycles.
//! Reads the `use` lines of `src/sim/*.rs` (test modules included).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each file's sibling dependencies (by `use` and by inline `super::…` paths; `mod.rs` is the
/// parent), and every line naming `crate::firmware`.
fn scan() -> (BTreeMap<String, BTreeSet<String>>, Vec<String>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sim");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    let stems: BTreeSet<String> = files
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let mut graph = BTreeMap::new();
    let mut firmware = Vec::new();
    for p in &files {
        let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(p).unwrap();
        let mut deps = BTreeSet::new();
        for (n, line) in text.lines().enumerate() {
            let l = line.trim_start();
            if l.starts_with("//") {
                continue;
            }
            // Inline paths (`super::fetch::parse_url(…)`) are dependencies too.
            for prefix in ["super::", "crate::sim::"] {
                for (i, _) in l.match_indices(prefix) {
                    let name: String = l[i + prefix.len()..]
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if name != stem && stems.contains(&name) {
                        deps.insert(name);
                    }
                }
            }
            let Some(path) = l
                .strip_prefix("use ")
                .or_else(|| l.strip_prefix("pub use "))
            else {
                // Paths used inline (`crate::firmware::x::y(…)`) count too.
                if l.contains("crate::firmware") {
                    firmware.push(format!("src/sim/{stem}.rs:{}: {line}", n + 1));
                }
                continue;
            };
            if path.starts_with("crate::firmware") {
                firmware.push(format!("src/sim/{stem}.rs:{}: {line}", n + 1));
            }
            let rest = path
                .strip_prefix("super::")
                .or_else(|| path.strip_prefix("crate::sim::"))
                .or_else(|| {
                    (stem == "mod")
                        .then(|| path.strip_prefix("self::"))
                        .flatten()
                })
                .or_else(|| (stem == "mod").then_some(path));
            let Some(rest) = rest else { continue };
            let first: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            // `use super::*` in a test module names the file itself.
            if first.is_empty() || first == stem {
                continue;
            }
            let target = if stems.contains(&first) {
                first
            } else {
                "mod".into()
            };
            if target != stem && (stem != "mod" || stems.contains(&target)) {
                deps.insert(target);
            }
        }
        graph.insert(stem, deps);
    }
    (graph, firmware)
}

#[test]
fn the_simulator_does_not_import_the_products_firmware_module() {
    let (_, firmware) = scan();
    assert!(
        firmware.is_empty(),
        "sim → firmware:\n{}",
        firmware.join("\n")
    );
}

#[test]
fn files_in_sim_import_one_another_without_cycles() {
    let (graph, _) = scan();
    assert!(graph.len() >= 5, "the scan found the files: {graph:?}");
    // Depth-first search for a back edge; report the cycle.
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut c = stack[i..].to_vec();
            c.push(n.to_owned());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_owned());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, g, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, &graph, &mut Vec::new(), &mut done) {
            panic!("file cycle in src/sim: {}", c.join(" → "));
        }
    }
}
