//! The embedded store: SQLite through rusqlite. `memory://` is the same engine on an
//! in-memory database.
//!
//! Writes go through one connection, on a thread of its own that takes them in turn and
//! commits the ones waiting together (group commit, see `Writer`): a commit can wait for the
//! file lock (another process, such as `latch sessions revoke`, writing) or for an fsync at a
//! checkpoint, which must not hold up a runtime thread. Point
//! reads (`get`, `ping`) run inline on the calling task, on a reader connection of their own:
//! with WAL a read never waits for a writer, and a read of a page already in the cache costs a
//! few µs, far less than a hop to another thread and back (that hop was most of latch's CPU
//! per `GET /session` on SQLite). Each read is its own transaction, started after the call, so
//! it sees every write committed before it, whichever process made it: a revocation that has
//! answered is seen by every read after it.
//!
//! Schema: `kv(key, value, expires_at)` for values and `members(key, member, expires_at)` for
//! sets (the set's expiry is copied on each of its rows). `expires_at` is Unix time in
//! milliseconds or NULL; rows with `expires_at <= now` are treated as absent by every query
//! and removed by a sweeper task every 60 s.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex, MutexGuard, TryLockError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, ErrorCode, OptionalExtension};
use tokio::sync::oneshot;

use super::{ttl_millis, Store, StoreError};

const SWEEP_EVERY: Duration = Duration::from_secs(60);
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL,
    expires_at INTEGER NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_expires_at ON kv(expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS members (
    key TEXT NOT NULL,
    member TEXT NOT NULL,
    expires_at INTEGER NULL,
    PRIMARY KEY (key, member)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS members_expires_at ON members(expires_at) WHERE expires_at IS NOT NULL;
";

/// SQLite-backed [`Store`] (`sqlite://` and `memory://`).
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// The one writer (and, for `memory://`, whose database is this connection's alone, the
    /// reader too).
    conn: Arc<Mutex<Connection>>,
    writer: Writer,
    /// Connections for inline point reads of a file database; empty for `memory://`.
    readers: Vec<Mutex<Connection>>,
    backend: &'static str,
}

/// Reader connections of a file database. A read holds one for a few µs, so one would do on
/// 2 cores (measured: the same req/s and CPU as two); the second keeps a runtime thread from
/// waiting when the thread holding the first is preempted. Each costs memory (its own page
/// cache), so not one per core.
const READERS: usize = 2;

/// Page caches of a file database, capped (SQLite's default is 2,000 KiB per connection,
/// 6 MiB for the three, and a refresh load fills them: every refresh adds a token row at a
/// random place in the key index). The writer's is the larger: its inserts walk the index,
/// while a reader's cache is emptied by the first read after any other connection's commit
/// (WAL), so it rarely holds more than a few lookups' pages. A page missed is a `pread` of
/// the OS's page cache. Measured under the POST /refresh load (bench/README.md 2026-12-01
/// "SQLite refresh"): with group commit, peak RSS 18.0 MiB at the default caches, 15.7 at
/// these, req/s within the noise (4,546 and 4,381).
const WRITER_CACHE_KIB: u32 = 512;
const READER_CACHE_KIB: u32 = 128;

fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding the lock leaves the connection usable (SQLite rolls back).
    conn.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Connection> {
        lock(&self.conn)
    }

    /// A connection for an inline read: a free reader, else waits for the first (held only
    /// for a read, never across a write or an fsync). `memory://` reads on its one
    /// connection, whose writes do no I/O.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        for reader in &self.readers {
            match reader.try_lock() {
                Ok(conn) => return conn,
                Err(TryLockError::Poisoned(e)) => return e.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        self.readers.first().map_or_else(|| self.lock(), lock)
    }

    /// Runs the read `f` inline. Readers do not wait for locks (busy timeout 0), since they
    /// would hold up a runtime thread: in the rare moments when a WAL read is busy (such as
    /// another process recovering the WAL index after a crash) the read is run again with the
    /// writer, off the runtime, which waits up to [`BUSY_TIMEOUT`] as writes do.
    async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let first = {
            let conn = self.reader();
            let result = f(&conn);
            // A read left open would pin its snapshot and miss later revocations.
            debug_assert!(conn.is_autocommit(), "a read left a transaction open");
            result
        };
        match first {
            Err(e) if is_busy(&e) => self.call(move |c| f(c)).await,
            result => result.map_err(map_err),
        }
    }

    /// Runs `f` with the writer connection on the writer thread, as one step of the batch
    /// the thread is committing (see [`Writer`]): its writes are all made or none, and it is
    /// answered once they are committed.
    async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (job, answer) = job(f);
        self.writer.send(job)?;
        // Dropped unanswered only if the job panicked.
        answer
            .await
            .map_err(|_| StoreError::Backend("sqlite write failed (panic)".into()))?
    }
}

