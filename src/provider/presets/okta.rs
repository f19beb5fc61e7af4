//! Okta: OpenID Connect at your own Okta domain (`issuer` required).
super::entry_only!(Okta, super::Entry::issuer_required("okta", "Okta", "https://dev-123.okta.com"));
