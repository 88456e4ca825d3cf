#![allow(clippy::unwrap_used, clippy::expect_used)]

//! The architecture test: layers that point one way, and no cycle between files.
//!
//! Reads every `src/**/*.rs`, collects what each file imports from the crate (`use crate::…`,
//! `pub use`, grouped and multi-line `use crate::{a::{b, c}, d}`, `use super::…`/`self::…`
//! resolved against the file's module path, and inline `crate::x::y` / `super::x` paths in
//! code), and fails on:
//!
//! * an import from module A to module B unless B is A or B's layer (in [`LAYERS`]) is strictly
//!   lower — `cli` may import `cmd`, nothing else but `main.rs`, `cli` and `cmd` imports `cmd`,
//!   and `cmd` never imports `cli`;
//! * `fleet` importing `net` (the fleet model is pure);
//! * a module with no layer in [`LAYERS`];
//! * any cycle between files (strongly connected components of the file-level import graph,
//!   with imports through a `pub use` re-export followed to the file that defines the name).
//!
//! Every failure names the file, the line and the rule. [`PENDING`] lists edges other branches
//! are removing; the coordinator empties it after merging them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, lowest first. An import from a file in module A to module B is allowed iff B is
/// A itself or B's layer is strictly lower (plus the extra rules in [`extra_rule`]).
/// `main.rs` (the binary) and `lib.rs` (the crate root) may import anything.
const LAYERS: &[(&str, u8)] = &[
    // 0: the one sanitiser for device text, unit formatters and glyphs — a leaf. (The brief's
    // layer 0 held protocol and text side by side; protocol's replies are sanitised with
    // text, so text sits strictly below it.)
    ("text", 0),
    // 1: pure wire format and discovery results.
    ("protocol", 1),
    // 2: what the user configured, where logs go.
    ("config", 2),
    ("logging", 2),
    // 3: sockets: the device client, discovery, the poller.
    ("net", 3),
    // 4: the pure fleet model (never imports net), local names by MAC.
    ("fleet", 4),
    ("identity", 4),
    // 5: firmware images, update state machine, runner and file server; the simulated plugs.
    ("firmware", 5),
    ("sim", 5),
    // 6: the pure app: state + update.
    ("app", 6),
    // 7: views of the model and their writer/server.
    ("record", 7),
    ("metrics", 7),
    // 8: turns commands into tasks, owns the event loop.
    ("runtime", 8),
    // 9: drawing.
    ("ui", 9),
    // 10: benchmarks.
    ("bench", 10),
    // 11: the commands and the command line.
    ("cmd", 11),
    ("cli", 11),
];

/// Edges other helpers are removing on their branches: (file, imported module). An import from
/// `file` whose path starts with `module` is neither a violation nor part of the cycle graph.
/// The coordinator empties this list after merging those branches.
const PENDING: &[(&str, &str)] = &[];

