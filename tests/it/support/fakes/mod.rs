//! Fakes of real providers, each written from the provider's public documentation (the
//! shapes, status codes and error forms the real service answers with, including its quirks:
//! GitHub's errors in HTTP 200, Apple's form_post and JWT client secret, Microsoft's
//! `{tenantid}` issuer placeholder, Facebook's Graph error object).
//!
//! Each fake is an axum server on 127.0.0.1:0 with a Mutex'd `Behavior` of knobs, records
//! what latch sent it, and has a `provider_toml()` with the `[providers.<id>]` table that
//! points latch's preset at it. The helpers here are shared: client authentication, PKCE,
//! JWT signing and checking, and the auto-submitting form of `response_mode=form_post`.
pub mod apple;
pub mod discord;
pub mod entra;
pub mod facebook;
pub mod github;

use crate::support::browser::{query_param, Browser};
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, RSA_PKCS1_SHA256,
};
use axum::http::HeaderMap;
use axum::response::Html;
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Serves `app` on 127.0.0.1:0 and returns `http://127.0.0.1:<port>`.
pub async fn serve(listener: tokio::net::TcpListener, app: Router) -> String {
    let origin = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    origin
}

pub async fn bind() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()
}

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Random hex of `n` bytes.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    hex::encode(bytes)
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `application/x-www-form-urlencoded` body (or query string) to a map; the last value wins.
pub fn parse_form(body: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

/// RFC 7636 S256: BASE64URL(SHA256(verifier)).
pub fn s256(verifier: &str) -> String {
    b64url(&Sha256::digest(verifier.as_bytes()))
}

/// What an authorize request asked for PKCE, checked at the token endpoint (RFC 7636 4.6).
#[derive(Clone, Debug, Default)]
pub struct Pkce {
    pub challenge: Option<String>,
    pub method: Option<String>,
}

impl Pkce {
    pub fn from_query(q: &HashMap<String, String>) -> Pkce {
        Pkce {
            challenge: q.get("code_challenge").cloned(),
            method: q.get("code_challenge_method").cloned(),
        }
    }

    /// No challenge: no verifier needed (providers that treat PKCE as optional).
    /// A challenge: the verifier must be there and match (plain, or S256).
    pub fn verify(&self, verifier: Option<&str>) -> bool {
        match (&self.challenge, verifier) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(challenge), Some(verifier)) => match self.method.as_deref() {
                Some("S256") => &s256(verifier) == challenge,
                None | Some("plain") => verifier == challenge,
                Some(_) => false,
            },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// RFC 6749 2.3.1 HTTP Basic.
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Post,
    /// Only a `client_id` (a public client), or nothing at all.
    None,
}

#[derive(Clone, Debug)]
pub struct ClientAuth {
    pub method: AuthMethod,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// RFC 6749 2.3.1: Basic credentials are form-urlencoded before base64.
fn form_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("v={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The client's credentials from the Authorization header or the form. `Err` when both
/// carry a secret (RFC 6749 2.3: a client MUST NOT use more than one method).
pub fn client_auth(headers: &HeaderMap, form: &HashMap<String, String>) -> Result<ClientAuth, ()> {
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then(|| rest.trim())
        })
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            let (id, secret) = s.split_once(':')?;
            Some((form_decode(id), form_decode(secret)))
        });
    match basic {
        Some((id, secret)) => {
            if form.contains_key("client_secret") {
                return Err(());
            }
            if let Some(form_id) = form.get("client_id") {
                if form_id != &id {
                    return Err(());
                }
            }
            Ok(ClientAuth {
                method: AuthMethod::Basic,
                client_id: Some(id),
                client_secret: Some(secret),
            })
        }
        None => Ok(ClientAuth {
            method: if form.contains_key("client_secret") {
                AuthMethod::Post
            } else {
                AuthMethod::None
            },
            client_id: form.get("client_id").cloned(),
            client_secret: form.get("client_secret").cloned(),
        }),
    }
}

/// The bearer token of `Authorization: Bearer <t>` (or GitHub's older `token <t>`).
pub fn bearer(headers: &HeaderMap, also_token_scheme: bool) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    let ok = scheme.eq_ignore_ascii_case("bearer")
        || (also_token_scheme && scheme.eq_ignore_ascii_case("token"));
    ok.then(|| rest.trim().to_string())
}

pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&#39;")
}

fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The OAuth 2.0 Form Post Response Mode page: a form that posts `fields` to `action` as
/// soon as it loads.
pub fn form_post_page(action: &str, fields: &[(String, String)]) -> Html<String> {
    let inputs: String = fields
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\"/>",
                html_escape(k),
                html_escape(v)
            )
        })
        .collect();
    Html(format!(
        "<!DOCTYPE html><html><head><title>Submit This Form</title></head>\
         <body onload=\"javascript:document.forms[0].submit()\">\
         <form method=\"post\" action=\"{}\">{inputs}</form></body></html>",
        html_escape(action)
    ))
}

