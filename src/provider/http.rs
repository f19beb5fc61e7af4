//! The one outbound HTTP client: timeouts on connect and in total, never a redirect followed
//! (a redirect from a token or JWKS endpoint is an invitation to SSRF).
use std::time::Duration;

pub fn build_client() -> reqwest::Client {
    crate::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("latch/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client has a valid static configuration")
}

/// Why a call to a provider failed, in terms the flow can map to an error code.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{endpoint}: no answer within {timeout:?}")]
    Timeout {
        endpoint: &'static str,
        timeout: Duration,
    },
    #[error("{endpoint}: cannot connect: {reason}")]
    Unreachable {
        endpoint: &'static str,
        reason: String,
    },
    #[error("{endpoint}: HTTP {status}{detail}")]
    Status {
        endpoint: &'static str,
        status: u16,
        detail: String,
    },
    #[error("{endpoint}: unusable answer: {reason}")]
    Malformed {
        endpoint: &'static str,
        reason: String,
    },
}

/// Sends a request with the provider's total timeout and returns the body of a 2xx answer.
/// Non-2xx answers come back as `Status` with a short, log-safe detail.
pub async fn send(
    endpoint: &'static str,
    request: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<(u16, bytes::Bytes), CallError> {
    let classify = |err: reqwest::Error| {
        if err.is_timeout() {
            CallError::Timeout { endpoint, timeout }
        } else {
            CallError::Unreachable {
                endpoint,
                reason: without_url(&err),
            }
        }
    };
    let started = std::time::Instant::now();
    let result = async {
        let response = request.timeout(timeout).send().await.map_err(classify)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(classify)?;
        Ok((status, body))
    }
    .await;
    crate::telemetry::provider_call(endpoint, started.elapsed());
    result
}

/// reqwest's Display includes the URL, which may carry a code or token in its query.
fn without_url(err: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(err);
    let mut deepest = None;
    while let Some(s) = source {
        deepest = Some(s.to_string());
        source = s.source();
    }
    deepest.unwrap_or_else(|| "request failed".into())
}

/// A short, printable excerpt of a response body for log lines.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(200).collect();
    out.retain(|c| !c.is_control());
    out
}
