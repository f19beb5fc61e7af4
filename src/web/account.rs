//! The signed-in user's own page (SPEC §4): who they are, the provider accounts they sign in
//! with, and their live sessions, each of which they can end.
use super::csp::ImageOrigin;
use super::extract::{Csrf, OptionalSession};
use super::pages::html;
use super::{parse_form, redirect_to, AppState, RequestContext, WebError};
use crate::audit::{EndedBy, Event};
use crate::error::ErrorCode;
use crate::session::Session;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{HeaderMap, SET_COOKIE};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use chrono::{DateTime, Utc};
use minijinja::context;

/// `GET /`: the account page is latch's home.
pub async fn home(State(app): State<AppState>) -> Response {
    redirect_to(&app.url("/account"), StatusCode::FOUND)
}

/// `GET /account`; signed out, a 302 to the sign-in page (which comes back here).
pub async fn account_page(
    State(app): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    csrf: Csrf,
    signed_in: OptionalSession,
) -> Result<Response, WebError> {
    let Some(current) = signed_in.session else {
        return Ok(redirect_to(&app.url("/signin"), StatusCode::FOUND));
    };
    let user_id = &current.record.user_id;
    let user = app.users.get(user_id).await?;
    let accounts = app.users.accounts(user_id).await?;
    let sessions = app.sessions.list_for_user(user_id).await?;
    let (csrf_token, csrf_cookie) = csrf.token(&app);

    // The user record is the latest word; the session's profile if it is gone meanwhile.
    let profile = &current.record.profile;
    let (name, email, verified, image) = match &user {
        Some(u) => (
            u.name.clone(),
            u.email.clone(),
            u.email.is_some() && u.email_verified,
            u.image.clone(),
        ),
        None => (
            profile.name.clone(),
            profile.email.clone(),
            profile.email_verified,
            None,
        ),
    };
    let image_origin = image.as_deref().and_then(ImageOrigin::of);
    // The avatar's letter, of the name (or email) the page shows.
    let initial = name_initial(name.as_deref().or(email.as_deref()));
    let provider_name = |id: &str| {
        app.providers
            .get(id)
            .map_or_else(|| id.to_string(), |p| p.config.name.clone())
    };
    let linked: Vec<_> = accounts
        .iter()
        .map(|a| context! { provider => provider_name(&a.provider) })
        .collect();
    let linkable: Vec<_> = app
        .providers
        .iter()
        .filter(|p| !accounts.iter().any(|a| a.provider == p.id()))
        .map(|p| context! { name => p.config.name.clone(), action_url => p.signin_url.clone() })
        .collect();
    let now = Utc::now();
    // This device first, then the others oldest first.
    let (this, others): (Vec<&Session>, Vec<&Session>) =
        sessions.iter().partition(|s| s.id == current.id);
    let session_rows: Vec<_> = this
        .into_iter()
        .chain(others)
        .map(|s| session_row(s, &current.id, now, &provider_name))
        .collect();
    let mut response = html(
        &app,
        "account.html",
        context! {
            title => "Your account",
            name,
            email,
            email_verified => verified,
            image => image_origin.as_ref().and(image),
            initial,
            linked,
            linkable,
            sessions => session_rows,
            others => sessions.len().saturating_sub(1),
            csrf_token,
            account_url => app.url("/account"),
            sessions_url => app.url("/account/sessions"),
            signout_url => app.url("/signout"),
            request_id => &*ctx.request_id,
            csp_nonce => ctx.csp_nonce(),
        },
    )?;
    if let Some(origin) = image_origin {
        response.extensions_mut().insert(origin);
    }
    if let Some(cookie) = csrf_cookie {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The letter of the avatar shown when there is no picture.
fn name_initial(name: Option<&str>) -> String {
    name.and_then(|n| n.chars().find(|c| c.is_alphanumeric()))
        .map_or_else(|| "?".to_string(), |c| c.to_uppercase().collect())
}

fn session_row(
    s: &Session,
    current: &str,
    now: DateTime<Utc>,
    provider_name: &dyn Fn(&str) -> String,
) -> minijinja::Value {
    let r = &s.record;
    context! {
        id => s.id.clone(),
        this_device => s.id == current,
        device => r.origin.device.map_or_else(|| "Unknown device".to_string(), |d| d.name()),
        ip => r.origin.ip.map(|ip| ip.to_string()),
        provider => provider_name(&r.provider),
        started => when(r.created_at, now),
        last_seen => when(r.last_seen, now),
    }
}

/// A time as the page shows it: an RFC 3339 stamp for `<time datetime>`, the date in UTC,
/// and how long ago in words.
fn when(unix: i64, now: DateTime<Utc>) -> minijinja::Value {
    let Some(t) = DateTime::<Utc>::from_timestamp(unix, 0) else {
        return context! { iso => "", utc => "", ago => "at an unknown time" };
    };
    context! {
        iso => t.to_rfc3339(),
        utc => t.format("%Y-%m-%d %H:%M UTC").to_string(),
        ago => ago(now.signed_duration_since(t).num_seconds()),
    }
}

fn ago(secs: i64) -> String {
    let plural = |n: i64, unit: &str| format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" });
    match secs {
        s if s < 60 => "just now".into(),
        s if s < 3600 => plural(s / 60, "minute"),
        s if s < 86_400 => plural(s / 3600, "hour"),
        s => plural(s / 86_400, "day"),
    }
}

/// `POST /account/sessions` (CSRF-checked): `session=<id>` ends that session of the signed-in
/// user, `others=1` every one but this; then back to the account page. Ending this device's
/// own session signs it out.
pub async fn end_sessions(
    State(app): State<AppState>,
    csrf: Csrf,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let form = parse_form(&body);
    csrf.check(&app, form.get("csrfToken").map(String::as_str), false)?;
    let signed_in = OptionalSession::load(&app, &headers).await?;
    let Some(current) = signed_in.session else {
        return Err(WebError::new(
            ErrorCode::SessionRequired,
            "account page form sent without a live session",
        ));
    };
    let user_id = &current.record.user_id;
    let others = form.get("others").is_some_and(|v| v == "1" || v == "true");
    match form.get("session").filter(|id| !id.is_empty()) {
        None if others => {
            let ended = app
                .sessions
                .end_user_sessions(user_id, Some(&current.id))
                .await?;
            tracing::info!(user = %user_id, sessions = ended.len(), "signed out everywhere else");
            for id in &ended {
                app.audit.emit(|| ended_by_user(&current, id));
            }
        }
        Some(id) if !others && id == &current.id => {
            app.sessions.end_by_id(&current.id).await?;
            tracing::info!(user = %user_id, "signed out from the account page");
            app.audit.emit(|| ended_by_user(&current, &current.id));
            let mut response = redirect_to(&app.url("/signin"), StatusCode::SEE_OTHER);
            let clear = app.cookies.clear(&app.cookies.session);
            response.headers_mut().append(SET_COOKIE, clear);
            return Ok(response);
        }
        Some(id) if !others => {
            if app.sessions.end_of_user(user_id, id).await? {
                tracing::info!(user = %user_id, session = %id, "session ended from the account page");
                app.audit.emit(|| ended_by_user(&current, id));
            } else {
                // Already ended (a second click, another tab) or not this user's: nothing
                // to end, and nothing said about whose it is.
                tracing::info!(user = %user_id, "account page asked to end a session that is not a live one of this user's; nothing ended");
            }
        }
        _ => {
            return Err(WebError::new(
                ErrorCode::InvalidRequest,
                "account sessions form needs either session=<id> or others=1",
            ))
        }
    }
    Ok(redirect_to(&app.url("/account"), StatusCode::SEE_OTHER))
}

/// The audit log's `session.ended` by the user of `current`, of their session `id`.
fn ended_by_user(current: &Session, id: &str) -> Event {
    Event::session_ended(EndedBy::User, id)
        .user(&current.record.user_id)
        .with("from_session", current.id.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_in_words() {
        assert_eq!(ago(0), "just now");
        assert_eq!(ago(59), "just now");
        assert_eq!(ago(60), "1 minute ago");
        assert_eq!(ago(3599), "59 minutes ago");
        assert_eq!(ago(3600), "1 hour ago");
        assert_eq!(ago(2 * 86_400 + 5), "2 days ago");
        // A clock a little behind another instance's.
        assert_eq!(ago(-5), "just now");
    }

    #[test]
    fn the_avatar_letter_is_the_first_letter_or_digit() {
        assert_eq!(name_initial(Some("ada Lovelace")), "A");
        assert_eq!(name_initial(Some("  (émile)")), "É");
        assert_eq!(name_initial(Some("")), "?");
        assert_eq!(name_initial(None), "?");
    }
}
