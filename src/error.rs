//! The refusals latch can answer with: one Auth.js-style code each, a status that fits,
//! words for the user, and a precise reason for the log line.
use axum::http::StatusCode;
use std::fmt;

/// Declares [`ErrorCode`] from one table: each code's name (its text is the name), the
/// status it answers with, and the heading and message users see.
macro_rules! error_codes {
    ($(
        $(#[$doc:meta])*
        $code:ident: $status:ident, $heading:literal, $message:literal;
    )*) => {
        /// Error codes shown to users and apps (`/error?error=<Code>`, JSON `error` field).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum ErrorCode {
            $($(#[$doc])* $code,)*
        }

        const CODE_COUNT: usize = [$(stringify!($code)),*].len();

        impl ErrorCode {
            pub const ALL: [ErrorCode; CODE_COUNT] = [$(ErrorCode::$code),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$code => stringify!($code),)*
                }
            }

            pub fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$code => StatusCode::$status,)*
                }
            }

            pub fn heading(self) -> &'static str {
                match self {
                    $(ErrorCode::$code => $heading,)*
                }
            }

            pub fn message(self) -> &'static str {
                match self {
                    $(ErrorCode::$code => $message,)*
                }
            }
        }
    };
}

error_codes! {
    /// The identity provider rejected latch's client settings (client id/secret, redirect URI).
    Configuration: BAD_GATEWAY,
        "Sign-in is misconfigured",
        "The identity provider rejected this site's sign-in settings. The site's administrator needs to fix them; please tell them the request id below.";
    /// The user declined at the provider, or an access rule refused them.
    AccessDenied: FORBIDDEN,
        "Access denied",
        "You declined the sign-in, or your account is not allowed to use this site.";
    /// The provider redirected back with an OAuth error other than `access_denied`,
    /// or without a code.
    OAuthCallbackError: BAD_REQUEST,
        "The sign-in provider reported a problem",
        "The identity provider returned an error instead of signing you in. Please try again.";
    /// The `state` was missing, unknown, expired, already used, or started in another browser.
    InvalidState: BAD_REQUEST,
        "This sign-in link is no longer valid",
        "The sign-in took too long, was already completed, or was started in another browser. Please start again from the sign-in page.";
    /// The ID token failed verification (signature, issuer, audience, expiry, nonce, ...).
    InvalidIdToken: UNAUTHORIZED,
        "The sign-in could not be verified",
        "The identity provider's answer failed a security check, so you were not signed in. Please try again; if it keeps happening, tell the site's administrator.";
    /// The callback's `iss` parameter (RFC 9207) named another issuer: a mix-up attack or a
    /// misconfigured provider.
    IssuerMismatch: BAD_REQUEST,
        "The sign-in came from the wrong provider",
        "The answer did not come from the provider you chose, so it was refused for your safety. Please start again.";
    /// Account linking refused (used by account linking).
    OAuthAccountNotLinked: CONFLICT,
        "Use the account you signed up with",
        "An account with this email already exists. Sign in with the provider you used before.";
    /// A POST without a valid CSRF token.
    MissingCSRF: FORBIDDEN,
        "This form has expired",
        "The form was missing its security token or it did not match. Reload the page and try again.";
    /// No provider with that id is configured.
    UnknownProvider: NOT_FOUND,
        "Unknown sign-in provider",
        "There is no sign-in provider with that name here.";
    /// The provider answered with something unusable (5xx, malformed body, refused connection).
    ProviderError: BAD_GATEWAY,
        "The sign-in provider is not working",
        "The identity provider gave an answer we could not use. Please try again in a moment.";
    /// The provider did not answer in time.
    ProviderTimeout: GATEWAY_TIMEOUT,
        "The sign-in provider did not answer",
        "The identity provider took too long to answer. Please try again in a moment.";
    /// A back-channel logout from the provider ended the provider session this sign-in came
    /// from while latch was completing it: the new session was ended again at once.
    ProviderSessionEnded: UNAUTHORIZED,
        "You were signed out at the provider",
        "Your session at the identity provider ended while you were signing in, so you were not signed in here either. Please sign in again.";
    /// The session/user store cannot be reached.
    StoreUnavailable: SERVICE_UNAVAILABLE,
        "Sign-in is temporarily unavailable",
        "Sign-in storage cannot be reached right now. Please try again in a moment.";
    /// `/signout/done` without a state that a federated sign-out issued (unknown, expired or
    /// used): the user is signed out, but is not sent on.
    InvalidSignoutState: BAD_REQUEST,
        "You are signed out",
        "You were signed out, but the link that brought you back from the sign-in provider was not valid, so you were not sent on. You can close this page or sign in again.";
    /// Signed in, but a `[[policies]]` entry (or `/verify?allowed_groups=`) does not let this
    /// user open that page.
    PolicyDenied: FORBIDDEN,
        "No access to this page",
        "You are signed in, but this account is not allowed to open this page. Ask the site's administrator for access, or sign in with another account.";
    /// The request itself is malformed.
    InvalidRequest: BAD_REQUEST,
        "Bad request",
        "The request was malformed.";
    /// A token endpoint was called without a live session cookie.
    SessionRequired: UNAUTHORIZED,
        "You are not signed in",
        "This needs a signed-in session. Please sign in and try again.";
    /// The refresh token is missing, unknown, expired, revoked, or its session has ended.
    InvalidRefreshToken: UNAUTHORIZED,
        "Your sign-in has expired",
        "The refresh token is missing, expired or revoked, or its session has ended. Please sign in again.";
    /// An already rotated refresh token was presented again after the grace window: its
    /// family and session were revoked (a stolen token is assumed).
    RefreshTokenReused: UNAUTHORIZED,
        "You were signed out for your safety",
        "A refresh token that had already been used was presented again, which can mean it was stolen. Its session has been ended; please sign in again.";
    /// `GET /provider-token/...` without a valid latch access token (`Authorization: Bearer`).
    InvalidAccessToken: UNAUTHORIZED,
        "Access token required",
        "This needs a valid access token from this site in an Authorization: Bearer header.";
    /// The provider does not hand its tokens to apps (`expose_tokens` is off).
    TokensNotExposed: FORBIDDEN,
        "Provider tokens are not available",
        "This sign-in provider is not configured to hand its tokens to apps.";
    /// `/token` was asked for an audience latch does not mint.
    InvalidAudience: BAD_REQUEST,
        "Unknown token audience",
        "The access token was asked for an audience this site does not issue tokens for.";
    /// A browser request from a page of another site (`Origin` or `Sec-Fetch-Site`) to a
    /// route that acts on the user's cookies.
    CrossSiteRequest: FORBIDDEN,
        "Request from another site refused",
        "A page on another site tried to use your sign-in here, so the request was refused for your safety.";
    /// `/introspect` without valid HTTP Basic client credentials.
    InvalidClient: UNAUTHORIZED,
        "Client authentication failed",
        "This needs the client id and secret of a configured introspection client (HTTP Basic).";
    /// The user has no account (or no kept tokens) at that provider.
    NoProviderAccount: NOT_FOUND,
        "No account at this provider",
        "You have not signed in with this provider, or no tokens from it are kept. Sign in with it first.";
    /// The provider's tokens expired and cannot be refreshed (no refresh token, or the
    /// provider refused it): the user must sign in with the provider again.
    ProviderTokenExpired: UNAUTHORIZED,
        "Please sign in with the provider again",
        "Your access at the identity provider has expired or was revoked. Please sign in with it again.";
    /// Too many requests from this client for this route (`[limits]`); answered with
    /// `Retry-After`.
    TooManyRequests: TOO_MANY_REQUESTS,
        "Too many attempts",
        "Too many requests came from your network in a short time. Please wait a moment and try again.";
    /// The request body is larger than latch accepts.
    PayloadTooLarge: PAYLOAD_TOO_LARGE,
        "Request too large",
        "The request body is larger than this site accepts.";
    /// The request's headers (with its URL) are larger than latch accepts.
    RequestHeaderFieldsTooLarge: REQUEST_HEADER_FIELDS_TOO_LARGE,
        "Request headers too large",
        "The request's headers or cookies are larger than this site accepts. Clearing this site's cookies usually helps.";
    /// The route exists but not for this method (`Allow` lists those it has).
    MethodNotAllowed: METHOD_NOT_ALLOWED,
        "Method not allowed",
        "This address does not accept that kind of request.";
    /// No such page.
    NotFound: NOT_FOUND,
        "Page not found",
        "There is nothing at this address.";
    /// A bug in latch.
    InternalError: INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "An unexpected error happened on our side.";
    /// An unrecognised code passed to `/error`.
    Default: BAD_REQUEST,
        "Sign-in failed",
        "Sign-in could not be completed. Please try again.";
}

