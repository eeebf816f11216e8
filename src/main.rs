//! `innodb-operator`: one binary, several roles.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use innodb_operator::controller::RunError;
use innodb_operator::datapath::cli::{self, BackupArgs, RestoreArgs};
use innodb_operator::leader::{self, LeaseSettings, Timing};
use innodb_operator::objects::operator_pods::OperatorPods;
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
    Run(RunArgs),
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

// The controller's settings (`run`).
#[derive(clap::Args)]
struct RunArgs {
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
    /// Labels of the operator's own pods (`k=v,k2=v2`, in the namespace POD_NAMESPACE):
    /// the members' NetworkPolicies admit these pods. The chart sets it; without it no
    /// NetworkPolicy admits the operator.
    #[arg(long, env = "OPERATOR_POD_LABELS")]
    operator_pod_labels: Option<String>,
    #[command(flatten)]
    lease: LeaseArgs,
}

/// Leader election: only the replica holding the Lease acts (see `leader.rs` for the timing).
#[derive(clap::Args)]
struct LeaseArgs {
    /// Name of the coordination.k8s.io Lease the replicas compete for.
    #[arg(long, default_value = "innodb-operator", env = "LEASE_NAME")]
    lease_name: String,
    /// Namespace of the Lease (default: the operator's own, from its service account or
    /// kubeconfig context).
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Seconds a lease not renewed stays taken: a standby takes over about this long after the
    /// leader dies.
    #[arg(long, default_value_t = 15, env = "LEASE_DURATION_SECONDS")]
    lease_duration: u64,
    /// Seconds between the leader's renewals.
    #[arg(long, default_value_t = 5, env = "LEASE_RENEW_PERIOD_SECONDS")]
    lease_renew_period: u64,
    /// Seconds after its last renewal the leader goes on acting; it stops (and exits) then.
    /// Must be below the duration by more than the skew between the nodes' clocks.
    #[arg(long, default_value_t = 12, env = "LEASE_RENEW_DEADLINE_SECONDS")]
    lease_renew_deadline: u64,
    /// This pod's name: the start of the holder identity (a random suffix makes it unique per
    /// process).
    #[arg(long, env = "POD_NAME")]
    pod_name: Option<String>,
}

impl LeaseArgs {
    fn settings(self) -> Result<LeaseSettings, leader::LeaderError> {
        Ok(LeaseSettings {
            timing: Timing::new(
                self.lease_duration,
                self.lease_renew_period,
                self.lease_renew_deadline,
            )?,
            identity: leader::identity(self.pod_name.as_deref()),
            name: self.lease_name,
            namespace: self.lease_namespace,
        })
    }
}

/// Threads for blocking work (name lookups of members' addresses). Tokio's default, 512, let
/// lookups of members that do not resolve start hundreds of threads at 100 clusters, each with
/// its stack and, in glibc, possibly its own malloc arena; lookups beyond this wait their turn.
const MAX_BLOCKING_THREADS: usize = 16;

/// glibc's malloc arenas the controller may use. By default each thread that allocates while
/// others do gets an arena of its own (up to 8 per core), and memory freed in one arena serves
/// only that one, so the peak grew with every thread that ever ran a step. Two serve two workers.
const MALLOC_ARENAS: i32 = 2;

fn bound_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a glibc tuning parameter and has no memory-safety
    // preconditions.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Run { .. }) {
        // Before the runtime's threads exist.
        bound_arenas();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(command(cli)),
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn command(cli: Cli) -> ExitCode {
    // Two TLS backends are linked (ring for Kubernetes and MySQL, aws-lc for the AWS SDK):
    // choose one for the whole process before any client is made.
    let _ = rustls::crypto::ring::default_provider().install_default();
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
        Command::Crd { dir } => write_crds(&dir),
        Command::Run(args) => {
            telemetry::init(cli.log_format);
            run(args).await
        }
    }
}

/// Writes the CRDs into each of `dirs`.
fn write_crds(dirs: &[PathBuf]) -> ExitCode {
    for d in dirs {
        match crd::write_dir(d) {
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

/// The controller: checks its settings, then runs until SIGTERM (or exits at once when it loses
/// the lease).
async fn run(args: RunArgs) -> ExitCode {
    let RunArgs {
        cluster_domain,
        namespace,
        http_addr,
        image,
        operator_pod_labels,
        lease,
    } = args;
    let operator_pods = match OperatorPods::from_settings(
        lease.lease_namespace.as_deref(),
        operator_pod_labels.as_deref(),
    ) {
        Ok(pods) => pods,
        Err(e) => {
            tracing::error!(error = %e, "invalid operator pod settings");
            return ExitCode::FAILURE;
        }
    };
    let lease = match lease.settings() {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "invalid leader election settings");
            return ExitCode::FAILURE;
        }
    };
    let kube_config = match kube::Config::infer().await {
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
        operator_pods,
    };
    match controller::run(kube_config, config, lease, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ RunError::Deposed(_)) => {
            // At once: waiting for the runtime's tasks to wind down could outlast the
            // margin before the next leader starts.
            tracing::error!(error = %e, "exiting");
            std::process::exit(1)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            ExitCode::FAILURE
        }
    }
}
