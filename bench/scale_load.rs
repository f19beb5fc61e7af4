//! Loads sessions into a Redis through latch's own `Sessions` API and measures what they cost
//! there. Driven by `bench/scale.sh` (see bench/README.md); not part of `cargo test`'s run.
//!
//!   cargo run --release --example scale_load -- --redis redis://127.0.0.1:6379 load --sessions 1000000
//!   cargo run --release --example scale_load -- --redis … user --email k10@example.com --sessions 10
//!   cargo run --release --example scale_load -- --redis … sample
//!
//! Every command prints one JSON object on stdout.
use clap::{Parser, Subcommand, ValueEnum};
use latch::config::SessionConfig;
use latch::identity::{User, Users};
use latch::provider::Profile;
use latch::session::{SessionOrigin, Sessions};
use latch::store::Store;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// The Redis to load (`redis://127.0.0.1:<port>`).
    #[arg(long)]
    redis: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create `sessions` sessions for `sessions / per_user` users (no user records: `/session`
    /// reads only the session record) and report the `used_memory` delta per session.
    Load {
        #[arg(long)]
        sessions: usize,
        /// Sessions per user (each user has an index set `user_sessions:<id>`).
        #[arg(long, default_value_t = 2)]
        per_user: usize,
        #[arg(long, value_enum, default_value_t = Shape::Google)]
        profile: Shape,
        /// Store operations in flight at once (the multiplexed connection pipelines them).
        #[arg(long, default_value_t = 256)]
        concurrency: usize,
        /// Distinguishes the user ids of two loads into one Redis.
        #[arg(long, default_value = "bulk")]
        tag: String,
    },
    /// Sign a user in through `Users::sign_in` (so `latch sessions revoke --user` finds it)
    /// and give it `sessions` sessions; prints its id and one session's cookie token.
    User {
        #[arg(long)]
        email: String,
        #[arg(long)]
        sessions: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// One session with each profile shape: `MEMORY USAGE` and `STRLEN` of its record, and
    /// `MEMORY USAGE` of its user's index set.
    Sample,
    /// `used_memory` and `DBSIZE` now.
    Memory,
}

#[derive(Clone, Copy, ValueEnum)]
enum Shape {
    /// What the built-in development provider yields: name = email's local part, no picture.
    Dev,
    /// A Google account: full name, a long gmail address, a 100-character picture URL.
    Google,
}

fn hex32(seed: &str) -> String {
    hex::encode(&Sha256::digest(seed.as_bytes())[..16])
}

/// A user as `Users::sign_in` would have made it (32-hex id), with the profile `shape` gives.
fn user(shape: Shape, id: String, n: usize) -> User {
    let p = profile(shape, n);
    User {
        id,
        name: p.name,
        email: p.email,
        email_verified: p.email_verified,
        image: p.image,
        created_at: 0,
        updated_at: 0,
    }
}

/// Where a session came from, as a sign-in records it: a device name and an IPv4 address.
fn origin(n: usize) -> SessionOrigin {
    SessionOrigin {
        device: latch::session::device::Device::from_user_agent(Some(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Chrome/131.0.0.0 Safari/537.36",
        )),
        ip: Some(std::net::Ipv4Addr::from(0xCB00_7100 | (n as u32 & 0xff)).into()),
        provider_sid: None,
    }
}

fn profile(shape: Shape, n: usize) -> Profile {
    match shape {
        Shape::Dev => Profile {
            subject: format!("dev-{}", &hex32(&n.to_string())[..20]),
            email: Some(format!("user{n:07}@example.com")),
            email_verified: true,
            name: Some(format!("user{n:07}")),
            image: None,
            sid: None,
            groups: Vec::new(),
        },
        Shape::Google => {
            // https://lh3.googleusercontent.com/a/ACg8oc… — 100 characters, like Google's.
            let tail = &latch::crypto::sha256_b64url(n.to_string().as_bytes())[..43];
            let image = format!("https://lh3.googleusercontent.com/a/ACg8ocK{tail}AbCdEfGh=s96-c");
            debug_assert_eq!(image.len(), 100);
            Profile {
                subject: format!("1{:020}", n),
                email: Some(format!("ada.lovelace.{n:07}@gmail.com")),
                email_verified: true,
                name: Some("Ada Lovelace-Byron".into()),
                image: Some(image),
                sid: None,
                groups: Vec::new(),
            }
        }
    }
}

fn session_config() -> SessionConfig {
    SessionConfig {
        max_age: Duration::from_secs(30 * 24 * 3600),
        idle_timeout: Duration::from_secs(7 * 24 * 3600),
        update_age: Duration::from_secs(24 * 3600),
        cookie_domain: None,
    }
}

async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("redis answers")
}

async fn used_memory(c: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(c)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory in INFO memory")
}

