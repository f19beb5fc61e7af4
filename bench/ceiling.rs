//! The floor of a server-side session check, for bench/floor.sh: the least a server can do to
//! answer "who is this?" from Redis. Two routes on axum, nothing else:
//!
//! * `GET /empty` answers `ok` (what the HTTP stack and the machine allow at all);
//! * `GET /get` does one `GET <key>` on a `redis::aio::ConnectionManager` and answers the value
//!   (the floor: one Redis round trip).
//!
//! No middleware, no cookie parsing, no timeouts: latch's `/session` and `/verify` are
//! measured against this, on the same Redis, the same key and the same wrk parameters.
//!
//!   cargo run --release --example ceiling -- 127.0.0.1:4000 redis://127.0.0.1:6379 session:abc
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use redis::aio::ConnectionManager;

#[derive(Clone)]
struct Floor {
    redis: ConnectionManager,
    key: String,
}

async fn one_get(State(floor): State<Floor>) -> Result<Vec<u8>, StatusCode> {
    let mut redis = floor.redis.clone();
    let value: Option<Vec<u8>> = redis::cmd("GET")
        .arg(&floor.key)
        .query_async(&mut redis)
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    value.ok_or(StatusCode::NOT_FOUND)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, redis_url, key] = args.as_slice() else {
        eprintln!("usage: ceiling <listen addr> <redis url> <key>");
        std::process::exit(2);
    };
    let client = redis::Client::open(redis_url.as_str()).expect("redis url");
    let redis = ConnectionManager::new(client).await.expect("redis");
    let app = Router::new()
        .route("/empty", get(|| async { "ok" }))
        .route("/get", get(one_get))
        .with_state(Floor {
            redis,
            key: key.clone(),
        });
    let listener = tokio::net::TcpListener::bind(listen).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
