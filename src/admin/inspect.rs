//! `latch token inspect [TOKEN|-]`: decodes a JWT (a latch access token, a provider's ID token)
//! or a latch cookie value (session or refresh token) and explains it: header and claims,
//! when it was issued and expires, which key signed it and where that key is in latch's key
//! ring, whether the signature verifies (latch's keys in the store with `--config`, or a
//! provider's JWKS with `--issuer`), whether the session behind it is live, and the exact
//! reason for each failed check.
//!
//! It never prints the token itself: a cookie value is shown as a six-character prefix and
//! its length, with the session id it maps to. It only reads the store (no key is created,
//! no session extended, no refresh token rotated).
//!
//! Exit codes: 0 when every check made passed, 1 when one failed, 2 for unusable input or
//! configuration.
use super::{open_store, time, Failure};
use crate::config::{Config, ProviderKind};
use crate::session::{session_id, Sessions};
use crate::store::Store;
use crate::tokens::keys::{KeyRecord, KeyRing};
use clap::{Args, Subcommand};
use serde_json::Value;
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Decode a JWT or a latch cookie value and explain it: claims, times, signing key,
    /// signature, session (exit 0 all good, 1 a check failed, 2 unusable input)
    Inspect(InspectArgs),
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The token: a JWT, or a session/refresh cookie value (`name=value` works too);
    /// `-` or nothing reads it from stdin, which keeps it out of the shell history
    #[arg(allow_hyphen_values = true)]
    pub token: Option<String>,
    /// Verify against this OpenID provider's JWKS, found by discovery (https; http only on
    /// loopback)
    #[arg(long)]
    pub issuer: Option<String>,
    /// An audience to expect (repeatable); by default latch's `[tokens]` audiences for its
    /// own tokens, the configured client_id for a provider's
    #[arg(long = "audience")]
    pub audience: Vec<String>,
}

/// The default of the global `--config`: a missing file there means "no config given".
const DEFAULT_CONFIG: &str = "./providers.toml";
/// A token read from stdin longer than this is not a token.
const MAX_INPUT: usize = 64 * 1024;

/// Which latch cookie a `name=value` input named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CookieKind {
    Session,
    Refresh,
}

/// A decoded compact JWS.
#[derive(Debug, Clone)]
pub struct Jwt {
    pub header: Value,
    pub claims: Value,
    /// `header.payload`, what the signature covers.
    pub signing_input: String,
    pub signature: Vec<u8>,
}

#[derive(Debug, Clone)]
pub enum Input {
    Jwt(Jwt),
    Cookie {
        kind: Option<CookieKind>,
        value: String,
    },
}

/// What the input is; `Err` with the reason it is neither a JWT nor a latch cookie value.
/// The reason never quotes the input (it may be a secret).
pub fn parse(input: &str) -> Result<Input, String> {
    let mut text = input.trim();
    if let Some(rest) = text
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("bearer "))
        .map(|_| &text[7..])
    {
        text = rest.trim();
    }
    let mut kind = None;
    if let Some((name, value)) = text.split_once('=') {
        let name = name.trim();
        let bare = name
            .strip_prefix("__Host-")
            .or_else(|| name.strip_prefix("__Secure-"))
            .unwrap_or(name);
        kind = match bare {
            "latch.session-token" => Some(CookieKind::Session),
            "latch.refresh-token" => Some(CookieKind::Refresh),
            _ => None,
        };
        if kind.is_some() {
            text = value.split(';').next().unwrap_or("").trim();
        }
    }
    if text.is_empty() {
        return Err("empty input: nothing to inspect".into());
    }
    let neither = |why: String| {
        format!(
            "not a JWT and not a latch cookie value: {why} (a JWT is three base64url parts \
             joined by dots; a latch cookie value is 43 base64url characters)"
        )
    };
    let parts: Vec<&str> = text.split('.').collect();
    if kind.is_none() && parts.len() == 5 {
        return Err(
            "an encrypted JWT (JWE, five parts): only the holder of its key can read it".into(),
        );
    }
    if kind.is_none() && parts.len() == 3 {
        return parse_jwt(text, &parts).map(Input::Jwt).map_err(neither);
    }
    if is_cookie_value(text) {
        return Ok(Input::Cookie {
            kind,
            value: text.to_string(),
        });
    }
    Err(neither(format!(
        "{} characters, {} dot-separated part{}",
        text.chars().count(),
        parts.len(),
        if parts.len() == 1 { "" } else { "s" }
    )))
}

