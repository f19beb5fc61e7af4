//! The refusals latch can answer with: one Auth.js-style code each, a status that fits,
//! words for the user, and a precise reason for the log line.
use axum::http::StatusCode;
use std::fmt;

/// Error codes shown to users and apps (`/error?error=<Code>`, JSON `error` field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The identity provider rejected latch's client settings (client id/secret, redirect URI).
    Configuration,
    /// The user declined at the provider, or an access rule refused them.
    AccessDenied,
    /// The provider redirected back with an OAuth error other than `access_denied`,
    /// or without a code.
    OAuthCallbackError,
    /// The `state` was missing, unknown, expired, already used, or started in another browser.
    InvalidState,
    /// The ID token failed verification (signature, issuer, audience, expiry, nonce, ...).
    InvalidIdToken,
    /// The callback's `iss` parameter (RFC 9207) named another issuer: a mix-up attack or a
    /// misconfigured provider.
    IssuerMismatch,
    /// Account linking refused (used by account linking).
    OAuthAccountNotLinked,
    /// A POST without a valid CSRF token.
    MissingCSRF,
    /// No provider with that id is configured.
    UnknownProvider,
    /// The provider answered with something unusable (5xx, malformed body, refused connection).
    ProviderError,
    /// The provider did not answer in time.
    ProviderTimeout,
    /// The session/user store cannot be reached.
    StoreUnavailable,
    /// The request itself is malformed.
    InvalidRequest,
    /// A token endpoint was called without a live session cookie.
    SessionRequired,
    /// The refresh token is missing, unknown, expired, revoked, or its session has ended.
    InvalidRefreshToken,
    /// An already rotated refresh token was presented again after the grace window: its
    /// family and session were revoked (a stolen token is assumed).
    RefreshTokenReused,
    /// `GET /provider-token/...` without a valid latch access token (`Authorization: Bearer`).
    InvalidAccessToken,
    /// The provider does not hand its tokens to apps (`expose_tokens` is off).
    TokensNotExposed,
    /// `/token` was asked for an audience latch does not mint.
    InvalidAudience,
    /// A browser request from a page of another site (`Origin` or `Sec-Fetch-Site`) to a
    /// route that acts on the user's cookies.
    CrossSiteRequest,
    /// `/introspect` without valid HTTP Basic client credentials.
    InvalidClient,
    /// The user has no account (or no kept tokens) at that provider.
    NoProviderAccount,
    /// The provider's tokens expired and cannot be refreshed (no refresh token, or the
    /// provider refused it): the user must sign in with the provider again.
    ProviderTokenExpired,
    /// Too many requests from this client for this route (`[limits]`); answered with
    /// `Retry-After`.
    TooManyRequests,
    /// The request body is larger than latch accepts.
    PayloadTooLarge,
    /// The request's headers (with its URL) are larger than latch accepts.
    RequestHeaderFieldsTooLarge,
    /// The route exists but not for this method (`Allow` lists those it has).
    MethodNotAllowed,
    /// No such page.
    NotFound,
    /// A bug in latch.
    InternalError,
    /// An unrecognised code passed to `/error`.
    Default,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 30] = [
        ErrorCode::Configuration,
        ErrorCode::AccessDenied,
        ErrorCode::OAuthCallbackError,
        ErrorCode::InvalidState,
        ErrorCode::InvalidIdToken,
        ErrorCode::IssuerMismatch,
        ErrorCode::OAuthAccountNotLinked,
        ErrorCode::MissingCSRF,
        ErrorCode::UnknownProvider,
        ErrorCode::ProviderError,
        ErrorCode::ProviderTimeout,
        ErrorCode::StoreUnavailable,
        ErrorCode::InvalidRequest,
        ErrorCode::SessionRequired,
        ErrorCode::InvalidRefreshToken,
        ErrorCode::RefreshTokenReused,
        ErrorCode::InvalidAccessToken,
        ErrorCode::TokensNotExposed,
        ErrorCode::InvalidAudience,
        ErrorCode::CrossSiteRequest,
        ErrorCode::InvalidClient,
        ErrorCode::NoProviderAccount,
        ErrorCode::ProviderTokenExpired,
        ErrorCode::TooManyRequests,
        ErrorCode::PayloadTooLarge,
        ErrorCode::RequestHeaderFieldsTooLarge,
        ErrorCode::MethodNotAllowed,
        ErrorCode::NotFound,
        ErrorCode::InternalError,
        ErrorCode::Default,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Configuration => "Configuration",
            ErrorCode::AccessDenied => "AccessDenied",
            ErrorCode::OAuthCallbackError => "OAuthCallbackError",
            ErrorCode::InvalidState => "InvalidState",
            ErrorCode::InvalidIdToken => "InvalidIdToken",
            ErrorCode::IssuerMismatch => "IssuerMismatch",
            ErrorCode::OAuthAccountNotLinked => "OAuthAccountNotLinked",
            ErrorCode::MissingCSRF => "MissingCSRF",
            ErrorCode::UnknownProvider => "UnknownProvider",
            ErrorCode::ProviderError => "ProviderError",
            ErrorCode::ProviderTimeout => "ProviderTimeout",
            ErrorCode::StoreUnavailable => "StoreUnavailable",
            ErrorCode::InvalidRequest => "InvalidRequest",
            ErrorCode::SessionRequired => "SessionRequired",
            ErrorCode::InvalidRefreshToken => "InvalidRefreshToken",
            ErrorCode::RefreshTokenReused => "RefreshTokenReused",
            ErrorCode::InvalidAccessToken => "InvalidAccessToken",
            ErrorCode::TokensNotExposed => "TokensNotExposed",
            ErrorCode::InvalidAudience => "InvalidAudience",
            ErrorCode::CrossSiteRequest => "CrossSiteRequest",
            ErrorCode::InvalidClient => "InvalidClient",
            ErrorCode::NoProviderAccount => "NoProviderAccount",
            ErrorCode::ProviderTokenExpired => "ProviderTokenExpired",
            ErrorCode::TooManyRequests => "TooManyRequests",
            ErrorCode::PayloadTooLarge => "PayloadTooLarge",
            ErrorCode::RequestHeaderFieldsTooLarge => "RequestHeaderFieldsTooLarge",
            ErrorCode::MethodNotAllowed => "MethodNotAllowed",
            ErrorCode::NotFound => "NotFound",
            ErrorCode::InternalError => "InternalError",
            ErrorCode::Default => "Default",
        }
    }

    pub fn parse(code: &str) -> ErrorCode {
        ErrorCode::ALL
            .into_iter()
            .find(|c| c.as_str() == code)
            .unwrap_or(ErrorCode::Default)
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::Configuration | ErrorCode::ProviderError => StatusCode::BAD_GATEWAY,
            ErrorCode::ProviderTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::AccessDenied | ErrorCode::MissingCSRF => StatusCode::FORBIDDEN,
            ErrorCode::InvalidIdToken
            | ErrorCode::SessionRequired
            | ErrorCode::InvalidRefreshToken
            | ErrorCode::RefreshTokenReused
            | ErrorCode::InvalidAccessToken
            | ErrorCode::ProviderTokenExpired => StatusCode::UNAUTHORIZED,
            ErrorCode::TokensNotExposed | ErrorCode::CrossSiteRequest => StatusCode::FORBIDDEN,
            ErrorCode::InvalidAudience => StatusCode::BAD_REQUEST,
            ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            ErrorCode::NoProviderAccount => StatusCode::NOT_FOUND,
            ErrorCode::OAuthAccountNotLinked => StatusCode::CONFLICT,
            ErrorCode::UnknownProvider | ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::RequestHeaderFieldsTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::OAuthCallbackError
            | ErrorCode::InvalidState
            | ErrorCode::IssuerMismatch
            | ErrorCode::InvalidRequest
            | ErrorCode::Default => StatusCode::BAD_REQUEST,
        }
    }

    pub fn heading(self) -> &'static str {
        match self {
            ErrorCode::Configuration => "Sign-in is misconfigured",
            ErrorCode::AccessDenied => "Access denied",
            ErrorCode::OAuthCallbackError => "The sign-in provider reported a problem",
            ErrorCode::InvalidState => "This sign-in link is no longer valid",
            ErrorCode::InvalidIdToken => "The sign-in could not be verified",
            ErrorCode::IssuerMismatch => "The sign-in came from the wrong provider",
            ErrorCode::OAuthAccountNotLinked => "Use the account you signed up with",
            ErrorCode::MissingCSRF => "This form has expired",
            ErrorCode::UnknownProvider => "Unknown sign-in provider",
            ErrorCode::ProviderError => "The sign-in provider is not working",
            ErrorCode::ProviderTimeout => "The sign-in provider did not answer",
            ErrorCode::StoreUnavailable => "Sign-in is temporarily unavailable",
            ErrorCode::InvalidRequest => "Bad request",
            ErrorCode::SessionRequired => "You are not signed in",
            ErrorCode::InvalidRefreshToken => "Your sign-in has expired",
            ErrorCode::RefreshTokenReused => "You were signed out for your safety",
            ErrorCode::InvalidAccessToken => "Access token required",
            ErrorCode::TokensNotExposed => "Provider tokens are not available",
            ErrorCode::InvalidAudience => "Unknown token audience",
            ErrorCode::CrossSiteRequest => "Request from another site refused",
            ErrorCode::InvalidClient => "Client authentication failed",
            ErrorCode::NoProviderAccount => "No account at this provider",
            ErrorCode::ProviderTokenExpired => "Please sign in with the provider again",
            ErrorCode::TooManyRequests => "Too many attempts",
            ErrorCode::PayloadTooLarge => "Request too large",
            ErrorCode::RequestHeaderFieldsTooLarge => "Request headers too large",
            ErrorCode::MethodNotAllowed => "Method not allowed",
            ErrorCode::NotFound => "Page not found",
            ErrorCode::InternalError => "Something went wrong",
            ErrorCode::Default => "Sign-in failed",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            ErrorCode::Configuration => "The identity provider rejected this site's sign-in settings. The site's administrator needs to fix them; please tell them the request id below.",
            ErrorCode::AccessDenied => "You declined the sign-in, or your account is not allowed to use this site.",
            ErrorCode::OAuthCallbackError => "The identity provider returned an error instead of signing you in. Please try again.",
            ErrorCode::InvalidState => "The sign-in took too long, was already completed, or was started in another browser. Please start again from the sign-in page.",
            ErrorCode::InvalidIdToken => "The identity provider's answer failed a security check, so you were not signed in. Please try again; if it keeps happening, tell the site's administrator.",
            ErrorCode::IssuerMismatch => "The answer did not come from the provider you chose, so it was refused for your safety. Please start again.",
            ErrorCode::OAuthAccountNotLinked => "An account with this email already exists. Sign in with the provider you used before.",
            ErrorCode::MissingCSRF => "The form was missing its security token or it did not match. Reload the page and try again.",
            ErrorCode::UnknownProvider => "There is no sign-in provider with that name here.",
            ErrorCode::ProviderError => "The identity provider gave an answer we could not use. Please try again in a moment.",
            ErrorCode::ProviderTimeout => "The identity provider took too long to answer. Please try again in a moment.",
            ErrorCode::StoreUnavailable => "Sign-in storage cannot be reached right now. Please try again in a moment.",
            ErrorCode::InvalidRequest => "The request was malformed.",
            ErrorCode::SessionRequired => "This needs a signed-in session. Please sign in and try again.",
            ErrorCode::InvalidRefreshToken => "The refresh token is missing, expired or revoked, or its session has ended. Please sign in again.",
            ErrorCode::RefreshTokenReused => "A refresh token that had already been used was presented again, which can mean it was stolen. Its session has been ended; please sign in again.",
            ErrorCode::InvalidAccessToken => "This needs a valid access token from this site in an Authorization: Bearer header.",
            ErrorCode::TokensNotExposed => "This sign-in provider is not configured to hand its tokens to apps.",
            ErrorCode::InvalidAudience => "The access token was asked for an audience this site does not issue tokens for.",
            ErrorCode::CrossSiteRequest => "A page on another site tried to use your sign-in here, so the request was refused for your safety.",
            ErrorCode::InvalidClient => "This needs the client id and secret of a configured introspection client (HTTP Basic).",
            ErrorCode::NoProviderAccount => "You have not signed in with this provider, or no tokens from it are kept. Sign in with it first.",
            ErrorCode::ProviderTokenExpired => "Your access at the identity provider has expired or was revoked. Please sign in with it again.",
            ErrorCode::TooManyRequests => "Too many requests came from your network in a short time. Please wait a moment and try again.",
            ErrorCode::PayloadTooLarge => "The request body is larger than this site accepts.",
            ErrorCode::RequestHeaderFieldsTooLarge => "The request's headers or cookies are larger than this site accepts. Clearing this site's cookies usually helps.",
            ErrorCode::MethodNotAllowed => "This address does not accept that kind of request.",
            ErrorCode::NotFound => "There is nothing at this address.",
            ErrorCode::InternalError => "An unexpected error happened on our side.",
            ErrorCode::Default => "Sign-in could not be completed. Please try again.",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal: the code users see and the precise reason that goes into the log line.
/// The reason must never contain a secret, token, code or cookie value.
#[derive(Debug, Clone)]
pub struct AuthError {
    pub code: ErrorCode,
    pub reason: String,
    /// An extra sentence for the user (e.g. which provider to use instead); never secret.
    pub hint: Option<String>,
}

impl AuthError {
    pub fn new(code: ErrorCode, reason: impl Into<String>) -> Self {
        AuthError {
            code,
            reason: reason.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.reason)
    }
}

impl std::error::Error for AuthError {}

impl From<crate::store::StoreError> for AuthError {
    fn from(err: crate::store::StoreError) -> Self {
        match err {
            crate::store::StoreError::Unavailable(reason) => {
                AuthError::new(ErrorCode::StoreUnavailable, reason)
            }
            crate::store::StoreError::Backend(reason) => AuthError::new(
                ErrorCode::StoreUnavailable,
                format!("store error: {reason}"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_is_default() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), code);
        }
        assert_eq!(ErrorCode::parse("<script>"), ErrorCode::Default);
    }

    #[test]
    fn no_refusal_is_a_500() {
        for code in ErrorCode::ALL {
            if code != ErrorCode::InternalError {
                assert_ne!(code.status(), StatusCode::INTERNAL_SERVER_ERROR, "{code}");
            }
        }
    }
}
