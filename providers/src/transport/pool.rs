//! The connections of one provider host, and which one a request uses.
//!
//! Throughput against a distant provider is streams in flight ÷ latency, and
//! the server decides how many streams a connection carries
//! (`SETTINGS_MAX_CONCURRENT_STREAMS`; APNs starts token-auth connections low
//! and changes it with load). So a request takes the least busy connection
//! with a free stream, under the limit its server announces now; when none
//! has one, another connection is opened, up to the cap; at the cap, the
//! least busy one takes it anyway and h2 opens the stream when one closes.
//! Connections stay open once opened: Apple asks providers to keep them
//! rather than reconnect.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use h2::client::SendRequest;
use tokio::sync::watch;

/// The streams a connection being opened is counted on before any server
/// of the host has said (h2's own assumption before the first SETTINGS).
const UNKNOWN_LIMIT: usize = 100;

/// How busy one open connection is.
#[derive(Clone, Copy, Debug)]
struct Load {
    /// Requests on it (streams open, or queued by h2 at the cap).
    busy: usize,
    /// Its server's current `SETTINGS_MAX_CONCURRENT_STREAMS`.
    limit: usize,
}

/// How a request gets its stream.
#[derive(Debug, PartialEq, Eq)]
enum Choice {
    /// On the open connection at this index.
    Use(usize),
    /// On a connection being opened: those will have room for it.
    Wait,
    /// On a new connection, opened by this request.
    Open,
}

/// Picks a connection for one more request, given the open ones, how many
/// are being opened and how many requests already wait for those.
fn choose(loads: impl Iterator<Item = Load>, connecting: usize, waiting: usize, max_connections: usize) -> Choice {
    let (mut open, mut limit) = (0, 0);
    let mut free: Option<(usize, usize)> = None;
    let mut least: Option<(usize, usize)> = None;
    for (i, load) in loads.enumerate() {
        open += 1;
        limit = limit.max(load.limit);
        if load.busy < load.limit && free.is_none_or(|(_, busy)| load.busy < busy) {
            free = Some((i, load.busy));
        }
        if least.is_none_or(|(_, busy)| load.busy < busy) {
            least = Some((i, load.busy));
        }
    }
    if let Some((i, _)) = free {
        return Choice::Use(i);
    }
    // A new connection of this host will likely carry what the open ones do.
    let expected = if open == 0 { UNKNOWN_LIMIT } else { limit.max(1) };
    if waiting < connecting.saturating_mul(expected) {
        return Choice::Wait;
    }
    if open + connecting < max_connections {
        return Choice::Open;
    }
    match least {
        Some((i, _)) => Choice::Use(i),
        None => Choice::Wait,
    }
}

/// An open connection.
struct Slot {
    id: u64,
    sender: SendRequest<Bytes>,
    busy: Arc<AtomicUsize>,
}

impl Slot {
    fn lease(&self, fresh: bool) -> Lease {
        self.busy.fetch_add(1, Ordering::Relaxed);
        Lease { id: self.id, sender: self.sender.clone(), busy: Arc::clone(&self.busy), fresh }
    }
}

#[derive(Default)]
struct Slots {
    open: Vec<Slot>,
    connecting: usize,
    waiting: usize,
}

/// The connections of one host.
pub(super) struct Pool {
    slots: Mutex<Slots>,
    max_connections: usize,
    next_id: AtomicU64,
    /// Bumped when an opening ends, opened or failed: the requests waiting
    /// for it choose again.
    openings: watch::Sender<u64>,
}

/// What a request does next to get a stream.
pub(super) enum Checkout {
    /// Use this connection.
    Ready(Lease),
    /// Open a connection and hand it to [`Opening::finish`].
    Open(Opening),
    /// Wait for connections being opened, then check out again.
    Wait(Waiting),
}

impl Pool {
    /// A pool of at most `max_connections` (at least one).
    pub(super) fn new(max_connections: usize) -> Arc<Self> {
        Arc::new(Self {
            slots: Mutex::default(),
            max_connections: max_connections.max(1),
            next_id: AtomicU64::new(0),
            openings: watch::Sender::new(0),
        })
    }

