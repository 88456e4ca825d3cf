#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The demo writes nothing into the user's folders (issue 14, item 3). The real binary runs
//! `plugfleet demo` in a pseudo-terminal with HOME, every XDG_* folder, PLUGFLEET_LOG_DIR and
//! TMPDIR pointed into a scratch directory; a firmware update (`U`) and a recording (`w`) are
//! made; after `q`, every file written is inside the one demo folder the exit message names,
//! and that folder holds the log, the journal and the recording.

#[path = "common/pty.rs"]
mod pty;

use std::path::{Path, PathBuf};

use pty::{TempDir, Tui};

/// Every file and folder below `dir` (not `dir` itself), sorted.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The count in the status bar's `● REC path (N)`, if recording.
fn rec_count(screen: &str) -> Option<u64> {
    let line = screen.lines().find(|l| l.contains("● REC "))?;
    let open = line.rfind('(')?;
    let close = open + line[open..].find(')')?;
    line[open + 1..close].trim().parse().ok()
}

#[test]
fn the_demo_writes_only_into_its_own_temporary_folder_and_says_where() {
    let scratch =
        TempDir(std::env::temp_dir().join(format!("pf-demo-files-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&scratch.0);
    let home = scratch.0.join("home");
    let tmp = scratch.0.join("tmp");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&tmp).unwrap();
    let (data, state, config, cache, logs) = (
        home.join(".local/share"),
        home.join(".local/state"),
        home.join(".config"),
        home.join(".cache"),
        home.join("logs"),
    );
    let env: Vec<(&str, &Path)> = vec![
        ("HOME", &home),
        ("XDG_DATA_HOME", &data),
        ("XDG_STATE_HOME", &state),
        ("XDG_CONFIG_HOME", &config),
        ("XDG_CACHE_HOME", &cache),
        ("PLUGFLEET_LOG_DIR", &logs),
        ("TMPDIR", &tmp),
    ];
    // The program starts in HOME (the pty's default working directory), so a file written to
    // the current directory would show up there too.
    let mut tui = Tui::start_sized(&["demo", "--interval", "1"], 30, 180, &env);
    tui.wait_for("the whole demo fleet", |s| {
        s.contains("16 devices") && s.contains("HS110(EU)") && s.contains("HS100(UK)")
    });

    // The demo folder is the only `plugfleet-demo-*` entry of TMPDIR.
    let demo_dirs: Vec<PathBuf> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(demo_dirs.len(), 1, "{demo_dirs:?}");
    let folder = demo_dirs[0].clone();
    let name = folder.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("plugfleet-demo-"), "{name}");

    // A firmware update of the first plug (HS110(EU) hw 4.0, 1.0.4 → 1.0.5).
    tui.send("g ");
    tui.wait_for("one mark", |s| s.contains("1 marked"));
    tui.send("U");
    tui.wait_for("the picker in the demo images", |s| {
        s.contains("pick an image") && s.contains("hs110v4_eu_1.0.5_Build_200826_Rel.090312.bin")
    });
    tui.send(".");
    tui.wait_for("the plan", |s| {
        s.contains("Update firmware of 1 of 1 plug(s)?")
    });
    tui.send("y");
    tui.wait_for("the plug updated and verified", |s| {
        s.contains("✓ updated") && s.contains("finished")
    });
    // Record until some readings are written, and stop.
    tui.send("w");
    tui.wait_for("readings recorded", |s| rec_count(s).is_some_and(|n| n > 0));
    let rec_line = tui
        .screen()
        .lines()
        .find(|l| l.contains("● REC "))
        .unwrap()
        .to_owned();
    assert!(
        rec_line.contains(&name),
        "records into the demo folder: {rec_line}"
    );
    tui.send("w");
    tui.wait_for("recording stopped", |s| s.contains("recording stopped"));
    tui.send("q");
    let status = tui.wait_exit();
    assert!(status.success(), "exit status {status:?}");

    // The exit message names the folder.
    let screen = tui.screen();
    assert!(
        screen.contains("plugfleet demo: its files") && screen.contains(&name),
        "{screen}"
    );

    // Nothing in HOME (data, state, config, cache, the log dir, the working directory), nothing
    // in the harness's own folder, nothing in TMPDIR outside the demo folder.
    assert_eq!(walk(&home), Vec::<PathBuf>::new(), "written into HOME");
    assert_eq!(
        walk(tui.dir()),
        vec![tui.dir().join("tmp")],
        "written into the harness's folder"
    );
    let written = walk(&tmp);
    let outside: Vec<&PathBuf> = written.iter().filter(|p| !p.starts_with(&folder)).collect();
    assert!(
        outside.is_empty(),
        "written outside the demo folder: {outside:?}"
    );

    // The demo folder holds the log, the journal with the update, and the recording; the demo
    // images are gone.
    let log = std::fs::read_to_string(folder.join("plugfleet.log")).expect("the log");
    assert!(log.contains("demo fleet started"), "{log}");
    let journal = std::fs::read_to_string(folder.join("journal.jsonl")).expect("the journal");
    assert!(journal.contains("\"stage\":\"done\""), "{journal}");
    let readings: Vec<&PathBuf> = written
        .iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("readings-"))
        })
        .collect();
    assert_eq!(readings.len(), 1, "{written:?}");
    assert_eq!(readings[0].parent(), Some(folder.as_path()));
    let text = std::fs::read_to_string(readings[0]).unwrap();
    assert!(
        text.lines().count() > 0 && text.contains("\"ip\""),
        "{text}"
    );
    assert!(
        !folder.join("firmware").exists(),
        "the demo images are removed"
    );
}
