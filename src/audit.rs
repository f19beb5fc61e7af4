//! The audit log (SPEC §5, `[audit] file`): one JSON line per security event, each with a
//! stable `event` name ([`Name`]), the time, user id, provider, and for events caused by a
//! request its client address, user agent and request id.
//!
//! Never a token, cookie value, authorization code, state, secret or provider token: events
//! carry store ids (a session's id is the hash of its cookie token) and names only.
//!
//! - Emitting is one call, [`Audit::emit`], whose closure builds the event only when the log
//!   is on: with `[audit]` absent nothing is allocated.
//! - The request fields come from the request being served: `web::request` runs each request
//!   inside [`Audit::in_request`] (only when the log is on), so services (`session`,
//!   `identity`) emit events without being handed the request.
//! - Lines are written by one thread per open log, fed through a bounded channel: a request
//!   never waits on the disk. Each line is a single `write` on a file opened with `O_APPEND`,
//!   so lines from concurrent requests, from other instances on the same file and from the
//!   admin commands never interleave. A write error never fails a request: it is logged at
//!   most once a minute, and so is a full queue (whose lines are dropped and counted).
//! - `SIGHUP` opens the file again ([`reopen_files`], also when the new configuration is
//!   refused; a valid one builds a new log in `server::build_on` anyway): `logrotate` renames
//!   the file, then sends `SIGHUP` (no `copytruncate` needed).
use crate::config::AuditTarget;
use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Lines waiting for the writer thread; past this they are dropped (and that is logged).
const QUEUE: usize = 16 * 1024;
/// A `User-Agent` is cut to this many characters.
pub const MAX_USER_AGENT: usize = 256;
/// How often a failing write (or a full queue) is logged.
const ERROR_LOG_EVERY: Duration = Duration::from_secs(60);

/// The stable event names (the README's event table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Name {
    SigninSucceeded,
    SigninRefused,
    Signout,
    SessionEnded,
    RefreshReuseDetected,
    AccountLinked,
    AccountUnlinked,
    UserDeleted,
    AdminSessionsRevoked,
    AdminUserDeleted,
    AdminAccountUnlinked,
    AdminUserExported,
}

impl Name {
    pub const ALL: [Name; 12] = [
        Name::SigninSucceeded,
        Name::SigninRefused,
        Name::Signout,
        Name::SessionEnded,
        Name::RefreshReuseDetected,
        Name::AccountLinked,
        Name::AccountUnlinked,
        Name::UserDeleted,
        Name::AdminSessionsRevoked,
        Name::AdminUserDeleted,
        Name::AdminAccountUnlinked,
        Name::AdminUserExported,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Name::SigninSucceeded => "signin.succeeded",
            Name::SigninRefused => "signin.refused",
            Name::Signout => "signout",
            Name::SessionEnded => "session.ended",
            Name::RefreshReuseDetected => "refresh.reuse_detected",
            Name::AccountLinked => "account.linked",
            Name::AccountUnlinked => "account.unlinked",
            Name::UserDeleted => "user.deleted",
            Name::AdminSessionsRevoked => "admin.sessions_revoked",
            Name::AdminUserDeleted => "admin.user_deleted",
            Name::AdminAccountUnlinked => "admin.account_unlinked",
            Name::AdminUserExported => "admin.user_exported",
        }
    }
}

/// Who or what ended a session (`session.ended`'s `by`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndedBy {
    /// The user, on the account page.
    User,
    /// An admin command.
    Admin,
    /// The provider's back-channel logout.
    Backchannel,
    /// Refresh-token reuse (theft assumed).
    ReuseDetection,
    /// Its absolute or idle limit, noticed when it was next presented.
    Expiry,
}

impl EndedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            EndedBy::User => "user",
            EndedBy::Admin => "admin",
            EndedBy::Backchannel => "backchannel",
            EndedBy::ReuseDetection => "reuse-detection",
            EndedBy::Expiry => "expiry",
        }
    }
}

