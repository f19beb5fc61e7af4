//! Facebook: plain OAuth 2.0 and the Graph API's `me`; its email counts as unverified.
use super::{Entry, StaticProfile};
use crate::config::types::TokenAuth;

super::entry_only!(
    Facebook,
    Entry {
        token_auth: TokenAuth::ClientSecretPost,
        ..Entry::oauth2(
            "facebook",
            "Facebook",
            [
                "https://www.facebook.com/v21.0/dialog/oauth",
                "https://graph.facebook.com/v21.0/oauth/access_token",
                "https://graph.facebook.com/me?fields=id,name,email,picture",
            ],
            StaticProfile::new("id", Some("email"), None, Some("name"), Some("picture.data.url")),
            None,
            &["email", "public_profile"],
        )
    }
);
