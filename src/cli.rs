//! Command line: `latch serve`, `latch check`, `latch presets`; the admin commands
//! (`latch users`, `latch sessions`, `latch token`) are in [`crate::admin`].
use crate::config::{self, Config};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(name = "latch", version, about = "A self-hosted login broker")]
pub struct Cli {
    /// Path to providers.toml
    #[arg(
        long,
        global = true,
        env = "LATCH_CONFIG",
        default_value = "./providers.toml"
    )]
    pub config: PathBuf,
    /// Log format
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve sign-in, sessions and the Auth.js routes
    Serve,
    /// Validate the configuration and print each provider's callback URL
    Check {
        /// Also fetch each OpenID provider's discovery document and print its endpoints
        #[arg(long)]
        discover: bool,
    },
    /// List the provider presets and the keys each needs
    Presets,
    /// Administer users in the configured store: list, show, delete, unlink
    #[command(subcommand)]
    Users(crate::admin::UsersCommand),
    /// Administer sessions in the configured store: list, revoke
    #[command(subcommand)]
    Sessions(crate::admin::SessionsCommand),
    /// Explain a token: `latch token inspect [TOKEN|-]` (a JWT or a latch cookie value)
    #[command(subcommand)]
    Token(crate::admin::TokenCommand),
}

pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.fmt_fields(PlainFields).init(),
        // Each line inside a request names it: the `request` span (with `request_id`) is in
        // the line's `span` object.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
    }
}

/// Fields as `name=value` (the message bare), as tracing-subscriber's default writes them
/// without colours, but without its styling machinery: that made the `request` span's three
/// fields cost a request at the default `info` level more than the rest of the span did
/// (`bench/instructions.sh` with `RUST_LOG=info`). The fields are gathered on the stack and
/// written at once, so the span's `String` is allocated once, not grown field by field.
struct PlainFields;

impl<'w> tracing_subscriber::fmt::FormatFields<'w> for PlainFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: tracing_subscriber::fmt::format::Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        let mut visitor = PlainVisitor {
            out: Gathered {
                buf: [0; GATHERED],
                len: 0,
                spilled: false,
                writer: &mut writer,
            },
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result?;
        visitor.out.finish()
    }
}

/// How many bytes of fields [`Gathered`] holds before it writes through.
const GATHERED: usize = 256;

/// Text kept on the stack until [`Gathered::finish`], or written through once it outgrows it.
struct Gathered<'a, 'w> {
    buf: [u8; GATHERED],
    len: usize,
    spilled: bool,
    writer: &'a mut tracing_subscriber::fmt::format::Writer<'w>,
}

impl Gathered<'_, '_> {
    /// Writes what is kept through.
    fn write_kept(&mut self) -> std::fmt::Result {
        // Whole `str`s were copied in, so this holds.
        let kept = std::str::from_utf8(&self.buf[..self.len]).map_err(|_| std::fmt::Error)?;
        self.writer.write_str(kept)
    }

    /// One field: ` name=value` (no space first; the message bare).
    fn field(&mut self, first: bool, name: &str, value: &dyn std::fmt::Debug) -> std::fmt::Result {
        use std::fmt::Write;
        if !first {
            self.write_char(' ')?;
        }
        if name != "message" {
            self.write_str(name.strip_prefix("r#").unwrap_or(name))?;
            self.write_char('=')?;
        }
        write!(self, "{value:?}")
    }

    fn finish(mut self) -> std::fmt::Result {
        if self.spilled {
            return Ok(());
        }
        self.write_kept()
    }
}

impl std::fmt::Write for Gathered<'_, '_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if !self.spilled {
            if let Some(room) = self.buf.get_mut(self.len..self.len + s.len()) {
                room.copy_from_slice(s.as_bytes());
                self.len += s.len();
                return Ok(());
            }
            self.spilled = true;
            self.write_kept()?;
        }
        self.writer.write_str(s)
    }
}

struct PlainVisitor<'a, 'w> {
    out: Gathered<'a, 'w>,
    first: bool,
    result: std::fmt::Result,
}

impl tracing::field::Visit for PlainVisitor<'_, '_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let name = field.name();
        // What the `log` crate's records carry besides their message (the default skips them).
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        let first = std::mem::take(&mut self.first);
        self.result = self.out.field(first, name, value);
    }
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    config::load(path).map_err(|errors| {
        eprintln!("{errors}");
        eprintln!(
            "latch: {} is not valid; nothing was started",
            path.display()
        );
        ExitCode::from(2)
    })
}

