//! ES256 signing keys and compact JWS, for tokens latch issues itself.
use crate::crypto::{b64url, random_token};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

pub struct SigningKey {
    kid: String,
    pair: EcdsaKeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh P-256 key with a random key id.
    pub fn generate() -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .expect("P-256 key generation does not fail");
        SigningKey {
            kid: random_token(12),
            pair,
        }
    }

    /// A fresh P-256 key with key id `kid`, and its PKCS#8 v1 DER (to be sealed and stored).
    pub fn generate_pkcs8(kid: &str) -> (Self, Vec<u8>) {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .expect("P-256 key generation does not fail");
        let der = pair
            .to_pkcs8v1()
            .expect("a generated P-256 key serializes")
            .as_ref()
            .to_vec();
        (
            SigningKey {
                kid: kid.to_string(),
                pair,
            },
            der,
        )
    }

    /// A P-256 key from PKCS#8 DER (as [`SigningKey::generate_pkcs8`] returns it).
    pub fn from_pkcs8_der(der: &[u8], kid: &str) -> Result<Self, String> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map_err(|_| "not a P-256 (ES256) private key".to_string())?;
        Ok(SigningKey {
            kid: kid.to_string(),
            pair,
        })
    }

    /// A P-256 key from a PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"), e.g. an Apple `.p8`.
    pub fn from_pkcs8_pem(pem: &str, kid: &str) -> Result<Self, String> {
        use base64::Engine;
        let body: String = pem
            .lines()
            .map(str::trim)
            .skip_while(|l| *l != "-----BEGIN PRIVATE KEY-----")
            .skip(1)
            .take_while(|l| *l != "-----END PRIVATE KEY-----")
            .collect();
        if body.is_empty() {
            return Err("not a PKCS#8 PEM (expected -----BEGIN PRIVATE KEY-----)".into());
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| "the PEM body is not base64".to_string())?;
        Self::from_pkcs8_der(&der, kid)
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half as a JWK (RFC 7517/7518).
    pub fn public_jwk(&self) -> Value {
        // Uncompressed SEC1 point: 0x04 || x || y.
        let point = self.pair.public_key().as_ref();
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(&point[1..33]),
            "y": b64url(&point[33..65]),
            "kid": self.kid,
            "alg": "ES256",
            "use": "sig",
        })
    }

    /// Signs `claims` as a compact JWS with `alg: ES256` and this key's `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(
            json!({"alg": "ES256", "typ": "JWT", "kid": self.kid}),
            claims,
        )
    }

    /// Signs with a caller-made header (Apple's client secret has no `typ`).
    pub fn sign_with_header(&self, header: Value, claims: &Value) -> String {
        let signing_input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let signature = self
            .pair
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .expect("ECDSA signing does not fail");
        format!("{signing_input}.{}", b64url(signature.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_a_pkcs8_pem() {
        use base64::Engine;
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let der = pair.to_pkcs8v1().unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n");
        let key = SigningKey::from_pkcs8_pem(&pem, "K1").unwrap();
        assert_eq!(key.kid(), "K1");
        assert!(SigningKey::from_pkcs8_pem("nonsense", "K").is_err());
    }

    #[test]
    fn pkcs8_round_trip_keeps_the_public_key() {
        let (key, der) = SigningKey::generate_pkcs8("K2");
        let again = SigningKey::from_pkcs8_der(&der, "K2").unwrap();
        assert_eq!(key.public_jwk(), again.public_jwk());
        assert!(SigningKey::from_pkcs8_der(b"junk", "K").is_err());
    }

    #[test]
    fn jwk_has_the_coordinates_and_token_has_three_parts() {
        let key = SigningKey::generate();
        let jwk = key.public_jwk();
        assert_eq!(jwk["x"].as_str().unwrap().len(), 43);
        assert_eq!(jwk["kid"], key.kid());
        let token = key.sign(&json!({"sub": "1"}));
        assert_eq!(token.split('.').count(), 3);
        assert!(!format!("{key:?}").contains(&token[..10]));
    }
}
