//! The Content-Security-Policy of latch's HTML pages.
use super::App;

/// A strict policy: nothing loads but the page's own nonce'd styles and images, and forms may
/// only go where latch's own forms go. `form-action` also governs the redirects that follow a
/// submission (Chromium enforces it there), so it lists latch (`'self'` and `public_url`), the
/// providers' authorization endpoints (sign-in form -> latch -> 302 to the provider) and the
/// trusted origins (sign-out form -> latch -> 302 to a `callbackUrl` there).
pub fn policy(app: &App, nonce: &str, image: Option<&ImageOrigin>) -> String {
    let mut sources = vec![
        "'self'".to_string(),
        app.config.server.public_url.origin().ascii_serialization(),
    ];
    sources.extend(
        app.config
            .server
            .trusted_origins
            .iter()
            .map(ToString::to_string),
    );
    sources.extend(app.providers.authorization_origins());
    let mut seen = std::collections::HashSet::new();
    sources.retain(|s| seen.insert(s.clone()));
    let image = image.map_or(String::new(), |ImageOrigin(origin)| format!(" {origin}"));
    format!(
        "default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self' data:{image}; base-uri 'none'; frame-ancestors 'none'; form-action {}",
        sources.join(" ")
    )
}

/// One more origin a page may load an image from (the account page's picture, at the
/// provider): put in the response's extensions by the handler.
#[derive(Clone, Debug)]
pub struct ImageOrigin(String);

impl ImageOrigin {
    /// The origin of an image URL that passed `provider::mapping::acceptable_image` (https,
    /// or http on loopback); `None` for anything without a host.
    pub fn of(url: &str) -> Option<Self> {
        let url = url::Url::parse(url).ok()?;
        url.host_str()?;
        Some(ImageOrigin(url.origin().ascii_serialization()))
    }
}
