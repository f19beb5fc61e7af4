//! Bounded connections (SPEC §5): a slow or greedy client is cut off while another client is
//! still served. Clients are told apart by their loopback source address (127.0.0.2, .3, …
//! are loopback too); the limits are set small so every test ends in a few seconds. Also:
//! the 405 and 431 refusals, `server.metrics_listen`, and the `X-Forwarded-For` warning.
use crate::support::latch::{Setup, TestApp};
use crate::support::latch_bin::Serve;
use reqwest::StatusCode;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::{timeout, Instant};

/// A TCP connection to latch from the loopback address `ip`.
async fn connect_from(ip: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(format!("{ip}:0").parse().unwrap())
        .unwrap_or_else(|e| panic!("bind {ip}: {e}"));
    socket.connect(addr).await.unwrap()
}

/// Reads one HTTP/1.1 response (head, then a `content-length` body): status and body.
async fn read_response(s: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.expect("read the response");
        assert!(n > 0, "connection closed mid-response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        if buf.len() >= end + 4 + length {
            let status = head.split(' ').nth(1).unwrap().parse().unwrap();
            let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).to_string();
            return (status, body);
        }
    }
}

/// One keep-alive `GET` on an open connection.
async fn get(s: &mut TcpStream, path: &str) -> u16 {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: latch\r\n\r\n").as_bytes())
        .await
        .unwrap();
    timeout(Duration::from_secs(5), read_response(s))
        .await
        .expect("latch answers within 5 s")
        .0
}

/// Waits (at most `limit`) for latch to close the connection: EOF or a reset. Returns how
/// long that took and whether any byte came first.
async fn await_close(s: &mut TcpStream, limit: Duration) -> (Duration, bool) {
    let started = Instant::now();
    let mut got_bytes = false;
    let mut buf = [0u8; 1024];
    timeout(limit, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => got_bytes = true,
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("latch kept the connection open for {limit:?}"));
    (started.elapsed(), got_bytes)
}

/// A new connection from `ip` is closed at once, unanswered.
async fn assert_refused(ip: &str, addr: SocketAddr) {
    let mut s = connect_from(ip, addr).await;
    // The write may already fail: the connection is gone.
    let _ = s
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: latch\r\n\r\n")
        .await;
    let (_, answered) = await_close(&mut s, Duration::from_secs(2)).await;
    assert!(!answered, "a connection over the cap was answered");
}