fn is_cookie_value(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn parse_jwt(text: &str, parts: &[&str]) -> Result<Jwt, String> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let json_part = |part: &str, what: &str| -> Result<Value, String> {
        let bytes = b64
            .decode(part.trim_end_matches('='))
            .map_err(|_| format!("its {what} is not base64url"))?;
        let value: Value =
            serde_json::from_slice(&bytes).map_err(|_| format!("its {what} is not JSON"))?;
        if value.is_object() {
            Ok(value)
        } else {
            Err(format!("its {what} is not a JSON object"))
        }
    };
    let header = json_part(parts[0], "header")?;
    let claims = json_part(parts[1], "payload")?;
    let signature = b64
        .decode(parts[2].trim_end_matches('='))
        .map_err(|_| "its signature is not base64url".to_string())?;
    Ok(Jwt {
        header,
        claims,
        signing_input: text[..parts[0].len() + 1 + parts[1].len()].to_string(),
        signature,
    })
}

/// A duration in words: "4 s", "8 min", "2 h 5 min", "3 days".
pub fn span(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min", secs / 60),
        3600..=86399 => match (secs / 3600, secs % 3600 / 60) {
            (h, 0) => format!("{h} h"),
            (h, m) => format!("{h} h {m} min"),
        },
        _ => match secs / 86400 {
            1 => "1 day".into(),
            d => format!("{d} days"),
        },
    }
}

/// `exp` against `now` (Unix seconds): `Ok("expires in 8 min")` or `Err("expired 4 min ago")`.
pub fn expiry(exp: i64, now: i64) -> Result<String, String> {
    if exp > now {
        Ok(format!("expires in {}", span((exp - now) as u64)))
    } else if now - exp < 60 {
        Err(format!(
            "expired {} ago (still inside the 60 s of clock skew latch allows)",
            span((now - exp) as u64)
        ))
    } else {
        Err(format!("expired {} ago", span((now - exp) as u64)))
    }
}

/// Refuses the algorithms no latch or provider token may use; `Ok(alg)` otherwise.
pub fn check_alg(header: &Value) -> Result<String, String> {
    let Some(alg) = header["alg"].as_str() else {
        return Err("the header has no alg".into());
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err("alg none refused: an unsigned token proves nothing".into());
    }
    if alg.to_ascii_uppercase().starts_with("HS") {
        return Err(format!(
            "alg {alg} refused: a symmetric alg is never accepted (latch and OpenID providers \
             sign with asymmetric keys; HS256 over a public key is the key-confusion attack)"
        ));
    }
    Ok(alg.to_string())
}

