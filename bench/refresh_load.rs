//! The `POST /refresh` load of bench/floor.sh. wrk cannot drive it: every refresh rotates the
//! token, and a rotated one sent again after the grace window is theft (the family is
//! revoked). So each of `connections` tasks starts a family of its own (`POST /token` with the
//! session cookie) and then refreshes in a loop, each time with the token the last answer set.
//!
//!   cargo run --release --example refresh_load -- <base url> <session cookie> <connections> <seconds>
//!
//! Prints the same `BENCH …` line as bench/session.lua (req/s, latency percentiles, counts).
use std::time::{Duration, Instant};

const REFRESH_COOKIE: &str = "latch.refresh-token";

/// The value of the refresh cookie a response sets.
fn refresh_token(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|line| {
            let (name, rest) = line.split_once('=')?;
            (name == REFRESH_COOKIE).then(|| rest.split(';').next().unwrap_or("").to_string())
        })
        .filter(|token| !token.is_empty())
}

struct Tally {
    latencies_us: Vec<u64>,
    non2xx: u64,
    errors: u64,
}

async fn one_family(
    client: reqwest::Client,
    base: String,
    session_cookie: String,
    until: Instant,
) -> Tally {
    let mut tally = Tally {
        latencies_us: Vec::new(),
        non2xx: 0,
        errors: 0,
    };
    let started = client
        .post(format!("{base}/token"))
        .header("cookie", &session_cookie)
        .header("origin", &base)
        .send()
        .await;
    let Some(mut token) = started.ok().as_ref().and_then(refresh_token) else {
        eprintln!("POST /token gave no refresh cookie");
        tally.errors += 1;
        return tally;
    };
    while Instant::now() < until {
        let sent = Instant::now();
        let response = client
            .post(format!("{base}/refresh"))
            .header("cookie", format!("{REFRESH_COOKIE}={token}"))
            .header("origin", &base)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(_) => {
                tally.errors += 1;
                continue;
            }
        };
        let next = refresh_token(&response);
        let ok = response.status().is_success();
        // The body is part of the answer: read it before the clock stops.
        let _ = response.bytes().await;
        tally.latencies_us.push(sent.elapsed().as_micros() as u64);
        match (ok, next) {
            (true, Some(next)) => token = next,
            _ => {
                // Without a new token this family is over.
                tally.non2xx += 1;
                break;
            }
        }
    }
    tally
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base, cookie, connections, seconds] = args.as_slice() else {
        eprintln!("usage: refresh_load <base url> <session cookie> <connections> <seconds>");
        std::process::exit(2);
    };
    let connections: usize = connections.parse().expect("connections");
    let seconds: f64 = seconds.trim_end_matches('s').parse().expect("seconds");
    latch::install_crypto_provider(); // reqwest is built without a rustls provider of its own
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .expect("client");
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            tokio::spawn(one_family(
                client.clone(),
                base.clone(),
                cookie.clone(),
                until,
            ))
        })
        .collect();
    let mut latencies = Vec::new();
    let (mut non2xx, mut errors) = (0, 0);
    for task in tasks {
        let tally = task.await.expect("task");
        latencies.extend(tally.latencies_us);
        non2xx += tally.non2xx;
        errors += tally.errors;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| -> u64 {
        if latencies.is_empty() {
            return 0;
        }
        latencies[((latencies.len() - 1) as f64 * p / 100.0).round() as usize]
    };
    println!(
        "BENCH rps={:.1} p50_us={} p90_us={} p99_us={} max_us={} requests={} non2xx={} socket_errors={}",
        latencies.len() as f64 / elapsed,
        pct(50.0),
        pct(90.0),
        pct(99.0),
        latencies.last().copied().unwrap_or(0),
        latencies.len(),
        non2xx,
        errors
    );
}