fn layer_of(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// Files that may import anything: the binary and the crate root.
fn is_root_file(rel: &str) -> bool {
    rel == "src/main.rs" || rel == "src/lib.rs"
}

// ---------------------------------------------------------------------------------------------
// Reading the source: comments and literals blanked, then tokens with their line.

/// `src` with comments, string and char literals replaced by spaces (newlines kept), so that
/// what remains is code and the byte offsets and lines are unchanged.
fn strip(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |ch: char| if ch == '\n' { '\n' } else { ' ' };
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        if ch == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if ch == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(c[i]));
                    i += 1;
                }
            }
        } else if ch == 'r'
            && (i == 0 || !ident(c[i - 1]) || (c[i - 1] == 'b' && (i < 2 || !ident(c[i - 2]))))
            && matches!(next, Some('"') | Some('#'))
        {
            // A raw string r"…", r#"…"#, br"…" — or an identifier starting with r followed by #.
            let mut j = i + 1;
            let mut hashes = 0;
            while c.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if c.get(j) != Some(&'"') {
                out.push(ch);
                i += 1;
                continue;
            }
            for _ in i..=j {
                out.push(' ');
            }
            i = j + 1;
            while i < c.len() {
                if c[i] == '"' && (0..hashes).all(|k| c.get(i + 1 + k) == Some(&'#')) {
                    for _ in 0..=hashes {
                        out.push(' ');
                    }
                    i += 1 + hashes;
                    break;
                }
                out.push(blank(c[i]));
                i += 1;
            }
        } else if ch == '"' {
            out.push(' ');
            i += 1;
            while i < c.len() {
                if c[i] == '\\' {
                    out.push(' ');
                    if let Some(&e) = c.get(i + 1) {
                        out.push(blank(e));
                    }
                    i += 2;
                } else if c[i] == '"' {
                    out.push(' ');
                    i += 1;
                    break;
                } else {
                    out.push(blank(c[i]));
                    i += 1;
                }
            }
        } else if ch == '\'' {
            // A char literal ('a', '\n', '\u{1F}') or a lifetime ('a, 'static).
            if next == Some('\\') {
                let mut j = i + 3;
                while j < c.len() && c[j] != '\'' && c[j] != '\n' {
                    j += 1;
                }
                for _ in i..=j.min(c.len() - 1) {
                    out.push(' ');
                }
                i = j + 1;
            } else if c.get(i + 2) == Some(&'\'') {
                out.push_str("   ");
                i += 3;
            } else {
                out.push(ch);
                i += 1;
            }
        } else {
            out.push(ch);
            i += 1;
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    Path,
    Punct(char),
}

fn tokens(code: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch.is_alphanumeric() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            // Raw identifiers: r#type.
            if word == "r" && c.get(i) == Some(&'#') {
                i += 1;
                continue;
            }
            out.push((Tok::Ident(word), line));
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            out.push((Tok::Path, line));
            i += 2;
        } else {
            out.push((Tok::Punct(ch), line));
            i += 1;
        }
    }
    out
}

/// One thing a file takes from the crate.
#[derive(Debug, Clone, PartialEq)]
struct Import {
    line: usize,
    /// Absolute path inside the crate, without `crate` (`["net", "discovery", "Sighting"]`).
    path: Vec<String>,
    /// The name it is bound to when this is a top-level `pub use` (a re-export), else None.
    reexport_as: Option<String>,
    glob: bool,
    /// Inside a `#[cfg(test)]` module: counts for the layer rules, not for the cycle graph (a
    /// test module may use a fixture that uses the module under test).
    test: bool,
}

/// The module path of a file: `src/net/discovery/mod.rs` → `net::discovery`,
/// `src/fleet/history.rs` → `fleet::history`, `src/lib.rs` → the root.
fn file_module(rel: &str) -> Vec<String> {
    let p = rel.strip_prefix("src/").unwrap_or(rel);
    let p = p.strip_suffix(".rs").unwrap_or(p);
    let mut segs: Vec<String> = p.split('/').map(str::to_owned).collect();
    if matches!(
        segs.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        segs.pop();
    }
    segs
}

fn ident(t: Option<&(Tok, usize)>) -> Option<&str> {
    match t {
        Some((Tok::Ident(s), _)) => Some(s),
        _ => None,
    }
}

/// Resolves the first segments of a written path (`crate`, `super`, `self`, a child module
/// declared in this file) against `here` (the module the code is in). None for paths that do
/// not start inside the crate (std, tokio, a local item…).
fn resolve_start(
    written: &[String],
    here: &[String],
    children: &BTreeSet<String>,
) -> Option<Vec<String>> {
    let first = written.first()?;
    match first.as_str() {
        "crate" => Some(written[1..].to_vec()),
        "self" => {
            let mut p = here.to_vec();
            p.extend_from_slice(&written[1..]);
            Some(p)
        }
        "super" => {
            let mut p = here.to_vec();
            let mut rest = written;
            while rest.first().map(String::as_str) == Some("super") {
                p.pop()?;
                rest = &rest[1..];
            }
            p.extend_from_slice(rest);
            Some(p)
        }
        name if children.contains(name) && written.len() > 1 => {
            let mut p = here.to_vec();
            p.extend_from_slice(written);
            Some(p)
        }
        _ => None,
    }
}