/// A step for the writer thread. It runs inside the batch's transaction and returns how to
/// answer its caller, called once the batch has committed (`None`) or failed (the error).
type Job = Box<dyn FnOnce(&Connection) -> Answer + Send>;
type Answer = Box<dyn FnOnce(Option<&StoreError>) + Send>;

/// `f` as a job, and where its answer will come.
fn job<T, F>(f: F) -> (Job, oneshot::Receiver<Result<T, StoreError>>)
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
{
    let (reply, answer) = oneshot::channel();
    let job: Job = Box::new(move |conn| {
        let result = in_savepoint(conn, f).map_err(map_err);
        Box::new(move |failed: Option<&StoreError>| {
            let _ = reply.send(match failed {
                Some(e) => Err(again(e)),
                None => result,
            });
        })
    });
    (job, answer)
}

/// Runs `f` in a savepoint of its own: a step that fails leaves nothing behind, and the
/// others of its batch commit without it. (Outside a transaction the savepoint is one.)
fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    execute(conn, "SAVEPOINT step")?;
    let result = f(conn);
    if result.is_err() {
        let _ = execute(conn, "ROLLBACK TO step");
    }
    let released = execute(conn, "RELEASE step");
    // The step's own error first: one that rolled the whole transaction back (a full disk)
    // also makes the RELEASE fail ("no such savepoint"), which would hide its kind.
    let value = result?;
    released?;
    Ok(value)
}

/// The same error again, for each step of a batch that failed to commit.
fn again(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Backend(m) => StoreError::Backend(m.clone()),
    }
}

/// The writer's prepared-statement cache: room for every distinct statement below (about 25,
/// and the batch's BEGIN, COMMIT and savepoint statements),
/// so none is parsed again per call (`execute` with SQL text prepares each time: SQLite's
/// parser was a few per cent of latch's CPU in a sign-in, bench/login.sh).
const WRITER_STATEMENTS: usize = 48;

/// The writer thread, which runs the jobs one after the other on the writer connection. One
/// thread rather than a blocking-pool task per write: the writes are serial anyway (one
/// connection), and a burst of them on the blocking pool grew it by a thread each, all but one
/// waiting on the lock: 76 to 445 threads under a load of session extensions, up to 6 MiB
/// more peak RSS, and a third more CPU per request than with this thread.
///
/// Group commit: the jobs waiting when the thread takes one are run with it in one
/// transaction (up to [`BATCH`]), each in a savepoint of its own, and answered only after
/// the COMMIT, so an answered write is committed, as before, and seen by every read after it.
/// One commit for many writes: a `POST /refresh` makes four (the family lock taken, the
/// family and the new token written, the lock released), and under 32 concurrent refreshes a
/// commit each was most of the writer's work (WAL frames written, the WAL index and file
/// locks taken and released), bench/README.md 2026-12-01 "SQLite refresh".
struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The most jobs committed together: bounds how long a write waits behind others, and the
/// transaction's size (a refresh's writes are a few rows; the sweep, alone, many).
const BATCH: usize = 64;

