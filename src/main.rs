//! `innodb-operator`: one binary, several roles.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use innodb_operator::datapath::cli::{self, BackupArgs, RestoreArgs};
use innodb_operator::{context, controller, crd, telemetry};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "innodb-operator",
    version,
    about = "Kubernetes operator for MySQL InnoDB Cluster"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t, global = true, env = "LOG_FORMAT")]
    log_format: telemetry::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller against the cluster of the ambient kubeconfig or service account.
    Run {
        /// DNS domain of the Kubernetes cluster.
        #[arg(long, default_value = "cluster.local", env = "CLUSTER_DOMAIN")]
        cluster_domain: String,
        /// Watch only this namespace (default: all namespaces).
        #[arg(long, env = "WATCH_NAMESPACE")]
        namespace: Option<String>,
        /// Address of the /healthz, /readyz and /metrics endpoint.
        #[arg(long, default_value = "0.0.0.0:8080", env = "HTTP_ADDR")]
        http_addr: SocketAddr,
        /// The operator's own image (backup Jobs run it).
        #[arg(long, env = "OPERATOR_IMAGE", default_value = concat!("innodb-operator:", env!("CARGO_PKG_VERSION")))]
        image: String,
    },
    /// Stream a consistent dump of a MySQL server into S3 (what a Backup Job runs).
    Backup(BackupArgs),
    /// Load a backup from S3 into an empty MySQL server (what a restore runs).
    Restore(RestoreArgs),
    /// Print the CustomResourceDefinitions, or write one file per kind into each --dir.
    Crd {
        #[arg(long)]
        dir: Vec<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    // Two TLS backends are linked (ring for Kubernetes and MySQL, aws-lc for the AWS SDK):
    // choose one for the whole process before any client is made.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Command::Backup(args) => {
            telemetry::init(cli.log_format);
            cli::backup(args).await
        }
        Command::Restore(args) => {
            telemetry::init(cli.log_format);
            cli::restore(args).await
        }
        Command::Crd { dir } if dir.is_empty() => {
            print!("{}", crd::all_yaml());
            ExitCode::SUCCESS
        }
        Command::Crd { dir } => {
            for d in dir {
                match crd::write_dir(&d) {
                    Ok(files) => files
                        .iter()
                        .for_each(|f| println!("wrote {}", d.join(f).display())),
                    Err(e) => {
                        eprintln!("error: writing CRDs into {}: {e}", d.display());
                        return ExitCode::FAILURE;
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Command::Run {
            cluster_domain,
            namespace,
            http_addr,
            image,
        } => {
            telemetry::init(cli.log_format);
            let client = match kube::Client::try_default().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "no Kubernetes client: set KUBECONFIG or run in a pod with a service account");
                    return ExitCode::FAILURE;
                }
            };
            let shutdown = CancellationToken::new();
            controller::cancel_on_signals(shutdown.clone());
            let config = context::Config {
                cluster_domain,
                namespace,
                http_addr,
                image,
            };
            match controller::run(client, config, shutdown).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
