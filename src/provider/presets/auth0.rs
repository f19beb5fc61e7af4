//! Auth0: OpenID Connect at your own tenant's domain (`issuer` required).
super::entry_only!(
    Auth0,
    super::Entry::issuer_required("auth0", "Auth0", "https://example.us.auth0.com")
);