/// What a browser would submit from a `form_post_page`: the action and the hidden fields.
pub fn parse_form_post(html: &str) -> (String, Vec<(String, String)>) {
    fn attr(tag: &str, name: &str) -> Option<String> {
        let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
        let end = start + tag[start..].find('"')?;
        Some(html_unescape(&tag[start..end]))
    }
    let form_start = html.find("<form").expect("a form");
    let form_tag = &html[form_start..form_start + html[form_start..].find('>').unwrap()];
    let action = attr(form_tag, "action").expect("a form action");
    let mut fields = Vec::new();
    let mut rest = &html[form_start..];
    while let Some(i) = rest.find("<input") {
        let tag = &rest[i..i + rest[i..].find('>').unwrap()];
        if let (Some(name), Some(value)) = (attr(tag, "name"), attr(tag, "value")) {
            fields.push((name, value));
        }
        rest = &rest[i + 6..];
    }
    (action, fields)
}

/// A JWS in compact form, signed with `sign` over `header.claims`.
fn compact(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature = sign(input.as_bytes());
    format!("{input}.{}", b64url(&signature))
}

pub fn rs256_jwt(key: &RsaKeyPair, kid: &str, claims: &Value) -> String {
    let header = json!({"alg": "RS256", "kid": kid, "typ": "JWT"});
    compact(&header, claims, |msg| {
        let mut sig = vec![0u8; key.public_modulus_len()];
        key.sign(
            &RSA_PKCS1_SHA256,
            &aws_lc_rs::rand::SystemRandom::new(),
            msg,
            &mut sig,
        )
        .unwrap();
        sig
    })
}

pub fn es256_jwt_with_header(key: &EcdsaKeyPair, header: &Value, claims: &Value) -> String {
    compact(header, claims, |msg| {
        key.sign(&aws_lc_rs::rand::SystemRandom::new(), msg)
            .unwrap()
            .as_ref()
            .to_vec()
    })
}

pub fn rsa_jwk(key: &RsaKeyPair, kid: &str) -> Value {
    let public = key.public_key();
    json!({
        "kty": "RSA",
        "use": "sig",
        "kid": kid,
        "alg": "RS256",
        "n": b64url(public.modulus().big_endian_without_leading_zero()),
        "e": b64url(public.exponent().big_endian_without_leading_zero()),
    })
}

pub fn new_rsa_key() -> RsaKeyPair {
    RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap()
}

/// A compact JWS split and decoded: (header, claims), after checking an ES256 signature
/// with `public_point` (an uncompressed P-256 point). Errors say what is wrong.
pub fn verify_es256(token: &str, public_point: &[u8]) -> Result<(Value, Value), String> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(format!("not a compact JWS ({} parts)", parts.len()));
    }
    let decode = |s: &str| -> Result<Value, String> {
        let bytes = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|e| format!("base64url: {e}"))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("json: {e}"))
    };
    let header = decode(parts[0])?;
    let claims = decode(parts[1])?;
    if header["alg"] != "ES256" {
        return Err(format!("alg is {}, not ES256", header["alg"]));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(parts[2])
        .map_err(|e| format!("signature base64url: {e}"))?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public_point)
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .map_err(|_| "bad ES256 signature (JWS wants the 64-byte r||s form)".to_string())?;
    Ok((header, claims))
}

/// Decodes a JWT's claims without checking anything (for tests that look inside).
pub fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// PEM `PRIVATE KEY` (PKCS#8) around DER bytes.
pub fn pkcs8_pem(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

/// Appends query pairs to a redirect URI (keeping the query it already has).
pub fn with_query(redirect_uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(redirect_uri).expect("redirect_uri is an absolute URL");
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    url.to_string()
}

/// Sends `request` (which must reach the fake): its answer.
pub async fn send(request: reqwest::RequestBuilder) -> reqwest::Response {
    request.send().await.unwrap()
}

/// Sends `request`: its answer's JSON.
pub async fn fetch_json(request: reqwest::RequestBuilder) -> Value {
    send(request).await.json().await.unwrap()
}

/// A client as a browser has it (no redirects followed), for the fakes' own tests.
pub fn client() -> reqwest::Client {
    Browser::new().client
}

/// The PKCE verifier of the fakes' own tests (RFC 7636's example).
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// Authorize with PKCE and get the code from the redirect.
pub async fn code_from(url: &str) -> String {
    let response = client().get(url).send().await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::FOUND, "{url}");
    let location = response.headers()["location"].to_str().unwrap().to_string();
    query_param(&location, "code").unwrap_or_else(|| panic!("no code in {location}"))
}

/// An authorize request with PKCE (S256 of [`VERIFIER`]), state `st` and a nonce.
pub fn authorize_url(base: &str, client_id: &str, scope: &str) -> String {
    let mut url = url::Url::parse(base).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", "http://127.0.0.1:1/callback/x")
        .append_pair("scope", scope)
        .append_pair("state", "st")
        .append_pair("nonce", "n-0S6_WzA2Mj")
        .append_pair("code_challenge", &s256(VERIFIER))
        .append_pair("code_challenge_method", "S256");
    url.to_string()
}
