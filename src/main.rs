use clap::Parser;
use latch::cli::{self, Cli, Command};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    // One TLS crypto provider for every client (reqwest, redis): aws-lc.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args = Cli::parse();
    cli::init_tracing(args.log_format);
    match args.command {
        Command::Serve => cli::serve(&args.config).await,
        Command::Check => cli::check(&args.config),
    }
}
