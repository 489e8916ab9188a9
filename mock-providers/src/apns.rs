//! The APNs stand-in: `POST /3/device/{token}`, answering as Apple does.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hyper::body::Incoming;
use hyper::{Request, Response, Version};
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::behavior::{is_sandbox_token, Decision};
use crate::http::{self, Body};
use crate::state::{bump, JwtEntry, Provider, Received, State};

/// Apple's payload limit for ordinary notifications.
const MAX_PAYLOAD: usize = 4096;
/// Apple refuses provider tokens older than one hour.
const MAX_JWT_AGE: u64 = 3600;
/// Bound on remembered JWTs, so a flood of distinct tokens cannot grow memory.
const MAX_CACHED_JWTS: usize = 10_000;
const PUSH_TYPES: &[&str] = &[
    "alert",
    "background",
    "voip",
    "complication",
    "fileprovider",
    "mdm",
    "location",
    "liveactivity",
    "pushtotalk",
    "widgets",
    "controls",
];

#[derive(Deserialize)]
struct Claims {
    iss: String,
    iat: u64,
}

const TOO_MANY_UPDATES: &str = "TooManyProviderTokenUpdates";

fn error(status: u16, reason: &str) -> Response<Body> {
    http::json(status, &json!({ "reason": reason }))
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// Checks the provider token; on success returns the topic its key may
/// use, else the status and reason to answer.
fn authenticate(state: &State, jwt: Option<&str>) -> Result<String, (u16, &'static str)> {
    let forbidden = |reason| (403, reason);
    let jwt = jwt.ok_or(forbidden("MissingProviderToken"))?;
    let now = now_secs();
    if let Some(entry) = state.jwts.get(jwt) {
        if state.revoked_keys.contains_key(&entry.kid) {
            return Err(forbidden("InvalidProviderToken"));
        }
        if entry.expired || now.saturating_sub(entry.iat) > MAX_JWT_AGE {
            return Err(forbidden("ExpiredProviderToken"));
        }
        return Ok(entry.topic.clone());
    }
    verify(state, jwt, now).map_err(|reason| if reason == TOO_MANY_UPDATES { (429, reason) } else { forbidden(reason) })
}

/// Verifies a provider token not seen before and remembers it, unless it
/// updates its key's token too soon: Apple refuses a new token for a key
/// within 20 minutes of the previous one (429 `TooManyProviderTokenUpdates`).
fn verify(state: &State, jwt: &str, now: u64) -> Result<String, &'static str> {
    let header = jsonwebtoken::decode_header(jwt).map_err(|_| "InvalidProviderToken")?;
    if header.alg != Algorithm::ES256 {
        return Err("InvalidProviderToken");
    }
    let kid = header.kid.ok_or("InvalidProviderToken")?;
    if state.revoked_keys.contains_key(&kid) {
        return Err("InvalidProviderToken");
    }
    let key = {
        let keys = state.apns_keys.read().unwrap_or_else(|e| e.into_inner());
        keys.get(&kid).cloned().ok_or("InvalidProviderToken")?
    };
    let mut validation = Validation::new(Algorithm::ES256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let claims =
        jsonwebtoken::decode::<Claims>(jwt, &key.verifier, &validation).map_err(|_| "InvalidProviderToken")?.claims;
    if claims.iss != key.team_id {
        return Err("InvalidProviderToken");
    }
    if now.saturating_sub(claims.iat) > MAX_JWT_AGE {
        return Err("ExpiredProviderToken");
    }
    {
        let mut updated = state.key_updates.entry(kid.clone()).or_insert(None);
        if updated.is_some_and(|at| at.elapsed() < state.token_update_window) {
            return Err(TOO_MANY_UPDATES);
        }
        *updated = Some(Instant::now());
    }
    if state.jwts.len() >= MAX_CACHED_JWTS {
        state.jwts.clear();
    }
    let entry = JwtEntry { iat: claims.iat, topic: key.topic.clone(), kid, expired: false };
    if state.jwts.insert(jwt.to_owned(), entry).is_none() {
        bump(&state.counters.apns_jwts);
    }
    Ok(key.topic)
}

/// Checks the `apns-*` headers as Apple does; returns them for the record.
fn check_headers(req: &Request<Incoming>, topic: &str) -> Result<BTreeMap<String, String>, &'static str> {
    match http::header(req, "apns-topic") {
        None => return Err("MissingTopic"),
        Some(t) if t != topic => return Err("TopicDisallowed"),
        Some(_) => {}
    }
    let push_type = http::header(req, "apns-push-type").unwrap_or_default();
    if !PUSH_TYPES.contains(&push_type) {
        return Err("InvalidPushType");
    }
    if let Some(priority) = http::header(req, "apns-priority") {
        match priority {
            "10" if push_type == "background" => return Err("BadPriority"),
            "1" | "5" | "10" => {}
            _ => return Err("BadPriority"),
        }
    }
    if http::header(req, "apns-expiration").is_some_and(|e| e.parse::<u64>().is_err()) {
        return Err("BadExpirationDate");
    }
    if http::header(req, "apns-collapse-id").is_some_and(|c| c.len() > 64) {
        return Err("BadCollapseId");
    }
    if http::header(req, "apns-id").is_some_and(|id| uuid::Uuid::parse_str(id).is_err()) {
        return Err("BadMessageId");
    }
    Ok(req
        .headers()
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("apns-"))
        .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
        .collect())
}

