//! Discord: plain OAuth 2.0. `verified` is the email flag; the name falls back to the user
//! name, and the avatar hash becomes its CDN URL.
use async_trait::async_trait;

use super::{Entry, Preset, SignIn, StaticProfile};
use crate::error::AuthError;
use crate::provider::profile::Profile;

pub struct Discord;

static ENTRY: Entry = Entry::oauth2(
    "discord",
    "Discord",
    [
        "https://discord.com/oauth2/authorize",
        "https://discord.com/api/oauth2/token",
        "https://discord.com/api/users/@me",
    ],
    StaticProfile::new("id", Some("email"), Some("verified"), Some("global_name"), None),
    None,
    &["identify", "email"],
);

#[async_trait]
impl Preset for Discord {
    fn entry(&self) -> &'static Entry {
        &ENTRY
    }

    async fn profile(&self, profile: &mut Profile, sign_in: &SignIn<'_>) -> Result<(), AuthError> {
        let Some(info) = sign_in.userinfo else {
            return Ok(());
        };
        if profile.name.is_none() {
            profile.name = info
                .get("username")
                .and_then(|l| l.as_str())
                .map(str::to_string);
        }
        if let Some(avatar) = info.get("avatar").and_then(|a| a.as_str()) {
            profile.image = Some(format!(
                "https://cdn.discordapp.com/avatars/{}/{avatar}.png",
                profile.subject
            ));
        }
        Ok(())
    }
}
