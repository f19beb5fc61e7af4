//! Starting a sign-in, the provider callback, and sign-out.
use super::extract::{ClientOrigin, Csrf, OptionalSession};
use super::redirect::{safe_callback_url, signin_landing};
use super::{cookies, parse_form, AppState, WebError};
use crate::audit::{Event, Name};
use crate::crypto::random_token;
use crate::error::{printable, AuthError, ErrorCode};
use crate::flow::{self, CallbackParams, SignedIn, FLOW_TTL};
use crate::session::SessionOrigin;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header::{HeaderMap, HeaderValue, SET_COOKIE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;
use std::collections::HashMap;

/// 302 to `url`, or `{"url": url}` for the next-auth client.
fn redirect(url: &str, json: bool, cookies: Vec<HeaderValue>) -> Response {
    let mut response = if json {
        Json(json!({ "url": url })).into_response()
    } else {
        super::redirect_to(url, StatusCode::FOUND)
    };
    for cookie in cookies {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

/// Did the client ask for `{"url"}` instead of a redirect (Auth.js v5 header, v4 form field)?
fn wants_url_json(headers: &HeaderMap, form: &HashMap<String, String>) -> bool {
    let header = headers
        .get("x-auth-return-redirect")
        .is_some_and(|v| v.as_bytes() == b"1" || v.as_bytes() == b"true");
    header || form.get("json").is_some_and(|v| v == "true")
}

async fn begin(
    app: &AppState,
    headers: &HeaderMap,
    provider_id: &str,
    callback_url: Option<&str>,
    json: bool,
    csrf_checked: bool,
) -> Result<Response, WebError> {
    let wrap = |error: AuthError| WebError::answer(error, json);
    let provider = app.providers.get(provider_id).ok_or_else(|| {
        wrap(AuthError::new(
            ErrorCode::UnknownProvider,
            format!(
                "no provider {:?}",
                provider_id.chars().take(64).collect::<String>()
            ),
        ))
    })?;
    let callback_url = signin_landing(&app.config, callback_url);
    // One binding per browser, reused by parallel flows in several tabs.
    let binding = cookies::read(headers, &app.cookies.flow)
        .or_else(|| cookies::read(headers, &app.cookies.flow_cross_site))
        .filter(|b| b.len() == 43)
        .map(str::to_string)
        .unwrap_or_else(|| random_token(32));
    // Who is signed in now is recorded in the flow: the callback links to that user. Only
    // for a CSRF-checked start: a GET can be sent by any site's page, and linking the
    // account that the attacker made the browser sign in with at the provider would hand
    // the attacker the signed-in user. A GET start runs as signed out (and the callback
    // refuses to swap a signed-in browser to another user).
    let started_by = if csrf_checked {
        signed_in(app, headers).await.map_err(|e| wrap(e.into()))?
    } else {
        None
    };
    let started = flow::start(&*app.store, provider, &callback_url, &binding, started_by)
        .await
        .map_err(wrap)?;
    tracing::info!(provider = provider.id(), "sign-in started");
    crate::telemetry::signin_started(provider.id());
    // `form_post` callbacks are cross-site POSTs, which carry only SameSite=None cookies.
    let cookie = if provider.uses_form_post() {
        app.cookies
            .set_cross_site(&app.cookies.flow_cross_site, &binding, FLOW_TTL)
    } else {
        app.cookies.set(&app.cookies.flow, &binding, FLOW_TTL)
    };
    Ok(redirect(&started.authorization_url, json, vec![cookie]))
}

/// The live session behind the request's session cookie, if any (loaded only once the
/// request has passed the checks before it).
async fn signed_in(
    app: &AppState,
    headers: &HeaderMap,
) -> Result<Option<SignedIn>, crate::store::StoreError> {
    let signed_in = OptionalSession::load(app, headers).await?;
    Ok(signed_in.session.map(|s| SignedIn {
        user_id: s.record.user_id,
        session_id: s.id,
    }))
}

/// `GET /signin/{provider}`: start at once (for apps that link straight to a provider).
pub async fn start_get(
    State(app): State<AppState>,
    Path(provider): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    begin(
        &app,
        &headers,
        &provider,
        query.get("callbackUrl").map(String::as_str),
        false,
        false,
    )
    .await
}

/// `POST /signin/{provider}`: the Auth.js form post, CSRF-checked.
pub async fn start_post(
    State(app): State<AppState>,
    Path(provider): Path<String>,
    csrf: Csrf,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let form = parse_form(&body);
    let json = wants_url_json(&headers, &form);
    csrf.check(&app, form.get("csrfToken").map(String::as_str), json)?;
    begin(
        &app,
        &headers,
        &provider,
        form.get("callbackUrl").map(String::as_str),
        json,
        true,
    )
    .await
}

fn params_from(mut map: HashMap<String, String>) -> CallbackParams {
    CallbackParams {
        state: map.remove("state"),
        code: map.remove("code"),
        error: map.remove("error"),
        error_description: map.remove("error_description"),
        iss: map.remove("iss"),
        extra: map,
    }
}

pub async fn callback_get(
    State(app): State<AppState>,
    Path(provider): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    client: ClientOrigin,
    headers: HeaderMap,
) -> Response {
    callback(&app, &headers, client, &provider, params_from(query)).await
}

/// `response_mode=form_post` lands here.
pub async fn callback_post(
    State(app): State<AppState>,
    Path(provider): Path<String>,
    client: ClientOrigin,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    callback(
        &app,
        &headers,
        client,
        &provider,
        params_from(parse_form(&body)),
    )
    .await
}

/// Every refusal at the callback is a redirect to the error page (SPEC §3), so the one-time
/// `code` and `state` leave the address bar and a reload cannot replay them. The browser's
/// flow cookie is cleared once the callback ends, unless another tab's flow still needs it.
async fn callback(
    app: &AppState,
    headers: &HeaderMap,
    client: ClientOrigin,
    provider_id: &str,
    params: CallbackParams,
) -> Response {
    let provider = app.providers.get(provider_id);
    let binding_cookie = match provider {
        Some(p) if p.uses_form_post() => &app.cookies.flow_cross_site,
        _ => &app.cookies.flow,
    };
    let binding = cookies::read(headers, binding_cookie);
    let result = finish_callback(app, headers, client, provider_id, params, binding).await;
    let clear_flow = match binding {
        // A store error here keeps the cookie; it expires with the flow anyway.
        Some(b) => !flow::has_pending(&*app.store, b).await.unwrap_or(true),
        None => false,
    };
    let clear = clear_flow.then(|| {
        if binding_cookie == &app.cookies.flow_cross_site {
            app.cookies.clear_cross_site(binding_cookie)
        } else {
            app.cookies.clear(binding_cookie)
        }
    });
    let mut response = match result {
        Ok(response) => response,
        Err(error) => {
            app.audit.emit(|| {
                Event::new(Name::SigninRefused)
                    .provider(&printable(provider_id, 64))
                    .with("code", error.code.as_str())
                    .with("reason", error.reason.as_str())
            });
            let target = error_redirect(app, &error);
            WebError::redirect(error, target).into_response()
        }
    };
    if let Some(clear) = clear {
        response.headers_mut().append(SET_COOKIE, clear);
    }
    response
}

/// `{base_path}/error?error=<Code>`, or the configured `error_url` with the same parameter;
/// `provider=<id>` for each provider the user should use instead.
fn error_redirect(app: &AppState, error: &AuthError) -> String {
    let mut url = match &app.config.server.error_url {
        Some(url) => url.clone(),
        None => match url::Url::parse(&app.url("/error")) {
            Ok(url) => url,
            Err(_) => return format!("{}/error?error={}", app.config.server.base_path, error.code),
        },
    };
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("error", error.code.as_str());
        for id in &error.providers {
            query.append_pair("provider", id);
        }
    }
    url.to_string()
}

async fn finish_callback(
    app: &AppState,
    headers: &HeaderMap,
    client: ClientOrigin,
    provider_id: &str,
    params: CallbackParams,
    binding: Option<&str>,
) -> Result<Response, AuthError> {
    let provider = app.providers.get(provider_id).ok_or_else(|| {
        AuthError::new(
            ErrorCode::UnknownProvider,
            format!(
                "callback for unknown provider {:?}",
                provider_id.chars().take(64).collect::<String>()
            ),
        )
    })?;
    // Only to refuse a flow that reaches a browser signed in as someone else; linking uses
    // the user recorded when the flow started.
    let presented = signed_in(app, headers).await?;
    let names = |id: &str| {
        app.providers
            .get(id)
            .map(|p| p.config.name.clone())
            .unwrap_or_else(|| id.to_string())
    };
    let finished = flow::finish(
        &*app.store,
        &app.users,
        &app.sessions,
        provider,
        params,
        binding,
        presented.as_ref(),
        names,
    )
    .await?;
    // A fresh session id at every sign-in: the session the flow started from ends, even
    // when its cookie did not come with the callback (`form_post`), and so does the one
    // whose cookie did (the new cookie replaces it in this browser).
    if let Some(id) = &finished.started_session {
        app.sessions.end_by_id(id).await?;
    }
    if let Some(old) =
        presented.filter(|p| finished.started_session.as_ref() != Some(&p.session_id))
    {
        app.sessions.end_by_id(&old.session_id).await?;
    }
    let origin = SessionOrigin {
        device: client.device,
        ip: client.ip,
        provider_sid: finished
            .provider_sid
            .as_deref()
            .map(crate::session::provider_sid_hash),
    };
    let (token, session) = app
        .sessions
        .create(&finished.user, provider.id(), origin, finished.groups)
        .await?;
    tracing::info!(provider = provider.id(), user = %finished.user.id, session = %session.id, "signed in");
    if let Some(id_token) = &finished.id_token {
        // Signed in either way; without it, federated sign-out goes without id_token_hint.
        if let Err(e) = crate::signout::remember_id_token(
            &*app.store,
            app.secret(),
            &session.id,
            id_token,
            app.sessions.max_age(),
        )
        .await
        {
            tracing::warn!(session = %session.id, error = %e, "ID token for federated sign-out not kept");
        }
    }
    app.audit.emit(|| {
        Event::new(Name::SigninSucceeded)
            .user(&finished.user.id)
            .provider(provider.id())
            .with("session", session.id.as_str())
    });
    // The sign-in may have brought a new profile: the user's other sessions take it. This
    // sign-in has succeeded either way, so a store error here is only logged.
    if let Err(e) = app.sessions.refresh_profiles(&finished.user).await {
        tracing::warn!(user = %finished.user.id, error = %e, "the user's other sessions keep their old profile");
    }
    crate::telemetry::signin_completed(provider.id());
    let cookie = app
        .cookies
        .set(&app.cookies.session, &token, app.sessions.max_age());
    Ok(redirect(&finished.callback_url, false, vec![cookie]))
}

/// `POST /signout`: ends the session, clears the cookie, and sends the browser on.
pub async fn signout_post(
    State(app): State<AppState>,
    csrf: Csrf,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let form = parse_form(&body);
    let json = wants_url_json(&headers, &form);
    csrf.check(&app, form.get("csrfToken").map(String::as_str), json)?;
    let store_error = |e: crate::store::StoreError| WebError::answer(e.into(), json);
    let everywhere = form
        .get("everywhere")
        .is_some_and(|v| v == "1" || v == "true");
    let signed_in = OptionalSession::load(&app, &headers)
        .await
        .map_err(store_error)?;
    let target = safe_callback_url(&app.config, form.get("callbackUrl").map(String::as_str));
    // Asked of the provider (`federated_signout`) only once latch's own session has ended.
    let ended = signed_in
        .session
        .as_ref()
        .map(|s| (s.id.clone(), s.record.provider.clone()));
    match signed_in.session {
        Some(session) if everywhere => {
            // Every session of this user, on every device; refresh tokens die with them.
            let user = &session.record.user_id;
            let ended = app.sessions.revoke_user(user).await.map_err(store_error)?;
            app.sessions
                .end_by_id(&session.id)
                .await
                .map_err(store_error)?;
            tracing::info!(user = %user, sessions = ended, "signed out everywhere");
            app.audit
                .emit(|| signout_event(&session, true).with("sessions", ended));
        }
        Some(session) => {
            app.sessions
                .end_by_id(&session.id)
                .await
                .map_err(store_error)?;
            tracing::info!("signed out");
            app.audit.emit(|| signout_event(&session, false));
        }
        // (The guard only names the case: without a cookie the `cookies::read` below finds
        // none either, so the guard made `true` changes nothing.)
        None if signed_in.cookie => {
            // A record this version cannot read (one a later version wrote, before a
            // rollback) is ended too: the cookie's owner asked to sign out.
            if let Some(token) = cookies::read(&headers, &app.cookies.session) {
                app.sessions.delete(token).await.map_err(store_error)?;
            }
            tracing::info!("signed out");
        }
        None => {}
    }
    let federated = match ended {
        Some((session_id, provider)) => {
            federated_signout(&app, &session_id, &provider, &target).await
        }
        None => None,
    };
    let clear = app.cookies.clear(&app.cookies.session);
    Ok(redirect(
        federated.as_deref().unwrap_or(&target),
        json,
        vec![clear],
    ))
}

/// After latch ended the session `session_id`, made with `provider`: when that provider has
/// `federated_signout` and its discovery names an `end_session_endpoint`, that endpoint with
/// `id_token_hint` (the session's ID token, taken from the store), `client_id`,
/// `post_logout_redirect_uri` (`/signout/done`) and a fresh single-use `state` that leads on
/// to `target`. `None` otherwise, and when the provider or the store cannot help (the user is
/// signed out of latch either way; the log says why).
async fn federated_signout(
    app: &AppState,
    session_id: &str,
    provider: &str,
    target: &str,
) -> Option<String> {
    let provider = app
        .providers
        .get(provider)
        .filter(|p| p.config.federated_signout)?;
    let keyring = app.config.server.keyring();
    let stored = crate::signout::take_id_token(&*app.store, &keyring, session_id).await;
    let endpoint = match provider.end_session_endpoint().await {
        Ok(Some(endpoint)) => endpoint,
        Ok(None) => {
            tracing::warn!(provider = provider.id(), "federated_signout is set, but the provider's discovery has no end_session_endpoint: signed out of latch only");
            return None;
        }
        Err(e) => {
            tracing::warn!(provider = provider.id(), reason = %e.reason, "provider unreachable for federated sign-out: signed out of latch only");
            return None;
        }
    };
    let id_token = stored.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "the session's ID token could not be read: federated sign-out without id_token_hint");
        None
    });
    let state = match crate::signout::start(&*app.store, target).await {
        Ok(state) => state,
        Err(e) => {
            tracing::warn!(provider = provider.id(), error = %e, "no state for federated sign-out: signed out of latch only");
            return None;
        }
    };
    let mut url = endpoint;
    {
        let mut query = url.query_pairs_mut();
        if let Some(id_token) = &id_token {
            query.append_pair("id_token_hint", id_token);
        }
        query
            .append_pair("client_id", &provider.config.client_id)
            .append_pair("post_logout_redirect_uri", &app.url("/signout/done"))
            .append_pair("state", &state);
    }
    tracing::info!(
        provider = provider.id(),
        hint = id_token.is_some(),
        "federated sign-out: on to the provider"
    );
    Some(url.to_string())
}