fn valid_token(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Handles one push, to the production host or (`sandbox`) the sandbox one.
pub(crate) async fn push(state: &State, token: &str, sandbox: bool, req: Request<Incoming>) -> Response<Body> {
    // Apple speaks HTTP/2 only; a client that falls back to HTTP/1.1 is wrong.
    if req.version() != Version::HTTP_2 {
        return error(505, "HTTP2Required");
    }
    let topic = match authenticate(state, http::bearer(&req)) {
        Ok(topic) => topic,
        Err((status, reason)) => return error(status, reason),
    };
    let headers = match check_headers(&req, &topic) {
        Ok(headers) => headers,
        Err(reason) => return error(400, reason),
    };
    if token.is_empty() {
        return error(400, "MissingDeviceToken");
    }
    // A development build's token is unknown to the production host.
    if !valid_token(token) || (!sandbox && is_sandbox_token(token)) {
        return error(400, "BadDeviceToken");
    }
    let apns_id = headers.get("apns-id").cloned().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let Some(body) = http::read_body(req).await else {
        return error(413, "PayloadTooLarge");
    };
    if body.is_empty() {
        return error(400, "PayloadEmpty");
    }
    if body.len() > MAX_PAYLOAD {
        return error(413, "PayloadTooLarge");
    }
    let payload: Value = match serde_json::from_slice(&body) {
        Ok(Value::Object(map)) if map.get("aps").is_some_and(Value::is_object) => Value::Object(map),
        // Apple documents no reason for this; the stand-in names it plainly.
        _ => return error(400, "BadPayload"),
    };
    bump(&state.counters.apns_requests);
    let attempt = state.record_attempt(token);
    let answer = match state.behaviors.decide(token, attempt) {
        Decision::Accept => None,
        Decision::Delay(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            None
        }
        Decision::Dead => Some(http::json(410, &json!({"reason": "Unregistered", "timestamp": now_secs() * 1000}))),
        Decision::UnregisteredSince(ms) => Some(http::json(410, &json!({"reason": "Unregistered", "timestamp": ms}))),
        Decision::BadToken => Some(error(400, "BadDeviceToken")),
        Decision::SenderIdMismatch => Some(error(400, "DeviceTokenNotForTopic")),
        Decision::ThirdPartyAuthError => Some(error(403, "InvalidProviderToken")),
        Decision::PermissionDenied => Some(error(400, "BadTopic")),
        Decision::Status { status, retry_after } => {
            let reason = match status {
                429 => "TooManyRequests",
                500 => "InternalServerError",
                _ => "ServiceUnavailable",
            };
            let resp = error(status, reason);
            Some(match retry_after {
                Some(secs) => http::with_header(resp, "retry-after", &secs.to_string()),
                None => resp,
            })
        }
        Decision::Fail { status, reason } => Some(error(status, &reason)),
    };
    if let Some(resp) = answer {
        return http::with_header(resp, "apns-id", &apns_id);
    }
    bump(&state.counters.apns_delivered);
    state.record_delivery(token, Received { provider: Provider::Apns, sandbox, headers, payload });
    let resp = http::with_header(http::empty(200), "apns-id", &apns_id);
    http::with_header(resp, "apns-unique-id", &uuid::Uuid::new_v4().to_string())
}

/// Marks every provider token seen so far as expired (tests of renewal).
pub(crate) fn expire_jwts(state: &State) {
    for mut entry in state.jwts.iter_mut() {
        entry.expired = true;
    }
}
