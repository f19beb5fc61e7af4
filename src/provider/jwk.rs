//! A provider's signing key: openidconnect's `CoreJsonWebKey`, whose RS256/RS384/RS512
//! signatures are checked with aws-lc-rs first.
//!
//! openidconnect checks RSA signatures with the `rsa` crate (`num-bigint-dig`): ~2.5 million
//! instructions per RS256 ID token, ~70 % of latch's own instructions in a sign-in through
//! oidc-provider (bench/login.sh). aws-lc-rs (already latch's crypto) does the same check for a
//! fraction of that. The check is not weakened: the fast path is taken only where
//! openidconnect's own checks would accept the key for that algorithm (key use, key type, the
//! key's `alg`) and its `rsa` crate would accept the key (a 2048–4096-bit modulus, an exponent
//! in 3..=2^33-1), and it can only say yes: a signature aws-lc-rs refuses, and everything
//! else (RSA-PSS, EC, EdDSA, other key sizes), goes to `CoreJsonWebKey::verify_signature`
//! unchanged. PKCS#1 v1.5 is deterministic: one valid signature per message and key, so both
//! implementations accept exactly the same signatures.
use aws_lc_rs::signature::{
    RsaParameters, RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_2048_8192_SHA384,
    RSA_PKCS1_2048_8192_SHA512,
};
use openidconnect::core::{
    CoreJsonWebKey, CoreJsonWebKeyType, CoreJsonWebKeyUse, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    JsonWebKey, JsonWebKeyAlgorithm, JsonWebKeyId, JsonWebKeySet, JsonWebKeyUse,
    SignatureVerificationError,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::sync::Arc;

/// A provider's key set, as fetched from its `jwks_uri`.
pub type Jwks = JsonWebKeySet<Jwk>;

#[derive(Clone, Debug)]
pub struct Jwk {
    core: CoreJsonWebKey,
    /// The RSA public key (`n`, `e` without leading zeros) when it is one aws-lc-rs may check.
    rsa: Option<Arc<(Vec<u8>, Vec<u8>)>>,
}

impl Jwk {
    fn new(core: CoreJsonWebKey) -> Jwk {
        let rsa = rsa_components(&core).map(Arc::new);
        Jwk { core, rsa }
    }
}

/// `n` and `e` of an RSA key in the sizes both implementations accept; `None` otherwise.
fn rsa_components(core: &CoreJsonWebKey) -> Option<(Vec<u8>, Vec<u8>)> {
    use base64::Engine;
    if *core.key_type() != CoreJsonWebKeyType::RSA {
        return None;
    }
    // openidconnect keeps `n` and `e` to itself; its serialised form has them (base64url).
    let value = serde_json::to_value(core).ok()?;
    let decode = |name: &str| {
        let text = value.get(name)?.as_str()?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .ok()?;
        let start = bytes.iter().position(|&b| b != 0)?;
        Some(bytes[start..].to_vec())
    };
    let (n, e) = (decode("n")?, decode("e")?);
    let n_bits = n.len() * 8 - n[0].leading_zeros() as usize;
    let e_value = (e.len() <= 8).then(|| e.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b)))?;
    ((2048..=4096).contains(&n_bits) && (3..=(1u64 << 33) - 1).contains(&e_value)).then_some((n, e))
}

impl<'de> Deserialize<'de> for Jwk {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        CoreJsonWebKey::deserialize(deserializer).map(Jwk::new)
    }
}

impl Serialize for Jwk {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.core.serialize(serializer)
    }
}

/// The aws-lc-rs parameters of a PKCS#1 v1.5 algorithm; `None` for every other one.
fn pkcs1_params(alg: &CoreJwsSigningAlgorithm) -> Option<&'static RsaParameters> {
    match alg {
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256 => Some(&RSA_PKCS1_2048_8192_SHA256),
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384 => Some(&RSA_PKCS1_2048_8192_SHA384),
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512 => Some(&RSA_PKCS1_2048_8192_SHA512),
        _ => None,
    }
}

