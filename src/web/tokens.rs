//! `/token`, `/refresh`, `/revoke` and `/.well-known/jwks.json`: access tokens for apps,
//! refresh-token rotation, revocation, and the public signing keys.
use super::{cookies, parse_form, AppState, WebError};
use crate::error::{printable, AuthError, ErrorCode};
use crate::tokens::refresh::{Issued, Refusal};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{HeaderMap, HeaderValue, CACHE_CONTROL, ORIGIN, PRAGMA, SET_COOKIE};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The token routes' state: the app plus the refresh cookie's name.
pub struct TokenApp {
    pub(super) app: AppState,
    refresh_cookie: String,
}

pub(super) type TokenState = Arc<TokenApp>;

/// The token routes, to be merged into the router under `base_path`.
pub fn routes(app: &AppState) -> Router<AppState> {
    let state = Arc::new(TokenApp {
        refresh_cookie: if app.cookies.is_secure() {
            "__Secure-latch.refresh-token".into()
        } else {
            "latch.refresh-token".into()
        },
        app: app.clone(),
    });
    // Signing keys exist from the first start on (created by whichever instance is first).
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        let early = app.clone();
        handle.spawn(async move {
            if let Err(e) = early.tokens.keys().jwks().await {
                tracing::warn!(error = %e, "signing keys not ready yet; created on first use");
            }
        });
    }
    Router::new()
        .route("/token", post(token))
        .route("/refresh", post(refresh))
        .route("/revoke", post(revoke))
        .route("/introspect", post(super::introspect::introspect))
        .route("/.well-known/jwks.json", get(jwks))
        .route(
            "/provider-token/{provider}",
            get(super::provider_tokens::provider_token),
        )
        .with_state(state)
}

fn refused(code: ErrorCode, reason: impl Into<String>) -> WebError {
    WebError::json(AuthError::new(code, reason))
}

fn json_err(e: impl Into<AuthError>) -> WebError {
    WebError::json(e.into())
}

impl TokenApp {
    fn refresh_cookie(&self, value: &str, max_age: Duration) -> HeaderValue {
        let mut cookie = format!(
            "{}={value}; Path={}/refresh; HttpOnly; Max-Age={}; SameSite=Strict",
            self.refresh_cookie,
            self.app.config.server.base_path,
            max_age.as_secs()
        );
        if self.app.cookies.is_secure() {
            cookie.push_str("; Secure");
        }
        HeaderValue::from_str(&cookie).expect("refresh tokens are URL-safe")
    }

    fn clear_refresh_cookie(&self) -> HeaderValue {
        self.refresh_cookie("", Duration::ZERO)
    }

    /// Signs an access token for `issued`'s user and session, for `audiences`, and answers
    /// with it and the refresh cookie.
    async fn answer(&self, issued: Issued, audiences: &[&str]) -> Result<Response, WebError> {
        let Some(user) = self
            .app
            .users
            .get(&issued.user_id)
            .await
            .map_err(json_err)?
        else {
            return Err(refused(
                ErrorCode::SessionRequired,
                format!(
                    "user {} of session {} no longer exists",
                    issued.user_id, issued.session_id
                ),
            ));
        };
        let tokens = &self.app.tokens;
        let access_token = tokens
            .issue(&user, &issued.session_id, audiences)
            .await
            .map_err(json_err)?;
        crate::telemetry::token_issued();
        let mut response = Json(json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": tokens.ttl().as_secs().max(1),
        }))
        .into_response();
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
        headers.append(
            SET_COOKIE,
            self.refresh_cookie(&issued.token, issued.max_age),
        );
        Ok(response)
    }
}

/// Refuses a request a browser sent from a page latch does not trust (another site's
/// script or form riding on the user's cookies): an `Origin` that is neither `public_url`'s
/// nor a `trusted_origins` match, or, without `Origin`, `Sec-Fetch-Site: cross-site`.
/// Clients that are not browsers send neither and pass.
pub(super) fn same_site_only(app: &AppState, headers: &HeaderMap) -> Result<(), WebError> {
    if let Some(origin) = headers.get(ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if super::redirect::is_trusted_origin(&app.config, origin) {
            return Ok(());
        }
        return Err(refused(
            ErrorCode::CrossSiteRequest,
            format!(
                "Origin {:?} is neither public_url's nor a trusted_origins match",
                printable(origin, 100)
            ),
        ));
    }
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
    if cross_site {
        return Err(refused(
            ErrorCode::CrossSiteRequest,
            "Sec-Fetch-Site: cross-site without an Origin header",
        ));
    }
    Ok(())
}

/// The audiences a `/token` call asks for: the form field `audience` (space-separated, each
/// one of `[tokens] audience` or `provider_token_audience`), else every configured audience.
fn requested_audiences<'a>(app: &'a AppState, body: &[u8]) -> Result<Vec<&'a str>, WebError> {
    let t = &app.config.tokens;
    let form = parse_form(body);
    let Some(asked) = form.get("audience").filter(|a| !a.trim().is_empty()) else {
        return Ok(t.audience.iter().map(String::as_str).collect());
    };
    let mut out = Vec::new();
    for a in asked.split_ascii_whitespace() {
        let Some(known) = t.mintable_audiences().find(|m| *m == a) else {
            return Err(refused(
                ErrorCode::InvalidAudience,
                format!(
                    "audience {:?} is not one of tokens.audience or tokens.provider_token_audience",
                    printable(a, 100)
                ),
            ));
        };
        if !out.contains(&known) {
            out.push(known);
        }
    }
    // A token that names the provider-token audience names nothing else: an API that
    // receives a token must never be able to fetch the user's provider tokens with it.
    if out.len() > 1 && out.contains(&t.provider_token_audience.as_str()) {
        return Err(refused(
            ErrorCode::InvalidAudience,
            "tokens.provider_token_audience cannot be combined with other audiences",
        ));
    }
    Ok(out)
}