/// Connects from `ip` until a request is answered (latch frees a place once it has seen the
/// other connection close; bounded).
async fn admitted_eventually(ip: &str, addr: SocketAddr) -> TcpStream {
    for _ in 0..100 {
        let mut s = connect_from(ip, addr).await;
        let _ = s
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: latch\r\n\r\n")
            .await;
        let mut first = [0u8; 1];
        if let Ok(Ok(1)) = timeout(Duration::from_secs(2), s.read(&mut first)).await {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{ip} was never admitted again");
}

/// Waits (bounded) until `/metrics`, read on the open connection `s`, has a sample of `name`
/// with every one of `labels` (a closed connection is counted just after its socket closes).
async fn await_metric(s: &mut TcpStream, name: &str, labels: &[&str]) {
    let mut body = String::new();
    for _ in 0..100 {
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: latch\r\n\r\n")
            .await
            .unwrap();
        let status;
        (status, body) = timeout(Duration::from_secs(5), read_response(s))
            .await
            .expect("latch answers /metrics within 5 s");
        assert_eq!(status, 200, "{body}");
        let prefix = format!("{name}{{");
        if body
            .lines()
            .any(|l| l.starts_with(&prefix) && labels.iter().all(|label| l.contains(label)))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no {name} with {labels:?}: {body}");
}

async fn spawn(server: &str) -> TestApp {
    Setup::default().server(server).spawn().await
}

#[tokio::test]
async fn half_a_header_is_cut_off_after_the_header_read_timeout() {
    let app = spawn("header_read_timeout = \"300ms\"\nkeep_alive_timeout = \"30s\"\n").await;
    let started = Instant::now();
    let mut half = connect_from("127.0.0.2", app.addr).await;
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: latch\r\n")
        .await
        .unwrap();
    let mut silent = connect_from("127.0.0.2", app.addr).await;
    // Meanwhile another client is served, and stays connected.
    let mut other = connect_from("127.0.0.1", app.addr).await;
    assert_eq!(get(&mut other, "/healthz").await, 200);

    let (_, answered) = await_close(&mut half, Duration::from_secs(5)).await;
    assert!(!answered, "half a header got an answer");
    let cut = started.elapsed();
    assert!(cut >= Duration::from_millis(250), "cut after {cut:?}");
    await_close(&mut silent, Duration::from_secs(5)).await;
    // Counted under the key that cut them (on another client's connection: `other` stays
    // idle).
    let mut probe = connect_from("127.0.0.3", app.addr).await;
    await_metric(
        &mut probe,
        "latch_connections_closed_total",
        &[r#"listener="main""#, r#"limit="header_read_timeout""#],
    )
    .await;

    // A slow loris: a header line every 50 ms never completes the head; the clock runs from
    // the accept, not from the last byte.
    let mut loris = connect_from("127.0.0.2", app.addr).await;
    let started = Instant::now();
    timeout(Duration::from_secs(3), async {
        let mut buf = [0u8; 64];
        loop {
            if loris.write_all(b"X-Slow: 1\r\n").await.is_err() {
                break;
            }
            match timeout(Duration::from_millis(50), loris.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                _ => {}
            }
        }
    })
    .await
    .expect("the slow loris was never cut off");
    assert!(started.elapsed() < Duration::from_secs(2));

    // The short header clock did not end the other client's idle keep-alive connection.
    assert_eq!(get(&mut other, "/healthz").await, 200);
    app.stop().await;
}

#[tokio::test]
async fn half_a_header_after_an_idle_spell_is_cut_off_after_the_header_read_timeout() {
    // On a keep-alive connection the header clock starts with the next request's first
    // byte: not at the end of the previous request (the idle spell is longer than the
    // header timeout), and not never (the keep-alive clock is far longer).
    let app = spawn("header_read_timeout = \"400ms\"\nkeep_alive_timeout = \"30s\"\n").await;
    let mut s = connect_from("127.0.0.2", app.addr).await;
    assert_eq!(get(&mut s, "/healthz").await, 200);
    // The idle spell itself is what is tested: there is no event to await.
    tokio::time::sleep(Duration::from_millis(600)).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: latch\r\n")
        .await
        .expect("the idle connection is still open");
    let (cut, answered) = await_close(&mut s, Duration::from_secs(5)).await;
    assert!(!answered, "half a header got an answer");
    assert!(
        cut >= Duration::from_millis(300) && cut < Duration::from_secs(3),
        "cut {cut:?} after the first byte"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_request_whose_body_trickles_in_is_cut_off_after_the_request_timeout() {
    let app = spawn("request_timeout = \"700ms\"\nkeep_alive_timeout = \"30s\"\n").await;
    // The head arrives at once, the body never does (a byte every 100 ms of 1000 promised).
    let mut slow = connect_from("127.0.0.2", app.addr).await;
    slow.write_all(
        b"POST /revoke HTTP/1.1\r\nHost: latch\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\ntoken=",
    )
    .await
    .unwrap();
    let started = Instant::now();
    timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 64];
        loop {
            if slow.write_all(b"a").await.is_err() {
                break;
            }
            match timeout(Duration::from_millis(100), slow.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                _ => {}
            }
        }
    })
    .await
    .expect("the trickling body was never cut off");
    let cut = started.elapsed();
    assert!(cut >= Duration::from_millis(600), "cut after {cut:?}");
    // Another client meanwhile and after: served as usual.
    let mut other = connect_from("127.0.0.1", app.addr).await;
    assert_eq!(get(&mut other, "/healthz").await, 200);
    await_metric(
        &mut other,
        "latch_connections_closed_total",
        &[r#"listener="main""#, r#"limit="request_timeout""#],
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout() {
    let app = spawn("header_read_timeout = \"200ms\"\nkeep_alive_timeout = \"800ms\"\n").await;
    let mut idle = connect_from("127.0.0.2", app.addr).await;
    assert_eq!(get(&mut idle, "/healthz").await, 200);
    assert_eq!(get(&mut idle, "/session").await, 200, "keep-alive works");
    let idle_from = Instant::now();

    // Meanwhile a busy client (a request every 100 ms for longer than the timeout) is not
    // idle and keeps its connection.
    let mut busy = connect_from("127.0.0.3", app.addr).await;
    let busy = tokio::spawn(async move {
        let from = Instant::now();
        while from.elapsed() < Duration::from_millis(1500) {
            assert_eq!(get(&mut busy, "/healthz").await, 200);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        busy
    });

    let (_, answered) = await_close(&mut idle, Duration::from_secs(5)).await;
    assert!(!answered);
    let waited = idle_from.elapsed();
    // The keep-alive clock, not the (shorter) header clock.
    assert!(
        waited >= Duration::from_millis(700) && waited < Duration::from_millis(1400),
        "closed after {waited:?}"
    );
    let mut busy = busy.await.unwrap();
    assert_eq!(get(&mut busy, "/healthz").await, 200);
    await_metric(
        &mut busy,
        "latch_connections_closed_total",
        &[r#"listener="main""#, r#"limit="keep_alive_timeout""#],
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn connections_over_the_per_address_cap_are_closed_at_once() {
    let app = spawn("max_connections_per_ip = 3\n").await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = connect_from("127.0.0.2", app.addr).await;
        assert_eq!(get(&mut s, "/healthz").await, 200);
        held.push(s);
    }
    assert_refused("127.0.0.2", app.addr).await;
    await_metric(
        &mut held[0],
        "latch_connections_refused_total",
        &[r#"listener="main""#, r#"limit="max_connections_per_ip""#],
    )
    .await;
    // Another client still gets in, as many times as the cap allows.
    let mut others = Vec::new();
    for _ in 0..3 {
        let mut s = connect_from("127.0.0.1", app.addr).await;
        assert_eq!(get(&mut s, "/healthz").await, 200);
        others.push(s);
    }
    // The greedy client's connections are still served.
    assert_eq!(get(&mut held[0], "/healthz").await, 200);
    // Closing one frees its place.
    drop(held.pop());
    admitted_eventually("127.0.0.2", app.addr).await;
    app.stop().await;
}

#[tokio::test]
async fn the_global_cap_holds_and_a_trusted_proxy_is_capped_only_by_it() {
    let app = spawn(
        "max_connections = 4\nmax_connections_per_ip = 2\ntrusted_proxies = [\"127.0.0.5\"]\n",
    )
    .await;
    let mut held = Vec::new();
    // A reverse proxy carries many clients: past the per-address cap.
    for _ in 0..3 {
        let mut s = connect_from("127.0.0.5", app.addr).await;
        assert_eq!(get(&mut s, "/healthz").await, 200);
        held.push(s);
    }
    let mut one = connect_from("127.0.0.2", app.addr).await;
    assert_eq!(get(&mut one, "/healthz").await, 200);
    assert_refused("127.0.0.3", app.addr).await;
    assert_refused("127.0.0.5", app.addr).await;
    await_metric(
        &mut one,
        "latch_connections_refused_total",
        &[r#"listener="main""#, r#"limit="max_connections""#],
    )
    .await;
    drop(held.pop());
    admitted_eventually("127.0.0.3", app.addr).await;
    app.stop().await;
}

fn client() -> reqwest::Client {
    latch::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_wrong_method_is_405_with_a_code_and_allow() {
    let app = Setup::default().spawn().await;
    let r = client().delete(app.url("/session")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let allow = r.headers()["allow"].to_str().unwrap().to_string();
    assert!(allow.contains("GET"), "{allow}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "MethodNotAllowed");
    assert!(body["requestId"].is_string());
    let r = client().put(app.url("/signin")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(r.text().await.unwrap().contains("MethodNotAllowed"));
    app.stop().await;
}

#[tokio::test]
async fn oversized_headers_are_431_with_a_code_and_past_hyper_s_cap_a_bare_431() {
    let app = Setup::default().spawn().await;
    let c = client();
    let r = c
        .get(app.url("/session"))
        .header("x-padding", "a".repeat(20 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "RequestHeaderFieldsTooLarge");
    // Over latch's 96 fields, within hyper's 100.
    let mut many = c.get(app.url("/signin"));
    for i in 0..97 {
        many = many.header(format!("x-h{i}"), "1");
    }
    let r = many.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("RequestHeaderFieldsTooLarge"));
    // Past hyper's own caps (a 32 KiB read buffer, give or take one read; 100 fields) hyper
    // answers before latch sees a request: a 431 without a body.
    let r = c
        .get(app.url("/session"))
        .header("x-padding", "a".repeat(300 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(r.text().await.unwrap(), "");
    let mut too_many = c.get(app.url("/session"));
    for i in 0..250 {
        too_many = too_many.header(format!("x-h{i}"), "1");
    }
    let r = too_many.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(r.text().await.unwrap(), "");
    let r = c.get(app.url("/session")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn metrics_listen_serves_metrics_there_alone() {
    latch::install_crypto_provider();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (addr, metrics_addr) = (
        listener.local_addr().unwrap(),
        metrics.local_addr().unwrap(),
    );
    let origin = format!("http://{addr}");
    let text = Setup::default()
        .server(&format!("metrics_listen = \"{metrics_addr}\"\n"))
        .toml(&origin, &addr.to_string());
    let config =
        latch::config::load_str(std::path::Path::new("test.toml"), &text, &|_| None).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(latch::server::run_with(
        config,
        listener,
        Some(metrics),
        async {
            let _ = stopped.await;
        },
    ));
    let c = client();
    let main = c.get(format!("{origin}/metrics")).send().await.unwrap();
    assert_eq!(main.status(), StatusCode::NOT_FOUND);
    assert!(main.text().await.unwrap().contains("NotFound"));
    let r = c
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("latch_connections_open{listener=\"metrics\"} 1"),
        "{body}"
    );
    assert!(body.contains("latch_http_requests_total"), "{body}");
    let r = c
        .get(format!("http://{metrics_addr}/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// The real binary (its log is the process's stderr): `X-Forwarded-For` from a peer that is
/// not a trusted proxy gets one warning naming the key, however many requests carry it.
#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_warned_about_once() {
    let latch = Serve::default()
        .rust_log("info")
        .on_free_port(|_| "\n[store]\nurl = \"memory://\"\n".into())
        .await;
    let c = client();
    for path in ["/healthz", "/session", "/signin", "/healthz"] {
        let r = c
            .get(latch.url(path))
            .header("X-Forwarded-For", "203.0.113.9")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    let log = latch.kill().await;
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("X-Forwarded-For"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("[server] trusted_proxies"), "{log}");
    assert!(warnings[0].contains("WARN"), "{log}");
}
