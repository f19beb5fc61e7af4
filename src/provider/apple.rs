//! Sign in with Apple's peculiarities: the client secret is an ES256 JWT latch mints from the
//! team id, key id and private key; the user's name arrives once, as a `user` form field on
//! the first sign-in's `form_post` callback.
use crate::config::AppleKey;
use crate::jws::SigningKey;
use serde_json::{json, Value};

/// Apple's audience for client secrets, whatever issuer URL is configured.
const APPLE_AUDIENCE: &str = "https://appleid.apple.com";
/// Minted secrets live an hour (Apple allows up to six months).
const SECRET_TTL_SECS: i64 = 3600;

pub struct AppleSecret {
    team_id: String,
    client_id: String,
    key: SigningKey,
}

impl AppleSecret {
    pub fn new(apple: &AppleKey, client_id: &str) -> Result<Self, String> {
        let pem = String::from_utf8_lossy(apple.private_key.expose());
        let key = SigningKey::from_pkcs8_pem(&pem, &apple.key_id)?;
        Ok(AppleSecret {
            team_id: apple.team_id.clone(),
            client_id: client_id.to_string(),
            key,
        })
    }

    /// A fresh client secret JWT.
    pub fn mint(&self) -> String {
        let now = chrono::Utc::now().timestamp();
        let header = json!({"alg": "ES256", "kid": self.key.kid()});
        let claims = json!({
            "iss": self.team_id,
            "iat": now,
            "exp": now + SECRET_TTL_SECS,
            "aud": APPLE_AUDIENCE,
            "sub": self.client_id,
        });
        self.key.sign_with_header(header, &claims)
    }
}

/// The name in Apple's `user` form field (`{"name":{"firstName","lastName"},"email"}`).
pub fn name_from_user_field(user: &str) -> Option<String> {
    let value: Value = serde_json::from_str(user).ok()?;
    let name = value.get("name")?;
    let part = |k: &str| {
        name.get(k)
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    match (part("firstName"), part("lastName")) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (f, l) => f.or(l),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_name_apple_sends_once() {
        let user = r#"{"name":{"firstName":"Ada","lastName":"Lovelace"},"email":"a@privaterelay.appleid.com"}"#;
        assert_eq!(name_from_user_field(user).as_deref(), Some("Ada Lovelace"));
        assert_eq!(
            name_from_user_field(r#"{"name":{"firstName":"Ada"}}"#).as_deref(),
            Some("Ada")
        );
        assert_eq!(name_from_user_field("not json"), None);
    }
}
