//! The hub: what handlers and sessions call. A send is kept in the replay
//! log, delivered to this instance's connections, and published to the other
//! instances when presence says they hold some of its recipients.
//!
//! Counts across instances come from presence, not acknowledgements: each
//! instance records in `socket_presence` how many connections it holds per
//! (app, client, user) — written before the client's handshake completes,
//! removed on disconnect, repaired from memory after a failure — and beats
//! `socket_instances` so a crashed instance's rows stop counting. The
//! `delivered` of an answer is therefore: connections here that took the
//! message, plus connections elsewhere that presence reports.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::bus::{self, Envelope};
use super::registry::{Joined, Registry};
use super::{frames, SocketConfig, SocketError, Target};
use crate::domain::{ids::new_id, time::now_ms};
use crate::store::{ClientPresence, Listener, SocketTarget, Store, StoreError, StoreResult, StoredSocketMessage};

/// How often an instance beats, prunes the replay log and repairs presence.
const UPKEEP: Duration = Duration::from_secs(10);
/// An instance silent this long is dead: its presence no longer counts.
const ALIVE_MS: i64 = 30_000;
/// Most messages replayed on one reconnect.
const REPLAY_LIMIT: i64 = 1000;
/// How long shutdown waits for sockets to send their close frames.
const DRAIN: Duration = Duration::from_secs(5);

