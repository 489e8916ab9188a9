//! This instance's open connections: app → client id → connections, with a
//! user index. Delivery only `try_send`s into each connection's bounded
//! queue, so one slow client never holds up the others: a full queue gets
//! its connection dropped (close 1013) instead.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::{mpsc, Notify};

use super::frames::Outbound;
use super::{close, Target};
use crate::store::ClientPresence;

/// What the hub tells a connection to do besides sending messages: close,
/// with a code. Kept apart from the message queue, which may be full.
#[derive(Debug, Default)]
pub struct CloseSignal {
    code: AtomicU16,
    notify: Notify,
}

impl CloseSignal {
    /// Asks the connection to close with `code`; the first code asked wins.
    pub fn close(&self, code: u16) {
        let _ = self.code.compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
        // notify_one keeps a permit when the session is not waiting right now.
        self.notify.notify_one();
    }

    /// Resolves once a close was asked.
    pub async fn requested(&self) -> u16 {
        self.notify.notified().await;
        self.code()
    }

    /// The close code asked (0 when none).
    pub fn code(&self) -> u16 {
        self.code.load(Ordering::Acquire)
    }
}

/// One connection as the registry sees it.
#[derive(Clone, Debug)]
struct Link {
    id: u64,
    user_id: Option<Arc<str>>,
    tx: mpsc::Sender<Arc<Outbound>>,
    close: Arc<CloseSignal>,
}

#[derive(Default)]
struct AppClients {
    clients: HashMap<Arc<str>, Vec<Link>>,
    /// user → client → connections of that client opened with this user.
    users: HashMap<Arc<str>, HashMap<Arc<str>, usize>>,
}

/// A connection just registered: its queue and close signal.
pub struct Joined {
    /// The registry's id of this connection.
    pub id: u64,
    /// Messages for the client.
    pub rx: mpsc::Receiver<Arc<Outbound>>,
    /// Close requests from the hub.
    pub close: Arc<CloseSignal>,
}

/// The registry; shared behind the hub's `Arc`.
#[derive(Default)]
pub struct Registry {
    apps: DashMap<Arc<str>, AppClients>,
    connections: AtomicUsize,
    next_id: AtomicU64,
    closing: AtomicBool,
    emptied: Notify,
}

impl Registry {
    /// Registers a connection; messages are queued from now on.
    pub fn join(&self, app_id: &str, client_id: &str, user_id: Option<&str>, capacity: usize) -> Joined {
        let (tx, rx) = mpsc::channel(capacity);
        let close = Arc::new(CloseSignal::default());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let user_id: Option<Arc<str>> = user_id.map(Into::into);
        let client: Arc<str> = client_id.into();
        let link = Link { id, user_id: user_id.clone(), tx, close: close.clone() };
        {
            let mut app = self.apps.entry(app_id.into()).or_default();
            if let Some(user) = user_id {
                *app.users.entry(user).or_default().entry(client.clone()).or_default() += 1;
            }
            app.clients.entry(client).or_default().push(link);
        }
        self.connections.fetch_add(1, Ordering::AcqRel);
        if self.closing.load(Ordering::Acquire) {
            // Joined during shutdown: let it go at once.
            close.close(close::GOING_AWAY);
        }
        Joined { id, rx, close }
    }

