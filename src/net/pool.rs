//! Kept connections for the poller: one [`Link`] per tracked device (its TCP connection, if
//! open, and what the last poll learnt about the device), a cap on open sockets with
//! least-recently-used eviction, and counters ([`PoolStats`]) a benchmark or a view can read.
//!
//! The pool lives in the poller's task: a poll checks its device's link out, owns it while it
//! runs (at most one poll per device is in flight) and hands it back. Every socket is owned by
//! exactly one link, so dropping a link (untrack, eviction, cancellation) closes its socket.

use std::collections::BTreeMap;
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

/// A tracked device's place in the poller's schedule (`poller::Schedule`) and in the [`Pool`]: an index into
/// the schedule's slots and the generation of that slot, so a device untracked while its poll
/// ran is not mistaken for another one tracked later into the same slot. Copy, hashed by
/// nobody: the hot path never hashes or compares a device id string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceId {
    idx: u32,
    generation: u32,
}

impl DeviceId {
    pub fn new(idx: u32, generation: u32) -> Self {
        Self { idx, generation }
    }

    /// The slot index (dense from 0, reused after an untrack).
    pub fn index(self) -> usize {
        self.idx as usize
    }

    /// How many devices had the slot before.
    pub fn generation(self) -> u32 {
        self.generation
    }
}

struct Slot {
    id: DeviceId,
    addr: SocketAddr,
    /// `None` while a poll has it.
    link: Option<Link>,
    /// Position in the LRU order while idle with an open connection.
    stamp: Option<u64>,
}

/// The links of every tracked device, with a cap on open sockets. Addressed by the
/// schedule's [`DeviceId`]s (a slot index and its generation): no key is hashed, compared or
/// copied when a poll starts or ends.
pub struct Pool {
    slots: Vec<Option<Slot>>,
    /// Idle open connections, oldest use first.
    lru: BTreeMap<u64, DeviceId>,
    tick: u64,
    cap: usize,
    stats: Arc<PoolStats>,
}

impl Pool {
    /// A pool keeping at most `cap` sockets open (at least 1).
    pub fn new(cap: usize, stats: Arc<PoolStats>) -> Self {
        Self {
            slots: Vec::new(),
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

    fn slot_mut(&mut self, id: DeviceId) -> Option<&mut Slot> {
        self.slots
            .get_mut(id.index())?
            .as_mut()
            .filter(|s| s.id == id)
    }

    /// The link of `id` for one poll of `addr`. A link kept for another address (or for the
    /// device that had the slot before) is reset. Makes room under the cap first if the poll
    /// will have to connect.
    pub fn checkout(&mut self, id: DeviceId, addr: SocketAddr) -> Link {
        let link = match self.slot_mut(id) {
            Some(slot) => {
                let stamp = slot.stamp.take();
                let mut link = slot.link.take().unwrap_or_default();
                if slot.addr != addr {
                    link = Link::default();
                    slot.addr = addr;
                }
                if let Some(stamp) = stamp {
                    self.lru.remove(&stamp);
                }
                link
            }
            None => {
                self.remove(id);
                if self.slots.len() <= id.index() {
                    self.slots.resize_with(id.index() + 1, || None);
                }
                self.slots[id.index()] = Some(Slot {
                    id,
                    addr,
                    link: None,
                    stamp: None,
                });
                Link::default()
            }
        };
        if link.conn.is_none() {
            self.evict_to(self.cap.saturating_sub(1));
        }
        link
    }

    /// Hands a link back after a poll. A device untracked meanwhile gets its link dropped.
    pub fn checkin(&mut self, id: DeviceId, link: Link) {
        self.tick += 1;
        let tick = self.tick;
        let Some(slot) = self.slot_mut(id) else {
            return;
        };
        let open = link.conn.is_some();
        slot.link = Some(link);
        if open {
            slot.stamp = Some(tick);
            self.lru.insert(tick, id);
        }
        self.evict_to(self.cap);
    }

    /// Forgets whatever holds `id`'s slot (the device, or one that had the slot before); its
    /// connection (if idle) is closed now, else when its poll ends.
    pub fn remove(&mut self, id: DeviceId) {
        if let Some(slot) = self.slots.get_mut(id.index()).and_then(Option::take) {
            if let Some(stamp) = slot.stamp {
                self.lru.remove(&stamp);
            }
        }
    }

    /// Closes idle connections, least recently used first, until at most `max` are open.
    fn evict_to(&mut self, max: usize) {
        while self.stats.open() > max {
            let Some((_, id)) = self.lru.pop_first() else {
                return;
            };
            if let Some(slot) = self.slot_mut(id) {
                slot.stamp = None;
                if let Some(link) = slot.link.as_mut() {
                    link.conn = None;
                    self.stats.evictions.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}