fn quoted(values: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    values
        .into_iter()
        .map(|v| format!("`{}`", v.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Does `aud` name one of `expected`? `Err("`aud` is `web`, expected one of `api`")`.
pub fn check_audience(aud: &Value, expected: &[String]) -> Result<String, String> {
    let named: Vec<&str> = match aud {
        Value::String(a) => vec![a.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if named.is_empty() {
        return Err(format!(
            "no `aud` claim, expected one of {}",
            quoted(expected)
        ));
    }
    let shown = if named.len() == 1 {
        quoted(&named)
    } else {
        format!("[{}]", quoted(&named))
    };
    if named.iter().any(|a| expected.iter().any(|e| e == a)) {
        Ok(format!("`aud` is {shown}, one of {}", quoted(expected)))
    } else {
        Err(format!(
            "`aud` is {shown}, expected one of {}",
            quoted(expected)
        ))
    }
}

/// Where a `kid` is in latch's key ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyStatus {
    /// Signing now.
    Current,
    /// Published ahead of its first use; signs from its `not_before`.
    Next,
    /// No longer signing; published until its last token expires.
    Retired,
    /// Not in the store.
    Unknown,
}

/// The status of `kid` among the stored `records` at `now_ms`, and its record.
pub fn key_status<'a>(
    kid: &str,
    records: &'a [KeyRecord],
    now_ms: i64,
) -> (KeyStatus, Option<&'a KeyRecord>) {
    let Some(record) = records.iter().find(|r| r.kid == kid) else {
        return (KeyStatus::Unknown, None);
    };
    let status = if now_ms < record.not_before {
        KeyStatus::Next
    } else if now_ms < record.retires_at {
        KeyStatus::Current
    } else {
        KeyStatus::Retired
    };
    (status, Some(record))
}

/// A bearer value as it may be printed: its first six characters and its length.
pub fn redact(value: &str) -> String {
    let prefix: String = value.chars().take(6).collect();
    format!("{prefix}… ({} chars)", value.chars().count())
}

/// One check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Ok,
    Fail,
    Skip,
    Info,
}

/// What the command prints, built up check by check.
#[derive(Debug, Default)]
pub struct Report {
    head: Vec<(String, String)>,
    checks: Vec<(Mark, String, String)>,
}

impl Report {
    fn head(&mut self, label: &str, text: impl Into<String>) {
        self.head.push((label.into(), text.into()));
    }
    fn check(&mut self, mark: Mark, label: &str, text: impl Into<String>) {
        self.checks.push((mark, label.into(), text.into()));
    }
    fn result(&mut self, label: &str, result: Result<String, String>) {
        match result {
            Ok(text) => self.check(Mark::Ok, label, text),
            Err(why) => self.check(Mark::Fail, label, why),
        }
    }

    /// The reasons of the failed checks, in order.
    pub fn failures(&self) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|(m, ..)| *m == Mark::Fail)
            .map(|(_, _, t)| t.as_str())
            .collect()
    }

    pub fn failed(&self) -> bool {
        !self.failures().is_empty()
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for (label, text) in &self.head {
            let mut lines = text.lines();
            let _ = writeln!(
                out,
                "{:<10} {}",
                format!("{label}:"),
                lines.next().unwrap_or("")
            );
            for line in lines {
                let _ = writeln!(out, "{:<10} {line}", "");
            }
        }
        if !self.checks.is_empty() {
            let _ = writeln!(out, "checks:");
        }
        for (mark, label, text) in &self.checks {
            let mark = match mark {
                Mark::Ok => "ok",
                Mark::Fail => "FAIL",
                Mark::Skip => "-",
                Mark::Info => "",
            };
            let _ = writeln!(out, "  {mark:<5} {label:<10} {text}");
        }
        let failures = self.failures();
        let checked = self.checks.iter().any(|(m, ..)| *m == Mark::Ok);
        let verdict = match (failures.is_empty(), checked) {
            (false, _) => format!("INVALID: {}", failures.join("; ")),
            (true, true) => "valid: every check made passed".into(),
            (true, false) => "nothing could be checked (see above)".into(),
        };
        let _ = writeln!(out, "verdict:   {verdict}");
        out
    }
}

/// What the checks may use: the configuration and its store (with `--config`).
struct Context {
    config: Option<Config>,
    store: Option<Arc<dyn Store>>,
    now_ms: i64,
}

impl Context {
    fn now(&self) -> i64 {
        self.now_ms.div_euclid(1000)
    }

    fn latch_issuer(&self) -> Option<String> {
        self.config
            .as_ref()
            .map(|c| crate::provider::public_route(c, ""))
    }

    fn sessions(&self) -> Option<Sessions> {
        let (config, store) = (self.config.as_ref()?, self.store.as_ref()?);
        Some(Sessions::new(store.clone(), config.session.clone()))
    }
}