/// `latch check`: validate and print what to register at each provider; with `discover`,
/// resolve each OpenID provider's endpoints from its discovery document.
pub async fn check(path: &std::path::Path, discover: bool) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Provider clients check what the file cannot (e.g. that an Apple key is a P-256 key).
    let unbound = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let providers = match crate::provider::Providers::new(
        &config,
        crate::provider::http::build_client(),
        unbound,
    ) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    println!("{}: OK", path.display());
    println!("store: {}", config.store.redacted_url());
    match &config.audit {
        None => println!("audit log: off"),
        Some(config::AuditTarget::Stderr) => println!("audit log: stderr"),
        Some(config::AuditTarget::File(file)) => println!("audit log: {}", file.display()),
    }
    let mut failed = false;
    for p in providers.iter() {
        println!("provider {:<20} callback URL: {}", p.id(), p.callback_url);
        // OpenID providers can end sessions from their side (register it at the provider).
        if p.kind_name() == "oidc" && p.dev.is_none() {
            let url =
                crate::provider::public_route(&config, &format!("/backchannel-logout/{}", p.id()));
            println!("    back-channel logout URL: {url}");
        }
        if p.config.federated_signout {
            let url = crate::provider::public_route(&config, "/signout/done");
            println!("    post-logout redirect URI: {url}");
        }
        if !discover || p.dev.is_some() {
            continue;
        }
        match p.describe_endpoints().await {
            Ok(lines) => {
                for line in lines {
                    println!("    {line}");
                }
            }
            Err(e) => {
                failed = true;
                println!("    discovery FAILED: {}", e.reason);
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// `latch presets`: what each preset is and which keys it needs.
pub fn presets() -> ExitCode {
    for p in config::presets() {
        println!("{:<20} {:<7} {}", p.id, p.kind, p.label);
        if !p.required_keys.is_empty() {
            println!("{:<28} required: {}", "", p.required_keys.join(", "));
        }
        if !p.optional_keys.is_empty() {
            println!("{:<28} optional: {}", "", p.optional_keys.join(", "));
        }
    }
    ExitCode::SUCCESS
}

/// Re-reads the configuration file at every `SIGHUP` (SPEC §5); a file with mistakes is
/// reported, each with file:line:key, and not sent, so the running configuration stays.
fn reload_on_sighup(path: std::path::PathBuf) -> crate::server::Reloads {
    let (send, reloads) = tokio::sync::mpsc::channel(1);
    // Registered before anything listens: SIGHUP's default action would end the process.
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hangups) => drop(tokio::spawn(watch_hangups(hangups, path, send))),
        Err(e) => tracing::warn!(error = %e, "SIGHUP cannot be watched; reloading needs a restart"),
    }
    #[cfg(not(unix))]
    drop((path, send));
    reloads
}

#[cfg(unix)]
async fn watch_hangups(
    mut hangups: tokio::signal::unix::Signal,
    path: std::path::PathBuf,
    send: tokio::sync::mpsc::Sender<crate::config::Config>,
) {
    while hangups.recv().await.is_some() {
        // logrotate's signal: the audit file is opened again whatever the new file says.
        crate::audit::reopen_files();
        match crate::config::load(&path) {
            Ok(config) => {
                tracing::info!(file = %path.display(), "SIGHUP: configuration re-read");
                if send.send(config).await.is_err() {
                    return;
                }
            }
            Err(errors) => tracing::error!(
                file = %path.display(),
                "SIGHUP: reload refused, the running configuration stays:\n{errors}"
            ),
        }
    }
}

pub async fn serve(path: &std::path::Path) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let listener = match tokio::net::TcpListener::bind(&config.server.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("latch: cannot listen on {}: {e}", config.server.listen);
            return ExitCode::from(1);
        }
    };
    let metrics = match config.server.metrics_listen {
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("latch: cannot listen on server.metrics_listen {addr}: {e}");
                return ExitCode::from(1);
            }
        },
        None => None,
    };
    let reloads = reload_on_sighup(path.to_path_buf());
    let shutdown = crate::server::shutdown_signal();
    match crate::server::run_reloadable(config, listener, metrics, Some(reloads), shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("latch: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod plain_fields_tests {
    use super::*;

    /// What a subscriber with [`PlainFields`] writes for one event.
    fn line(emit: impl FnOnce()) -> String {
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .with_level(false)
            .fmt_fields(PlainFields)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        text.trim_end().to_string()
    }

    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn fields_are_written_as_the_default_writes_them_without_colours() {
        let text = line(|| {
            let span = tracing::info_span!("request", request_id = %"abc", method = %"GET");
            let _in = span.enter();
            tracing::info!(
                code = "InvalidState",
                n = 3,
                r#type = "x",
                "request refused"
            );
        });
        assert_eq!(
            text,
            r#"request{request_id=abc method=GET}: request refused code="InvalidState" n=3 type="x""#
        );
    }

    #[test]
    fn fields_longer_than_the_stack_buffer_are_written_whole() {
        let long = "é".repeat(GATHERED);
        let text = line(|| tracing::info!(a = %"x".repeat(200), b = %long, "m"));
        assert_eq!(text, format!("m a={} b={long}", "x".repeat(200)));
    }
}