struct UseLeaf {
    written: Vec<String>,
    line: usize,
    alias: Option<String>,
    glob: bool,
}

/// Parses one use tree starting at `toks[*i]` with `prefix` already written; advances `*i`
/// past it (not past the `,`/`}`/`;` that follows).
fn parse_tree(toks: &[(Tok, usize)], i: &mut usize, prefix: &[String], out: &mut Vec<UseLeaf>) {
    let mut segs = prefix.to_vec();
    let mut line = toks.get(*i).map_or(0, |t| t.1);
    loop {
        match toks.get(*i) {
            Some((Tok::Path, _)) => *i += 1, // leading `::`, or after a segment
            Some((Tok::Ident(s), l)) => {
                segs.push(s.clone());
                line = *l;
                *i += 1;
                if toks.get(*i).map(|t| &t.0) == Some(&Tok::Path) {
                    *i += 1;
                    continue;
                }
                let mut alias = None;
                if ident(toks.get(*i)) == Some("as") {
                    alias = ident(toks.get(*i + 1)).map(str::to_owned);
                    *i += 2;
                }
                if segs.last().map(String::as_str) == Some("self") {
                    segs.pop();
                }
                out.push(UseLeaf {
                    written: segs,
                    line,
                    alias,
                    glob: false,
                });
                return;
            }
            Some((Tok::Punct('*'), l)) => {
                *i += 1;
                out.push(UseLeaf {
                    written: segs,
                    line: *l,
                    alias: None,
                    glob: true,
                });
                return;
            }
            Some((Tok::Punct('{'), _)) => {
                *i += 1;
                loop {
                    match toks.get(*i) {
                        None => return,
                        Some((Tok::Punct('}'), _)) => {
                            *i += 1;
                            return;
                        }
                        Some((Tok::Punct(','), _)) => *i += 1,
                        Some(_) => {
                            let before = *i;
                            parse_tree(toks, i, &segs, out);
                            if *i == before {
                                *i += 1; // never loop on something unexpected
                            }
                        }
                    }
                }
            }
            _ => {
                let _ = line;
                return;
            }
        }
    }
}

/// True when the `mod` at `toks[i]` is preceded by `#[cfg(test)]` (perhaps with `pub`).
fn cfg_test_before(toks: &[(Tok, usize)], i: usize) -> bool {
    let mut j = i;
    if j >= 1 && ident(toks.get(j - 1)) == Some("pub") {
        j -= 1;
    }
    let want = [
        Tok::Punct('#'),
        Tok::Punct('['),
        Tok::Ident("cfg".into()),
        Tok::Punct('('),
        Tok::Ident("test".into()),
        Tok::Punct(')'),
        Tok::Punct(']'),
    ];
    j >= want.len() && toks[j - want.len()..j].iter().map(|t| &t.0).eq(want.iter())
}

