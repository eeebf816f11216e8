use std::process::ExitCode;

use clap::{Parser, Subcommand};
use innodb_operator::backup::cli::{self, BackupArgs, RestoreArgs};

#[derive(Parser)]
#[command(name = "innodb-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Stream a consistent dump of a MySQL server into S3 (what a Backup Job runs).
    Backup(BackupArgs),
    /// Load a backup from S3 into an empty MySQL server (what a restore Job runs).
    Restore(RestoreArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Backup(args) => cli::backup(args).await,
        Command::Restore(args) => cli::restore(args).await,
    }
}
