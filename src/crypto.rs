//! Small cryptographic helpers shared by sessions, CSRF, flow state and signing.
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A random URL-safe token carrying `bytes` bytes of entropy.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// Hex SHA-256 of a value: what the store sees instead of a bearer secret.
pub fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// URL-safe base64 SHA-256, as PKCE S256 uses.
pub fn sha256_b64url(value: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(value))
}

/// HMAC-SHA256 of `message` under `key`, URL-safe base64.
pub fn hmac_b64url(key: &[u8], purpose: &str, message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(purpose.as_bytes());
    mac.update(b"\0");
    mac.update(message.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// Compares two secrets in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A 256-bit key for `purpose`, derived from the server secret (so one secret serves every
/// use without any two uses sharing a key).
fn derive_key(secret: &[u8], purpose: &str) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(b"latch aead v1\0");
    mac.update(purpose.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Encrypts and authenticates `plaintext` (AES-256-GCM, random nonce) under a key derived
/// from `secret` for `purpose`. The result is `v1.<base64url(nonce || ciphertext || tag)>`.
pub fn seal(secret: &[u8], purpose: &str, plaintext: &[u8]) -> String {
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, &derive_key(secret, purpose)).expect("32-byte key"),
    );
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let mut buffer = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(purpose.as_bytes()),
        &mut buffer,
    )
    .expect("AES-GCM sealing does not fail for in-memory buffers");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buffer);
    format!("v1.{}", URL_SAFE_NO_PAD.encode(out))
}

/// Opens a value sealed by `seal` with any of `secrets` (the current one first, then
/// `previous_secrets`, so records written before a secret rotation stay readable).
pub fn open(secrets: &[&[u8]], purpose: &str, sealed: &str) -> Option<Vec<u8>> {
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
    let bytes = URL_SAFE_NO_PAD.decode(sealed.strip_prefix("v1.")?).ok()?;
    if bytes.len() < NONCE_LEN + AES_256_GCM.tag_len() {
        return None;
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
    secrets.iter().find_map(|secret| {
        let key =
            LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &derive_key(secret, purpose)).ok()?);
        let mut buffer = ciphertext.to_vec();
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        key.open_in_place(nonce, Aad::from(purpose.as_bytes()), &mut buffer)
            .ok()
            .map(|plain| plain.to_vec())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_long_enough() {
        let a = random_token(32);
        let b = random_token(32);
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
    }

    #[test]
    fn hmac_depends_on_purpose() {
        assert_ne!(hmac_b64url(b"k", "a", "m"), hmac_b64url(b"k", "b", "m"));
        assert_eq!(hmac_b64url(b"k", "a", "m"), hmac_b64url(b"k", "a", "m"));
    }

    #[test]
    fn pkce_s256_matches_rfc7636_example() {
        assert_eq!(
            sha256_b64url(b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn sealed_values_open_with_the_right_secret_and_purpose_only() {
        let old = b"old secret old secret old secret!";
        let new = b"new secret new secret new secret!";
        let sealed = seal(old, "provider-token", b"gho_abc");
        assert!(!sealed.contains("gho_abc"));
        assert_eq!(open(&[old], "provider-token", &sealed).unwrap(), b"gho_abc");
        // After rotation: the new secret first, the old one as a previous secret.
        assert_eq!(
            open(&[new, old], "provider-token", &sealed).unwrap(),
            b"gho_abc"
        );
        assert!(open(&[new], "provider-token", &sealed).is_none());
        assert!(
            open(&[old], "signing-key", &sealed).is_none(),
            "purpose is bound"
        );
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(open(&[old], "provider-token", &tampered).is_none());
        assert!(open(&[old], "provider-token", "v1.AAAA").is_none());
        assert_ne!(seal(old, "p", b"x"), seal(old, "p", b"x"), "random nonce");
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
    }
}
