//! Signatures as the Standard Webhooks specification: the secret is
//! `whsec_` + base64 of its bytes; `webhook-signature` is `v1,` + base64 of
//! HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`, one per
//! secret in force, separated by spaces (a rotation's overlap signs twice).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Mac, SimpleHmac};
use rand::RngCore;

/// The prefix of secrets, as the specification writes them.
const PREFIX: &str = "whsec_";

/// A new secret: 32 random bytes.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{PREFIX}{}", STANDARD.encode(bytes))
}

/// `v1,<signature>` of one message with `secret`; `None` for a secret that
/// is not `whsec_` + base64 (never one the gateway made).
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = STANDARD.decode(secret.strip_prefix(PREFIX)?).ok()?;
    let mut mac = <SimpleHmac<sha2::Sha256> as Mac>::new_from_slice(&key).ok()?;
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    Some(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

/// The `webhook-signature` header: a signature per secret, space-separated.
pub fn header<'a>(secrets: impl IntoIterator<Item = &'a str>, msg_id: &str, timestamp: i64, body: &str) -> String {
    let signatures: Vec<String> = secrets.into_iter().filter_map(|s| sign(s, msg_id, timestamp, body)).collect();
    signatures.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's published example.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1614265330;
    const BODY: &str = r#"{"test": 2432232314}"#;

    #[test]
    fn signs_the_specifications_test_vector() {
        assert_eq!(
            sign(SECRET, MSG_ID, TIMESTAMP, BODY).as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn the_reference_implementation_verifies_every_secret_in_force() {
        let (old, new) = (generate_secret(), generate_secret());
        let now = chrono::Utc::now().timestamp();
        let value = header([old.as_str(), new.as_str()], MSG_ID, now, BODY);
        assert_eq!(value.split(' ').count(), 2);
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("webhook-id", MSG_ID.parse().expect("header"));
        headers.insert("webhook-timestamp", now.to_string().parse().expect("header"));
        headers.insert("webhook-signature", value.parse().expect("header"));
        for secret in [&old, &new] {
            let hook = standardwebhooks::Webhook::new(secret).expect("secret");
            hook.verify(BODY.as_bytes(), &headers).expect("verifies");
        }
        let other = standardwebhooks::Webhook::new(&generate_secret()).expect("secret");
        assert!(other.verify(BODY.as_bytes(), &headers).is_err());
    }

    #[test]
    fn secrets_not_in_the_specifications_form_sign_nothing() {
        assert_eq!(sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", MSG_ID, TIMESTAMP, BODY), None);
        assert_eq!(sign("whsec_!!", MSG_ID, TIMESTAMP, BODY), None);
    }
}