/// Everything `src` (the file `rel`) takes from the crate, with absolute paths.
fn imports(rel: &str, src: &str) -> Vec<Import> {
    let toks = tokens(&strip(src));
    let file_mod = file_module(rel);
    // Child modules declared in this file (`mod engine;`, `mod tests {`).
    let mut children = BTreeSet::new();
    for w in toks.windows(2) {
        if let (Tok::Ident(m), Tok::Ident(name)) = (&w[0].0, &w[1].0)
            && m == "mod"
        {
            children.insert(name.clone());
        }
    }
    let mut out = Vec::new();
    // Inline modules (`mod tests { … }`) change what `super` and `self` mean.
    let mut inline: Vec<(String, usize, bool)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        let here = || {
            let mut h = file_mod.clone();
            h.extend(inline.iter().map(|(n, _, _)| n.clone()));
            h
        };
        match &toks[i].0 {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d, _)| *d == depth) {
                    inline.pop();
                }
            }
            Tok::Ident(m)
                if m == "mod"
                    && ident(toks.get(i + 1)).is_some()
                    && toks.get(i + 2).map(|t| &t.0) == Some(&Tok::Punct('{')) =>
            {
                if let Some(name) = ident(toks.get(i + 1)) {
                    let test = cfg_test_before(&toks, i) || inline.iter().any(|m| m.2);
                    inline.push((name.to_owned(), depth, test));
                }
                i += 2;
                continue;
            }
            Tok::Ident(u)
                if u == "use"
                    && matches!(
                        toks.get(i + 1).map(|t| &t.0),
                        Some(Tok::Ident(_) | Tok::Path | Tok::Punct('{'))
                    ) =>
            {
                // `pub use`, `pub(crate) use` …: a re-export when at the file's top level.
                let public = (i >= 1 && ident(toks.get(i - 1)) == Some("pub"))
                    || (i >= 1
                        && toks[i - 1].0 == Tok::Punct(')')
                        && toks[..i - 1]
                            .iter()
                            .rev()
                            .take(5)
                            .any(|t| t.0 == Tok::Ident("pub".into())));
                let here = here();
                let top = inline.is_empty();
                let test = inline.iter().any(|m| m.2);
                i += 1;
                let mut leaves = Vec::new();
                parse_tree(&toks, &mut i, &[], &mut leaves);
                for leaf in leaves {
                    let Some(path) = resolve_start(&leaf.written, &here, &children) else {
                        continue;
                    };
                    let reexport_as = (public && top && !leaf.glob)
                        .then(|| leaf.alias.clone().or_else(|| path.last().cloned()))
                        .flatten()
                        .filter(|n| n != "_");
                    out.push(Import {
                        line: leaf.line,
                        path,
                        reexport_as,
                        glob: leaf.glob,
                        test,
                    });
                }
                continue;
            }
            Tok::Ident(start)
                if (matches!(start.as_str(), "crate" | "super" | "self")
                    || children.contains(start))
                    && toks.get(i + 1).map(|t| &t.0) == Some(&Tok::Path)
                    && !(i >= 1 && matches!(toks[i - 1].0, Tok::Path | Tok::Punct('$')))
                    && !(i >= 1 && ident(toks.get(i - 1)) == Some("in")) =>
            {
                // An inline path in code: crate::a::b::c(…), super::x::y, child::f().
                let line = toks[i].1;
                let mut written = vec![start.clone()];
                let mut j = i + 1;
                while toks.get(j).map(|t| &t.0) == Some(&Tok::Path) {
                    match ident(toks.get(j + 1)) {
                        Some(s) => {
                            written.push(s.to_owned());
                            j += 2;
                        }
                        None => break,
                    }
                }
                if let Some(path) = resolve_start(&written, &here(), &children) {
                    let test = inline.iter().any(|m| m.2);
                    out.push(Import {
                        line,
                        path,
                        reexport_as: None,
                        glob: false,
                        test,
                    });
                }
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The crate: files, their module paths, what they import; the rules.

struct Crate {
    /// file (`src/…`) → what it imports.
    files: BTreeMap<String, Vec<Import>>,
    /// module path → file.
    modules: BTreeMap<Vec<String>, String>,
}

impl Crate {
    fn new(sources: &[(String, String)]) -> Self {
        let mut files = BTreeMap::new();
        let mut modules = BTreeMap::new();
        for (rel, text) in sources {
            if rel != "src/main.rs" {
                modules.insert(file_module(rel), rel.clone());
            }
            files.insert(rel.clone(), imports(rel, text));
        }
        Crate { files, modules }
    }

    /// The file that defines what `path` names: the longest module prefix that is a file, then
    /// through that file's `pub use` re-exports (bounded).
    fn target_file(&self, path: &[String]) -> Option<String> {
        let mut path = path.to_vec();
        for _ in 0..8 {
            let n = (1..=path.len())
                .rev()
                .find(|n| self.modules.contains_key(&path[..*n]))?;
            let file = self.modules.get(&path[..n])?;
            let Some(name) = path.get(n) else {
                return Some(file.clone());
            };
            let via = self.files.get(file).and_then(|imps| {
                imps.iter()
                    .find(|im| im.reexport_as.as_deref() == Some(name.as_str()))
            });
            match via {
                Some(im) if im.path != path[..=n] => {
                    let mut next = im.path.clone();
                    next.extend_from_slice(&path[n + 1..]);
                    path = next;
                }
                _ => return Some(file.clone()),
            }
        }
        None
    }
}

fn top_module(rel: &str) -> String {
    file_module(rel).first().cloned().unwrap_or_default()
}

fn is_pending(rel: &str, path: &[String]) -> Option<usize> {
    let joined = path.join("::");
    PENDING
        .iter()
        .position(|(f, m)| *f == rel && (joined == *m || joined.starts_with(&format!("{m}::"))))
}

/// The extra rules beyond the layer order, as a message when broken.
fn extra_rule(from: &str, to: &str) -> Option<&'static str> {
    match (from, to) {
        ("fleet", "net") => Some("fleet must not import net (the fleet model is pure)"),
        ("cmd", "cli") => Some("cmd must not import cli (main passes what cmd needs)"),
        (f, "cli" | "cmd") if f != "cli" && f != "cmd" => {
            Some("nothing but main.rs, cli.rs and cmd/ imports cli or cmd")
        }
        _ => None,
    }
}

