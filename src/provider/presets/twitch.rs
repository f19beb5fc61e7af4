//! Twitch: OpenID Connect. Its ID token and userinfo carry the email only when the `claims`
//! parameter asks for it.
use super::Entry;
use crate::config::types::TokenAuth;

const CLAIMS: &str = r#"{"id_token":{"email":null,"email_verified":null,"preferred_username":null,"picture":null},"userinfo":{"email":null,"email_verified":null,"preferred_username":null,"picture":null}}"#;

super::entry_only!(
    Twitch,
    Entry {
        scopes: &["openid", "user:read:email"],
        token_auth: TokenAuth::ClientSecretPost,
        authorization_params: &[("claims", CLAIMS)],
        ..Entry::oidc("twitch", "Twitch", Some("https://id.twitch.tv/oauth2"))
    }
);
