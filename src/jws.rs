//! ES256 signing keys and compact JWS, for tokens latch issues itself.
use crate::crypto::{b64url, random_token};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
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

/// The uncompressed SEC1 point (0x04 || x || y) of a P-256 public JWK.
pub fn p256_point(jwk: &Value) -> Option<Vec<u8>> {
    use base64::Engine;
    if jwk["kty"] != "EC" || jwk["crv"] != "P-256" {
        return None;
    }
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let x = b64.decode(jwk["x"].as_str()?).ok()?;
    let y = b64.decode(jwk["y"].as_str()?).ok()?;
    if x.len() != 32 || y.len() != 32 {
        return None;
    }
    let mut point = Vec::with_capacity(65);
    point.push(4);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Some(point)
}

/// The `kid` of a compact JWS whose header says `alg: ES256`; `Err` with the reason otherwise.
pub fn es256_kid(token: &str) -> Result<String, String> {
    use base64::Engine;
    let header = token.split('.').next().unwrap_or("");
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice::<Value>(&h).ok())
        .ok_or("not a JWS (unreadable header)")?;
    if header["alg"] != "ES256" {
        return Err(format!("alg {} is not ES256", header["alg"]));
    }
    header["kid"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "no kid in the header".to_string())
}

/// Checks a compact ES256 JWS against the P-256 public key `point` (SEC1 uncompressed) and
/// returns its claims. Only the signature is checked here; claims are the caller's.
pub fn verify_es256(token: &str, point: &[u8]) -> Result<Value, String> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a compact JWS (three parts)".into());
    };
    let signature = b64
        .decode(signature)
        .map_err(|_| "signature is not base64url")?;
    let signing_input = &token[..header.len() + 1 + payload.len()];
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
        .verify(signing_input.as_bytes(), &signature)
        .map_err(|_| "bad signature")?;
    let claims = b64
        .decode(payload)
        .map_err(|_| "payload is not base64url")?;
    let claims: Value = serde_json::from_slice(&claims).map_err(|_| "payload is not JSON")?;
    if !claims.is_object() {
        return Err("claims are not a JSON object".into());
    }
    Ok(claims)
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

    #[test]
    fn es256_verification_checks_the_key_and_every_byte() {
        let key = SigningKey::generate();
        let token = key.sign(&json!({"sub": "u1"}));
        let point = p256_point(&key.public_jwk()).unwrap();
        assert_eq!(es256_kid(&token).unwrap(), key.kid());
        assert_eq!(verify_es256(&token, &point).unwrap()["sub"], "u1");
        let other = p256_point(&SigningKey::generate().public_jwk()).unwrap();
        assert!(verify_es256(&token, &other).is_err());
        let (input, sig) = token.rsplit_once('.').unwrap();
        let forged = format!("{}.{sig}", input.replace(".", ".e30"));
        assert!(verify_es256(&forged, &point).is_err());
        assert!(verify_es256("a.b", &point).is_err());
        let none = format!(
            "{}.{}.",
            b64url(br#"{"alg":"none","kid":"k"}"#),
            b64url(b"{}")
        );
        assert!(es256_kid(&none).unwrap_err().contains("not ES256"));
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Arbitrary text is never a valid token, and reading it never panics.
        #[test]
        fn arbitrary_input_is_never_accepted(
            raw in prop_oneof![
                "\\PC{0,120}",
                "[A-Za-z0-9_=-]{0,40}\\.[A-Za-z0-9_=-]{0,40}\\.[A-Za-z0-9_=-]{0,90}",
            ],
        ) {
            let key = SigningKey::generate();
            let point = p256_point(&key.public_jwk()).unwrap();
            let _ = es256_kid(&raw);
            prop_assert!(verify_es256(&raw, &point).is_err());
            let _ = p256_point(&serde_json::json!({"kty": "EC", "crv": "P-256", "x": raw, "y": raw}));
        }

        /// Changing any one character of a signed token (or cutting it short, or adding to it)
        /// makes it fail verification.
        #[test]
        fn a_tampered_token_is_never_accepted(
            at in any::<prop::sample::Index>(),
            with in prop::sample::select(b"AQgw_-.=e0Z ".to_vec()),
            cut in any::<bool>(),
        ) {
            let key = SigningKey::generate();
            let point = p256_point(&key.public_jwk()).unwrap();
            let token = key.sign(&json!({"sub": "u1", "aud": "api"}));
            prop_assert!(verify_es256(&token, &point).is_ok());
            let mut bytes = token.clone().into_bytes();
            let i = at.index(bytes.len());
            if cut {
                bytes.truncate(i);
            } else if bytes[i] == with {
                bytes.insert(i, with);
            } else {
                bytes[i] = with;
            }
            let tampered = String::from_utf8(bytes).unwrap();
            prop_assert!(verify_es256(&tampered, &point).is_err(), "{tampered}");
        }
    }
}