struct Report {
    violations: Vec<String>,
    cycles: Vec<Vec<String>>,
    pending_used: BTreeSet<usize>,
}

fn check(krate: &Crate) -> Report {
    let mut violations = Vec::new();
    let mut pending_used = BTreeSet::new();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut unknown = BTreeSet::new();
    for (rel, imps) in &krate.files {
        graph.entry(rel.clone()).or_default();
        let from = top_module(rel);
        let root = is_root_file(rel);
        if !root && layer_of(&from).is_none() && unknown.insert(from.clone()) {
            violations.push(format!(
                "{rel}: module `{from}` has no layer in LAYERS (add it)"
            ));
        }
        for im in imps {
            let Some(to) = im.path.first() else { continue };
            if let Some(p) = is_pending(rel, &im.path) {
                pending_used.insert(p);
                continue;
            }
            if let Some(target) = krate.target_file(&im.path)
                && target != *rel
                && !im.test
            {
                graph.entry(rel.clone()).or_default().insert(target);
            }
            if root {
                continue;
            }
            let what = im.path.join("::");
            if let Some(rule) = extra_rule(&from, to) {
                violations.push(format!("{rel}:{}: imports {what}: {rule}", im.line));
                continue;
            }
            if *to == from || (from == "cli" && to == "cmd") {
                continue;
            }
            match (layer_of(&from), layer_of(to)) {
                (Some(a), Some(b)) if b < a => {}
                (Some(a), Some(b)) => violations.push(format!(
                    "{rel}:{}: {from} (layer {a}) imports {what} ({to} is layer {b}): imports \
                     must point to a strictly lower layer",
                    im.line
                )),
                (_, None) => {
                    if krate.modules.contains_key(&im.path[..1]) && unknown.insert(to.clone()) {
                        violations.push(format!(
                            "{rel}:{}: imports {what}: module `{to}` has no layer in LAYERS",
                            im.line
                        ));
                    }
                }
                (None, _) => {}
            }
        }
    }
    Report {
        violations,
        cycles: cycles(&graph),
        pending_used,
    }
}

/// The strongly connected components with more than one file (Tarjan), each sorted.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            self.on_stack.insert(v);
            let graph = self.graph;
            for w in graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    comp.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.sort();
                    self.out.push(comp);
                }
            }
        }
    }
    let mut t = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out.sort();
    t.out
}

fn read_src(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            read_src(&p, root, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let rel = p
                .strip_prefix(root)
                .expect("under the crate")
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{rel}: {e}"));
            out.push((rel, text));
        }
    }
}

