//! `/mock/*`: script and inspect the stand-in over HTTP (staging, benchmarks).
//!
//! - `POST /mock/behavior` `{"token": "…", "behavior": {"kind": "dead"}}` → 204
//! - `DELETE /mock/behavior/{token}` → 204
//! - `GET /mock/stats` → totals ([`crate::MockStats`])
//! - `GET /mock/received/{token}` → `{"token", "attempts", "delivered", "received": [...]}`
//! - `POST /mock/expire-apns-tokens`, `POST /mock/revoke-fcm-tokens` → 204
//! - `POST /mock/oauth` `{"failure": "invalid_grant" | "unavailable" | null}` → 204
//! - `POST` / `DELETE /mock/revoked-apns-keys/{key_id}` → 204 (refuse / accept its tokens again)
//! - `POST /mock/webpush/subscriptions` `{"prefix"?}` → 201 a Web Push subscription
//!   (`{"endpoint", "keys": {"p256dh", "auth"}}`) whose pushes this stand-in decrypts;
//!   `{endpoint}~{n}` is another endpoint with the same keys (load tests seed
//!   any number of browsers from one)

use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use serde::Deserialize;
use serde_json::json;

use crate::behavior::Behavior;
use crate::http::{self, Body};
use crate::state::State;
use crate::OAuthFailure;
use crate::{apns, fcm, webpush};

#[derive(Deserialize)]
struct SetOAuth {
    failure: Option<OAuthFailureName>,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum OAuthFailureName {
    InvalidGrant,
    Unavailable,
}

#[derive(Deserialize)]
struct SetBehavior {
    token: String,
    behavior: Behavior,
}

fn not_found() -> Response<Body> {
    http::json(404, &json!({"error": "no such mock control endpoint"}))
}

/// Routes a `/mock/…` request; `rest` is the path after `/mock/`.
pub(crate) async fn handle(state: &State, rest: &str, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    match (&method, rest) {
        (&Method::POST, "behavior") => {
            let Some(body) = http::read_body(req).await else {
                return http::json(413, &json!({"error": "body too large"}));
            };
            match serde_json::from_slice::<SetBehavior>(&body) {
                Ok(set) => {
                    state.behaviors.set(&set.token, set.behavior);
                    http::empty(204)
                }
                Err(e) => http::json(400, &json!({"error": e.to_string()})),
            }
        }
        (&Method::POST, "webpush/subscriptions") => {
            let Some(body) = http::read_body(req).await else {
                return http::json(413, &json!({"error": "body too large"}));
            };
            let prefix = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("prefix").and_then(|p| p.as_str()).map(str::to_owned))
                .unwrap_or_default();
            http::json(201, &webpush::subscribe(state, &prefix).json())
        }
        (&Method::GET, "stats") => http::json(200, &json!(state.stats())),
        (&Method::POST, "oauth") => {
            let Some(body) = http::read_body(req).await else {
                return http::json(413, &json!({"error": "body too large"}));
            };
            match serde_json::from_slice::<SetOAuth>(&body) {
                Ok(set) => {
                    let failure = set.failure.map(|f| match f {
                        OAuthFailureName::InvalidGrant => OAuthFailure::InvalidGrant,
                        OAuthFailureName::Unavailable => OAuthFailure::Unavailable,
                    });
                    *state.oauth_failure.write().unwrap_or_else(|e| e.into_inner()) = failure;
                    http::empty(204)
                }
                Err(e) => http::json(400, &json!({"error": e.to_string()})),
            }
        }
        (&Method::POST, _) if rest.starts_with("revoked-apns-keys/") => {
            state.revoked_keys.insert(rest["revoked-apns-keys/".len()..].to_owned(), ());
            http::empty(204)
        }
        (&Method::DELETE, _) if rest.starts_with("revoked-apns-keys/") => {
            state.revoked_keys.remove(&rest["revoked-apns-keys/".len()..]);
            http::empty(204)
        }
        (&Method::POST, "expire-apns-tokens") => {
            apns::expire_jwts(state);
            http::empty(204)
        }
        (&Method::POST, "revoke-fcm-tokens") => {
            fcm::revoke_tokens(state);
            http::empty(204)
        }
        (&Method::DELETE, _) if rest.starts_with("behavior/") => {
            state.behaviors.clear(&rest["behavior/".len()..]);
            http::empty(204)
        }
        (&Method::GET, _) if rest.starts_with("received/") => {
            let token = &rest["received/".len()..];
            let (attempts, delivered) = state.counts(token);
            http::json(
                200,
                &json!({"token": token, "attempts": attempts, "delivered": delivered, "received": state.received(token)}),
            )
        }
        _ => not_found(),
    }
}
