//! Sign in with Apple: OpenID Connect with peculiarities. The client secret is an ES256 JWT
//! latch mints from the team id, key id and private key (`team_id`, `key_id`,
//! `private_key_file`); the answer comes as a `form_post`; the user's name arrives once, as a
//! `user` form field on the first sign-in's callback.
use async_trait::async_trait;
use serde_json::{json, Value};

use super::{Entry, MintSecret, OwnKey, Preset, SignIn, Table};
use crate::config::types::{Own, ProviderConfig, ResponseMode, Secret, TokenAuth};
use crate::error::AuthError;
use crate::jws::SigningKey;
use crate::provider::profile::Profile;

pub struct Apple;

static ENTRY: Entry = Entry {
    scopes: &["openid", "name", "email"],
    token_auth: TokenAuth::ClientSecretPost,
    response_mode: ResponseMode::FormPost,
    ..Entry::oidc("apple", "Apple", Some("https://appleid.apple.com"))
};

/// The key that signs latch's client secret JWT. `Debug` does not show the private key.
#[derive(Clone, Debug)]
pub struct AppleKey {
    pub team_id: String,
    pub key_id: String,
    /// PKCS#8 PEM text (`-----BEGIN PRIVATE KEY-----`), read from `private_key_file` at load
    /// time.
    pub private_key: Secret,
}

/// The Apple key of a provider, if it is one of preset `apple`.
pub fn key(p: &ProviderConfig) -> Option<&AppleKey> {
    p.own.get()
}

#[async_trait]
impl Preset for Apple {
    fn entry(&self) -> &'static Entry {
        &ENTRY
    }

    fn own_keys(&self) -> &'static [OwnKey] {
        const KEYS: &[OwnKey] = &[
            OwnKey::required("team_id"),
            OwnKey::required("key_id"),
            OwnKey::required("private_key_file"),
        ];
        KEYS
    }

    fn refuses(&self, key: &str) -> Option<&'static str> {
        (key == "client_secret").then_some(
            "must not be set for preset \"apple\": latch mints the client secret (a signed JWT) from team_id, key_id and private_key_file",
        )
    }

    fn settings(&self, t: &mut Table) -> Option<Own> {
        let mut id_key = |key: &str, what: &str| -> Option<String> {
            match t.string(key)? {
                None => {
                    t.err(key, format!("`{key}` is required with preset \"apple\": {what}"));
                    None
                }
                Some(v) if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric()) => {
                    t.err(key, format!("\"{v}\" is not valid: {what}"));
                    None
                }
                Some(v) => Some(v),
            }
        };
        let team_id = id_key(
            "team_id",
            "your Apple Developer Team ID, 10 letters and digits such as \"ABCDE12345\" (top right of developer.apple.com/account)",
        );
        let key_id = id_key(
            "key_id",
            "the Key ID of the Sign in with Apple private key, 10 letters and digits such as \"XYZ9876543\"",
        );
        let private_key = private_key(t);
        Some(Own::new(AppleKey {
            team_id: team_id?,
            key_id: key_id?,
            private_key: private_key?,
        }))
    }

    fn mint_secret(&self, pc: &ProviderConfig) -> Result<Option<Box<dyn MintSecret>>, String> {
        let Some(key) = key(pc) else { return Ok(None) };
        let secret = AppleSecret::new(key, &pc.client_id)
            .map_err(|e| format!("providers.{}.private_key_file: {e}", pc.id))?;
        Ok(Some(Box::new(secret)))
    }

    /// The name Apple sends once, in the callback's `user` field.
    async fn profile(&self, profile: &mut Profile, sign_in: &SignIn<'_>) -> Result<(), AuthError> {
        if profile.name.is_none() {
            profile.name = sign_in
                .callback
                .params
                .get("user")
                .and_then(|user| name_from_user_field(user));
        }
        Ok(())
    }
}

/// `private_key_file`: the `.p8` file, relative to the config file.
fn private_key(t: &mut Table) -> Option<Secret> {
    let key = "private_key_file";
    let file = match t.string(key)? {
        None => {
            t.err(
                key,
                "`private_key_file` is required with preset \"apple\": the .p8 key file downloaded from Apple (a path relative to this config file), e.g. private_key_file = \"AuthKey_XYZ9876543.p8\"",
            );
            return None;
        }
        Some(f) => t.base_dir.join(f),
    };
    match std::fs::read_to_string(&file) {
        Err(e) => {
            t.err(
                key,
                format!(
                    "cannot read \"{}\": {e} (relative paths are resolved against the config file's directory)",
                    file.display()
                ),
            );
            None
        }
        Ok(text) => match check_pkcs8_pem(&text) {
            Ok(()) => Some(Secret::new(text.into_bytes())),
            Err(why) => {
                t.err(key, format!("\"{}\" {why}", file.display()));
                None
            }
        },
    }
}

/// The file's text must be a PKCS#8 PEM private key (what Apple's `.p8` files are).
/// Messages never quote the file's content.
fn check_pkcs8_pem(text: &str) -> Result<(), String> {
    const BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
    const END: &str = "-----END PRIVATE KEY-----";
    let t = text.trim();
    if t.starts_with(BEGIN) && t.ends_with(END) && t.len() > BEGIN.len() + END.len() {
        return Ok(());
    }
    if t.starts_with("-----BEGIN EC PRIVATE KEY-----") {
        return Err(format!(
            "is a SEC1 \"EC PRIVATE KEY\"; expected a PKCS#8 PEM (\"{BEGIN}\"), as Apple's .p8 download is; convert it with `openssl pkcs8 -topk8 -nocrypt -in key.pem -out key.p8`"
        ));
    }
    Err(format!(
        "is not a PKCS#8 PEM private key: expected the .p8 file from Apple, starting with \"{BEGIN}\" and ending with \"{END}\""
    ))
}

/// Apple's audience for client secrets, whatever issuer URL is configured.
const APPLE_AUDIENCE: &str = "https://appleid.apple.com";
/// Minted secrets live an hour (Apple allows up to six months).
const SECRET_TTL_SECS: i64 = 3600;

struct AppleSecret {
    team_id: String,
    client_id: String,
    key: SigningKey,
}

impl AppleSecret {
    fn new(apple: &AppleKey, client_id: &str) -> Result<Self, String> {
        let pem = String::from_utf8_lossy(apple.private_key.expose());
        let key = SigningKey::from_pkcs8_pem(&pem, &apple.key_id)?;
        Ok(AppleSecret {
            team_id: apple.team_id.clone(),
            client_id: client_id.to_string(),
            key,
        })
    }

}

impl MintSecret for AppleSecret {
    /// A fresh client secret JWT.
    fn mint(&self) -> String {
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
fn name_from_user_field(user: &str) -> Option<String> {
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
