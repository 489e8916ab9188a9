//! Between instances on one Postgres: every send is published with
//! `NOTIFY pushgate_socket`, and every instance `LISTEN`s and delivers to its
//! own connections. NOTIFY payloads are limited (8000 bytes), so a large
//! message travels as its replay log `seq` and is read back from the table.
//!
//! Notifications sent while an instance's listener is reconnecting are lost
//! for live delivery; its clients still get them by reconnecting with `since`.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::frames::Outbound;
use super::{Hub, Target};
use crate::store::{Listener, Store, StoreResult};

/// The notification channel every instance listens on.
pub const CHANNEL: &str = "pushgate_socket";

/// Largest envelope sent inline; Postgres refuses payloads from 8000 bytes.
const INLINE_LIMIT: usize = 7000;

/// What one instance tells the others.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    /// The publishing instance, which has already delivered to its own clients.
    pub origin: String,
    /// The app.
    pub app_id: String,
    /// Who it is for.
    pub target: Target,
    /// The message id.
    pub id: String,
    /// The frame, when small enough to travel inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<String>,
    /// Else its position in `socket_messages`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
}

/// The NOTIFY payload for `msg`, inline or by reference to row `seq`.
pub fn encode(origin: &str, app_id: &str, target: &Target, msg: &Outbound, seq: i64) -> String {
    let mut env = Envelope {
        origin: origin.into(),
        app_id: app_id.into(),
        target: target.clone(),
        id: msg.id.clone(),
        frame: Some(msg.text.to_string()),
        seq: None,
    };
    // Serializing plain strings cannot fail; an empty payload is dropped by the receiver.
    let inline = serde_json::to_string(&env).unwrap_or_default();
    if inline.len() <= INLINE_LIMIT {
        return inline;
    }
    env.frame = None;
    env.seq = Some(seq);
    serde_json::to_string(&env).unwrap_or_default()
}

/// Starts listening (None when the store serves one instance); done before
/// the instance serves, so that no client can connect here before this
/// instance hears the others.
pub async fn subscribe(store: &Store) -> StoreResult<Option<Listener>> {
    store.listen(CHANNEL).await
}

/// Delivers what other instances publish until `cancel`.
pub async fn run(mut listener: Listener, hub: Hub, cancel: CancellationToken) {
    loop {
        let received = tokio::select! {
            _ = cancel.cancelled() => return,
            n = listener.recv() => n,
        };
        match received {
            Ok(payload) => match serde_json::from_str::<Envelope>(&payload) {
                Ok(env) => hub.deliver_remote(env).await,
                Err(e) => tracing::warn!(error = %e, "unreadable socket bus message"),
            },
            Err(e) => {
                // recv() reconnects by itself on the next call; pause so a
                // down database is not hammered.
                tracing::warn!(error = %e, "socket bus listener failed; reconnecting");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

/// Rebuilds the outbound message of an envelope, reading the frame back from
/// the replay log when it did not travel inline.
pub async fn outbound(hub: &Hub, env: &mut Envelope) -> Option<Arc<Outbound>> {
    let text = match (env.frame.take(), env.seq) {
        (Some(frame), _) => frame,
        (None, Some(seq)) => match hub.store().socket_message(seq).await {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                tracing::warn!(seq, "socket message pruned before delivery");
                return None;
            }
            Err(e) => {
                tracing::warn!(error = %e, seq, "cannot read socket message");
                return None;
            }
        },
        (None, None) => return None,
    };
    Some(Arc::new(Outbound { id: std::mem::take(&mut env.id), text: text.into() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_messages_travel_by_reference() {
        let small = Outbound { id: "1".into(), text: "{}".into() };
        let env: Envelope = serde_json::from_str(&encode("i", "a", &Target::All, &small, 7)).expect("json");
        assert_eq!((env.frame.as_deref(), env.seq), (Some("{}"), None));
        let big = Outbound { id: "2".into(), text: "x".repeat(INLINE_LIMIT).into() };
        let payload = encode("i", "a", &Target::Client("c".into()), &big, 7);
        assert!(payload.len() < INLINE_LIMIT);
        let env: Envelope = serde_json::from_str(&payload).expect("json");
        assert_eq!((env.frame, env.seq, env.target), (None, Some(7), Target::Client("c".into())));
    }
}
