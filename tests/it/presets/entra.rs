//! Microsoft Entra ID: the multi-tenant `{tenantid}` issuer checked against each token's
//! `tid`, and a single tenant as plain OIDC.
use crate::support::fakes::{
    self,
    entra::{self, Entra},
};
use crate::support::flows::{latch_with, refused, signs_in};
use crate::support::latch::TestApp;
use reqwest::StatusCode;

const ID: &str = "microsoft-entra-id";

/// latch with the preset at the fake's `common` endpoint, and where it authorizes.
async fn entra_setup() -> (Entra, TestApp, String) {
    let e = Entra::start().await;
    let app = latch_with(e.provider_toml()).await;
    let authorize = format!("{}/common/oauth2/v2.0/authorize?", e.origin);
    (e, app, authorize)
}

/// Refused: the ID token's `iss` names another tenant.
async fn refused_for_its_iss(app: &TestApp, authorize: &str) {
    refused(
        app,
        ID,
        authorize,
        "InvalidIdToken",
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

/// latch with `type = "oidc"` at the fake's tenant A, and where it authorizes.
async fn single_tenant(e: &Entra) -> (TestApp, String) {
    let toml = format!(
        "[providers.microsoft-entra-id]\ntype = \"oidc\"\nissuer = \"{}/{}/v2.0\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\n",
        e.origin,
        entra::TENANT_A,
        entra::CLIENT_ID,
        entra::CLIENT_SECRET
    );
    let app = latch_with(toml).await;
    let authorize = format!("{}/{}/oauth2/v2.0/authorize?", e.origin, entra::TENANT_A);
    (app, authorize)
}

#[tokio::test]
async fn entra_common_accepts_a_token_whose_iss_is_its_own_tenant() {
    let (e, app, authorize) = entra_setup().await;
    let session = signs_in(&app, ID, &authorize).await;
    assert_eq!(session["user"]["name"], "Abe Lincoln");
    e.seen(|s| {
        assert!(s.discovery.iter().all(|t| t == "common"));
        let claims = fakes::jwt_claims(s.id_tokens.last().unwrap());
        assert_eq!(claims["tid"], entra::TENANT_A);
        assert_eq!(
            claims["iss"],
            format!("{}/{}/v2.0", e.origin, entra::TENANT_A)
        );
    });
}

#[tokio::test]
async fn entra_common_accepts_users_of_any_tenant() {
    let (e, app, authorize) = entra_setup().await;
    e.edit(|b| b.tid = entra::TENANT_B.into());
    signs_in(&app, ID, &authorize).await;
}

#[tokio::test]
async fn entra_common_refuses_iss_naming_another_tenant_than_tid() {
    let (e, app, authorize) = entra_setup().await;
    e.edit(|b| b.iss_tenant = Some(entra::TENANT_B.into()));
    refused_for_its_iss(&app, &authorize).await;
}

#[tokio::test]
async fn entra_single_tenant_works_as_plain_oidc() {
    let e = Entra::start().await;
    let (app, authorize) = single_tenant(&e).await;
    let session = signs_in(&app, ID, &authorize).await;
    assert_eq!(session["user"]["name"], "Abe Lincoln");
}

#[tokio::test]
async fn entra_single_tenant_refuses_another_tenants_iss() {
    let e = Entra::start().await;
    e.edit(|b| b.iss_tenant = Some(entra::TENANT_B.into()));
    let (app, authorize) = single_tenant(&e).await;
    refused_for_its_iss(&app, &authorize).await;
}