/// One event: its name, whom it is about, and its own fields.
pub struct Event {
    name: Name,
    user_id: Option<String>,
    provider: Option<String>,
    fields: Map<String, Value>,
}

impl Event {
    pub fn new(name: Name) -> Self {
        Event {
            name,
            user_id: None,
            provider: None,
            fields: Map::new(),
        }
    }

    pub fn user(mut self, id: &str) -> Self {
        self.user_id = Some(id.to_string());
        self
    }

    pub fn provider(mut self, id: &str) -> Self {
        self.provider = Some(id.to_string());
        self
    }

    /// An event-specific field. Never a token or a secret (see the module documentation).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(key.to_string(), value.into());
        self
    }

    /// `session.ended` of session `id` (its store id), by `by`.
    pub fn session_ended(by: EndedBy, id: &str) -> Self {
        Event::new(Name::SessionEnded)
            .with("session", id)
            .with("by", by.as_str())
    }
}

/// The request an event happened in (see [`Audit::in_request`]).
#[derive(Clone, Debug, Default)]
pub struct RequestInfo {
    /// The client address as the rate limits count it (through `trusted_proxies`).
    pub ip: Option<IpAddr>,
    /// The `User-Agent`, cut to [`MAX_USER_AGENT`] characters.
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl RequestInfo {
    /// `user_agent` as a header gives it, cut to [`MAX_USER_AGENT`] characters.
    pub fn user_agent(raw: &[u8]) -> String {
        String::from_utf8_lossy(raw)
            .chars()
            .take(MAX_USER_AGENT)
            .collect()
    }
}

tokio::task_local! {
    static REQUEST: RequestInfo;
}

#[derive(Serialize)]
struct Line<'a> {
    time: String,
    event: &'static str,
    user_id: Option<&'a str>,
    provider: Option<&'a str>,
    ip: Option<String>,
    user_agent: Option<&'a str>,
    request_id: Option<&'a str>,
    #[serde(flatten)]
    fields: &'a Map<String, Value>,
}

enum Message {
    Line(Vec<u8>),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The audit log: off (`[audit]` absent), or a writer thread; cheap to clone.
#[derive(Clone, Default)]
pub struct Audit {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    queue: mpsc::SyncSender<Message>,
    dropped: std::sync::Mutex<Throttle>,
}

impl Audit {
    /// A log that writes nothing.
    pub fn off() -> Self {
        Audit { inner: None }
    }

    /// Opens the log `target` names (`None`: off). A file is created if missing (mode 0600
    /// on Unix) and always appended to.
    pub fn open(target: Option<&AuditTarget>) -> std::io::Result<Self> {
        let Some(target) = target else {
            return Ok(Self::off());
        };
        let sink = Sink::open(target)?;
        let (queue, lines) = mpsc::sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("latch-audit".into())
            .spawn(move || write_lines(sink, lines))?;
        Ok(Audit {
            inner: Some(Arc::new(Inner {
                queue,
                dropped: std::sync::Mutex::new(Throttle::default()),
            })),
        })
    }

    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// Records the event `build` makes (called only when the log is on), with the fields of
    /// the request being served, if any. Never fails and never waits on the disk.
    pub fn emit(&self, build: impl FnOnce() -> Event) {
        let Some(inner) = &self.inner else { return };
        let event = build();
        let request = REQUEST.try_with(Clone::clone).unwrap_or_default();
        let mut bytes = line(&event, &request, Utc::now());
        bytes.push(b'\n');
        match inner.queue.try_send(Message::Line(bytes)) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(_)) => {
                metrics::counter!("latch_audit_dropped_total").increment(1);
                if let Ok(mut t) = inner.dropped.lock() {
                    if t.due() {
                        tracing::error!(
                            queued = QUEUE,
                            "audit log writer too slow: audit lines dropped"
                        );
                    }
                }
            }
            Err(mpsc::TrySendError::Disconnected(_)) => {}
        }
    }

    /// Runs `fut` (a request) so that the events it emits carry `request`'s fields.
    pub async fn in_request<F: std::future::Future>(request: RequestInfo, fut: F) -> F::Output {
        REQUEST.scope(request, fut).await
    }

    /// Waits (at most 5 s) until every line emitted so far is written.
    pub async fn flush(&self) {
        let Some(inner) = &self.inner else { return };
        let (done, written) = tokio::sync::oneshot::channel();
        if inner.queue.try_send(Message::Flush(done)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), written).await;
        }
    }
}

