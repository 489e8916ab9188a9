//! Message encryption for Web Push: `aes128gcm` content coding (RFC 8188)
//! keyed as RFC 8291 says, one record, with a new ephemeral key and salt
//! per message.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, ECDH_P256};
use ring::hkdf::{self, KeyType, Salt, HKDF_SHA256};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::PayloadError;

/// Bytes of the `aes128gcm` header: salt (16), record size (4), key id
/// length (1) and the sender's public key (65).
const HEADER_LEN: usize = 16 + 4 + 1 + 65;
/// The AES-GCM tag and the last-record delimiter added to the plaintext.
const OVERHEAD: usize = 16 + 1;
/// The body size every push service must accept (RFC 8030 §7.2).
pub const MAX_BODY: usize = 4096;
/// Largest plaintext (the JSON payload) that fits in [`MAX_BODY`].
pub const MAX_PAYLOAD: usize = MAX_BODY - HEADER_LEN - OVERHEAD;

/// A browser's `PushSubscription`: where to POST and the keys to encrypt for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    /// The push service URL.
    pub endpoint: String,
    /// The browser's P-256 public key, uncompressed (65 bytes).
    pub p256dh: [u8; 65],
    /// The browser's authentication secret (16 bytes).
    pub auth: [u8; 16],
}

impl Subscription {
    /// Reads `keys.p256dh` and `keys.auth` as browsers give them (base64url,
    /// padding tolerated); the error names the field at fault.
    pub fn from_keys(endpoint: &str, p256dh: &str, auth: &str) -> Result<Self, (&'static str, &'static str)> {
        let decode = |s: &str| URL_SAFE_NO_PAD.decode(s.trim_end_matches('='));
        let p256dh: [u8; 65] = decode(p256dh)
            .ok()
            .and_then(|k| k.try_into().ok())
            .filter(|k: &[u8; 65]| k[0] == 4)
            .ok_or(("keys.p256dh", "p256dh is an uncompressed P-256 public key (65 bytes, base64url)"))?;
        let auth: [u8; 16] = decode(auth)
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or(("keys.auth", "auth is a 16-byte secret (base64url)"))?;
        Ok(Self { endpoint: endpoint.to_owned(), p256dh, auth })
    }

    /// `p256dh` and `auth` in base64url, as browsers give them.
    pub fn keys_base64(&self) -> (String, String) {
        (URL_SAFE_NO_PAD.encode(self.p256dh), URL_SAFE_NO_PAD.encode(self.auth))
    }
}

/// An HKDF output length.
struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn expand(prk: &hkdf::Prk, info: &[&[u8]], out: &mut [u8]) -> Result<(), ring::error::Unspecified> {
    prk.expand(info, Len(out.len()))?.fill(out)
}

/// Encrypts `payload` for `to`: the body of the push request, with a new
/// ephemeral key and salt.
pub fn encrypt(payload: &[u8], to: &Subscription) -> Result<Vec<u8>, PayloadError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(PayloadError::TooLarge { size: payload.len() + HEADER_LEN + OVERHEAD, limit: MAX_BODY });
    }
    let failed = |_| PayloadError::Encryption;
    let rng = SystemRandom::new();
    let ephemeral = EphemeralPrivateKey::generate(&ECDH_P256, &rng).map_err(failed)?;
    let sender_public = ephemeral.compute_public_key().map_err(failed)?;
    let mut salt = [0u8; 16];
    rng.fill(&mut salt).map_err(failed)?;
    let peer = UnparsedPublicKey::new(&ECDH_P256, &to.p256dh[..]);
    agreement::agree_ephemeral(ephemeral, &peer, |shared| {
        seal(shared, &to.auth, &to.p256dh, sender_public.as_ref(), &salt, payload)
    })
    .map_err(failed)?
}

/// The `aes128gcm` body of `payload` from the ECDH shared secret: RFC 8291
/// §3.4 and RFC 8188 §2, one record.
fn seal(
    shared: &[u8],
    auth: &[u8],
    receiver_public: &[u8],
    sender_public: &[u8],
    salt: &[u8; 16],
    payload: &[u8],
) -> Result<Vec<u8>, PayloadError> {
    let failed = |_| PayloadError::Encryption;
    // The input keying material mixes the shared secret with the browser's
    // auth secret and both public keys.
    let prk = Salt::new(HKDF_SHA256, auth).extract(shared);
    let mut ikm = [0u8; 32];
    expand(&prk, &[b"WebPush: info\0", receiver_public, sender_public], &mut ikm).map_err(failed)?;
    let prk = Salt::new(HKDF_SHA256, salt).extract(&ikm);
    let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
    expand(&prk, &[b"Content-Encoding: aes128gcm\0"], &mut cek).map_err(failed)?;
    expand(&prk, &[b"Content-Encoding: nonce\0"], &mut nonce).map_err(failed)?;

    let mut body = Vec::with_capacity(HEADER_LEN + payload.len() + OVERHEAD);
    body.extend_from_slice(salt);
    body.extend_from_slice(&(MAX_BODY as u32).to_be_bytes());
    body.push(sender_public.len() as u8);
    body.extend_from_slice(sender_public);
    let mut record = Vec::with_capacity(payload.len() + OVERHEAD);
    record.extend_from_slice(payload);
    record.push(2); // the last (and only) record, no padding
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &cek).map_err(failed)?);
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut record).map_err(failed)?;
    body.extend_from_slice(&record);
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(s).expect("base64url")
    }

    /// RFC 8291 Appendix A: the worked example, byte for byte from its
    /// shared secret and salt.
    #[test]
    fn seals_the_rfc_8291_example() {
        let salt: [u8; 16] = b64("DGv6ra1nlYgDCS1FRnbzlw").try_into().expect("16 bytes");
        let body = seal(
            &b64("kyrL1jIIOHEzg3sM2ZWRHDRB62YACZhhSlknJ672kSs"),
            &b64("BTBZMqHH6r4Tts7J_aSIgg"),
            &b64("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"),
            &b64("BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"),
            &salt,
            b"When I grow up, I want to be a watermelon",
        )
        .expect("seals");
        assert_eq!(
            URL_SAFE_NO_PAD.encode(body),
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
        );
    }

    #[test]
    fn refuses_payloads_over_the_limit() {
        let to = Subscription { endpoint: "https://push.example/x".into(), p256dh: [4; 65], auth: [0; 16] };
        let err = encrypt(&vec![b'a'; MAX_PAYLOAD + 1], &to).expect_err("too large");
        assert_eq!(err, PayloadError::TooLarge { size: MAX_BODY + 1, limit: MAX_BODY });
    }

    #[test]
    fn reads_browser_keys_and_names_the_bad_one() {
        let p256dh = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
        let sub = Subscription::from_keys("https://e/x", p256dh, "BTBZMqHH6r4Tts7J_aSIgg==").expect("valid");
        assert_eq!(sub.keys_base64(), (p256dh.to_owned(), "BTBZMqHH6r4Tts7J_aSIgg".to_owned()));
        assert_eq!(Subscription::from_keys("e", "AAAA", "BTBZMqHH6r4Tts7J_aSIgg").unwrap_err().0, "keys.p256dh");
        assert_eq!(Subscription::from_keys("e", p256dh, "short").unwrap_err().0, "keys.auth");
    }
}
