//! Drives one WebSocket: replays what the client missed, then feeds frames
//! and clock ticks to its [`Session`] and performs the actions. One task per
//! connection (the one axum spawns for the upgrade); every write is bounded,
//! so a client that stops reading cannot pin the task.

use std::collections::HashSet;
use std::convert::Infallible;
use std::task::Poll;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use tokio::time::{interval_at, timeout, Instant, MissedTickBehavior};

use super::close;
use super::hub::Registration;
use super::identity::SocketIdentity;
use super::registry::{CloseSignal, Joined};
use super::session::{Action, Session};
use super::{frames, SocketError};

/// How long a closing handshake may take before the socket is just dropped.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Why a connection ends.
enum End {
    /// The client closed or the connection broke.
    Gone,
    /// We close, with this code and reason.
    Close(u16, &'static str),
}

/// Serves the connection until it ends, then removes it from the hub.
pub async fn run(
    mut socket: WebSocket,
    reg: Registration,
    joined: Joined,
    since: Option<String>,
    identity: SocketIdentity,
) {
    let Err(end) = serve(&mut socket, &reg, joined, since, &identity).await;
    reg.hub().webhook_event_later(&reg, "socket.disconnected");
    // Gone from the hub (and presence) before the closing handshake, which
    // may take a while with a client that stopped reading.
    drop(reg);
    if let End::Close(code, reason) = end {
        let frame = CloseFrame { code, reason: reason.into() };
        let _ = timeout(CLOSE_WAIT, socket.send(Message::Close(Some(frame)))).await;
    }
}

async fn serve(
    socket: &mut WebSocket,
    reg: &Registration,
    joined: Joined,
    since: Option<String>,
    identity: &SocketIdentity,
) -> Result<Infallible, End> {
    let Joined { mut rx, close: signal, .. } = joined;
    let hub = reg.hub();
    let keepalive = hub.config().ping_interval();
    // A write blocked this long means the client stopped reading.
    let writer = Writer { signal: &signal, limit: keepalive * 2 };

    writer.write(socket, Message::Text(frames::welcome(&identity.client_id))).await?;
    hub.webhook_event_later(reg, "socket.connected");
    // Live messages queue up meanwhile; those also replayed are skipped below.
    let mut replayed = HashSet::new();
    if let Some(since) = since {
        match hub.replay(reg, &since).await {
            Ok(Some(rows)) => {
                for row in rows {
                    writer.write(socket, Message::Text(row.payload.into())).await?;
                    replayed.insert(row.id);
                }
            }
            Ok(None) => {
                let e = SocketError::NotFound(format!(
                    "since {since:?} is not in the replay window: messages may be missed"
                ));
                writer.write(socket, Message::Text(frames::error(&e))).await?;
            }
            Err(e) => writer.write(socket, Message::Text(frames::error(&e.into()))).await?,
        }
    }

    let mut session = Session::new(keepalive, Instant::now().into_std()).with_frame_rate(hub.config().frame_rate);
    let mut ticker = interval_at(Instant::now() + keepalive, keepalive);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let action = tokio::select! {
            code = signal.requested() => return Err(End::Close(code, reason(code))),
            out = rx.recv() => {
                // None: the hub dropped this connection and asked it to close.
                let Some(out) = out else {
                    let code = match signal.code() {
                        0 => close::GOING_AWAY,
                        code => code,
                    };
                    return Err(End::Close(code, reason(code)));
                };
                if !replayed.is_empty() {
                    if replayed.remove(&out.id) {
                        continue;
                    }
                    // Live messages come in send order: past the first new one, no more duplicates.
                    replayed = HashSet::new();
                }
                Action::Reply(out.text.clone())
            }
            inbound = socket.recv() => {
                let now = std::time::Instant::now();
                match inbound {
                    Some(Ok(Message::Text(text))) => session.on_text(text.as_str(), now),
                    Some(Ok(Message::Binary(_))) => session.on_binary(now),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                        session.on_control(now);
                        continue;
                    }
                    // tungstenite answers the client's close frame itself.
                    Some(Err(e)) if too_big(&e) => {
                        return Err(End::Close(close::MESSAGE_TOO_BIG, reason(close::MESSAGE_TOO_BIG)))
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Err(End::Gone),
                }
            }
            _ = ticker.tick() => match session.on_tick(std::time::Instant::now()) {
                Some(action) => action,
                None => continue,
            },
        };
        match action {
            Action::Reply(text) => writer.write(socket, Message::Text(text)).await?,
            Action::Ping => writer.write(socket, Message::Ping(Default::default())).await?,
            Action::Close { code, reason } => return Err(End::Close(code, reason)),
            Action::Message(data) => {
                if let Err(e) = hub.webhook_event(reg, "socket.message", Some(data)).await {
                    writer.write(socket, Message::Text(frames::error(&e.into()))).await?;
                }
            }
            Action::Relay { to, notification } => {
                let sent = match identity.relay_target(to) {
                    Ok(to) => hub.send(reg.app_id(), to, &notification, Some(reg.client_id())).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = sent {
                    writer.write(socket, Message::Text(frames::error(&e))).await?;
                }
            }
        }
    }
}

/// Writes that give up when the hub asks to close or the client stalls.
struct Writer<'a> {
    signal: &'a CloseSignal,
    limit: Duration,
}

impl Writer<'_> {
    async fn write(&self, socket: &mut WebSocket, msg: Message) -> Result<(), End> {
        let send = socket.send(msg);
        tokio::pin!(send);
        // Most writes finish at once (the socket buffer has room): those need
        // no timer and no close watch, which matters across a 10,000-socket fan-out.
        if let Poll::Ready(sent) = futures_util::poll!(&mut send) {
            return sent.map_err(|_| End::Gone);
        }
        tokio::select! {
            code = self.signal.requested() => Err(End::Close(code, reason(code))),
            sent = timeout(self.limit, send) => match sent {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(End::Gone),
                Err(_) => Err(End::Close(close::TRY_AGAIN_LATER, reason(close::TRY_AGAIN_LATER))),
            },
        }
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        close::POLICY_VIOLATION => "too many frames",
        close::GOING_AWAY => "server shutting down",
        close::TRY_AGAIN_LATER => "too slow: reconnect with since",
        close::MESSAGE_TOO_BIG => "message over the size limit",
        _ => "closed",
    }
}

/// Whether a read failed because the client's message is over the limit.
fn too_big(e: &axum::Error) -> bool {
    std::error::Error::source(e)
        .and_then(|inner| inner.downcast_ref::<tungstenite::Error>())
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)))
}