/// Bumped by [`reopen_files`]; each writer reopens its file before its next line.
static REOPENED: AtomicU64 = AtomicU64::new(0);

/// Every open audit file is opened again before its next line (after `logrotate` renamed
/// it). `latch serve` calls this on each `SIGHUP`, also when the new configuration is
/// refused (which keeps the running log).
pub fn reopen_files() {
    REOPENED.fetch_add(1, Ordering::SeqCst);
}

/// The JSON of one line (without the newline).
fn line(event: &Event, request: &RequestInfo, now: chrono::DateTime<Utc>) -> Vec<u8> {
    let line = Line {
        time: now.to_rfc3339_opts(SecondsFormat::Millis, true),
        event: event.name.as_str(),
        user_id: event.user_id.as_deref(),
        provider: event.provider.as_deref(),
        ip: request.ip.map(|ip| ip.to_string()),
        user_agent: request.user_agent.as_deref(),
        request_id: request.request_id.as_deref(),
        fields: &event.fields,
    };
    serde_json::to_vec(&line).unwrap_or_default()
}

/// Says yes at most once per [`ERROR_LOG_EVERY`].
#[derive(Default)]
struct Throttle {
    last: Option<Instant>,
}

impl Throttle {
    fn due(&mut self) -> bool {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < ERROR_LOG_EVERY)
        {
            return false;
        }
        self.last = Some(now);
        true
    }
}

enum Sink {
    Stderr,
    File { path: PathBuf, file: std::fs::File },
}

impl Sink {
    fn open(target: &AuditTarget) -> std::io::Result<Sink> {
        Ok(match target {
            AuditTarget::Stderr => Sink::Stderr,
            AuditTarget::File(path) => Sink::File {
                path: path.clone(),
                file: open_append(path)?,
            },
        })
    }

    /// One `write` for the whole line (`O_APPEND` puts it at the end in one piece).
    fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        let written = match self {
            Sink::Stderr => std::io::stderr().lock().write(line)?,
            Sink::File { file, .. } => file.write(line)?,
        };
        if written != line.len() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                format!("short write: {written} of {} bytes", line.len()),
            ));
        }
        Ok(())
    }

    fn reopen(&mut self) -> std::io::Result<()> {
        if let Sink::File { path, file } = self {
            *file = open_append(path)?;
        }
        Ok(())
    }
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("audit file {}: {e}", path.display())))
}

/// The writer thread: until every [`Audit`] clone is dropped.
fn write_lines(mut sink: Sink, lines: mpsc::Receiver<Message>) {
    let mut errors = Throttle::default();
    let mut failed = 0u64;
    let mut opened = REOPENED.load(Ordering::SeqCst);
    for message in lines {
        let result = match message {
            Message::Line(bytes) => {
                let now = REOPENED.load(Ordering::SeqCst);
                let reopened = if now != opened {
                    opened = now;
                    sink.reopen()
                } else {
                    Ok(())
                };
                reopened.and_then(|()| sink.write(&bytes))
            }
            Message::Flush(done) => {
                let _ = done.send(());
                Ok(())
            }
        };
        if let Err(e) = result {
            failed += 1;
            metrics::counter!("latch_audit_write_errors_total").increment(1);
            if errors.due() {
                tracing::error!(error = %e, failed, "audit log write failed");
            }
        }
    }
}

