//! CPU time of the benchmark's own process, for the figures every suite prints.

/// CPU time of this process so far, in ns: the sum of every thread's `schedstat`, threads that
/// have ended included (at the last value seen of them, kept from call to call): a thread
/// that ends between two calls (a blocking-pool thread idling out after the AES key was made)
/// would otherwise take its whole CPU time out of the sum, and a delta would read 0. Linux
/// `/proc/self/task/*/schedstat`, first field: nanosecond resolution, unlike `/proc/self/stat`'s
/// 10 ms ticks, which are too coarse for 50 plugs.
pub fn cpu_ns() -> Option<u64> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static SEEN: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);
    let mut now: HashMap<String, u64> = HashMap::new();
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let task = task.ok()?;
        let Ok(s) = std::fs::read_to_string(task.path().join("schedstat")) else {
            // The thread ended between the listing and the read.
            continue;
        };
        let ns = s.split_whitespace().next()?.parse::<u64>().ok()?;
        now.insert(task.file_name().to_string_lossy().into_owned(), ns);
    }
    let mut seen = SEEN.lock().ok()?;
    let seen = seen.get_or_insert_with(HashMap::new);
    for (tid, ns) in now {
        let v = seen.entry(tid).or_insert(0);
        *v = (*v).max(ns);
    }
    Some(seen.values().sum())
}

#[cfg(test)]
mod tests {
    use super::cpu_ns;

    /// CPU time of the calling thread, in ns.
    fn own_ns() -> u64 {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_thread_that_ended_keeps_its_cpu_in_the_total() {
        let Some(before) = cpu_ns() else { return };
        // A thread that burns 5 ms of its own CPU (bounded by 5 s of wall time) and ends.
        let burnt = std::thread::spawn(|| {
            let start = std::time::Instant::now();
            let mut x = 0u64;
            while own_ns() < 5_000_000 && start.elapsed() < std::time::Duration::from_secs(5) {
                x = x.wrapping_mul(31).wrapping_add(7);
                std::hint::black_box(x);
            }
            // Seen alive once, as a measurement during a run would.
            let _ = cpu_ns();
            own_ns()
        })
        .join()
        .unwrap_or(0);
        let after = cpu_ns().unwrap_or(0);
        assert!(burnt >= 5_000_000 || burnt == 0, "{burnt}");
        assert!(
            after >= before + burnt.min(5_000_000),
            "the ended thread's CPU left the total: {before} → {after} ({burnt} burnt)"
        );
    }
}