/// `POST /token`: session cookie -> access token and a new refresh-token family.
async fn token(
    State(t): State<TokenState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let app = &t.app;
    same_site_only(app, &headers)?;
    let audiences = requested_audiences(app, &body)?;
    let Some(cookie) = cookies::read(&headers, &app.cookies.session) else {
        return Err(refused(ErrorCode::SessionRequired, "no session cookie"));
    };
    let Some(session) = app.sessions.load(cookie).await.map_err(json_err)? else {
        return Err(refused(
            ErrorCode::SessionRequired,
            "session cookie names no live session",
        ));
    };
    let session_end_ms =
        (session.record.created_at + app.sessions.max_age().as_secs() as i64).saturating_mul(1000);
    let issued = app
        .families
        .create(&session.id, &session.record.user_id, session_end_ms)
        .await
        .map_err(json_err)?;
    // A sign-out that answered while the family was being made wins: the family goes too.
    if !app.sessions.is_live(&session.id).await.map_err(json_err)? {
        app.families
            .revoke_session(&session.id)
            .await
            .map_err(json_err)?;
        return Err(refused(
            ErrorCode::SessionRequired,
            "the session ended while the token was being issued",
        ));
    }
    t.answer(issued, &audiences).await
}

/// `POST /refresh`: refresh cookie -> new access token and the rotated refresh cookie.
async fn refresh(State(t): State<TokenState>, headers: HeaderMap) -> Response {
    if let Err(e) = same_site_only(&t.app, &headers) {
        return e.into_response();
    }
    let Some(token) = cookies::read(&headers, &t.refresh_cookie) else {
        return refused(ErrorCode::InvalidRefreshToken, "no refresh cookie").into_response();
    };
    let outcome = match t.app.families.rotate(token, &t.app.sessions).await {
        Ok(outcome) => outcome,
        Err(e) => return json_err(e).into_response(),
    };
    let error = match outcome {
        Ok(issued) => {
            crate::telemetry::token_refreshed();
            // A refreshed token is for the API audiences; a provider-token token is asked
            // for explicitly at `/token`.
            let audiences: Vec<&str> = t
                .app
                .config
                .tokens
                .audience
                .iter()
                .map(String::as_str)
                .collect();
            return t.answer(issued, &audiences).await.into_response();
        }
        Err(Refusal::Unknown) => refused(
            ErrorCode::InvalidRefreshToken,
            "refresh token unknown, expired or revoked",
        ),
        Err(Refusal::SessionEnded) => refused(
            ErrorCode::InvalidRefreshToken,
            "the session behind the refresh token has ended",
        ),
        Err(Refusal::Reused { family_id }) => {
            crate::telemetry::refresh_reuse_detected();
            refused(
            ErrorCode::RefreshTokenReused,
            format!("rotated refresh token of family {family_id} reused after the grace window; family and session revoked"),
            )
        }
        Err(Refusal::Busy) => {
            return refused(
                ErrorCode::StoreUnavailable,
                "refresh family lock held by another request for too long",
            )
            .into_response()
        }
    };
    let mut response = error.into_response();
    response
        .headers_mut()
        .append(SET_COOKIE, t.clear_refresh_cookie());
    response
}

/// `POST /revoke`: with the session cookie, ends the session and all its refresh families;
/// otherwise ends the family of the refresh token in the form field `token`.
/// Answers 200 `{}` also for tokens that were already invalid (RFC 7009).
async fn revoke(
    State(t): State<TokenState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let app = &t.app;
    if let Some(cookie) = cookies::read(&headers, &app.cookies.session) {
        // A cross-site page must not sign the user out (logout CSRF).
        same_site_only(app, &headers)?;
        if let Some(session) = app.sessions.load(cookie).await.map_err(json_err)? {
            // The session first: from then on no new family can be started for it, and a
            // rotation racing with this finds it ended.
            app.sessions.delete(cookie).await.map_err(json_err)?;
            app.families
                .revoke_session(&session.id)
                .await
                .map_err(json_err)?;
            tracing::info!(session = %session.id, "session and its refresh tokens revoked");
            let mut response = Json(json!({})).into_response();
            let h = response.headers_mut();
            h.append(SET_COOKIE, app.cookies.clear(&app.cookies.session));
            h.append(SET_COOKIE, t.clear_refresh_cookie());
            return Ok(response);
        }
    }
    let form = parse_form(&body);
    let Some(token) = form.get("token").filter(|t| !t.is_empty()) else {
        return Err(refused(
            ErrorCode::SessionRequired,
            "no live session cookie and no `token` form field",
        ));
    };
    let revoked = app.families.revoke_token(token).await.map_err(json_err)?;
    if !revoked {
        tracing::info!("revoke: the token named no live refresh family");
    }
    Ok(Json(json!({})).into_response())
}

/// `GET /.well-known/jwks.json`.
async fn jwks(State(t): State<TokenState>) -> Result<Response, WebError> {
    let keys: Value = t.app.tokens.keys().jwks().await.map_err(json_err)?;
    let max_age = (t.app.config.tokens.key_rotation.as_secs() / 4).min(300);
    let mut response = Json(keys).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        response.headers_mut().insert(CACHE_CONTROL, v);
    }
    Ok(response)
}
