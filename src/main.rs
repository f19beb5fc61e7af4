use clap::Parser;
use latch::cli::{self, Cli, Command};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    latch::install_crypto_provider();
    let args = Cli::parse();
    cli::init_tracing(args.log_format);
    match args.command {
        Command::Serve => cli::serve(&args.config).await,
        Command::Check { discover } => cli::check(&args.config, discover).await,
        Command::Presets => cli::presets(),
        Command::Users(command) => latch::admin::users(&args.config, command).await,
        Command::Sessions(command) => latch::admin::sessions(&args.config, command).await,
        Command::Token(command) => latch::admin::token(&args.config, command).await,
    }
}