impl JsonWebKey for Jwk {
    type KeyUse = CoreJsonWebKeyUse;
    type SigningAlgorithm = CoreJwsSigningAlgorithm;

    fn key_id(&self) -> Option<&JsonWebKeyId> {
        self.core.key_id()
    }

    fn key_type(&self) -> &CoreJsonWebKeyType {
        self.core.key_type()
    }

    fn key_use(&self) -> Option<&CoreJsonWebKeyUse> {
        self.core.key_use()
    }

    fn signing_alg(&self) -> JsonWebKeyAlgorithm<&CoreJwsSigningAlgorithm> {
        self.core.signing_alg()
    }

    fn new_symmetric(key: Vec<u8>) -> Self {
        Jwk::new(CoreJsonWebKey::new_symmetric(key))
    }

    fn verify_signature(
        &self,
        signature_alg: &CoreJwsSigningAlgorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureVerificationError> {
        // openidconnect's own key checks (`check_key_compatibility`), before any fast path.
        let alg_allowed = match self.signing_alg() {
            JsonWebKeyAlgorithm::Unspecified => true,
            JsonWebKeyAlgorithm::Algorithm(alg) => alg == signature_alg,
            JsonWebKeyAlgorithm::Unsupported => false,
        };
        let compatible = self.key_use().is_none_or(|u| u.allows_signature())
            && alg_allowed
            && *self.key_type() == CoreJsonWebKeyType::RSA;
        if let (true, Some(params), Some(rsa)) =
            (compatible, pkcs1_params(signature_alg), &self.rsa)
        {
            let key = RsaPublicKeyComponents {
                n: rsa.0.as_slice(),
                e: rsa.1.as_slice(),
            };
            if key.verify(params, message, signature).is_ok() {
                return Ok(());
            }
        }
        self.core
            .verify_signature(signature_alg, message, signature)
    }

    fn hash_bytes(&self, bytes: &[u8], alg: &CoreJwsSigningAlgorithm) -> Result<Vec<u8>, String> {
        self.core.hash_bytes(bytes, alg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{KeyPair, RsaKeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA256};
    use base64::Engine;
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn pair(size: KeySize) -> RsaKeyPair {
        RsaKeyPair::generate(size).unwrap()
    }

    /// The key's JWK with `extra` members.
    fn jwk(pair: &RsaKeyPair, extra: serde_json::Value) -> Jwk {
        let public: RsaPublicKeyComponents<Vec<u8>> = pair.public_key().into();
        let mut value = json!({"kty": "RSA", "n": b64(&public.n), "e": b64(&public.e)});
        for (k, v) in extra.as_object().unwrap() {
            value[k] = v.clone();
        }
        serde_json::from_value(value).unwrap()
    }

    fn sign(
        pair: &RsaKeyPair,
        encoding: &'static dyn aws_lc_rs::signature::RsaEncoding,
        msg: &[u8],
    ) -> Vec<u8> {
        let mut sig = vec![0; pair.public_modulus_len()];
        pair.sign(encoding, &SystemRandom::new(), msg, &mut sig)
            .unwrap();
        sig
    }

    const RS256: CoreJwsSigningAlgorithm = CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256;

    #[test]
    fn rs256_is_checked_by_aws_lc_and_refuses_what_openidconnect_refuses() {
        let pair = pair(KeySize::Rsa2048);
        let key = jwk(&pair, json!({"use": "sig", "kid": "k1"}));
        assert!(key.rsa.is_some(), "a 2048-bit key takes the fast path");
        let sig = sign(&pair, &RSA_PKCS1_SHA256, b"header.payload");
        assert!(key
            .verify_signature(&RS256, b"header.payload", &sig)
            .is_ok());
        // The same answers from openidconnect alone.
        assert!(key
            .core
            .verify_signature(&RS256, b"header.payload", &sig)
            .is_ok());
        assert!(key
            .verify_signature(&RS256, b"header.payloaD", &sig)
            .is_err());
        let mut bad = sig.clone();
        bad[10] ^= 1;
        assert!(key
            .verify_signature(&RS256, b"header.payload", &bad)
            .is_err());
        assert!(key
            .verify_signature(&RS256, b"header.payload", &sig[1..])
            .is_err());
        // Another hash than the one signed with.
        let rs384 = CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384;
        assert!(key
            .verify_signature(&rs384, b"header.payload", &sig)
            .is_err());
    }

    #[test]
    fn the_keys_use_and_alg_still_bind() {
        let pair = pair(KeySize::Rsa2048);
        let sig = sign(&pair, &RSA_PKCS1_SHA256, b"m");
        let enc = jwk(&pair, json!({"use": "enc"}));
        assert!(
            enc.verify_signature(&RS256, b"m", &sig).is_err(),
            "an encryption key"
        );
        let rs512_only = jwk(&pair, json!({"alg": "RS512"}));
        assert!(
            rs512_only.verify_signature(&RS256, b"m", &sig).is_err(),
            "alg RS512 only"
        );
        let rs256 = jwk(&pair, json!({"alg": "RS256"}));
        assert!(rs256.verify_signature(&RS256, b"m", &sig).is_ok());
    }

    #[test]
    fn other_algorithms_and_sizes_go_to_openidconnect() {
        let pair = pair(KeySize::Rsa2048);
        let key = jwk(&pair, json!({}));
        let ps256 = CoreJwsSigningAlgorithm::RsaSsaPssSha256;
        let sig = sign(&pair, &RSA_PSS_SHA256, b"m");
        assert!(key.verify_signature(&ps256, b"m", &sig).is_ok());
        assert!(key.verify_signature(&RS256, b"m", &sig).is_err());
        // 4096 bits is the `rsa` crate's limit, and so the fast path's (aws-lc-rs would take
        // up to 8192); 2047 bits, below aws-lc-rs's limit, is openidconnect's to judge.
        let sized = |bytes: usize, first: u8| {
            let mut n = vec![0xc5; bytes];
            n[0] = first;
            let value = json!({"kty": "RSA", "n": b64(&n), "e": "AQAB"});
            serde_json::from_value::<Jwk>(value).unwrap().rsa.is_some()
        };
        assert!(sized(512, 0x80), "4096 bits");
        assert!(!sized(513, 0x01), "4097 bits");
        assert!(sized(256, 0x80), "2048 bits");
        assert!(!sized(256, 0x7f), "2047 bits");
        let e = |e: &[u8]| {
            let value = json!({"kty": "RSA", "n": b64(&[0xc5; 256]), "e": b64(e)});
            serde_json::from_value::<Jwk>(value).unwrap().rsa.is_some()
        };
        assert!(e(&[1, 0, 1]) && e(&[3]) && e(&[1, 0xff, 0xff, 0xff, 0xff]));
        assert!(!e(&[2]) && !e(&[1]) && !e(&[2, 0, 0, 0, 0]));
    }

    #[test]
    fn a_key_set_reads_and_skips_as_before() {
        let pair = pair(KeySize::Rsa3072);
        let public: RsaPublicKeyComponents<Vec<u8>> = pair.public_key().into();
        let document = json!({"keys": [
            {"kty": "RSA", "kid": "a", "n": b64(&public.n), "e": b64(&public.e)},
            {"kty": "RSA", "kid": "b", "n": 7, "e": "AQAB"},
            {"kty": "nonsense"},
            {"kty": "EC", "kid": "c", "crv": "P-256", "x": "AA", "y": "AA"},
        ]});
        let set: Jwks = serde_json::from_value(document.clone()).unwrap();
        let core: openidconnect::core::CoreJsonWebKeySet =
            serde_json::from_value(document).unwrap();
        assert_eq!(
            serde_json::to_value(&set).unwrap(),
            serde_json::to_value(&core).unwrap()
        );
        assert_eq!(set.keys().len(), 3);
        assert!(set.keys()[0].rsa.is_some());
        assert!(set.keys()[1].rsa.is_none() && set.keys()[2].rsa.is_none());
    }
}
