//! Kept connections for the poller: one [`Link`] per tracked device (its TCP connection, if
//! open, and what the last poll learnt about the device), a cap on open sockets with
//! least-recently-used eviction, and counters ([`PoolStats`]) a benchmark or a view can read.
//!
//! The pool lives in the poller's task: a poll checks its device's link out, owns it while it
//! runs (at most one poll per device is in flight) and hands it back. Every socket is owned by
//! exactly one link, so dropping a link (untrack, eviction, cancellation) closes its socket.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::net::TcpStream;

use crate::net::client::Connection;

/// Counters of the poller's connections. Shared (`Arc`), updated with relaxed atomics.
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Sockets open right now (idle in the pool or in use by a poll).
    pub open: AtomicUsize,
    /// TCP connections opened in total.
    pub connects: AtomicU64,
    /// Kept connections the device had closed, replaced by a fresh one within the same poll.
    pub reconnects: AtomicU64,
    /// Idle connections closed to stay under the cap.
    pub evictions: AtomicU64,
    /// KLAP handshakes / AES key exchanges of newer-protocol sessions.
    pub handshakes: AtomicU64,
}

impl PoolStats {
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
    pub fn connects(&self) -> u64 {
        self.connects.load(Ordering::Relaxed)
    }
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
    pub fn handshakes(&self) -> u64 {
        self.handshakes.load(Ordering::Relaxed)
    }
}

/// An open connection, counted in [`PoolStats::open`] until dropped.
pub struct Kept {
    pub conn: Connection<TcpStream>,
    stats: Arc<PoolStats>,
}

impl Kept {
    pub fn new(conn: Connection<TcpStream>, stats: &Arc<PoolStats>) -> Self {
        stats.open.fetch_add(1, Ordering::Relaxed);
        stats.connects.fetch_add(1, Ordering::Relaxed);
        Self {
            conn,
            stats: stats.clone(),
        }
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the poller keeps per device between polls.
#[derive(Default)]
pub struct Link {
    pub conn: Option<Kept>,
    /// The device was a strip last time: ask sysinfo alone, then each outlet.
    pub strip: bool,
    /// The device had no meter last time: ask sysinfo alone.
    pub no_meter: bool,
    /// The device was a bulb or light strip last time: its meter is asked at
    /// `smartlife.iot.common.emeter` in the combined request.
    pub light: bool,
    /// A strip's outlets and their `get_realtime` frames, encrypted once.
    pub outlet_frames: Vec<(String, Arc<[u8]>)>,
}

struct Slot {
    addr: SocketAddr,
    /// `None` while a poll has it.
    link: Option<Link>,
    /// Position in the LRU order while idle with an open connection.
    stamp: Option<u64>,
}

/// The links of every tracked device, with a cap on open sockets.
pub struct Pool {
    slots: HashMap<String, Slot>,
    /// Idle open connections, oldest use first.
    lru: BTreeMap<u64, String>,
    tick: u64,
    cap: usize,
    stats: Arc<PoolStats>,
}

impl Pool {
    /// A pool keeping at most `cap` sockets open (at least 1).
    pub fn new(cap: usize, stats: Arc<PoolStats>) -> Self {
        Self {
            slots: HashMap::new(),
            lru: BTreeMap::new(),
            tick: 0,
            cap: cap.max(1),
            stats,
        }
    }

    pub fn stats(&self) -> &Arc<PoolStats> {
        &self.stats
    }

    /// Idle connections held (for tests).
    pub fn idle(&self) -> usize {
        self.lru.len()
    }

    /// The link of `key` for one poll of `addr`. A link kept for another address is reset.
    /// Makes room under the cap first if the poll will have to connect.
    pub fn checkout(&mut self, key: &str, addr: SocketAddr) -> Link {
        let link = match self.slots.get_mut(key) {
            Some(slot) => {
                if let Some(stamp) = slot.stamp.take() {
                    self.lru.remove(&stamp);
                }
                let mut link = slot.link.take().unwrap_or_default();
                if slot.addr != addr {
                    link = Link::default();
                    slot.addr = addr;
                }
                link
            }
            None => {
                self.slots.insert(
                    key.to_owned(),
                    Slot {
                        addr,
                        link: None,
                        stamp: None,
                    },
                );
                Link::default()
            }
        };
        if link.conn.is_none() {
            self.evict_to(self.cap.saturating_sub(1));
        }
        link
    }

    /// Hands a link back after a poll. A device untracked meanwhile gets its link dropped.
    pub fn checkin(&mut self, key: &str, link: Link) {
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        let open = link.conn.is_some();
        slot.link = Some(link);
        if open {
            self.tick += 1;
            slot.stamp = Some(self.tick);
            self.lru.insert(self.tick, key.to_owned());
        }
        self.evict_to(self.cap);
    }

    /// Forgets a device; its connection (if idle) is closed now, else when its poll ends.
    pub fn remove(&mut self, key: &str) {
        if let Some(slot) = self.slots.remove(key) {
            if let Some(stamp) = slot.stamp {
                self.lru.remove(&stamp);
            }
        }
    }

    /// Closes idle connections, least recently used first, until at most `max` are open.
    fn evict_to(&mut self, max: usize) {
        while self.stats.open() > max {
            let Some((_, key)) = self.lru.pop_first() else {
                return;
            };
            if let Some(slot) = self.slots.get_mut(&key) {
                slot.stamp = None;
                if let Some(link) = slot.link.as_mut() {
                    link.conn = None;
                    self.stats.evictions.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}
