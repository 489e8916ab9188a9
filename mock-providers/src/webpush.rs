//! The Web Push service stand-in (RFC 8030): `POST /wp/{subscription}`.
//!
//! It issues subscriptions whose private keys it keeps, so it can do what a
//! browser does: check the VAPID token (RFC 8292) and decrypt the
//! `aes128gcm` body (RFC 8291). Accepted pushes are kept decrypted, under
//! the subscription id, for tests to read. Its own cryptography (the
//! `p256` crate for ECDH, `ring` for the rest) is independent of the
//! gateway's, so a mistake on either side shows.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hyper::body::Incoming;
use hyper::{Request, Response};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use ring::hkdf::{KeyType, Prk, Salt, HKDF_SHA256};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::behavior::Decision;
use crate::http::{self, Body};
use crate::state::{bump, Provider, Received, State, Subscriber};

/// The largest body push services must accept (RFC 8030 §7.2).
const MAX_BODY: usize = 4096;
/// VAPID tokens may not expire later than this from now (RFC 8292 §2).
const MAX_TOKEN_LIFETIME: u64 = 24 * 3600;

/// A browser's `PushSubscription`, as `subscription.toJSON()` gives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebPushSubscription {
    /// Where the gateway POSTs: `https://127.0.0.1:PORT/wp/{id}`.
    pub endpoint: String,
    /// The keys to encrypt for.
    pub keys: SubscriptionKeys,
}

/// `keys` of a [`WebPushSubscription`], base64url.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionKeys {
    /// The browser's P-256 public key (uncompressed point).
    pub p256dh: String,
    /// The 16-byte authentication secret.
    pub auth: String,
}

impl WebPushSubscription {
    /// The subscription id: the endpoint's last segment, under which
    /// behaviours are set and pushes are kept.
    pub fn id(&self) -> &str {
        self.endpoint.rsplit('/').next().unwrap_or_default()
    }

    /// As JSON, the `subscription` of a device registration.
    pub fn json(&self) -> Value {
        json!(self)
    }
}

/// Issues a subscription whose id starts with `prefix` (the naming
/// convention of [`crate::behavior`] applies to ids: `dead-` answers 410).
/// Its endpoint followed by `~` and any suffix is another endpoint with the
/// same keys, answered and counted on its own.
pub(crate) fn subscribe(state: &State, prefix: &str) -> WebPushSubscription {
    let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let public = secret.public_key().to_encoded_point(false).as_bytes().to_vec();
    let auth: [u8; 16] = rand::random();
    let id = format!("{prefix}{}", uuid::Uuid::new_v4().simple());
    let subscription = WebPushSubscription {
        endpoint: format!("{}/wp/{id}", state.base_url),
        keys: SubscriptionKeys { p256dh: URL_SAFE_NO_PAD.encode(&public), auth: URL_SAFE_NO_PAD.encode(auth) },
    };
    state.subscribers.insert(id, Subscriber { secret, public, auth });
    subscription
}

/// Autopush's error body.
fn error(status: u16, errno: u16, message: &str) -> Response<Body> {
    http::json(status, &json!({"code": status, "errno": errno, "error": message, "message": message}))
}

/// Handles one push to subscription `id`.
pub(crate) async fn push(state: &State, id: &str, req: Request<Incoming>) -> Response<Body> {
    if let Err(message) = check_vapid(state, http::header(&req, "authorization")) {
        return error(401, 109, &message);
    }
    let Some(ttl) = http::header(&req, "ttl").and_then(|t| t.parse::<u64>().ok()) else {
        return error(400, 111, "Missing TTL header");
    };
    if http::header(&req, "content-encoding") != Some("aes128gcm") {
        return error(400, 110, "Unknown Content-Encoding");
    }
    let mut headers = BTreeMap::from([("ttl".to_owned(), ttl.to_string())]);
    for name in ["urgency", "topic"] {
        if let Some(value) = http::header(&req, name) {
            headers.insert(name.to_owned(), value.to_owned());
        }
    }
    if !matches!(headers.get("urgency").map(String::as_str), None | Some("very-low" | "low" | "normal" | "high")) {
        return error(400, 111, "Invalid Urgency header");
    }
    let Some(body) = http::read_body(req).await else {
        return error(413, 104, "Payload too large");
    };
    if body.len() > MAX_BODY {
        return error(413, 104, "Payload too large");
    }
    bump(&state.counters.webpush_requests);
    let attempt = state.record_attempt(id);
    match state.behaviors.decide(id, attempt) {
        Decision::Accept => {}
        Decision::Delay(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
        Decision::Dead | Decision::UnregisteredSince(_) => return error(410, 106, "Subscription expired"),
        Decision::BadToken => return error(404, 102, "Subscription not found"),
        Decision::Status { status, retry_after } => {
            let resp = error(status, 201, "Mock failure");
            return match retry_after {
                Some(secs) => http::with_header(resp, "retry-after", &secs.to_string()),
                None => resp,
            };
        }
        Decision::SenderIdMismatch | Decision::PermissionDenied => return error(403, 109, "Forbidden"),
        Decision::ThirdPartyAuthError => return error(401, 109, "Unauthorized"),
        Decision::Fail { status, reason } => return error(status, 999, &reason),
    }
    let plain = {
        // `{id}~{anything}` is another endpoint of subscription `id`'s keys:
        // a load test seeds any number of browsers from one subscription.
        let keys_of = id.split_once('~').map_or(id, |(family, _)| family);
        let Some(subscriber) = state.subscribers.get(keys_of) else {
            return error(410, 106, "Subscription expired");
        };
        match decrypt(&subscriber, &body) {
            Some(plain) => plain,
            None => return error(400, 110, "Decryption failed"),
        }
    };
    let payload =
        serde_json::from_slice(&plain).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&plain).into()));
    bump(&state.counters.webpush_delivered);
    state.record_delivery(id, Received { provider: Provider::WebPush, sandbox: false, headers, payload });
    let location = format!("{}/wp-message/{}", state.base_url, uuid::Uuid::new_v4().simple());
    http::with_header(http::empty(201), "location", &location)
}