impl ErrorCode {
    pub fn parse(code: &str) -> ErrorCode {
        ErrorCode::ALL
            .into_iter()
            .find(|c| c.as_str() == code)
            .unwrap_or(ErrorCode::Default)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Client- or provider-supplied text for a log line (an [`AuthError`]'s reason): control
/// characters dropped (no forged log lines, no terminal escapes), at most `max` characters.
pub fn printable(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// A refusal: the code users see and the precise reason that goes into the log line.
/// The reason must never contain a secret, token, code or cookie value.
#[derive(Debug, Clone)]
pub struct AuthError {
    pub code: ErrorCode,
    pub reason: String,
    /// An extra sentence for the user (e.g. which provider to use instead); never secret.
    pub hint: Option<String>,
    /// Configured provider ids the user should sign in with instead (`OAuthAccountNotLinked`);
    /// a refused callback passes them on to the error page as `provider=`.
    pub providers: Vec<String>,
}

impl AuthError {
    pub fn new(code: ErrorCode, reason: impl Into<String>) -> Self {
        AuthError {
            code,
            reason: reason.into(),
            hint: None,
            providers: Vec::new(),
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

    #[test]
    fn log_text_is_printable_and_bounded_and_errors_read_code_then_reason() {
        assert_eq!(printable("a\u{1b}[31mb\nc", 3), "a[3");
        assert_eq!(printable("ok\r\n", 10), "ok");
        let error = AuthError::new(ErrorCode::InvalidClient, "why").with_hint("ask them");
        assert_eq!(error.hint.as_deref(), Some("ask them"));
        assert_eq!(
            ErrorCode::InvalidClient.to_string(),
            ErrorCode::InvalidClient.as_str()
        );
        assert_eq!(
            error.to_string(),
            format!("{}: why", ErrorCode::InvalidClient.as_str())
        );
        for (store, reason) in [
            (crate::store::StoreError::Unavailable("down".into()), "down"),
            (
                crate::store::StoreError::Backend("odd".into()),
                "store error: odd",
            ),
        ] {
            let error = AuthError::from(store);
            assert_eq!(
                (error.code, error.reason.as_str()),
                (ErrorCode::StoreUnavailable, reason)
            );
        }
    }
}