impl Writer {
    fn start(conn: Arc<Mutex<Connection>>) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("latch-sqlite-writer".into())
            .spawn(move || {
                while let Ok(first) = queue.recv() {
                    let mut batch = vec![first];
                    while batch.len() < BATCH {
                        match queue.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    run_batch(&lock(&conn), batch);
                }
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the sqlite writer: {e}")))?;
        Ok(Self {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        self.jobs
            .as_ref()
            .and_then(|jobs| jobs.send(job).ok())
            .ok_or_else(|| StoreError::Backend("the sqlite writer has ended".into()))
    }
}

impl Drop for Writer {
    /// Waits for the thread to finish the jobs queued and let go of the connection, so that a
    /// dropped store is closed (and its WAL checkpointed and removed) before this returns.
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs `jobs` in one transaction and answers them once it has committed. BEGIN IMMEDIATE
/// takes the write lock first (waiting up to [`BUSY_TIMEOUT`] for another process), so no
/// step can fail later for want of it; if it cannot be had, each job runs alone (its
/// savepoint its own transaction, waiting as a write did before batching) and says how that
/// went.
fn run_batch(conn: &Connection, jobs: Vec<Job>) {
    if jobs.is_empty() {
        return;
    }
    if !conn.is_autocommit() {
        // Left inside a transaction (a ROLLBACK that failed): start from a clean state, or
        // the steps below would nest in it and be rolled back with it after saying Ok.
        let _ = execute(conn, "ROLLBACK");
    }
    if let Err(e) = execute(conn, "BEGIN IMMEDIATE") {
        tracing::debug!(error = %e, "sqlite batch not begun; its writes run one by one");
        for job in jobs {
            let answer = run_step(conn, job);
            // Still in a transaction: the step's commit did not happen, whatever it said.
            let failed = (!conn.is_autocommit()).then(|| {
                let _ = execute(conn, "ROLLBACK");
                StoreError::Unavailable("sqlite: the write could not be committed".into())
            });
            if let Some(answer) = answer {
                answer(failed.as_ref());
            }
        }
        return;
    }
    let mut answers = Vec::with_capacity(jobs.len());
    let mut jobs = jobs.into_iter();
    for job in jobs.by_ref() {
        answers.extend(run_step(conn, job));
        // Some errors (a full disk, I/O) make SQLite roll the whole transaction back: the
        // steps before this one are undone too, and say so; the rest start a new batch.
        if conn.is_autocommit() {
            let e = StoreError::Unavailable("sqlite: the transaction was rolled back".into());
            answers.into_iter().for_each(|answer| answer(Some(&e)));
            run_batch(conn, jobs.collect());
            return;
        }
    }
    let failed = execute(conn, "COMMIT").err().map(|e| {
        let _ = execute(conn, "ROLLBACK");
        map_err(e)
    });
    answers
        .into_iter()
        .for_each(|answer| answer(failed.as_ref()));
}

/// One job; `None` if it panicked (its savepoint is undone, its caller sees no answer).
fn run_step(conn: &Connection, job: Job) -> Option<Answer> {
    let answer = std::panic::catch_unwind(AssertUnwindSafe(|| job(conn))).ok();
    if answer.is_none() {
        let _ = execute(conn, "ROLLBACK TO step");
        let _ = execute(conn, "RELEASE step");
    }
    answer
}

fn execute(conn: &Connection, sql: &str) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute([])
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn expiry(now: i64, ttl: Option<Duration>) -> Option<i64> {
    ttl.map(|t| now.saturating_add(i64::try_from(ttl_millis(t)).unwrap_or(i64::MAX)))
}

fn map_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                ErrorCode::DatabaseBusy
                    | ErrorCode::DatabaseLocked
                    | ErrorCode::SystemIoFailure
                    | ErrorCode::CannotOpen
                    | ErrorCode::DiskFull
                    | ErrorCode::FileLockingProtocolFailed
            ) =>
        {
            StoreError::Unavailable(format!("sqlite: {e}"))
        }
        _ => StoreError::Backend(format!("sqlite: {e}")),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`.
    pub async fn open_file(path: &Path) -> Result<Self, StoreError> {
        let path = path.to_path_buf();
        let (conn, readers) = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            let conn = Connection::open(&path).map_err(|e| {
                StoreError::Unavailable(format!("cannot open sqlite database {path:?}: {e}"))
            })?;
            conn.busy_timeout(BUSY_TIMEOUT).map_err(map_err)?;
            // journal_mode returns a row; query it rather than execute.
            let mode: String = conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                .map_err(map_err)?;
            if !mode.eq_ignore_ascii_case("wal") {
                tracing::warn!(mode, "sqlite store: WAL mode not available");
            }
            // Durability, chosen: WAL with synchronous = NORMAL. A commit is in the WAL file
            // (the OS's page cache) before its caller is answered, so it survives latch
            // crashing or being killed; the WAL is fsynced at each checkpoint (every ~1,000
            // pages), so a power loss or kernel crash can lose the commits since the last one,
            // never the database's consistency. Such a loss could bring back a session or
            // family revoked in those last moments; FULL (an fsync per commit, one per batch
            // here) would close that at the cost of a disk flush per write batch. Never OFF.
            conn.execute_batch("PRAGMA synchronous = NORMAL;")
                .map_err(map_err)?;
            conn.execute_batch(SCHEMA).map_err(map_err)?;
            set_cache(&conn, WRITER_CACHE_KIB)?;
            let readers = (0..READERS)
                .map(|_| open_reader(&path).map(Mutex::new))
                .collect::<Result<_, _>>()?;
            Ok((conn, readers))
        })
        .await
        .map_err(|e| StoreError::Backend(format!("sqlite open task failed: {e}")))??;
        Self::start(conn, readers, "sqlite")
    }

    /// Opens a fresh in-memory database (one connection; contents die with the store).
    pub async fn open_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().map_err(map_err)?;
        conn.execute_batch(SCHEMA).map_err(map_err)?;
        Self::start(conn, Vec::new(), "memory")
    }

    fn start(
        conn: Connection,
        readers: Vec<Mutex<Connection>>,
        backend: &'static str,
    ) -> Result<Self, StoreError> {
        // Every statement of the writer stays prepared (rusqlite keeps 16 by default).
        conn.set_prepared_statement_cache_capacity(WRITER_STATEMENTS);
        let conn = Arc::new(Mutex::new(conn));
        let inner = Arc::new(Inner {
            writer: Writer::start(conn.clone())?,
            conn,
            readers,
            backend,
        });
        spawn_sweeper(Arc::downgrade(&inner));
        tracing::debug!(backend, "store opened");
        Ok(Self { inner })
    }

    async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.inner.call(f).await
    }

    /// Deletes every expired row now (the sweeper does this every minute).
    pub async fn sweep(&self) -> Result<usize, StoreError> {
        self.call(sweep).await
    }
}

/// A reader of the file database the writer has just set up (WAL, schema).
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| {
        StoreError::Unavailable(format!("cannot open sqlite database {path:?}: {e}"))
    })?;
    // No waiting on a runtime thread (see `Inner::read`); and reads only, should a write
    // ever be sent here by mistake.
    conn.busy_timeout(Duration::ZERO).map_err(map_err)?;
    conn.execute_batch("PRAGMA query_only = ON;")
        .map_err(map_err)?;
    set_cache(&conn, READER_CACHE_KIB)?;
    Ok(conn)
}

/// Caps a connection's page cache (SQLite's default is 2,000 KiB each) at `kib`.
fn set_cache(conn: &Connection, kib: u32) -> Result<(), StoreError> {
    conn.execute_batch(&format!("PRAGMA cache_size = -{kib};"))
        .map_err(map_err)
}

fn sweep(conn: &Connection) -> rusqlite::Result<usize> {
    let now = now_ms();
    let a = conn
        .prepare_cached("DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?1")?
        .execute([now])?;
    let b = conn
        .prepare_cached("DELETE FROM members WHERE expires_at IS NOT NULL AND expires_at <= ?1")?
        .execute([now])?;
    Ok(a + b)
}

/// Sweeps expired rows every [`SWEEP_EVERY`] while the store exists. Holds only a `Weak`,
/// so it ends at the first tick after the store is dropped and never keeps it alive.
fn spawn_sweeper(weak: Weak<Inner>) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("sqlite store opened outside a tokio runtime: no expiry sweeper");
        return;
    };
    handle.spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate
        loop {
            tick.tick().await;
            let Some(inner) = weak.upgrade() else { break };
            match inner.call(sweep).await {
                Ok(n) if n > 0 => tracing::debug!(rows = n, "store sweep"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "store sweep failed"),
            }
        }
    });
}

/// A row is live if it has no expiry or has not reached it (`?2` is now).
macro_rules! live {
    () => {
        "(expires_at IS NULL OR expires_at > ?2)"
    };
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        self.inner.backend
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_owned();
        self.inner
            .read(move |c| {
                c.prepare_cached(concat!("SELECT value FROM kv WHERE key = ?1 AND ", live!()))?
                    .query_row(params![key, now_ms()], |r| r.get(0))
                    .optional()
            })
            .await
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        let (key, value) = (key.to_owned(), value.to_vec());
        self.call(move |c| {
            // A key holds a value or a set, never both (as in Redis).
            c.prepare_cached("DELETE FROM members WHERE key = ?1")?
                .execute([&key])?;
            c.prepare_cached(
                "INSERT OR REPLACE INTO kv (key, value, expires_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![key, value, expiry(now_ms(), ttl)])?;
            Ok(())
        })
        .await
    }

    async fn put_new(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let (key, value) = (key.to_owned(), value.to_vec());
        self.call(move |c| {
            let now = now_ms();
            let set_exists: bool = c
                .prepare_cached(concat!(
                    "SELECT EXISTS(SELECT 1 FROM members WHERE key = ?1 AND ",
                    live!(),
                    ")"
                ))?
                .query_row(params![key, now], |r| r.get(0))?;
            if set_exists {
                return Ok(false);
            }
            c.prepare_cached("DELETE FROM members WHERE key = ?1")?
                .execute([&key])?;
            // Insert, or replace a row that has expired but not been swept yet.
            let n = c
                .prepare_cached(
                    "INSERT INTO kv (key, value, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
                 WHERE kv.expires_at IS NOT NULL AND kv.expires_at <= ?4",
                )?
                .execute(params![key, value, expiry(now, ttl), now])?;
            Ok(n == 1)
        })
        .await
    }

    async fn put_existing(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let (key, value) = (key.to_owned(), value.to_vec());
        self.call(move |c| {
            let now = now_ms();
            // One statement: the existence check and the write cannot be split by a delete.
            let n = c
                .prepare_cached(concat!(
                    "UPDATE kv SET value = ?3, expires_at = ?4 WHERE key = ?1 AND ",
                    live!()
                ))?
                .execute(params![key, now, value, expiry(now, ttl)])?;
            Ok(n == 1)
        })
        .await
    }

    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        let (key, expected) = (key.to_owned(), expected.to_vec());
        self.call(move |c| {
            let n = c
                .prepare_cached(concat!(
                    "DELETE FROM kv WHERE key = ?1 AND ",
                    live!(),
                    " AND value = ?3"
                ))?
                .execute(params![key, now_ms(), expected])?;
            Ok(n == 1)
        })
        .await
    }

    async fn rate_limit(
        &self,
        key: &str,
        interval: Duration,
        tolerance: Duration,
    ) -> Result<Option<Duration>, StoreError> {
        let key = key.to_owned();
        let interval = ttl_millis(interval) as i64;
        let tolerance = i64::try_from(tolerance.as_millis()).unwrap_or(i64::MAX);
        self.call(move |c| {
            let now = now_ms();
            let stored: Option<Vec<u8>> = c
                .prepare_cached(concat!("SELECT value FROM kv WHERE key = ?1 AND ", live!()))?
                .query_row(params![key, now], |r| r.get(0))
                .optional()?;
            // The theoretical arrival time, as in the Redis script.
            let tat = stored
                .and_then(|v| String::from_utf8(v).ok()?.parse::<i64>().ok())
                .unwrap_or(now)
                .max(now);
            if tat - now > tolerance {
                return Ok(Some(Duration::from_millis((tat - now - tolerance) as u64)));
            }
            let next = tat.saturating_add(interval);
            c.prepare_cached("DELETE FROM members WHERE key = ?1")?
                .execute([&key])?;
            c.prepare_cached(
                "INSERT OR REPLACE INTO kv (key, value, expires_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![key, next.to_string().into_bytes(), next])?;
            Ok(None)
        })
        .await
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_owned();
        self.call(move |c| {
            let now = now_ms();
            let row: Option<(Vec<u8>, Option<i64>)> = c
                .prepare_cached("DELETE FROM kv WHERE key = ?1 RETURNING value, expires_at")?
                .query_row([&key], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            Ok(row.and_then(|(v, exp)| match exp {
                Some(e) if e <= now => None,
                _ => Some(v),
            }))
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.call(move |c| {
            let now = now_ms();
            let live_kv = c
                .prepare_cached(concat!("DELETE FROM kv WHERE key = ?1 AND ", live!()))?
                .execute(params![key, now])?;
            let live_members = c
                .prepare_cached(concat!("DELETE FROM members WHERE key = ?1 AND ", live!()))?
                .execute(params![key, now])?;
            c.prepare_cached("DELETE FROM kv WHERE key = ?1")?
                .execute([&key])?;
            c.prepare_cached("DELETE FROM members WHERE key = ?1")?
                .execute([&key])?;
            Ok(live_kv + live_members > 0)
        })
        .await
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.call(move |c| {
            let now = now_ms();
            let exp = expiry(now, Some(ttl));
            let a = c
                .prepare_cached(concat!(
                    "UPDATE kv SET expires_at = ?3 WHERE key = ?1 AND ",
                    live!()
                ))?
                .execute(params![key, now, exp])?;
            let b = c
                .prepare_cached(concat!(
                    "UPDATE members SET expires_at = ?3 WHERE key = ?1 AND ",
                    live!()
                ))?
                .execute(params![key, now, exp])?;
            Ok(a + b > 0)
        })
        .await
    }

    async fn set_add(
        &self,
        key: &str,
        member: &str,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let (key, member) = (key.to_owned(), member.to_owned());
        self.call(move |c| {
            let now = now_ms();
            // Expired members are gone: the set starts afresh (as Redis would).
            c.prepare_cached(
                "DELETE FROM members WHERE key = ?1 AND expires_at IS NOT NULL AND expires_at <= ?2",
            )?
            .execute(params![key, now])?;
            c.prepare_cached("DELETE FROM kv WHERE key = ?1")?
                .execute([&key])?;
            let exp = match ttl {
                Some(_) => {
                    let exp = expiry(now, ttl);
                    c.prepare_cached("UPDATE members SET expires_at = ?2 WHERE key = ?1")?
                        .execute(params![key, exp])?;
                    exp
                }
                None => c
                    .prepare_cached("SELECT expires_at FROM members WHERE key = ?1 LIMIT 1")?
                    .query_row([&key], |r| r.get::<_, Option<i64>>(0))
                    .optional()?
                    .flatten(),
            };
            c.prepare_cached(
                "INSERT OR REPLACE INTO members (key, member, expires_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![key, member, exp])?;
            Ok(())
        })
        .await
    }

    async fn set_remove(&self, key: &str, member: &str) -> Result<(), StoreError> {
        let (key, member) = (key.to_owned(), member.to_owned());
        self.call(move |c| {
            c.prepare_cached("DELETE FROM members WHERE key = ?1 AND member = ?2")?
                .execute(params![key, member])
                .map(drop)
        })
        .await
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let key = key.to_owned();
        self.call(move |c| {
            let mut st = c.prepare_cached(concat!(
                "SELECT member FROM members WHERE key = ?1 AND ",
                live!()
            ))?;
            let rows = st.query_map(params![key, now_ms()], |r| r.get(0))?;
            rows.collect()
        })
        .await
    }

    async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let prefix = prefix.to_owned();
        self.call(move |c| {
            // `key >= prefix` narrows the index range; substr() makes the match exact
            // without LIKE/GLOB escaping.
            let mut st = c.prepare_cached(concat!("SELECT key FROM kv WHERE key >= ?1 AND substr(key, 1, length(?1)) = ?1 AND ", live!(), "
                 UNION
                 SELECT DISTINCT key FROM members WHERE key >= ?1 AND substr(key, 1, length(?1)) = ?1 AND ", live!()))?;
            let rows = st.query_map(params![prefix, now_ms()], |r| r.get(0))?;
            rows.collect()
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner
            .read(|c| {
                c.prepare_cached("SELECT 1")?
                    .query_row([], |r| r.get::<_, i64>(0))
                    .map(drop)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sweep_removes_expired_rows_only() {
        let s = SqliteStore::open_memory().await.unwrap();
        s.put("gone", b"v", Some(Duration::from_millis(1)))
            .await
            .unwrap();
        s.set_add("gone-set", "m", Some(Duration::from_millis(1)))
            .await
            .unwrap();
        s.put("kept", b"v", Some(Duration::from_secs(60)))
            .await
            .unwrap();
        s.put("forever", b"v", None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(s.sweep().await.unwrap(), 2);
        assert_eq!(s.sweep().await.unwrap(), 0);
        assert!(s.get("kept").await.unwrap().is_some());
        assert!(s.get("forever").await.unwrap().is_some());
    }

    /// What `latch sessions revoke` does from another process: a delete on a connection of
    /// its own. The next read through the store must not see the record (revocation wins).
    #[tokio::test]
    async fn a_read_sees_a_delete_made_on_another_connection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latch.db");
        let s = SqliteStore::open_file(&path).await.unwrap();
        s.put("session:a", b"v", None).await.unwrap();
        // The reader's page and statement caches are warm.
        assert!(s.get("session:a").await.unwrap().is_some());
        let other = Connection::open(&path).unwrap();
        other
            .execute("DELETE FROM kv WHERE key = 'session:a'", [])
            .unwrap();
        assert_eq!(s.get("session:a").await.unwrap(), None);
    }

    /// A read refused as busy inline is run again on the writer thread (which waits for the
    /// lock) rather than failing or waiting on the runtime thread.
    /// (Another process cannot make a WAL read busy at will while the store holds the file
    /// open, so the refusal is made up here.)
    #[tokio::test]
    async fn a_busy_read_is_retried_on_the_writer_thread() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let s = SqliteStore::open_memory().await.unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let test_thread = std::thread::current().id();
        let seen = calls.clone();
        let read = s.inner.read(move |_| {
            if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                assert_eq!(std::thread::current().id(), test_thread, "first try inline");
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                    None,
                ));
            }
            Ok(std::thread::current().id())
        });
        assert_ne!(
            read.await.unwrap(),
            test_thread,
            "retried off the runtime thread"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_panicking_write_fails_alone() {
        let s = SqliteStore::open_memory().await.unwrap();
        let failed = s.call(|_| -> rusqlite::Result<()> { panic!("a write panics") });
        assert!(matches!(failed.await, Err(StoreError::Backend(_))));
        s.put("k", b"v", None).await.unwrap();
        assert_eq!(s.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    }

    /// Dropping the store waits for the writer to close its connection: the last connection
    /// closed checkpoints the WAL and removes it, as a clean shutdown should.
    #[tokio::test]
    async fn a_dropped_store_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latch.db");
        let s = SqliteStore::open_file(&path).await.unwrap();
        s.put("k", b"v", None).await.unwrap();
        let wal = dir.path().join("latch.db-wal");
        assert!(wal.exists());
        drop(s);
        assert!(!wal.exists(), "the WAL outlived the store");
    }

    fn insert(key: &'static str) -> impl FnOnce(&Connection) -> rusqlite::Result<()> {
        move |c| {
            c.execute("INSERT INTO kv (key, value) VALUES (?1, x'00')", [key])
                .map(drop)
        }
    }

    fn keys(c: &Connection) -> Vec<String> {
        let mut st = c.prepare("SELECT key FROM kv ORDER BY key").unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// A batch: each step's writes are all made or none (a failing or panicking step leaves
    /// nothing and the others commit), and no step is answered before the COMMIT, so a
    /// caller answered can count on every other connection seeing its write.
    #[test]
    fn a_batch_commits_its_steps_together_and_answers_after_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latch.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL;").unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        let other = Connection::open(&path).unwrap();

        let (a, mut a_answer) = job(insert("a"));
        let (failing, failing_answer) = job(|c| {
            insert("b")(c)?;
            c.execute("INSERT INTO no_such_table VALUES (1)", [])
                .map(drop)
        });
        let (panicking, panicking_answer) = job(|c| -> rusqlite::Result<()> {
            insert("c")(c)?;
            panic!("a step panics");
        });
        let (watch, mut watch_answer) = job(move |c| {
            // Later in the batch: `a` is written here, unanswered and unseen elsewhere.
            assert!(matches!(
                a_answer.try_recv(),
                Err(oneshot::error::TryRecvError::Empty)
            ));
            assert_eq!(keys(&other), Vec::<String>::new());
            insert("d")(c)?;
            Ok((a_answer, other))
        });
        run_batch(&conn, vec![a, failing, panicking, watch]);

        assert!(conn.is_autocommit());
        let (mut a_answer, other) = watch_answer.try_recv().unwrap().unwrap();
        assert!(a_answer.try_recv().unwrap().is_ok());
        assert!(matches!(
            failing_answer.blocking_recv(),
            Ok(Err(StoreError::Backend(_)))
        ));
        assert!(panicking_answer.blocking_recv().is_err(), "no answer");
        assert_eq!(keys(&other), ["a", "d"]);
    }

    /// Some errors make SQLite roll back the whole transaction (a full disk): the steps
    /// before are undone and say so, and the steps after run in a batch of their own.
    #[test]
    fn a_batch_rolled_back_under_its_steps_fails_them_and_goes_on() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        let (a, a_answer) = job(insert("a"));
        let (rolls_back, rolled_answer) = job(|c| c.execute_batch("ROLLBACK; SAVEPOINT step;"));
        let (b, b_answer) = job(insert("b"));
        run_batch(&conn, vec![a, rolls_back, b]);
        assert!(conn.is_autocommit());
        assert!(matches!(
            a_answer.blocking_recv(),
            Ok(Err(StoreError::Unavailable(_)))
        ));
        assert!(matches!(
            rolled_answer.blocking_recv(),
            Ok(Err(StoreError::Unavailable(_)))
        ));
        assert!(b_answer.blocking_recv().unwrap().is_ok());
        assert_eq!(keys(&conn), ["b"]);
    }

    /// Writes sent together from many tasks (one batch or several) are each answered, and
    /// each answered write is there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_are_all_committed() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(
            SqliteStore::open_file(&dir.path().join("latch.db"))
                .await
                .unwrap(),
        );
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..200 {
            let s = s.clone();
            tasks.spawn(async move {
                let key = format!("k{i}");
                assert!(s.put_new(&key, b"v", None).await.unwrap());
                assert!(!s.put_new(&key, b"w", None).await.unwrap());
                key
            });
        }
        while let Some(key) = tasks.join_next().await {
            let key = key.unwrap();
            assert_eq!(s.get(&key).await.unwrap().as_deref(), Some(&b"v"[..]));
        }
    }

    #[tokio::test]
    async fn sweeper_does_not_keep_the_store_alive() {
        let s = SqliteStore::open_memory().await.unwrap();
        let weak = Arc::downgrade(&s.inner);
        drop(s);
        assert!(weak.upgrade().is_none());
    }
}