/// `latch token …`
pub async fn token(config_path: &Path, command: TokenCommand) -> ExitCode {
    let TokenCommand::Inspect(args) = command;
    match inspect(config_path, &args).await {
        Ok(report) => {
            print!("{}", report.render());
            if report.failed() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(f) => {
            eprintln!("latch: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn unusable(message: impl Into<String>) -> Failure {
    Failure {
        code: 2,
        message: message.into(),
    }
}

fn read_input(arg: Option<&str>) -> Result<String, Failure> {
    if let Some(token) = arg.filter(|t| *t != "-") {
        return Ok(token.to_string());
    }
    let mut text = String::new();
    std::io::stdin()
        .take(MAX_INPUT as u64 + 1)
        .read_to_string(&mut text)
        .map_err(|e| unusable(format!("cannot read the token from stdin: {e}")))?;
    if text.len() > MAX_INPUT {
        return Err(unusable(format!(
            "the input is over {} KiB: not a token",
            MAX_INPUT / 1024
        )));
    }
    Ok(text)
}

/// The configuration and store, when a config file is there (`--config`, `LATCH_CONFIG`,
/// or `./providers.toml`).
async fn context(config_path: &Path) -> Result<Context, Failure> {
    let now_ms = crate::clock::now_ms();
    if !config_path.exists() {
        if config_path != Path::new(DEFAULT_CONFIG) {
            return Err(unusable(format!(
                "no config file at {}",
                config_path.display()
            )));
        }
        return Ok(Context {
            config: None,
            store: None,
            now_ms,
        });
    }
    let (config, store) = open_store(config_path)
        .await
        .map_err(|f| unusable(f.message))?;
    Ok(Context {
        config: Some(config),
        store: Some(store),
        now_ms,
    })
}

pub async fn inspect(config_path: &Path, args: &InspectArgs) -> Result<Report, Failure> {
    let input = read_input(args.token.as_deref())?;
    let input = parse(&input).map_err(unusable)?;
    let issuer = match &args.issuer {
        Some(text) => Some(issuer_url(text)?),
        None => None,
    };
    let context = context(config_path).await?;
    let mut report = Report::default();
    match input {
        Input::Jwt(jwt) => inspect_jwt(&context, &jwt, issuer, &args.audience, &mut report).await?,
        Input::Cookie { kind, value } => {
            inspect_cookie(&context, kind, &value, &mut report).await?
        }
    }
    Ok(report)
}

fn issuer_url(text: &str) -> Result<url::Url, Failure> {
    let url = url::Url::parse(text.trim())
        .map_err(|e| unusable(format!("--issuer {text:?} is not a URL: {e}")))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if crate::provider::http::is_loopback(&url) => Ok(url),
        _ => Err(unusable(format!(
            "--issuer {url} is not https (http is accepted only on loopback)"
        ))),
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

fn at(unix: i64, now: i64) -> String {
    let rel = if unix > now {
        format!("in {}", span((unix - now) as u64))
    } else {
        format!("{} ago", span((now - unix) as u64))
    };
    format!("{} ({rel})", time(unix))
}

async fn inspect_jwt(
    cx: &Context,
    jwt: &Jwt,
    issuer: Option<url::Url>,
    audience: &[String],
    report: &mut Report,
) -> Result<(), Failure> {
    let now = cx.now();
    let claims = &jwt.claims;
    let iss = claims["iss"].as_str().unwrap_or("");
    let latch_issuer = cx.latch_issuer();
    let is_latch = issuer.is_none() && latch_issuer.as_deref() == Some(iss);
    let alg = jwt.header["alg"].as_str().unwrap_or("?");
    let kind = if is_latch {
        format!("latch access token (JWT, {alg})")
    } else if issuer.is_some() {
        format!("JWT from an OpenID provider (an ID token or a logout token), {alg}")
    } else {
        format!("JWT, {alg}")
    };
    report.head("kind", kind);
    report.head("header", pretty(&jwt.header));
    report.head("claims", pretty(claims));

    // Times.
    if let Some(iat) = claims["iat"].as_i64() {
        if iat > now + 60 {
            report.check(
                Mark::Fail,
                "issued",
                format!("issued in the future: {}", at(iat, now)),
            );
        } else {
            report.check(Mark::Info, "issued", at(iat, now));
        }
    }
    if let Some(nbf) = claims["nbf"].as_i64().filter(|nbf| *nbf > now + 60) {
        report.check(
            Mark::Fail,
            "not before",
            format!("not valid yet: {}", at(nbf, now)),
        );
    }
    match claims["exp"].as_i64() {
        Some(exp) => match expiry(exp, now) {
            Ok(text) => report.check(Mark::Ok, "expiry", format!("{text} ({})", time(exp))),
            Err(why) => report.check(Mark::Fail, "expiry", format!("{why} ({})", time(exp))),
        },
        None => report.check(Mark::Fail, "expiry", "no numeric `exp` claim"),
    }

    // Issuer.
    let expected_iss = match (&issuer, &latch_issuer) {
        (Some(url), _) => Some(crate::provider::oidc::issuer_string(url)),
        (None, Some(latch)) => Some(latch.clone()),
        (None, None) => None,
    };
    match expected_iss {
        Some(expected) if expected == iss => {
            report.check(Mark::Ok, "issuer", format!("`iss` is `{iss}`"))
        }
        Some(expected) => report.check(
            Mark::Fail,
            "issuer",
            format!(
                "`iss` is `{iss}`, expected `{expected}`{}",
                if issuer.is_none() {
                    " (latch's own; for a provider's token pass --issuer URL)"
                } else {
                    ""
                }
            ),
        ),
        None if iss.is_empty() => report.check(Mark::Skip, "issuer", "no `iss` claim"),
        None => report.check(
            Mark::Skip,
            "issuer",
            format!("`iss` is `{iss}` (not checked)"),
        ),
    }

    // Algorithm, key and signature.
    let alg = match check_alg(&jwt.header) {
        Ok(alg) => alg,
        Err(why) => {
            report.check(Mark::Fail, "signature", why);
            return audience_and_session(cx, jwt, issuer.as_ref(), is_latch, audience, report)
                .await;
        }
    };
    let kid = jwt.header["kid"].as_str();
    if let Some(url) = &issuer {
        provider_signature(jwt, &alg, kid, url, report).await?;
    } else if let Some(store) = &cx.store {
        latch_signature(jwt, &alg, kid, store.as_ref(), cx.now_ms, report).await?;
    } else {
        report.check(
            Mark::Skip,
            "signature",
            "not checked: pass --config (latch's tokens) or --issuer URL (a provider's)",
        );
    }
    audience_and_session(cx, jwt, issuer.as_ref(), is_latch, audience, report).await
}

async fn latch_signature(
    jwt: &Jwt,
    alg: &str,
    kid: Option<&str>,
    store: &dyn Store,
    now_ms: i64,
    report: &mut Report,
) -> Result<(), Failure> {
    let Some(kid) = kid else {
        report.check(
            Mark::Fail,
            "key",
            "no `kid` in the header: latch names its key",
        );
        return Ok(());
    };
    let records = KeyRing::published(store)
        .await
        .map_err(|e| unusable(format!("cannot read the signing keys: {e}")))?;
    let (status, record) = key_status(kid, &records, now_ms);
    let Some(record) = record else {
        report.check(
            Mark::Fail,
            "key",
            format!(
                "signed with an unknown key: kid `{kid}` is not in latch's key ring ({} \
                 published key{}: current, next and retired ones)",
                records.len(),
                if records.len() == 1 { "" } else { "s" }
            ),
        );
        return Ok(());
    };
    let what = match status {
        KeyStatus::Current => format!(
            "kid `{kid}`: the current signing key (signs until {})",
            time(record.retires_at / 1000)
        ),
        KeyStatus::Next => format!(
            "kid `{kid}`: the next key (published, signs from {})",
            time(record.not_before / 1000)
        ),
        KeyStatus::Retired => format!(
            "kid `{kid}`: a retired key (stopped signing {}; published while its tokens live)",
            at(record.retires_at / 1000, now_ms / 1000)
        ),
        KeyStatus::Unknown => unreachable!("a record was found"),
    };
    report.check(Mark::Ok, "key", what);
    if alg != "ES256" {
        report.check(
            Mark::Fail,
            "signature",
            format!("alg {alg}: latch signs only with ES256"),
        );
        return Ok(());
    }
    let verdict = match crate::jws::p256_point(&record.jwk) {
        None => Err("the stored key is not a P-256 key".to_string()),
        Some(point) => {
            let token = format!(
                "{}.{}",
                jwt.signing_input,
                crate::crypto::b64url(&jwt.signature)
            );
            crate::jws::verify_es256(&token, &point)
                .map(|_| format!("verified with latch's key `{kid}`"))
                .map_err(|_| {
                    format!(
                        "bad signature: not made by latch's key `{kid}` (the token was altered \
                         after signing)"
                    )
                })
        }
    };
    report.result("signature", verdict);
    Ok(())
}

async fn provider_signature(
    jwt: &Jwt,
    alg: &str,
    kid: Option<&str>,
    issuer: &url::Url,
    report: &mut Report,
) -> Result<(), Failure> {
    use openidconnect::core::CoreJwsSigningAlgorithm;
    use openidconnect::JsonWebKey;
    let http = crate::provider::http::build_client();
    let client = crate::provider::oidc::OidcClient::new(
        issuer.clone(),
        crate::config::types::IssuerRule::Exact,
        None,
        String::new(),
        http,
        crate::provider::http::Budget {
            timeout: std::time::Duration::from_secs(10),
            max_body: crate::provider::http::MAX_ANSWER_BYTES,
        },
    );
    let jwks = client
        .jwks()
        .await
        .map_err(|e| unusable(format!("cannot fetch the JWKS of {issuer}: {e}")))?;
    let Ok(alg_value) = serde_json::from_value::<CoreJwsSigningAlgorithm>(Value::from(alg)) else {
        report.check(
            Mark::Fail,
            "signature",
            format!("alg {alg} is not a JWS algorithm"),
        );
        return Ok(());
    };
    let keys: Vec<_> = jwks
        .keys()
        .iter()
        .filter(|k| match kid {
            Some(kid) => k.key_id().is_some_and(|id| id.as_str() == kid),
            None => true,
        })
        .collect();
    let shown = kid.map_or("(none)".to_string(), |k| format!("`{k}`"));
    if keys.is_empty() {
        report.check(
            Mark::Fail,
            "key",
            format!(
                "signed with an unknown key: kid {shown} is not in the JWKS of {issuer} ({} key{})",
                jwks.keys().len(),
                if jwks.keys().len() == 1 { "" } else { "s" }
            ),
        );
        return Ok(());
    }
    report.check(
        Mark::Ok,
        "key",
        format!("kid {shown}: published in the JWKS of {issuer}"),
    );
    let verified = keys.iter().any(|k| {
        k.verify_signature(&alg_value, jwt.signing_input.as_bytes(), &jwt.signature)
            .is_ok()
    });
    report.result(
        "signature",
        if verified {
            Ok(format!("verified with the provider's key {shown}"))
        } else {
            Err(format!(
                "bad signature: not made by the provider's key {shown} (altered, or signed with \
                 another key under that kid)"
            ))
        },
    );
    Ok(())
}

async fn audience_and_session(
    cx: &Context,
    jwt: &Jwt,
    issuer: Option<&url::Url>,
    is_latch: bool,
    audience: &[String],
    report: &mut Report,
) -> Result<(), Failure> {
    let claims = &jwt.claims;
    let expected: Vec<String> = if !audience.is_empty() {
        audience.to_vec()
    } else if is_latch {
        cx.config
            .as_ref()
            .map(|c| c.tokens.mintable_audiences().map(str::to_string).collect())
            .unwrap_or_default()
    } else if let (Some(url), Some(config)) = (issuer, &cx.config) {
        config
            .providers
            .iter()
            .filter(|p| matches!(&p.kind, ProviderKind::Oidc { issuer, .. } if issuer == url))
            .map(|p| p.client_id.clone())
            .collect()
    } else {
        Vec::new()
    };
    if expected.is_empty() {
        report.check(
            Mark::Skip,
            "audience",
            match &claims["aud"] {
                Value::String(a) => format!("`aud` is `{a}` (not checked: pass --audience)"),
                Value::Null => "no `aud` claim (not checked)".to_string(),
                other => format!("`aud` is {other} (not checked: pass --audience)"),
            },
        );
    } else {
        report.result("audience", check_audience(&claims["aud"], &expected));
    }
    if !is_latch {
        return Ok(());
    }
    let Some(sessions) = cx.sessions() else {
        return Ok(());
    };
    let Some(sid) = claims["sid"].as_str().filter(|s| !s.is_empty()) else {
        report.check(
            Mark::Fail,
            "session",
            "no `sid` claim: latch names the session",
        );
        return Ok(());
    };
    session_check(&sessions, sid, cx.now(), report).await
}

async fn session_check(
    sessions: &Sessions,
    id: &str,
    now: i64,
    report: &mut Report,
) -> Result<(), Failure> {
    let record = sessions
        .live_record(id)
        .await
        .map_err(|e| unusable(format!("cannot read the session: {e}")))?;
    match record {
        Some(r) => {
            let ends = sessions.absolute_end_ms(&r) / 1000;
            report.check(
                Mark::Ok,
                "session",
                format!(
                    "session {id} is live (user {}, provider {}, signed in {}, ends at the latest {})",
                    r.user_id,
                    r.provider,
                    at(r.created_at, now),
                    time(ends)
                ),
            )
        }
        None => report.check(
            Mark::Fail,
            "session",
            format!("session {id} has ended (signed out, revoked or expired)"),
        ),
    }
    Ok(())
}

async fn inspect_cookie(
    cx: &Context,
    kind: Option<CookieKind>,
    value: &str,
    report: &mut Report,
) -> Result<(), Failure> {
    let named = match kind {
        Some(CookieKind::Session) => "latch session cookie value (latch.session-token)",
        Some(CookieKind::Refresh) => "latch refresh cookie value (latch.refresh-token)",
        None => "latch cookie value (a session or a refresh token: 43 base64url characters)",
    };
    report.head("kind", named);
    report.head("value", redact(value));
    let as_session = session_id(value);
    let maps_to = format!("session id {as_session} (as a session token)");
    let (Some(store), Some(sessions)) = (&cx.store, cx.sessions()) else {
        if kind != Some(CookieKind::Refresh) {
            report.head("maps to", maps_to);
        }
        report.check(
            Mark::Skip,
            "store",
            "not looked up: pass --config to find it in latch's store",
        );
        return Ok(());
    };
    let now = cx.now();
    if kind != Some(CookieKind::Refresh) {
        let live = sessions
            .live_record(&as_session)
            .await
            .map_err(|e| unusable(format!("cannot read the session: {e}")))?;
        if live.is_some() {
            report.head("is", "a session token");
            report.head("maps to", format!("session id {as_session}"));
            return session_check(&sessions, &as_session, now, report).await;
        }
    }
    if kind != Some(CookieKind::Session) {
        let family = crate::tokens::refresh::lookup(store.as_ref(), value)
            .await
            .map_err(|e| unusable(format!("cannot read the refresh token: {e}")))?;
        if let Some(f) = family {
            report.head("is", "a refresh token");
            report.head(
                "maps to",
                format!("refresh family {} of session {}", f.family_id, f.session_id),
            );
            report.result(
                "rotation",
                if f.current {
                    Ok(format!(
                        "the family's current token (last rotated {})",
                        at(f.rotated_at / 1000, now)
                    ))
                } else {
                    Err(format!(
                        "already rotated {}: presented again after the grace window it ends \
                         the family and its session (reuse detection)",
                        at(f.rotated_at / 1000, now)
                    ))
                },
            );
            report.result(
                "expiry",
                expiry(f.expires_at / 1000, now)
                    .map(|t| format!("the family {t}"))
                    .map_err(|t| format!("the family {t}")),
            );
            return session_check(&sessions, &f.session_id, now, report).await;
        }
    }
    if kind != Some(CookieKind::Refresh) {
        report.head("maps to", maps_to);
    }
    let why = match kind {
        Some(CookieKind::Session) => format!(
            "no live session has this token: session {as_session} has ended (signed out, \
             revoked or expired) or is in another store"
        ),
        Some(CookieKind::Refresh) => "no refresh family has this token (revoked, expired, \
             rotated long ago, or from another store)"
            .to_string(),
        None => format!(
            "neither a live session (session {as_session} has ended, or never was) nor a \
             known refresh token"
        ),
    };
    report.check(Mark::Fail, "store", why);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jwt(header: Value, claims: Value, sig: &[u8]) -> String {
        use crate::crypto::b64url;
        format!(
            "{}.{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes()),
            b64url(sig)
        )
    }

    #[test]
    fn parses_jwts_cookie_values_and_refuses_garbage_without_quoting_it() {
        let token = jwt(
            json!({"alg": "ES256", "kid": "k"}),
            json!({"sub": "u"}),
            b"sig",
        );
        let Ok(Input::Jwt(j)) = parse(&format!("  Bearer {token}\n")) else {
            panic!("a JWT");
        };
        assert_eq!(j.header["kid"], "k");
        assert_eq!(j.claims["sub"], "u");
        assert_eq!(j.signature, b"sig");
        assert_eq!(j.signing_input, token.rsplit_once('.').unwrap().0);

        let value = "A".repeat(43);
        assert!(matches!(
            parse(&value),
            Ok(Input::Cookie { kind: None, .. })
        ));
        for (cookie, want) in [
            ("latch.session-token", CookieKind::Session),
            ("__Host-latch.session-token", CookieKind::Session),
            ("__Secure-latch.session-token", CookieKind::Session),
            ("latch.refresh-token", CookieKind::Refresh),
            ("__Secure-latch.refresh-token", CookieKind::Refresh),
        ] {
            match parse(&format!("{cookie}={value}; Path=/")) {
                Ok(Input::Cookie { kind, value: v }) => {
                    assert_eq!(kind, Some(want));
                    assert_eq!(v, value);
                }
                other => panic!("{cookie}: {other:?}"),
            }
        }

        let secret = "hunter2-this-is-secret";
        let why = parse(secret).unwrap_err();
        assert!(
            why.starts_with("not a JWT and not a latch cookie value"),
            "{why}"
        );
        assert!(!why.contains("hunter2"), "{why}");
        assert!(parse("a.b.c").unwrap_err().contains("header is not"));
        assert!(parse("   ").unwrap_err().contains("empty"));
        assert!(parse("a.b.c.d.e").unwrap_err().contains("JWE"));
        // A latch cookie name with a value that is not one.
        assert!(parse("latch.session-token=short").is_err());
    }

    #[test]
    fn durations_and_expiry_read_as_words() {
        assert_eq!(span(4), "4 s");
        assert_eq!(span(8 * 60 + 59), "8 min");
        assert_eq!(span(7200), "2 h");
        assert_eq!(span(2 * 3600 + 5 * 60), "2 h 5 min");
        assert_eq!(span(86400), "1 day");
        assert_eq!(span(3 * 86400 + 5), "3 days");
        assert_eq!(expiry(1000 + 480, 1000), Ok("expires in 8 min".into()));
        assert_eq!(expiry(1000 - 240, 1000), Err("expired 4 min ago".into()));
        assert!(expiry(1000, 1000)
            .unwrap_err()
            .starts_with("expired 0 s ago (still inside the 60 s"));
        assert_eq!(expiry(1000, 1060), Err("expired 1 min ago".into()));
    }

    #[test]
    fn none_and_symmetric_algs_are_refused() {
        assert_eq!(check_alg(&json!({"alg": "ES256"})), Ok("ES256".into()));
        assert_eq!(check_alg(&json!({"alg": "RS256"})), Ok("RS256".into()));
        assert_eq!(
            check_alg(&json!({"alg": "none"})).unwrap_err(),
            "alg none refused: an unsigned token proves nothing"
        );
        assert!(check_alg(&json!({"alg": "NONE"})).is_err());
        assert!(check_alg(&json!({"alg": "HS256"}))
            .unwrap_err()
            .starts_with("alg HS256 refused"));
        assert!(check_alg(&json!({})).is_err());
    }

    #[test]
    fn audiences_say_what_they_are_and_what_is_expected() {
        let api = vec!["api".to_string()];
        assert_eq!(
            check_audience(&json!("web"), &api).unwrap_err(),
            "`aud` is `web`, expected one of `api`"
        );
        assert!(check_audience(&json!("api"), &api).is_ok());
        assert!(check_audience(&json!(["web", "api"]), &api).is_ok());
        assert_eq!(
            check_audience(&json!(["web", "x"]), &["api".into(), "y".into()]).unwrap_err(),
            "`aud` is [`web`, `x`], expected one of `api`, `y`"
        );
        assert!(check_audience(&Value::Null, &api)
            .unwrap_err()
            .starts_with("no `aud` claim"));
    }

    #[test]
    fn keys_are_current_next_retired_or_unknown() {
        let record = |kid: &str, from: i64, to: i64| KeyRecord {
            kid: kid.into(),
            not_before: from,
            retires_at: to,
            jwk: json!({}),
            private_key: String::new(),
        };
        let records = vec![
            record("next", 2000, 3000),
            record("cur", 1000, 2000),
            record("old", 0, 1000),
        ];
        assert_eq!(key_status("cur", &records, 1500).0, KeyStatus::Current);
        assert_eq!(key_status("next", &records, 1500).0, KeyStatus::Next);
        assert_eq!(key_status("old", &records, 1500).0, KeyStatus::Retired);
        assert_eq!(key_status("who", &records, 1500).0, KeyStatus::Unknown);
        assert!(key_status("who", &records, 1500).1.is_none());
    }

    #[test]
    fn secrets_are_shown_as_a_prefix_and_a_length() {
        let value = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
        let shown = redact(value);
        assert_eq!(shown, "abcdef… (43 chars)");
        assert!(!shown.contains("ghij"));
    }

    #[test]
    fn the_verdict_lists_every_failure_in_order() {
        let mut r = Report::default();
        r.head("kind", "JWT");
        r.check(Mark::Ok, "key", "current");
        assert!(!r.failed());
        assert!(r.render().contains("verdict:   valid"), "{}", r.render());
        r.check(Mark::Fail, "expiry", "expired 4 min ago");
        r.check(
            Mark::Fail,
            "audience",
            "`aud` is `web`, expected one of `api`",
        );
        assert!(r.failed());
        let text = r.render();
        assert!(
            text.contains(
                "verdict:   INVALID: expired 4 min ago; `aud` is `web`, expected one of `api`"
            ),
            "{text}"
        );
        assert!(
            text.contains("  FAIL  expiry     expired 4 min ago"),
            "{text}"
        );
        let empty = Report::default();
        assert!(empty.render().contains("nothing could be checked"));
    }
}
