//! What handlers take from a request, each read in one place: the signed-in session
//! ([`OptionalSession`], [`CurrentSession`]), a latch access token ([`Bearer`], [`Caller`]),
//! the browser's CSRF token ([`Csrf`]), the same-site guard ([`SameSite`]) and where the
//! request comes from ([`ClientOrigin`]).
use super::{cookies, csrf, App, AppState, WebError};
use crate::error::{printable, AuthError, ErrorCode};
use crate::session::Session;
use crate::store::StoreError;
use axum::extract::{ConnectInfo, FromRequestParts, OptionalFromRequestParts};
use axum::http::header::{
    HeaderMap, HeaderValue, AUTHORIZATION, ORIGIN, USER_AGENT, WWW_AUTHENTICATE,
};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};

/// The live session behind the request's session cookie, if any.
pub struct OptionalSession {
    pub session: Option<Session>,
    /// Did the request carry a session cookie (live or not)?
    pub cookie: bool,
}

impl OptionalSession {
    /// Reads the session cookie in `headers` and loads its session (extending it per
    /// `update_age`). Handlers that must refuse something else first call this themselves.
    pub async fn load(app: &App, headers: &HeaderMap) -> Result<Self, StoreError> {
        let Some(token) = cookies::read(headers, &app.cookies.session) else {
            return Ok(OptionalSession {
                session: None,
                cookie: false,
            });
        };
        Ok(OptionalSession {
            session: app.sessions.load(token).await?,
            cookie: true,
        })
    }
}

impl FromRequestParts<AppState> for OptionalSession {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, WebError> {
        Ok(Self::load(app, &parts.headers).await?)
    }
}

/// A live session, or `SessionRequired`.
pub struct CurrentSession(pub Session);

impl FromRequestParts<AppState> for CurrentSession {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, WebError> {
        match OptionalSession::from_request_parts(parts, app).await? {
            OptionalSession {
                session: Some(session),
                ..
            } => Ok(CurrentSession(session)),
            OptionalSession { cookie: false, .. } => Err(session_required("no session cookie")),
            OptionalSession { .. } => Err(session_required("session cookie names no live session")),
        }
    }
}

/// Where a request comes from, as a session remembers it: the device its `User-Agent` names
/// and the client address (the TCP peer, or through `trusted_proxies` the forwarded client,
/// as the rate limits count it). Never refuses.
pub struct ClientOrigin {
    pub device: Option<crate::session::device::Device>,
    pub ip: Option<IpAddr>,
}

impl FromRequestParts<AppState> for ClientOrigin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, std::convert::Infallible> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        let user_agent = parts.headers.get(USER_AGENT).and_then(|v| v.to_str().ok());
        Ok(ClientOrigin {
            device: crate::session::device::Device::from_user_agent(user_agent),
            ip: peer.map(|ConnectInfo(peer)| app.limiter.client_ip(peer.ip(), &parts.headers)),
        })
    }
}

fn session_required(reason: &str) -> WebError {
    WebError::json(AuthError::new(ErrorCode::SessionRequired, reason))
}

/// The token of an `Authorization: Bearer` header (RFC 6750). Required, it refuses with 401
/// and `WWW-Authenticate: Bearer`; as an `Option`, a request without the Bearer scheme is
/// `None` and one with the scheme but no usable token is refused.
pub struct Bearer(HeaderValue);

impl Bearer {
    pub fn token(&self) -> &str {
        // Checked when extracted: ASCII, `<scheme> <token>`.
        self.0
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .map_or("", |(_, token)| token.trim())
    }

    /// Does the request use the Bearer scheme at all?
    fn scheme_in(headers: &HeaderMap) -> bool {
        headers
            .get(AUTHORIZATION)
            .and_then(|v| v.as_bytes().get(..7))
            .is_some_and(|s| s.eq_ignore_ascii_case(b"bearer "))
    }

    /// A well-formed bearer header in `headers`.
    fn parse(headers: &HeaderMap) -> Option<Bearer> {
        let header = headers.get(AUTHORIZATION)?;
        let (scheme, token) = header.to_str().ok()?.split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= 8192)
            .then(|| Bearer(header.clone()))
    }
}

impl<S: Sync> FromRequestParts<S> for Bearer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        Bearer::parse(&parts.headers).ok_or_else(|| {
            let mut response = WebError::json(AuthError::new(
                ErrorCode::InvalidAccessToken,
                "no Authorization: Bearer header",
            ))
            .into_response();
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        })
    }
}

impl<S: Sync> OptionalFromRequestParts<S> for Bearer {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, WebError> {
        if !Bearer::scheme_in(&parts.headers) {
            return Ok(None);
        }
        match Bearer::parse(&parts.headers) {
            Some(bearer) => Ok(Some(bearer)),
            None => Err(WebError::json(AuthError::new(
                ErrorCode::InvalidAccessToken,
                "Authorization header is not `Bearer <token>`",
            ))),
        }
    }
}

/// 401 with `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750 section 3).
pub fn invalid_token(reason: String) -> Response {
    let error = AuthError::new(ErrorCode::InvalidAccessToken, reason);
    let mut response = WebError::json(error).into_response();
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    response
}

/// Whom `/verify` is asked about: a bearer token when the request uses that scheme (APIs);
/// otherwise (no header, or another scheme such as an app's own Basic auth passed on by the
/// proxy) the session cookie. The session is loaded only in the second case.
pub enum Caller {
    Bearer(Bearer),
    Session(OptionalSession),
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, WebError> {
        match <Bearer as OptionalFromRequestParts<AppState>>::from_request_parts(parts, app).await?
        {
            Some(bearer) => Ok(Caller::Bearer(bearer)),
            None => Ok(Caller::Session(
                OptionalSession::from_request_parts(parts, app).await?,
            )),
        }
    }
}