    /// Unregisters a connection; false when it was already gone.
    pub fn leave(&self, app_id: &str, client_id: &str, id: u64) -> bool {
        let removed = {
            let Some(mut app) = self.apps.get_mut(app_id) else { return false };
            let app = &mut *app;
            let Some(links) = app.clients.get_mut(client_id) else { return false };
            let Some(pos) = links.iter().position(|l| l.id == id) else { return false };
            let link = links.swap_remove(pos);
            if links.is_empty() {
                app.clients.remove(client_id);
            }
            if let Some(user) = &link.user_id {
                if let Some(per_client) = app.users.get_mut(user) {
                    if let Some(n) = per_client.get_mut(client_id) {
                        *n -= 1;
                        if *n == 0 {
                            per_client.remove(client_id);
                        }
                    }
                    if per_client.is_empty() {
                        app.users.remove(user);
                    }
                }
            }
            true
        };
        // Dropping empty apps keeps the map from growing with every app ever seen.
        self.apps.remove_if(app_id, |_, app| app.clients.is_empty());
        if removed && self.connections.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.emptied.notify_waiters();
        }
        removed
    }

    /// Connections here that `target` would reach.
    pub fn count(&self, app_id: &str, target: &Target) -> usize {
        let Some(app) = self.apps.get(app_id) else { return 0 };
        match target {
            Target::Client(id) => app.clients.get(id.as_str()).map_or(0, Vec::len),
            Target::User(user) => app.users.get(user.as_str()).map_or(0, |c| c.values().sum()),
            Target::All => app.clients.values().map(Vec::len).sum(),
        }
    }

    /// Queues `msg` for every connection `target` reaches here; returns how
    /// many took it. Connections whose queue is full are dropped.
    pub fn deliver(&self, app_id: &str, target: &Target, msg: &Arc<Outbound>) -> usize {
        let mut delivered = 0;
        let mut laggards = Vec::new();
        {
            let Some(app) = self.apps.get(app_id) else { return 0 };
            let mut offer = |client: &Arc<str>, link: &Link| match link.tx.try_send(msg.clone()) {
                Ok(()) => delivered += 1,
                Err(mpsc::error::TrySendError::Full(_)) => laggards.push((client.clone(), link.id, link.close.clone())),
                // The session is ending and will unregister itself.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            };
            match target {
                Target::Client(id) => {
                    if let Some((client, links)) = app.clients.get_key_value(id.as_str()) {
                        links.iter().for_each(|l| offer(client, l));
                    }
                }
                Target::User(user) => {
                    for client_id in app.users.get(user.as_str()).into_iter().flat_map(|c| c.keys()) {
                        if let Some((client, links)) = app.clients.get_key_value(client_id) {
                            links
                                .iter()
                                .filter(|l| l.user_id.as_deref() == Some(user.as_str()))
                                .for_each(|l| offer(client, l));
                        }
                    }
                }
                Target::All => {
                    for (client, links) in &app.clients {
                        links.iter().for_each(|l| offer(client, l));
                    }
                }
            }
        }
        // Outside the map's lock: leave() takes it again.
        for (client, id, close) in laggards {
            tracing::info!(app_id, client_id = %client, "socket client too slow, disconnecting");
            close.close(close::TRY_AGAIN_LATER);
            self.leave(app_id, &client, id);
        }
        delivered
    }

    /// Connected clients of an app with `client_id > after`, by client id,
    /// at most `limit`.
    pub fn clients(&self, app_id: &str, after: Option<&str>, limit: usize) -> Vec<ClientPresence> {
        let Some(app) = self.apps.get(app_id) else { return Vec::new() };
        let mut rows: Vec<ClientPresence> = app
            .clients
            .iter()
            .filter(|(id, _)| after.is_none_or(|a| &***id > a))
            .map(|(id, links)| ClientPresence {
                client_id: id.to_string(),
                user_id: links.iter().find_map(|l| l.user_id.as_deref()).map(str::to_string),
                connections: links.len() as i64,
            })
            .collect();
        rows.sort_unstable_by(|a, b| a.client_id.cmp(&b.client_id));
        rows.truncate(limit);
        rows
    }

    /// Every (app, client, user) with its connection count: the presence
    /// this instance should have in the store.
    pub fn snapshot(&self) -> Vec<(String, String, Option<String>, i32)> {
        let mut out = Vec::new();
        for app in self.apps.iter() {
            for (client, links) in &app.clients {
                let mut per_user: HashMap<Option<&str>, i32> = HashMap::new();
                for l in links {
                    *per_user.entry(l.user_id.as_deref()).or_default() += 1;
                }
                for (user, n) in per_user {
                    out.push((app.key().to_string(), client.to_string(), user.map(str::to_string), n));
                }
            }
        }
        out
    }

    /// Open connections on this instance.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }

    /// Asks every connection to close with 1001 (shutdown); later joins are
    /// closed at once.
    pub fn close_all(&self) {
        self.closing.store(true, Ordering::Release);
        for app in self.apps.iter() {
            for link in app.clients.values().flatten() {
                link.close.close(close::GOING_AWAY);
            }
        }
    }

    /// True once [`close_all`](Self::close_all) ran.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Resolves when no connection is left.
    pub async fn drained(&self) {
        loop {
            let notified = self.emptied.notified();
            tokio::pin!(notified);
            // Registered before the check, so a leave() in between is not missed.
            notified.as_mut().enable();
            if self.connections() == 0 {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str) -> Arc<Outbound> {
        Arc::new(Outbound { id: id.into(), text: id.to_string().into() })
    }

    #[test]
    fn delivers_by_client_user_and_app() {
        let r = Registry::default();
        let mut a1 = r.join("app", "a", Some("u"), 4);
        let mut a2 = r.join("app", "a", None, 4);
        let mut b = r.join("app", "b", Some("u"), 4);
        let mut other = r.join("other", "a", Some("u"), 4);
        assert_eq!(r.deliver("app", &Target::Client("a".into()), &msg("1")), 2);
        assert_eq!(r.deliver("app", &Target::User("u".into()), &msg("2")), 2);
        assert_eq!(r.deliver("app", &Target::All, &msg("3")), 3);
        assert_eq!(r.deliver("app", &Target::Client("nobody".into()), &msg("4")), 0);
        let ids =
            |j: &mut Joined| std::iter::from_fn(|| j.rx.try_recv().ok().map(|m| m.id.clone())).collect::<Vec<_>>();
        assert_eq!(ids(&mut a1), ["1", "2", "3"]);
        assert_eq!(ids(&mut a2), ["1", "3"]);
        assert_eq!(ids(&mut b), ["2", "3"]);
        assert!(ids(&mut other).is_empty(), "apps are isolated");
    }

    #[test]
    fn leaving_removes_connections_and_indexes() {
        let r = Registry::default();
        let a = r.join("app", "a", Some("u"), 4);
        assert_eq!(r.connections(), 1);
        assert!(r.leave("app", "a", a.id));
        assert!(!r.leave("app", "a", a.id), "leaving twice is harmless");
        assert_eq!(r.connections(), 0);
        assert_eq!(r.count("app", &Target::User("u".into())), 0);
        assert!(r.clients("app", None, 10).is_empty());
    }

    #[test]
    fn a_full_queue_drops_only_that_connection() {
        let r = Registry::default();
        let slow = r.join("app", "slow", None, 1);
        let mut fast = r.join("app", "fast", None, 4);
        assert_eq!(r.deliver("app", &Target::All, &msg("1")), 2);
        assert!(fast.rx.try_recv().is_ok());
        assert_eq!(r.deliver("app", &Target::All, &msg("2")), 1, "the slow queue is full");
        assert_eq!(slow.close.code(), close::TRY_AGAIN_LATER);
        assert_eq!(r.count("app", &Target::Client("slow".into())), 0);
        assert_eq!(r.deliver("app", &Target::All, &msg("3")), 1);
    }

    #[test]
    fn lists_clients_in_pages() {
        let r = Registry::default();
        let _c = r.join("app", "c", None, 1);
        let _a = r.join("app", "a", Some("u"), 1);
        let _a2 = r.join("app", "a", Some("u"), 1);
        let _b = r.join("app", "b", None, 1);
        let page = r.clients("app", None, 2);
        assert_eq!(page.iter().map(|c| c.client_id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(page[0].connections, 2);
        assert_eq!(page[0].user_id.as_deref(), Some("u"));
        assert_eq!(r.clients("app", Some("b"), 2)[0].client_id, "c");
    }

    #[test]
    fn close_all_signals_everyone_and_later_joins() {
        let r = Registry::default();
        let a = r.join("app", "a", None, 1);
        r.close_all();
        assert_eq!(a.close.code(), close::GOING_AWAY);
        assert_eq!(r.join("app", "b", None, 1).close.code(), close::GOING_AWAY);
    }
}