/// `GET /signout/done?state=`: the provider sends the browser back after a federated
/// sign-out; a state latch issued leads on to that sign-out's `callbackUrl`, once.
pub async fn signout_done(
    State(app): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, WebError> {
    let state = query.get("state").map_or("", String::as_str);
    match crate::signout::finish(&*app.store, state).await? {
        Some(target) => Ok(redirect(&target, false, Vec::new())),
        None => Err(WebError::new(
            ErrorCode::InvalidSignoutState,
            "signout/done without a state from a federated sign-out (unknown, expired or used)",
        )),
    }
}

/// The audit log's `signout` of `session` (`everywhere`: every session of its user).
fn signout_event(session: &crate::session::Session, everywhere: bool) -> Event {
    Event::new(Name::Signout)
        .user(&session.record.user_id)
        .provider(&session.record.provider)
        .with("session", session.id.as_str())
        .with("everywhere", everywhere)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header::LOCATION;

    #[test]
    fn the_url_answer_is_asked_for_by_header_or_form_field() {
        let form = |v: Option<&str>| {
            v.map(|v| HashMap::from([("json".to_string(), v.to_string())]))
                .unwrap_or_default()
        };
        let header = |v: Option<&str>| {
            let mut h = HeaderMap::new();
            if let Some(v) = v {
                h.insert("x-auth-return-redirect", HeaderValue::from_str(v).unwrap());
            }
            h
        };
        for (h, f, wanted) in [
            (None, None, false),
            (Some("1"), None, true),
            (Some("true"), None, true),
            (Some("0"), None, false),
            (Some("yes"), None, false),
            (None, Some("true"), true),
            (None, Some("1"), false),
            (Some("0"), Some("true"), true),
            (Some("1"), Some("false"), true),
        ] {
            assert_eq!(wants_url_json(&header(h), &form(f)), wanted, "{h:?} {f:?}");
        }
    }

    #[test]
    fn a_redirect_is_a_302_or_the_url_as_json_with_its_cookies() {
        let cookie = HeaderValue::from_static("a=b");
        let found = redirect("https://x.test/p", false, vec![cookie.clone()]);
        assert_eq!(found.status(), StatusCode::FOUND);
        assert_eq!(found.headers()[LOCATION], "https://x.test/p");
        assert_eq!(found.headers()[SET_COOKIE], "a=b");
        let json = redirect("https://x.test/p", true, vec![cookie]);
        assert_eq!(json.status(), StatusCode::OK);
        assert!(json.headers().get(LOCATION).is_none());
        assert_eq!(json.headers()[SET_COOKIE], "a=b");
    }
}