/// The browser's CSRF cookie (double submit, see [`csrf`]).
pub struct Csrf {
    cookie: Option<String>,
}

impl Csrf {
    /// The token for a form: the one in the browser's valid cookie, or a new one plus the
    /// `Set-Cookie` that carries it.
    pub fn token(&self, app: &App) -> (String, Option<HeaderValue>) {
        let existing = self
            .cookie
            .as_deref()
            .and_then(|c| csrf::token_from_cookie(app.secret(), c));
        match existing {
            Some(token) => (token.to_string(), None),
            None => {
                let (token, cookie) = csrf::issue(app.secret());
                let header = app.cookies.set(
                    &app.cookies.csrf,
                    &cookie,
                    std::time::Duration::from_secs(24 * 3600),
                );
                (token, Some(header))
            }
        }
    }

    /// Refuses a form whose `csrfToken` (`submitted`) is not this browser's (`MissingCSRF`,
    /// as JSON when `json`).
    pub fn check(&self, app: &App, submitted: Option<&str>, json: bool) -> Result<(), WebError> {
        let cookie = self.cookie.as_deref();
        if csrf::verify(app.secret(), cookie, submitted) {
            return Ok(());
        }
        let reason = match (cookie.is_some(), submitted.is_some()) {
            (false, _) => "no CSRF cookie",
            (true, false) => "no csrfToken field",
            (true, true) => "csrfToken does not match the CSRF cookie",
        };
        let error = AuthError::new(ErrorCode::MissingCSRF, reason);
        Err(WebError::answer(error, json))
    }
}

impl FromRequestParts<AppState> for Csrf {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, std::convert::Infallible> {
        let cookie = cookies::read(&parts.headers, &app.cookies.csrf).map(str::to_string);
        Ok(Csrf { cookie })
    }
}

/// Passes only requests a browser did not send from a page latch does not trust (another
/// site's script or form riding on the user's cookies): see [`same_site_only`].
pub struct SameSite;

impl FromRequestParts<AppState> for SameSite {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, WebError> {
        same_site_only(app, &parts.headers).map(|()| SameSite)
    }
}

/// Refuses an `Origin` that is neither `public_url`'s nor a `trusted_origins` match, or,
/// without `Origin`, `Sec-Fetch-Site: cross-site`. Clients that are not browsers send
/// neither and pass.
pub fn same_site_only(app: &App, headers: &HeaderMap) -> Result<(), WebError> {
    let refused =
        |reason: String| WebError::json(AuthError::new(ErrorCode::CrossSiteRequest, reason));
    if let Some(origin) = headers.get(ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if super::redirect::is_trusted_origin(&app.config, origin) {
            return Ok(());
        }
        return Err(refused(format!(
            "Origin {:?} is neither public_url's nor a trusted_origins match",
            printable(origin, 100)
        )));
    }
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
    if cross_site {
        return Err(refused(
            "Sec-Fetch-Site: cross-site without an Origin header".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{Request, StatusCode};

    fn parts(authorization: Option<&str>) -> Parts {
        let mut request = Request::builder();
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn a_bearer_header_has_the_scheme_and_a_token_of_at_most_8_kib() {
        let long = "t".repeat(8192);
        for (value, token) in [
            ("Bearer abc", "abc"),
            ("bearer   abc ", "abc"),
            ("BEARER a.b-c", "a.b-c"),
        ] {
            let parsed = Bearer::parse(&parts(Some(value)).headers).expect(value);
            assert_eq!(parsed.token(), token);
        }
        assert_eq!(
            Bearer::parse(&parts(Some(&format!("Bearer {long}"))).headers)
                .unwrap()
                .token(),
            long
        );
        for value in [
            "Bearer ",
            "Bearer    ",
            "Bearer",
            "Basic abc",
            "Bearerabc",
            &format!("Bearer {long}t"),
        ] {
            assert!(
                Bearer::parse(&parts(Some(value)).headers).is_none(),
                "{value}"
            );
        }
        assert!(Bearer::parse(&parts(None).headers).is_none());
    }

    #[tokio::test]
    async fn an_optional_bearer_is_none_only_without_the_scheme() {
        let optional = |value: Option<&'static str>| async move {
            <Bearer as OptionalFromRequestParts<()>>::from_request_parts(&mut parts(value), &())
                .await
        };
        assert!(optional(None).await.unwrap().is_none());
        assert!(optional(Some("Basic abc")).await.unwrap().is_none());
        assert!(optional(Some("Bearer")).await.unwrap().is_none());
        assert_eq!(
            optional(Some("bearer abc")).await.unwrap().unwrap().token(),
            "abc"
        );
        assert!(optional(Some("Bearer   ")).await.is_err());
        // Required: refused with the scheme to use.
        let refused = <Bearer as FromRequestParts<()>>::from_request_parts(&mut parts(None), &())
            .await
            .err()
            .unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(refused.headers()[WWW_AUTHENTICATE], "Bearer");
        let good =
            <Bearer as FromRequestParts<()>>::from_request_parts(&mut parts(Some("Bearer x")), &())
                .await
                .ok()
                .unwrap();
        assert_eq!(good.token(), "x");
        let invalid = invalid_token("expired".into());
        assert_eq!(invalid.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            invalid.headers()[WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\""
        );
    }
}