/// The socket hub of this instance; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    store: Store,
    config: SocketConfig,
    /// Names this process in presence and on the bus.
    instance_id: String,
    /// A presence write failed: rewrite this instance's rows from memory.
    presence_dirty: AtomicBool,
    listener: Mutex<Option<Listener>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Hub {
    /// A hub over `store`; on Postgres it registers this instance and starts
    /// listening to the others before anything is served.
    pub async fn new(store: Store, config: SocketConfig) -> StoreResult<Self> {
        let instance_id = new_id();
        let listener = if store.shared_by_instances() {
            store.socket_heartbeat(&instance_id, now_ms()).await?;
            bus::subscribe(&store).await?
        } else {
            None
        };
        Ok(Self {
            inner: Arc::new(Inner {
                registry: Registry::default(),
                store,
                config,
                instance_id,
                presence_dirty: AtomicBool::new(false),
                listener: Mutex::new(listener),
                tasks: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Starts the background work (upkeep; the bus on Postgres) until `cancel`.
    pub fn start(&self, cancel: CancellationToken) {
        let mut tasks = vec![tokio::spawn(self.clone().upkeep(cancel.clone()))];
        if let Some(listener) = self.inner.listener.lock().ok().and_then(|mut l| l.take()) {
            tasks.push(tokio::spawn(bus::run(listener, self.clone(), cancel)));
        }
        if let Ok(mut held) = self.inner.tasks.lock() {
            held.extend(tasks);
        }
    }

    /// Asks every socket to close with 1001 (going away); new ones are closed at once.
    pub fn close_all(&self) {
        self.inner.registry.close_all();
    }

    /// After the background work was cancelled: lets sockets close (bounded),
    /// waits for the tasks and withdraws this instance's presence.
    pub async fn stop(&self) {
        self.close_all();
        if tokio::time::timeout(DRAIN, self.inner.registry.drained()).await.is_err() {
            tracing::warn!(open = self.connections(), "sockets still open at shutdown");
        }
        let tasks = self.inner.tasks.lock().map(|mut t| std::mem::take(&mut *t)).unwrap_or_default();
        for task in tasks {
            let _ = task.await;
        }
        if let Err(e) = self.inner.store.socket_forget_instances(Some(&self.inner.instance_id), 0).await {
            tracing::warn!(error = %e, "cannot withdraw socket presence");
        }
    }

    /// Open connections on this instance (for metrics).
    pub fn connections(&self) -> usize {
        self.inner.registry.connections()
    }

    /// The socket settings.
    pub fn config(&self) -> &SocketConfig {
        &self.inner.config
    }

    pub(super) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Puts an event of `reg`'s connection in the app's webhook outbox:
    /// `{client_id, user_id}`, and a message's `data`.
    pub(super) async fn webhook_event(&self, reg: &Registration, kind: &str, data: Option<Value>) -> StoreResult<()> {
        let event = socket_event(reg, data);
        self.inner.store.webhook_event(&reg.app_id, kind, &event, now_ms()).await.map(drop)
    }

    /// [`webhook_event`](Self::webhook_event) without waiting for it
    /// (connects and disconnects); a failure is logged.
    pub(super) fn webhook_event_later(&self, reg: &Registration, kind: &'static str) {
        let (store, app_id, event) = (self.inner.store.clone(), reg.app_id.clone(), socket_event(reg, None));
        tokio::spawn(async move {
            if let Err(e) = store.webhook_event(&app_id, kind, &event, now_ms()).await {
                tracing::warn!(error = %e, kind, "cannot queue a socket webhook event");
            }
        });
    }

    /// Registers a connection of `client_id` and records its presence; the
    /// returned guard undoes both when dropped.
    pub async fn join(
        &self,
        app_id: &str,
        client_id: &str,
        user_id: Option<&str>,
    ) -> StoreResult<(Registration, Joined)> {
        let joined = self.inner.registry.join(app_id, client_id, user_id, self.inner.config.buffer());
        let mut reg = Registration {
            hub: self.clone(),
            app_id: app_id.into(),
            client_id: client_id.into(),
            user_id: user_id.map(Into::into),
            id: joined.id,
            counted: false,
        };
        if self.inner.store.shared_by_instances() {
            self.inner.store.socket_presence_add(&self.inner.instance_id, app_id, client_id, user_id, 1).await?;
            reg.counted = true;
        }
        Ok((reg, joined))
    }

    /// Sends `notification` to `target` within `app_id` (from a client when
    /// `from` is given); returns the connections reached. A client or user
    /// with no connection anywhere is `not_found`, and the message is not kept.
    pub async fn send(
        &self,
        app_id: &str,
        target: Target,
        notification: &Map<String, Value>,
        from: Option<&str>,
    ) -> Result<usize, SocketError> {
        let msg = Arc::new(frames::notification(notification, from)?);
        let (kind, id) = target.parts();
        let stored = SocketTarget { kind, id };
        let inner = &self.inner;
        let remote = inner.store.socket_remote_count(&inner.instance_id, app_id, stored, alive_since()).await?;
        let remote = usize::try_from(remote).unwrap_or(0);
        if remote == 0 && target != Target::All && inner.registry.count(app_id, &target) == 0 {
            return Err(match target {
                Target::User(_) => SocketError::NotFound("no connected client has this user_id".into()),
                _ => SocketError::NotFound("no such connected client".into()),
            });
        }
        // Kept before delivery, so a client reconnecting right now finds it.
        let seq = inner.store.insert_socket_message(app_id, &msg.id, stored, msg.text.as_str(), now_ms()).await?;
        let local = inner.registry.deliver(app_id, &target, &msg);
        if remote > 0 {
            let payload = bus::encode(&inner.instance_id, app_id, &target, &msg, seq);
            inner.store.notify(bus::CHANNEL, &payload).await?;
        }
        Ok(local + remote)
    }

    /// Delivers a message published by another instance to connections here.
    pub(super) async fn deliver_remote(&self, mut env: Envelope) {
        if env.origin == self.inner.instance_id {
            return;
        }
        if let Some(msg) = bus::outbound(self, &mut env).await {
            self.inner.registry.deliver(&env.app_id, &env.target, &msg);
        }
    }

    /// What `reg`'s client missed after message `since`; None when `since`
    /// is not in the replay log.
    pub async fn replay(&self, reg: &Registration, since: &str) -> StoreResult<Option<Vec<StoredSocketMessage>>> {
        let user = reg.user_id.as_deref();
        self.inner.store.socket_replay(&reg.app_id, since, &reg.client_id, user, REPLAY_LIMIT).await
    }

    /// Connected clients of `app_id` after client id `after`: on Postgres
    /// across every live instance, on SQLite this one.
    pub async fn clients(&self, app_id: &str, after: Option<&str>, limit: i64) -> StoreResult<Vec<ClientPresence>> {
        if self.inner.store.shared_by_instances() {
            self.inner.store.socket_clients(app_id, after, limit, alive_since()).await
        } else {
            Ok(self.inner.registry.clients(app_id, after, usize::try_from(limit).unwrap_or(0)))
        }
    }

    async fn upkeep(self, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(UPKEEP);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => self.upkeep_once().await,
            }
        }
    }

    async fn upkeep_once(&self) {
        let inner = &self.inner;
        let now = now_ms();
        let window = i64::try_from(inner.config.replay_window().as_millis()).unwrap_or(i64::MAX);
        if let Err(e) = inner.store.prune_socket_messages(now.saturating_sub(window)).await {
            tracing::warn!(error = %e, "cannot prune socket messages");
        }
        if !inner.store.shared_by_instances() {
            return;
        }
        let beat = async {
            inner.store.socket_heartbeat(&inner.instance_id, now).await?;
            inner.store.socket_forget_instances(None, now - 2 * ALIVE_MS).await?;
            if inner.presence_dirty.swap(false, Ordering::AcqRel) {
                let rows = inner.registry.snapshot();
                if let Err(e) = inner.store.socket_presence_replace(&inner.instance_id, &rows).await {
                    inner.presence_dirty.store(true, Ordering::Release);
                    return Err(e);
                }
            }
            Ok::<_, StoreError>(())
        };
        if let Err(e) = beat.await {
            // Others may have taken us for dead meanwhile: rewrite presence next time.
            inner.presence_dirty.store(true, Ordering::Release);
            tracing::warn!(error = %e, "socket presence upkeep failed");
        }
    }
}

/// Presence is only trusted from instances that beat since then.
/// The `data` of a socket event of `reg`'s connection.
fn socket_event(reg: &Registration, data: Option<Value>) -> String {
    let mut event = serde_json::json!({"client_id": reg.client_id, "user_id": reg.user_id});
    if let Some(data) = data {
        event["data"] = data;
    }
    event.to_string()
}

fn alive_since() -> i64 {
    now_ms() - ALIVE_MS
}

/// One connection's place in the hub; dropping it (the session ended, or the
/// upgrade failed) removes the connection and its presence.
pub struct Registration {
    hub: Hub,
    app_id: String,
    client_id: String,
    user_id: Option<String>,
    id: u64,
    /// Whether presence was recorded for it (Postgres).
    counted: bool,
}

impl Registration {
    /// The app of the connection.
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The client id of the connection.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The hub it belongs to.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let inner = &self.hub.inner;
        inner.registry.leave(&self.app_id, &self.client_id, self.id);
        // At shutdown the whole instance's presence goes at once instead.
        if !self.counted || inner.registry.is_closing() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            inner.presence_dirty.store(true, Ordering::Release);
            return;
        };
        let hub = self.hub.clone();
        let (app_id, client_id, user_id) = (self.app_id.clone(), self.client_id.clone(), self.user_id.take());
        rt.spawn(async move {
            let inner = &hub.inner;
            let res = inner.store.socket_presence_add(&inner.instance_id, &app_id, &client_id, user_id.as_deref(), -1);
            if let Err(e) = res.await {
                tracing::warn!(error = %e, "cannot update socket presence; will resync");
                inner.presence_dirty.store(true, Ordering::Release);
            }
        });
    }
}
