//! The pages' Content-Security-Policy: forms may go to latch, the providers' authorization
//! endpoints (a sign-in form posts to latch, which redirects there) and the trusted origins
//! (sign-out redirects to a `callbackUrl` there), and nowhere else.
use crate::support::browser::Browser;
use crate::support::hostile::Hostile;
use crate::support::latch::Setup;
use std::collections::BTreeSet;

#[tokio::test]
async fn form_action_is_latch_the_providers_and_the_trusted_origins() {
    let hostile = Hostile::start().await;
    let acme = "[providers.acme]\ntype = \"oauth2\"\nname = \"Acme\"\nclient_id = \"c\"\nclient_secret = \"s\"\n\
        authorization_url = \"https://login.acme.example:8443/oauth/authorize?x=1\"\n\
        token_url = \"https://api.acme.example/token\"\nuserinfo_url = \"https://api.acme.example/me\"\n\
        [providers.acme.profile]\nid = \"id\"\n";
    let app = Setup::default()
        .with_providers(format!("{}\n{acme}", hostile.provider_toml()))
        .server("trusted_origins = [\"https://*.apps.example\", \"http://localhost:8080\"]")
        .spawn()
        .await;
    let browser = Browser::new();
    for page in ["/signin", "/signout", "/error?error=AccessDenied"] {
        let response = browser.get(&app.url(page)).await;
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        let form_action = csp
            .split(';')
            .map(str::trim)
            .find_map(|d| d.strip_prefix("form-action "))
            .unwrap_or_else(|| panic!("{page}: no form-action in {csp}"));
        let sources: BTreeSet<&str> = form_action.split(' ').collect();
        let expected: BTreeSet<&str> = [
            "'self'",
            app.origin.as_str(),
            "https://*.apps.example",
            "http://localhost:8080",
            hostile.issuer.as_str(),
            "https://login.acme.example:8443",
        ]
        .into();
        assert_eq!(sources, expected, "{page}: {csp}");
        // The rest of the policy is as strict as before.
        for directive in [
            "default-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{page}: {csp}");
        }
    }
    app.stop().await;
}