/// The events about `user_id` in the audit file at `path` (admin `users export`): every
/// line whose `user_id` is that id, oldest first. Lines that are not JSON are skipped.
pub fn events_for_user(path: &Path, user_id: &str) -> std::io::Result<Vec<Value>> {
    use std::io::BufRead;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut events = Vec::new();
    for line in std::io::BufReader::new(file).split(b'\n') {
        let line = line?;
        // A cheap test first: most lines are about someone else.
        if !contains(&line, user_id.as_bytes()) {
            continue;
        }
        if let Ok(event) = serde_json::from_slice::<Value>(&line) {
            if event["user_id"].as_str() == Some(user_id) {
                events.push(event);
            }
        }
    }
    Ok(events)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_lines(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn a_line_has_the_common_fields_then_the_event_s_own() {
        let event = Event::session_ended(EndedBy::ReuseDetection, "sid")
            .user("u1")
            .provider("dev");
        let request = RequestInfo {
            ip: Some("192.0.2.7".parse().unwrap()),
            user_agent: Some("curl/8".into()),
            request_id: Some("r-1".into()),
        };
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05.678Z")
            .unwrap()
            .with_timezone(&Utc);
        let v: Value = serde_json::from_slice(&line(&event, &request, now)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "time": "2026-01-02T03:04:05.678Z",
                "event": "session.ended",
                "user_id": "u1",
                "provider": "dev",
                "ip": "192.0.2.7",
                "user_agent": "curl/8",
                "request_id": "r-1",
                "session": "sid",
                "by": "reuse-detection",
            })
        );
        let bare = line(&Event::new(Name::Signout), &RequestInfo::default(), now);
        let v: Value = serde_json::from_slice(&bare).unwrap();
        assert_eq!(v["ip"], Value::Null);
        assert_eq!(v["event"], "signout");
    }

    #[test]
    fn user_agents_are_cut_to_a_sane_length() {
        let long = "é".repeat(1000);
        let cut = RequestInfo::user_agent(long.as_bytes());
        assert_eq!(cut.chars().count(), MAX_USER_AGENT);
        assert_eq!(RequestInfo::user_agent(b"Firefox"), "Firefox");
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = Name::ALL.iter().map(|n| n.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Name::ALL.len());
    }

    #[tokio::test]
    async fn concurrent_lines_stay_whole_and_the_file_is_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let audit = Audit::open(Some(&AuditTarget::File(path.clone()))).unwrap();
        let big = "x".repeat(4000);
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let audit = audit.clone();
                let big = big.clone();
                tokio::spawn(async move {
                    for i in 0..50 {
                        let request = RequestInfo {
                            request_id: Some(format!("{t}-{i}")),
                            ..Default::default()
                        };
                        Audit::in_request(request, async {
                            audit.emit(|| Event::new(Name::Signout).with("pad", big.as_str()))
                        })
                        .await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        audit.flush().await;
        let lines = read_lines(&path);
        assert_eq!(lines.len(), 400);
        assert!(lines.iter().all(|l| l["pad"] == big.as_str()));
        assert!(lines.iter().any(|l| l["request_id"] == "7-49"));

        // logrotate: rename, then reopen.
        let rotated = dir.path().join("audit.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        reopen_files();
        audit.emit(|| Event::new(Name::UserDeleted).user("u2"));
        audit.flush().await;
        assert_eq!(read_lines(&rotated).len(), 400);
        let fresh = read_lines(&path);
        assert_eq!(fresh.len(), 1);
        assert_eq!(fresh[0]["request_id"], Value::Null);
        assert_eq!(
            events_for_user(&path, "u2").unwrap()[0]["event"],
            "user.deleted"
        );
        assert!(events_for_user(&path, "u1").unwrap().is_empty());
        assert!(events_for_user(&dir.path().join("none"), "u2")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn an_off_log_never_builds_an_event() {
        Audit::off().emit(|| unreachable!("built while off"));
        assert!(!Audit::off().is_on());
    }
}