async fn dbsize(c: &mut redis::aio::MultiplexedConnection) -> u64 {
    redis::cmd("DBSIZE").query_async(c).await.unwrap()
}

async fn memory_usage(c: &mut redis::aio::MultiplexedConnection, key: &str) -> Option<u64> {
    redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(key)
        .arg("SAMPLES")
        .arg(0)
        .query_async(c)
        .await
        .unwrap()
}

/// Runs `count` jobs `job(i)` with at most `concurrency` in flight.
async fn run_all<F, Fut>(count: usize, concurrency: usize, job: F)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let job = Arc::new(job);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (job, next) = (job.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    break;
                }
                job(i).await;
            }
        }));
    }
    for w in workers {
        w.await.expect("worker");
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let store: Arc<dyn Store> = latch::store::open(&args.redis, None).await.expect("store");
    assert_eq!(store.backend(), "redis", "scale_load is for Redis");
    let sessions = Arc::new(Sessions::new(store.clone(), session_config()));
    let mut conn = redis_conn(&args.redis).await;
    let out = match args.command {
        Command::Load {
            sessions: count,
            per_user,
            profile: shape,
            concurrency,
            tag,
        } => {
            let before = used_memory(&mut conn).await;
            let keys_before = dbsize(&mut conn).await;
            let started = Instant::now();
            let per_user = per_user.max(1);
            let provider = match shape {
                Shape::Dev => "dev",
                Shape::Google => "google",
            };
            let s = sessions.clone();
            run_all(count, concurrency, move |i| {
                let s = s.clone();
                let n = i / per_user;
                let u = user(shape, hex32(&format!("{tag}-{n}")), n);
                async move {
                    s.create(&u, provider, origin(n), Vec::new())
                        .await
                        .expect("session created");
                }
            })
            .await;
            let seconds = started.elapsed().as_secs_f64();
            let after = used_memory(&mut conn).await;
            let keys_after = dbsize(&mut conn).await;
            json!({
                "sessions": count,
                "users": count.div_ceil(per_user),
                "seconds": seconds,
                "sessions_per_second": count as f64 / seconds,
                "used_memory_before": before,
                "used_memory_after": after,
                "used_memory_per_session": (after as f64 - before as f64) / count as f64,
                "keys_before": keys_before,
                "keys_after": keys_after,
            })
        }
        Command::User {
            email,
            sessions: count,
            concurrency,
        } => {
            let users = Users::new(store.clone());
            let p = Profile {
                subject: format!("dev-{}", &hex32(&email)[..20]),
                email: Some(email.clone()),
                email_verified: true,
                name: email.split('@').next().map(str::to_string),
                image: None,
                sid: None,
                groups: Vec::new(),
            };
            let u = users.sign_in("dev", &p, None, false).await.expect("user");
            let started = Instant::now();
            let token = Arc::new(std::sync::Mutex::new(String::new()));
            let (s, t, shared) = (sessions.clone(), token.clone(), Arc::new(u.clone()));
            run_all(count, concurrency, move |_| {
                let (s, t, u) = (s.clone(), t.clone(), shared.clone());
                async move {
                    let (token, _) = s
                        .create(&u, "dev", origin(0), Vec::new())
                        .await
                        .expect("session created");
                    *t.lock().unwrap() = token;
                }
            })
            .await;
            let live = sessions.list_for_user(&u.id).await.unwrap().len();
            let token = token.lock().unwrap().clone();
            json!({
                "user": u.id,
                "sessions": live,
                "seconds": started.elapsed().as_secs_f64(),
                "token": token,
            })
        }
        Command::Sample => {
            let mut samples = serde_json::Map::new();
            for (name, shape, provider) in [
                ("dev", Shape::Dev, "dev"),
                ("google", Shape::Google, "google"),
            ] {
                let u = user(shape, hex32(&format!("sample-{name}")), 4242);
                let (_, session) = sessions
                    .create(&u, provider, origin(4242), Vec::new())
                    .await
                    .unwrap();
                let key = latch::store::keys::session(&session.id);
                let strlen: u64 = redis::cmd("STRLEN")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                let index = latch::store::keys::user_sessions(&u.id);
                samples.insert(
                    name.into(),
                    json!({
                        "key": key,
                        "key_bytes": key.len(),
                        "value_bytes": strlen,
                        "memory_usage": memory_usage(&mut conn, &key).await,
                        "index_memory_usage": memory_usage(&mut conn, &index).await,
                        "profile": {
                            "name": u.name, "email": u.email, "image": u.image,
                        },
                    }),
                );
            }
            serde_json::Value::Object(samples)
        }
        Command::Memory => json!({
            "used_memory": used_memory(&mut conn).await,
            "keys": dbsize(&mut conn).await,
        }),
    };
    println!("{out}");
}