    fn slots(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Chooses a connection for one request.
    pub(super) fn checkout(self: &Arc<Self>) -> Checkout {
        let mut slots = self.slots();
        let loads = slots.open.iter().map(|slot| Load {
            busy: slot.busy.load(Ordering::Relaxed),
            limit: slot.sender.current_max_send_streams(),
        });
        match choose(loads, slots.connecting, slots.waiting, self.max_connections) {
            Choice::Use(i) => Checkout::Ready(slots.open[i].lease(false)),
            Choice::Open => {
                slots.connecting += 1;
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                Checkout::Open(Opening { pool: Arc::clone(self), id })
            }
            Choice::Wait => {
                slots.waiting += 1;
                // Subscribed under the lock: an opening that ends after this
                // choice is seen as a change.
                Checkout::Wait(Waiting { pool: Arc::clone(self), openings: self.openings.subscribe() })
            }
        }
    }

    /// Drops connection `id` (failed or closed); the next request that
    /// finds no room opens another.
    pub(super) fn remove(&self, id: u64) {
        self.slots().open.retain(|slot| slot.id != id);
    }
}

/// A connection in use by one request; its stream is counted free again
/// when dropped.
pub(super) struct Lease {
    /// Tells connections apart: a request that saw one fail drops that one,
    /// not its replacement.
    pub(super) id: u64,
    pub(super) sender: SendRequest<Bytes>,
    /// Opened for this request (so not a connection that died while idle).
    pub(super) fresh: bool,
    busy: Arc<AtomicUsize>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection being opened by one request; dropped without
/// [`finish`](Self::finish) (failed, timed out), it lets another try.
pub(super) struct Opening {
    pool: Arc<Pool>,
    id: u64,
}

impl Opening {
    /// The id the new connection gets.
    pub(super) fn id(&self) -> u64 {
        self.id
    }

    /// Adds the opened connection to the pool, in use by this request.
    pub(super) fn finish(self, sender: SendRequest<Bytes>) -> Lease {
        let slot = Slot { id: self.id, sender, busy: Arc::new(AtomicUsize::new(0)) };
        let lease = slot.lease(true);
        self.pool.slots().open.push(slot);
        lease
    }
}

impl Drop for Opening {
    fn drop(&mut self) {
        self.pool.slots().connecting -= 1;
        self.pool.openings.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// A request waiting for connections being opened.
pub(super) struct Waiting {
    pool: Arc<Pool>,
    openings: watch::Receiver<u64>,
}

impl Waiting {
    /// Returns when an opening has ended.
    pub(super) async fn wait(mut self) {
        // The sender lives in the pool, which this holds: no error.
        let _ = self.openings.changed().await;
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.pool.slots().waiting -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::{choose, Choice, Load};

    fn loads(list: &[(usize, usize)]) -> impl Iterator<Item = Load> + '_ {
        list.iter().map(|&(busy, limit)| Load { busy, limit })
    }

    #[test]
    fn the_least_busy_connection_with_a_free_stream_is_used() {
        assert_eq!(choose(loads(&[(10, 10), (7, 10), (3, 10)]), 0, 0, 4), Choice::Use(2));
        // A limit lowered under the streams in use leaves no room there.
        assert_eq!(choose(loads(&[(5, 4), (6, 10)]), 0, 0, 4), Choice::Use(1));
    }

    #[test]
    fn a_connection_is_opened_when_none_has_room_and_the_cap_allows() {
        assert_eq!(choose(loads(&[]), 0, 0, 4), Choice::Open);
        assert_eq!(choose(loads(&[(10, 10), (10, 10)]), 0, 0, 4), Choice::Open);
    }

    #[test]
    fn requests_wait_for_connections_being_opened_while_those_will_have_room() {
        // One opening, the host's connections carry 10: nine more wait for
        // it, the eleventh opens another.
        assert_eq!(choose(loads(&[(10, 10)]), 1, 9, 4), Choice::Wait);
        assert_eq!(choose(loads(&[(10, 10)]), 1, 10, 4), Choice::Open);
        // Nothing known of the host yet: counted on h2's default.
        assert_eq!(choose(loads(&[]), 1, 99, 4), Choice::Wait);
        assert_eq!(choose(loads(&[]), 1, 100, 4), Choice::Open);
    }

    #[test]
    fn at_the_cap_the_least_busy_connection_queues_the_request() {
        assert_eq!(choose(loads(&[(12, 10), (11, 10)]), 0, 0, 2), Choice::Use(1));
        assert_eq!(choose(loads(&[(10, 10)]), 1, 30, 2), Choice::Use(0));
        assert_eq!(choose(loads(&[]), 2, 500, 2), Choice::Wait);
    }
}
