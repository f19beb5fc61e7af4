//! `/token`, `/refresh`, `/revoke` and `/.well-known/jwks.json`: access tokens for apps,
//! refresh-token rotation, revocation, and the public signing keys.
use super::extract::{same_site_only, CurrentSession, OptionalSession, SameSite};
use super::{cookies, parse_form, AppState, WebError};
use crate::audit::{EndedBy, Event, Name};
use crate::error::{AuthError, ErrorCode};
use crate::tokens::refresh::{Issued, Refusal};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{HeaderMap, HeaderValue, CACHE_CONTROL, PRAGMA, SET_COOKIE};
use axum::response::{IntoResponse, Json, Response};
use serde_json::{json, Value};

fn refused(code: ErrorCode, reason: impl Into<String>) -> WebError {
    WebError::json(AuthError::new(code, reason))
}

fn json_err(e: impl Into<AuthError>) -> WebError {
    WebError::json(e.into())
}

/// An access token for `issued`'s user and session, for `audiences`, with the refresh cookie.
async fn answer(app: &AppState, issued: Issued, audiences: &[&str]) -> Result<Response, WebError> {
    let access_token = app
        .tokens
        .issue_for(&app.users, &issued, audiences)
        .await
        .map_err(json_err)?;
    crate::telemetry::token_issued();
    let mut response = Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": app.tokens.ttl().as_secs().max(1),
    }))
    .into_response();
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    headers.append(
        SET_COOKIE,
        app.cookies.set_refresh(&issued.token, issued.max_age),
    );
    Ok(response)
}

/// `POST /token`: session cookie -> access token and a new refresh-token family.
pub async fn token(
    State(app): State<AppState>,
    _: SameSite,
    // Refused only after the audiences: an unknown audience is named even without a session.
    session: Result<CurrentSession, WebError>,
    body: Bytes,
) -> Result<Response, WebError> {
    let form = parse_form(&body);
    let audiences = app
        .tokens
        .requested(form.get("audience").map(String::as_str))
        .map_err(json_err)?;
    let CurrentSession(session) = session?;
    let Some(issued) = app
        .families
        .start(&session, &app.sessions)
        .await
        .map_err(json_err)?
    else {
        return Err(refused(
            ErrorCode::SessionRequired,
            "the session ended while the token was being issued",
        ));
    };
    answer(&app, issued, &audiences).await
}

/// `POST /refresh`: refresh cookie -> new access token and the rotated refresh cookie.
pub async fn refresh(State(app): State<AppState>, _: SameSite, headers: HeaderMap) -> Response {
    let Some(token) = cookies::read(&headers, &app.cookies.refresh) else {
        return refused(ErrorCode::InvalidRefreshToken, "no refresh cookie").into_response();
    };
    let outcome = match app.families.rotate(token, &app.sessions).await {
        Ok(outcome) => outcome,
        Err(e) => return json_err(e).into_response(),
    };
    let error = match outcome {
        Ok(issued) => {
            crate::telemetry::token_refreshed();
            // A refreshed token is for the API audiences; a provider-token token is asked
            // for explicitly at `/token`.
            let audiences = app.tokens.api_audiences();
            return answer(&app, issued, &audiences).await.into_response();
        }
        Err(Refusal::Unknown) => refused(
            ErrorCode::InvalidRefreshToken,
            "refresh token unknown, expired or revoked",
        ),
        Err(Refusal::SessionEnded) => refused(
            ErrorCode::InvalidRefreshToken,
            "the session behind the refresh token has ended",
        ),
        Err(Refusal::Reused {
            family_id,
            session_id,
            user_id,
        }) => {
            crate::telemetry::refresh_reuse_detected();
            app.audit.emit(|| {
                Event::new(Name::RefreshReuseDetected)
                    .user(&user_id)
                    .with("family", family_id.as_str())
                    .with("session", session_id.as_str())
            });
            app.audit
                .emit(|| Event::session_ended(EndedBy::ReuseDetection, &session_id).user(&user_id));
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
        .append(SET_COOKIE, app.cookies.clear_refresh());
    response
}

/// `POST /revoke`: with the session cookie, ends the session and all its refresh families;
/// otherwise ends the family of the refresh token in the form field `token`.
/// Answers 200 `{}` also for tokens that were already invalid (RFC 7009).
pub async fn revoke(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    if cookies::read(&headers, &app.cookies.session).is_some() {
        // A cross-site page must not sign the user out (logout CSRF).
        same_site_only(&app, &headers)?;
        let signed_in = OptionalSession::load(&app, &headers)
            .await
            .map_err(json_err)?;
        if let Some(session) = signed_in.session {
            // The session first: from then on no new family can be started for it, and a
            // rotation racing with this finds it ended.
            app.sessions
                .end_by_id(&session.id)
                .await
                .map_err(json_err)?;
            app.families
                .revoke_session(&session.id)
                .await
                .map_err(json_err)?;
            tracing::info!(session = %session.id, "session and its refresh tokens revoked");
            app.audit.emit(|| {
                Event::new(Name::Signout)
                    .user(&session.record.user_id)
                    .provider(&session.record.provider)
                    .with("session", session.id.as_str())
                    .with("everywhere", false)
                    .with("route", "revoke")
            });
            let mut response = Json(json!({})).into_response();
            let h = response.headers_mut();
            h.append(SET_COOKIE, app.cookies.clear(&app.cookies.session));
            h.append(SET_COOKIE, app.cookies.clear_refresh());
            return Ok(response);
        }
        // No session this version can read: whatever record the cookie names (one a later
        // version wrote, before a rollback) is ended all the same.
        if let Some(token) = cookies::read(&headers, &app.cookies.session) {
            app.sessions.delete(token).await.map_err(json_err)?;
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
pub async fn jwks(State(app): State<AppState>) -> Result<Response, WebError> {
    let keys: Value = app.tokens.keys().jwks().await.map_err(json_err)?;
    let max_age = (app.config.tokens.key_rotation.as_secs() / 4).min(300);
    let mut response = Json(keys).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        response.headers_mut().insert(CACHE_CONTROL, v);
    }
    Ok(response)
}
