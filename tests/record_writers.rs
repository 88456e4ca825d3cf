#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Several `--record` writers on one file (issue 13, item 7): every record stays whole, the CSV
//! header is written once, and CSV text cells cannot run as spreadsheet formulas.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use plugfleet::fleet::plausibility::Verdict;
use plugfleet::protocol::{Realtime, SysInfo};
use plugfleet::record::{CSV_HEADER, ReadingRecord, RecordFormat, Recorder};
use serde_json::json;

const WRITERS: u64 = 4;
const ROUNDS: u64 = 20;
const PER_ROUND: u64 = 50;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("plugfleet-writers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join(name);
    let _ = std::fs::remove_file(&p);
    p
}

fn sysinfo(alias: &str) -> SysInfo {
    SysInfo::from_result(&json!({
        "model": "HS110(EU)", "hw_ver": "2.0", "sw_ver": "1.5.4 Build 180815 Rel.121440",
        "mac": "50:C7:BF:00:00:01", "deviceId": "8006AA", "alias": alias,
        "feature": "TIM:ENE", "relay_state": 1,
    }))
    .expect("sysinfo")
}

fn realtime(power: f64) -> Realtime {
    Realtime::from_result(&json!({
        "power": power, "voltage": 230.1, "current": 0.25, "total": 1.5, "err_code": 0
    }))
    .expect("realtime")
}

/// A record of writer `w`, number `seq`: its `unix_ms` names both. The long alias and reasons
/// make a record several hundred bytes, so unlocked buffered writers would cut records.
fn record(w: u64, seq: u64) -> ReadingRecord {
    let alias = format!("writer {w} plug, \"quoted\", {}", "x".repeat(200));
    let reasons = vec![format!("reason of {seq}: {}", "y".repeat(200))];
    ReadingRecord::with_verdict(
        w * 1_000_000 + seq,
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
        &sysinfo(&alias),
        None,
        &realtime(seq as f64),
        Verdict::Suspect,
        reasons,
    )
}

/// `WRITERS` threads, each with its own `Recorder` on `path`, start together; each writes
/// `ROUNDS` batches of `PER_ROUND` records, flushing after each batch.
fn write_concurrently(path: &Path, format: RecordFormat) {
    let start = Arc::new(Barrier::new(WRITERS as usize));
    let threads: Vec<_> = (0..WRITERS)
        .map(|w| {
            let path = path.to_owned();
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                let mut rec = Recorder::open_as(&path, format).expect("open");
                for round in 0..ROUNDS {
                    for i in 0..PER_ROUND {
                        rec.write(&record(w, round * PER_ROUND + i)).expect("write");
                    }
                    rec.flush().expect("flush");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer thread");
    }
}

/// Every writer's every record is there exactly once.
fn check_ids(ids: &[u64]) {
    let total = WRITERS * ROUNDS * PER_ROUND;
    assert_eq!(ids.len() as u64, total, "records in the file");
    let unique: HashSet<u64> = ids.iter().copied().collect();
    assert_eq!(unique.len() as u64, total, "each record once");
    for w in 0..WRITERS {
        let n = ids.iter().filter(|id| **id / 1_000_000 == w).count() as u64;
        assert_eq!(n, ROUNDS * PER_ROUND, "records of writer {w}");
    }
}

#[test]
fn concurrent_jsonl_writers_keep_every_line_whole() {
    let path = tmp("shared.jsonl");
    write_concurrently(&path, RecordFormat::JsonLines);
    let text = std::fs::read_to_string(&path).expect("read back");
    assert!(text.ends_with('\n'));
    let ids: Vec<u64> = text
        .lines()
        .enumerate()
        .map(|(n, line)| {
            let r: ReadingRecord = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("line {} is not one record ({e}): {line:.80}", n + 1));
            assert_eq!(r.verdict, Verdict::Suspect);
            r.unix_ms
        })
        .collect();
    check_ids(&ids);
}

#[test]
fn concurrent_csv_writers_write_one_header_and_whole_rows() {
    let path = tmp("shared.csv");
    write_concurrently(&path, RecordFormat::Csv);
    let text = std::fs::read_to_string(&path).expect("read back");
    let header = CSV_HEADER.join(",");
    assert_eq!(text.lines().next(), Some(header.as_str()), "header first");
    assert_eq!(
        text.lines().filter(|l| *l == header).count(),
        1,
        "exactly one header"
    );
    let mut rd = csv::Reader::from_path(&path).expect("csv");
    let ids: Vec<u64> = rd
        .records()
        .enumerate()
        .map(|(n, r)| {
            let r = r.unwrap_or_else(|e| panic!("row {} is broken: {e}", n + 1));
            assert_eq!(r.len(), CSV_HEADER.len(), "row {}", n + 1);
            assert_eq!(&r[13], "suspect", "row {}", n + 1);
            r[0].parse()
                .unwrap_or_else(|e| panic!("row {}: unix_ms {:?}: {e}", n + 1, &r[0]))
        })
        .collect();
    check_ids(&ids);
}

#[test]
fn csv_text_cells_cannot_run_as_formulas_and_numbers_stay_numbers() {
    let path = tmp("inject.csv");
    let hostile = [
        "=HYPERLINK(\"http://x\",\"y\")",
        "+1+1",
        "-2+3",
        "@SUM(1)",
        "plain",
    ];
    {
        let mut rec = Recorder::open(&path).expect("open");
        for (i, alias) in hostile.iter().enumerate() {
            let r = ReadingRecord::with_verdict(
                i as u64,
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
                &sysinfo(alias),
                None,
                &realtime(-5.25),
                Verdict::Bogus,
                vec!["-5.25 W: negative power".into(), "=1+1".into()],
            );
            rec.write(&r).expect("write");
        }
        rec.flush().expect("flush");
    }
    let mut rd = csv::Reader::from_path(&path).expect("csv");
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), hostile.len());
    for (row, alias) in rows.iter().zip(hostile) {
        let alias_cell = &row[4];
        if alias == "plain" {
            assert_eq!(alias_cell, "plain");
        } else {
            assert_eq!(alias_cell, format!("'{alias}"), "alias neutralised");
        }
        // A negative number is a number, not text.
        assert_eq!(&row[9], "-5.25", "power stays a number");
        assert_eq!(
            &row[14], "'-5.25 W: negative power; =1+1",
            "reasons neutralised"
        );
    }
    // JSON lines carry the text as it is: JSON has no formulas.
    let path = tmp("inject.jsonl");
    {
        let mut rec = Recorder::open(&path).expect("open");
        rec.write(&record(0, 1)).expect("write");
    }
    let text = std::fs::read_to_string(&path).expect("read back");
    assert!(!text.contains("\"'"), "{text:.80}");
}

/// The README lists the record fields in the CSV header's order, and a JSON line has exactly
/// those keys (plus `findings` when there are any): the file format is an interface.
#[test]
fn the_readme_lists_the_record_fields_in_header_order() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let listed = CSV_HEADER.join(" ");
    let flat = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains(&format!("`{listed}`")),
        "README.md does not list the record fields as `{listed}`"
    );
    let line = serde_json::to_value(record(7, 1)).unwrap();
    let mut keys: Vec<&str> = line
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut header = CSV_HEADER.to_vec();
    keys.sort_unstable();
    header.sort_unstable();
    assert_eq!(keys, header, "a JSON line's keys are the CSV columns");
}
