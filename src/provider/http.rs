//! The one outbound HTTP client: timeouts on connect and in total, never a redirect followed
//! (a redirect from a token or JWKS endpoint is an invitation to SSRF).
use std::time::Duration;

use crate::config::types::ProviderConfig;
use crate::error::{AuthError, ErrorCode};

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
    /// The answer is larger than latch reads (the provider's `max_response_bytes`).
    #[error("{endpoint}: answer refused, larger than the {limit}-byte limit ({detail})")]
    TooLarge {
        endpoint: &'static str,
        limit: usize,
        detail: String,
    },
}

/// Maps a failed provider call to the code users see.
pub fn call_error(err: CallError) -> AuthError {
    let code = match err {
        CallError::Timeout { .. } => ErrorCode::ProviderTimeout,
        _ => ErrorCode::ProviderError,
    };
    AuthError::new(code, err.to_string())
}

/// The most latch reads of any provider answer (discovery, JWKS, token, userinfo, APIs) by
/// default (`max_response_bytes`): a provider that streams without end must not exhaust
/// memory. Real answers are a few KiB.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// What one call to a provider may take: time in total, and bytes of answer.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub timeout: Duration,
    pub max_body: usize,
}

impl Budget {
    /// The provider's own limits (`timeout`, `max_response_bytes`).
    pub fn of(config: &ProviderConfig) -> Self {
        Budget {
            timeout: config.timeout,
            max_body: config.max_response_bytes,
        }
    }
}

/// A provider's answer, read in full (within the [`Budget`]).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: bytes::Bytes,
}

/// Sends a request with the provider's total timeout and returns the status and body.
/// Callers judge the status; a non-2xx answer is not an error here.
pub async fn send(
    endpoint: &'static str,
    request: reqwest::RequestBuilder,
    budget: Budget,
) -> Result<(u16, bytes::Bytes), CallError> {
    fetch(endpoint, request, budget)
        .await
        .map(|a| (a.status, a.body))
}

/// Like [`send`], with the answer's headers (the JWKS cache reads `Cache-Control`).
pub async fn fetch(
    endpoint: &'static str,
    request: reqwest::RequestBuilder,
    budget: Budget,
) -> Result<Answer, CallError> {
    let Budget {
        timeout,
        max_body: limit,
    } = budget;
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
    // reqwest's timeout covers the body too; the outer one makes "within the total timeout"
    // hold whatever the body reading does.
    let call = async {
        let mut response = request.timeout(timeout).send().await.map_err(classify)?;
        let status = response.status().as_u16();
        let headers = std::mem::take(response.headers_mut());
        if let Some(declared) = response.content_length().filter(|n| *n > limit as u64) {
            return Err(CallError::TooLarge {
                endpoint,
                limit,
                detail: format!("Content-Length {declared}"),
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > limit {
                return Err(CallError::TooLarge {
                    endpoint,
                    limit,
                    detail: format!("stopped reading after {} bytes", body.len() + chunk.len()),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            headers,
            body: body.into(),
        })
    };
    let result = tokio::time::timeout(timeout, call)
        .await
        .unwrap_or(Err(CallError::Timeout { endpoint, timeout }));
    crate::telemetry::provider_call(endpoint, started.elapsed());
    result
}

/// Is the URL's host loopback (`localhost`, 127.0.0.0/8, `[::1]`)? Only there may a provider
/// URL be plain http.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-connection server on loopback that answers with `head` and then `body` parts,
    /// waiting `pause` between parts.
    async fn serve(head: &'static str, parts: Vec<Vec<u8>>, pause: Duration) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            socket.write_all(head.as_bytes()).await.unwrap();
            for part in parts {
                if socket.write_all(&part).await.is_err() {
                    return;
                }
                tokio::time::sleep(pause).await;
            }
        });
        format!("http://{addr}/")
    }

    fn chunk(data: &[u8]) -> Vec<u8> {
        let mut out = format!("{:x}\r\n", data.len()).into_bytes();
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
        out
    }

    async fn call(url: &str, limit: usize, timeout: Duration) -> Result<Answer, CallError> {
        let client = build_client();
        let budget = Budget {
            timeout,
            max_body: limit,
        };
        fetch("test", client.get(url), budget).await
    }

    #[tokio::test]
    async fn a_declared_length_over_the_cap_is_refused_before_reading() {
        let url = serve(
            "HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n",
            vec![vec![b'a'; 5000]],
            Duration::ZERO,
        )
        .await;
        let err = call(&url, 4096, Duration::from_secs(5))
            .await
            .err()
            .unwrap();
        assert!(
            matches!(err, CallError::TooLarge { limit: 4096, ref detail, .. } if detail == "Content-Length 5000"),
            "{err}"
        );
        assert!(err.to_string().contains("4096-byte limit"), "{err}");
    }

    #[tokio::test]
    async fn a_chunked_body_over_the_cap_is_cut_off() {
        let mut parts: Vec<Vec<u8>> = (0..10).map(|_| chunk(&[b'x'; 1000])).collect();
        parts.push(b"0\r\n\r\n".to_vec());
        let url = serve(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            parts,
            Duration::ZERO,
        )
        .await;
        let err = call(&url, 4096, Duration::from_secs(5))
            .await
            .err()
            .unwrap();
        assert!(
            matches!(err, CallError::TooLarge { ref detail, .. } if detail.starts_with("stopped reading after")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_answer_at_the_cap_is_read() {
        let url = serve(
            "HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\nx-a: b\r\n\r\n",
            vec![
                chunk(&[b'y'; 2048]),
                chunk(&[b'y'; 2048]),
                b"0\r\n\r\n".to_vec(),
            ],
            Duration::ZERO,
        )
        .await;
        let answer = call(&url, 4096, Duration::from_secs(5)).await.unwrap();
        assert_eq!(answer.status, 404);
        assert_eq!(answer.body.len(), 4096);
        assert_eq!(answer.headers["x-a"], "b");
    }

    #[tokio::test]
    async fn a_body_that_trickles_in_ends_at_the_total_timeout() {
        // One byte every 100 ms, well under the cap: only the total timeout stops it.
        let parts = (0..100).map(|_| chunk(b"z")).collect();
        let url = serve(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            parts,
            Duration::from_millis(100),
        )
        .await;
        let started = std::time::Instant::now();
        let err = call(&url, MAX_ANSWER_BYTES, Duration::from_millis(500))
            .await
            .err()
            .unwrap();
        assert!(matches!(err, CallError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn loopback_hosts() {
        for yes in [
            "http://localhost:1/",
            "http://127.0.0.2/",
            "http://[::1]:8/",
        ] {
            assert!(is_loopback(&url::Url::parse(yes).unwrap()), "{yes}");
        }
        for no in [
            "http://example.com/",
            "http://10.0.0.1/",
            "http://localhost.evil.test/",
        ] {
            assert!(!is_loopback(&url::Url::parse(no).unwrap()), "{no}");
        }
    }
}