#[derive(Deserialize)]
struct VapidClaims {
    aud: String,
    exp: u64,
    sub: String,
}

/// Checks `Authorization: vapid t=<JWT>, k=<public key>`: an ES256 token
/// signed by `k`, for this origin, expiring within 24 hours, with a contact.
/// A token seen valid is remembered until it expires.
fn check_vapid(state: &State, header: Option<&str>) -> Result<(), String> {
    let header = header.ok_or("Missing Authorization header")?;
    let params = header.strip_prefix("vapid ").ok_or("Authorization is not the vapid scheme")?;
    let (mut token, mut key) = (None, None);
    for part in params.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => token = Some(v),
            Some(("k", v)) => key = Some(v),
            _ => {}
        }
    }
    let (token, key) = (token.ok_or("vapid t= missing")?, key.ok_or("vapid k= missing")?);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let cache_key = format!("{token}|{key}");
    if state.vapid_tokens.get(&cache_key).is_some_and(|exp| *exp > now) {
        return Ok(());
    }
    let point = URL_SAFE_NO_PAD.decode(key).map_err(|_| "vapid k= is not base64url")?;
    if point.len() != 65 || point[0] != 4 {
        return Err("vapid k= is not an uncompressed P-256 point".into());
    }
    let verifier =
        DecodingKey::from_ec_components(&URL_SAFE_NO_PAD.encode(&point[1..33]), &URL_SAFE_NO_PAD.encode(&point[33..]))
            .map_err(|e| format!("vapid k=: {e}"))?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[&state.base_url]);
    validation.leeway = 0;
    let claims = jsonwebtoken::decode::<VapidClaims>(token, &verifier, &validation)
        .map_err(|e| format!("invalid VAPID token: {e}"))?
        .claims;
    if claims.exp > now + MAX_TOKEN_LIFETIME {
        return Err("VAPID token expires more than 24 hours from now".into());
    }
    if claims.aud != state.base_url {
        return Err("VAPID aud is not this push service's origin".into());
    }
    if !(claims.sub.starts_with("mailto:") || claims.sub.starts_with("https://")) {
        return Err("VAPID sub must be a mailto: or https: contact".into());
    }
    state.vapid_tokens.insert(cache_key, claims.exp);
    Ok(())
}

struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn expand(prk: &Prk, info: &[&[u8]], out: &mut [u8]) -> Option<()> {
    prk.expand(info, Len(out.len())).ok()?.fill(out).ok()
}

/// Decrypts an `aes128gcm` body as the browser would (RFC 8291 §3.4, RFC
/// 8188 §2): one record, the sender's key in the header.
fn decrypt(subscriber: &Subscriber, body: &[u8]) -> Option<Vec<u8>> {
    let salt = body.get(..16)?;
    let id_len = usize::from(*body.get(20)?);
    let sender_public = body.get(21..21 + id_len)?;
    let record = body.get(21 + id_len..)?;
    let sender = p256::PublicKey::from_sec1_bytes(sender_public).ok()?;
    let shared = p256::ecdh::diffie_hellman(subscriber.secret.to_nonzero_scalar(), sender.as_affine());
    let prk = Salt::new(HKDF_SHA256, &subscriber.auth).extract(shared.raw_secret_bytes());
    let mut ikm = [0u8; 32];
    expand(&prk, &[b"WebPush: info\0", &subscriber.public, sender_public], &mut ikm)?;
    let prk = Salt::new(HKDF_SHA256, salt).extract(&ikm);
    let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
    expand(&prk, &[b"Content-Encoding: aes128gcm\0"], &mut cek)?;
    expand(&prk, &[b"Content-Encoding: nonce\0"], &mut nonce)?;
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &cek).ok()?);
    let mut record = record.to_vec();
    let plain = key.open_in_place(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut record).ok()?;
    // Zero padding may follow the delimiter; 2 ends the last record.
    let end = plain.iter().rposition(|b| *b != 0)?;
    (plain[end] == 2).then(|| plain[..end].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(s).expect("base64url")
    }

    /// RFC 8291 Appendix A, decrypted with the browser's private key.
    #[test]
    fn decrypts_the_rfc_8291_example() {
        let secret = p256::SecretKey::from_slice(&b64("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94")).expect("key");
        let subscriber = Subscriber {
            public: secret.public_key().to_encoded_point(false).as_bytes().to_vec(),
            secret,
            auth: b64("BTBZMqHH6r4Tts7J_aSIgg").try_into().expect("16 bytes"),
        };
        assert_eq!(
            subscriber.public,
            b64("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4")
        );
        let body = b64("DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN");
        assert_eq!(decrypt(&subscriber, &body).as_deref(), Some(&b"When I grow up, I want to be a watermelon"[..]));
        let mut tampered = body.clone();
        tampered[100] ^= 1;
        assert_eq!(decrypt(&subscriber, &tampered), None);
    }
}
