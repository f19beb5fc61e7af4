//! Small HTTP servers a test writes itself (an OAuth 2.0 provider, a discovery document):
//! a free loopback port, an axum router on it, and the authorize page of a provider that
//! approves at once.
use axum::extract::Query;
use axum::response::{IntoResponse, Response};
use axum::Router;
use reqwest::StatusCode;
use std::collections::HashMap;
use tokio::net::TcpListener;

/// A listener on a free loopback port and its origin (`http://127.0.0.1:<port>`).
pub async fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    (listener, origin)
}

/// Serves `app` on `listener` for the rest of the test (the runtime ends it).
pub fn spawn(listener: TcpListener, app: Router) {
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
}

/// Serves `app` on a free loopback port: its origin.
pub async fn serve(app: Router) -> String {
    let (listener, origin) = listen().await;
    spawn(listener, app);
    origin
}

/// An OpenID discovery document for `issuer` whose endpoints are `{issuer}/authorize`,
/// `/token`, `/userinfo` and `/jwks`, signing with `alg`.
pub fn discovery(issuer: &str, alg: &str) -> serde_json::Value {
    serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [alg],
    })
}

/// `GET /authorize` of a provider that approves at once: back to `redirect_uri` with
/// `code=c1` and the state.
pub async fn approve_at_once(Query(q): Query<HashMap<String, String>>) -> Response {
    let to = format!(
        "{}?code=c1&state={}",
        q["redirect_uri"],
        super::dev::urlencode(&q["state"])
    );
    (StatusCode::FOUND, [("location", to)]).into_response()
}