#[test]
fn layers_point_one_way_and_files_have_no_cycles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = Vec::new();
    read_src(&root.join("src"), root, &mut sources);
    assert!(
        sources.len() > 20,
        "found only {} files under src/",
        sources.len()
    );
    let krate = Crate::new(&sources);
    let edges: usize = krate.files.values().map(Vec::len).sum();
    assert!(
        edges > 200,
        "found only {edges} imports: is the parser broken?"
    );
    let report = check(&krate);
    for (i, (f, m)) in PENDING.iter().enumerate() {
        if !report.pending_used.contains(&i) {
            eprintln!("note: PENDING ({f:?}, {m:?}) is no longer needed; remove it");
        }
    }
    let mut msg = String::new();
    for v in &report.violations {
        msg.push_str(v);
        msg.push('\n');
    }
    for c in &report.cycles {
        msg.push_str(&format!(
            "cycle between {} files: {}\n",
            c.len(),
            c.join(" ↔ ")
        ));
    }
    assert!(
        msg.is_empty(),
        "{} layer violation(s), {} cycle(s):\n{msg}",
        report.violations.len(),
        report.cycles.len()
    );
}

// ---------------------------------------------------------------------------------------------
// The checker's own tests: it must not pass silently.

fn paths(rel: &str, src: &str) -> Vec<String> {
    imports(rel, src)
        .into_iter()
        .map(|i| format!("{}:{}", i.line, i.path.join("::")))
        .collect()
}

#[test]
fn grouped_multi_line_use_expands_to_every_leaf_with_its_line() {
    let src = "use std::io;\nuse crate::{\n    a::{b, c::{self, D}},\n    e as f,\n    g::*,\n};\n";
    assert_eq!(
        paths("src/x/y.rs", src),
        ["3:a::b", "3:a::c", "3:a::c::D", "4:e", "5:g"],
        "std is not the crate; `self` names the module; the glob names g"
    );
}

#[test]
fn super_and_self_resolve_against_the_files_module_path() {
    assert_eq!(
        paths("src/app/state.rs", "use super::event::Event;"),
        ["1:app::event::Event"]
    );
    assert_eq!(
        paths("src/net/discovery/mod.rs", "use super::client::Client;"),
        ["1:net::client::Client"]
    );
    assert_eq!(
        paths("src/net/discovery/engine.rs", "use super::super::poller;"),
        ["1:net::poller"]
    );
    assert_eq!(
        paths("src/ui/mod.rs", "use self::table::draw;"),
        ["1:ui::table::draw"]
    );
    // Inside an inline module `super` is the file's own module.
    let src = "fn f() {}\n#[cfg(test)]\nmod tests {\n    use super::*;\n    use super::super::x::Y;\n}\nuse super::z;\n";
    assert_eq!(
        paths("src/cmd/args.rs", src),
        ["4:cmd::args", "5:cmd::x::Y", "7:cmd::z"]
    );
    // A child module declared in the file.
    assert_eq!(
        paths("src/net/discovery/mod.rs", "mod engine;\nuse engine::run;"),
        ["2:net::discovery::engine::run"]
    );
}

#[test]
fn inline_paths_count_but_comments_strings_and_macros_do_not() {
    let src = r####"
//! See [`crate::cli::Cli`].
/* crate::ui::render /* nested */ crate::ui::x */
fn f() {
    let s = "crate::cmd::status";
    let r = r#"crate::cmd::x "quoted" "#;
    let c = '"'; let l: &'static str = ""; let q = '\''; let u = '\u{1F}';
    crate::metrics::serve(1);
    let t = std::crate::nope;
    $crate::macro_path::x;
    #[arg(value_parser = crate::cmd::args::parse_seconds)]
    super::firmware::listed();
}
"####;
    assert_eq!(
        paths("src/app/runtime.rs", src),
        [
            "8:metrics::serve",
            "11:cmd::args::parse_seconds",
            "12:app::firmware::listed"
        ]
    );
}

fn krate(files: &[(&str, &str)]) -> Crate {
    let v: Vec<(String, String)> = files
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    Crate::new(&v)
}

