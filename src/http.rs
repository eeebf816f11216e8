//! The operator's HTTP endpoint: `/healthz` (the process answers), `/readyz` (ready, and whether
//! this replica leads or stands by), `/metrics` (Prometheus text format).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch;

use crate::leader::Role;
use crate::metrics::Metrics;

/// Shared state of the endpoint.
#[derive(Clone)]
pub(crate) struct Health {
    pub(crate) metrics: Arc<Metrics>,
    /// The leader's MySQLCluster watch has synced.
    pub(crate) ready: Arc<AtomicBool>,
    pub(crate) role: watch::Receiver<Role>,
}

async fn healthz() -> &'static str {
    "ok"
}

/// A standby is ready (it can take over); a leader once its watch has synced; a deposed
/// replica is stopping. The body says which.
async fn readyz(State(h): State<Health>) -> impl IntoResponse {
    let role = h.role.borrow().clone();
    match role {
        Role::Standby => (StatusCode::OK, "ready: standby".to_string()),
        Role::Leading if h.ready.load(Ordering::Relaxed) => {
            (StatusCode::OK, "ready: leader".to_string())
        }
        Role::Leading => (
            StatusCode::SERVICE_UNAVAILABLE,
            "leader: the watch has not synced yet".to_string(),
        ),
        Role::Deposed(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("deposed, stopping: {why}"),
        ),
    }
}

async fn metrics(State(h): State<Health>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        h.metrics.encode(),
    )
}

/// The routes.
pub(crate) fn router(health: Health) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(health)
}

/// Serves the routes on `listener` until `shutdown` completes.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    health: Health,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(addr = ?listener.local_addr().ok(), "serving /healthz, /readyz and /metrics");
    axum::serve(listener, router(health))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn endpoints_answer() {
        let (role, roles) = watch::channel(Role::Standby);
        let health = Health {
            metrics: Arc::new(Metrics::default()),
            ready: Arc::new(AtomicBool::new(false)),
            role: roles,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(health.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let get = |path: &'static str| async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
        let standby = get("/readyz").await;
        assert!(standby.starts_with("HTTP/1.1 200"), "{standby}");
        assert!(standby.ends_with("ready: standby"), "{standby}");
        role.send_replace(Role::Leading);
        assert!(get("/readyz").await.starts_with("HTTP/1.1 503"));
        health.ready.store(true, Ordering::Relaxed);
        let leader = get("/readyz").await;
        assert!(leader.starts_with("HTTP/1.1 200"), "{leader}");
        assert!(leader.ends_with("ready: leader"), "{leader}");
        role.send_replace(Role::Deposed(crate::leader::Deposition::Released));
        let deposed = get("/readyz").await;
        assert!(deposed.starts_with("HTTP/1.1 503"), "{deposed}");
        assert!(deposed.contains("deposed"), "{deposed}");
        let m = get("/metrics").await;
        assert!(m.contains("innodb_operator_reconciles_total"), "{m}");
    }
}
