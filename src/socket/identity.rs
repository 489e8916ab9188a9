//! Who a socket is (API.md, Identity): its client id as the gateway knows
//! it, and whom its relays may reach. In a `verified` app a client id is
//! scoped to the socket's user (`{user_id}:{client_id}`, client ids without
//! `:`), or assigned, so naming another user's client id reaches nothing of
//! theirs. Pure functions, so the rules are tested without sockets.

use rand::RngCore;

use super::{SocketError, Target};
use crate::identity::ClientRelay;

/// A connection's identity, fixed when it opens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketIdentity {
    /// The client id the hub knows it by (sent in the welcome frame).
    pub client_id: String,
    /// Its user: proved by a user token in `verified` apps.
    pub user_id: Option<String>,
    /// Whether client ids are scoped to users (the app is `verified`).
    pub scoped: bool,
    /// The app's relay setting.
    pub relay: ClientRelay,
}

impl SocketIdentity {
    /// The identity of a socket of a `verified` app: `user_id` proved,
    /// `client_id` as the client asked (scoped to the user) or assigned.
    pub fn verified(
        user_id: Option<String>,
        client_id: Option<String>,
        relay: ClientRelay,
    ) -> Result<Self, SocketError> {
        let client_id = match (&user_id, client_id) {
            (Some(user), Some(client)) => {
                if client.contains(':') {
                    return Err(SocketError::field("client_id", "client_id may not contain ':'"));
                }
                format!("{user}:{client}")
            }
            (Some(user), None) => format!("{user}:{}", random_id()),
            // Not a scoped id (those contain ':'), and unguessable.
            (None, None) => format!("~{}", random_id()),
            (None, Some(_)) => {
                return Err(SocketError::field(
                    "client_id",
                    "an anonymous socket's client_id is assigned by the gateway: give a user_token to choose one",
                ))
            }
        };
        Ok(Self { client_id, user_id, scoped: true, relay })
    }

    /// The identity of a socket of an `open` app (or opened with a server
    /// key): ids as given, a client id assigned when none is.
    pub fn open(user_id: Option<String>, client_id: Option<String>, relay: ClientRelay) -> Self {
        let client_id = client_id.unwrap_or_else(|| format!("~{}", random_id()));
        Self { client_id, user_id, scoped: false, relay }
    }

    /// Where a `{"type": "send"}` frame of this socket may go, or why not.
    pub fn relay_target(&self, to: Target) -> Result<Target, SocketError> {
        match (self.relay, to) {
            (ClientRelay::None, _) => Err(SocketError::Forbidden("this app does not relay client messages".into())),
            (ClientRelay::All, to) => Ok(to),
            (ClientRelay::SameUser, to) => {
                let Some(user) = &self.user_id else {
                    return Err(SocketError::Forbidden("only signed-in clients relay, to their own user".into()));
                };
                match to {
                    Target::All => Ok(Target::User(user.clone())),
                    Target::Client(id) if self.scoped && !id.contains(':') => {
                        Ok(Target::Client(format!("{user}:{id}")))
                    }
                    _ => Err(SocketError::Forbidden(
                        "this app relays only to the sender's own user: {\"all\": true} or one of its client ids"
                            .into(),
                    )),
                }
            }
        }
    }
}

/// 128 random bits as hex.
fn random_id() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_scoped_to_their_user_or_assigned() {
        let alice =
            SocketIdentity::verified(Some("alice".into()), Some("tab".into()), ClientRelay::SameUser).expect("scoped");
        assert_eq!(alice.client_id, "alice:tab");
        let assigned = SocketIdentity::verified(Some("alice".into()), None, ClientRelay::SameUser).expect("assigned");
        assert!(assigned.client_id.starts_with("alice:") && assigned.client_id.len() > 30);
        let anon = SocketIdentity::verified(None, None, ClientRelay::SameUser).expect("anonymous");
        assert!(anon.client_id.starts_with('~'));
        assert!(SocketIdentity::verified(None, Some("bob:tab".into()), ClientRelay::All).is_err());
        assert!(SocketIdentity::verified(Some("a".into()), Some("b:c".into()), ClientRelay::All).is_err());
    }

    #[test]
    fn relays_follow_the_app_setting() {
        let me = |relay| SocketIdentity::verified(Some("alice".into()), Some("tab".into()), relay).expect("id");
        assert!(me(ClientRelay::None).relay_target(Target::All).is_err());
        assert_eq!(
            me(ClientRelay::SameUser).relay_target(Target::All).expect("own user"),
            Target::User("alice".into())
        );
        assert_eq!(
            me(ClientRelay::SameUser).relay_target(Target::Client("phone".into())).expect("own client"),
            Target::Client("alice:phone".into())
        );
        assert!(me(ClientRelay::SameUser).relay_target(Target::Client("bob:tab".into())).is_err());
        assert_eq!(me(ClientRelay::All).relay_target(Target::All).expect("all"), Target::All);
        let anon = SocketIdentity::verified(None, None, ClientRelay::SameUser).expect("anonymous");
        assert!(anon.relay_target(Target::All).is_err());
    }
}