#[test]
fn upward_and_forbidden_imports_are_named_with_file_line_and_rule() {
    let k = krate(&[
        (
            "src/lib.rs",
            "pub mod net; pub mod cli; pub mod fleet; pub mod cmd;",
        ),
        ("src/net/mod.rs", "pub mod discovery;"),
        (
            "src/net/discovery.rs",
            "\nuse crate::{\n    protocol::SysInfo,\n    cli::TargetArgs,\n};",
        ),
        ("src/fleet/mod.rs", "use crate::net::Client;"),
        ("src/cmd/mod.rs", "fn f() { crate::cli::Cli::parse(); }"),
        ("src/cli.rs", "use crate::cmd::tui::TuiArgs;"),
        ("src/main.rs", "use plugfleet::cli::Cli;"),
        ("src/protocol/mod.rs", ""),
    ]);
    let r = check(&k);
    assert_eq!(r.violations.len(), 3, "{:#?}", r.violations);
    // The import cmd → cli that breaks a rule also closes a cycle.
    assert_eq!(r.cycles, [vec!["src/cli.rs", "src/cmd/mod.rs"]]);
    assert!(
        r.violations[0]
            .starts_with("src/cmd/mod.rs:1: imports cli::Cli::parse: cmd must not import cli"),
        "{}",
        r.violations[0]
    );
    assert!(
        r.violations[1]
            .starts_with("src/fleet/mod.rs:1: imports net::Client: fleet must not import net"),
        "{}",
        r.violations[1]
    );
    assert!(
        r.violations[2].starts_with("src/net/discovery.rs:4: imports cli::TargetArgs"),
        "{}",
        r.violations[2]
    );
}

#[test]
fn same_layer_and_unknown_modules_fail() {
    let k = krate(&[
        ("src/record.rs", "use crate::metrics::Snapshot;"),
        ("src/metrics.rs", ""),
        ("src/gadget.rs", "use crate::protocol::X;"),
        ("src/protocol/mod.rs", ""),
    ]);
    let r = check(&k);
    assert!(
        r.violations
            .iter()
            .any(|v| v.contains("src/gadget.rs: module `gadget` has no layer")),
        "{:#?}",
        r.violations
    );
    assert!(
        r.violations.iter().any(|v| v.starts_with(
            "src/record.rs:1: record (layer 7) imports metrics::Snapshot (metrics is layer 7)"
        )),
        "{:#?}",
        r.violations
    );
}

fn k_src_e() -> &'static str {
    "mod inner;\nfn f() { inner::g(); }\n#[cfg(test)]\nmod tests {\n    use crate::fleet::f::F;\n}"
}

#[test]
fn cycles_between_files_are_found_through_reexports() {
    let k = krate(&[
        (
            "src/fleet/mod.rs",
            "pub mod a; pub mod b; pub mod c;\npub use a::Alpha;",
        ),
        // b → a through the re-export in mod.rs; a → c → b.
        ("src/fleet/a.rs", "use super::c::Gamma;\npub struct Alpha;"),
        ("src/fleet/b.rs", "use crate::fleet::Alpha;"),
        ("src/fleet/c.rs", "use super::b;"),
        ("src/fleet/d.rs", "use super::Alpha;"),
        // A test module may use what uses it: not a cycle. Inline child paths count.
        (
            "src/fleet/e.rs",
            "mod inner;\nfn f() { inner::g(); }\n#[cfg(test)]\nmod tests {\n    use crate::fleet::f::F;\n}",
        ),
        ("src/fleet/e/inner.rs", "use super::super::Alpha;"),
        ("src/fleet/f.rs", "use super::e;"),
    ]);
    assert_eq!(
        imports("src/fleet/e.rs", k_src_e())
            .iter()
            .map(|i| (i.path.join("::"), i.test))
            .collect::<Vec<_>>(),
        [
            ("fleet::e::inner::g".to_owned(), false),
            ("fleet::f::F".to_owned(), true)
        ]
    );
    let r = check(&k);
    assert!(r.violations.is_empty(), "{:#?}", r.violations);
    assert_eq!(
        r.cycles,
        [vec!["src/fleet/a.rs", "src/fleet/b.rs", "src/fleet/c.rs"]]
    );
}
