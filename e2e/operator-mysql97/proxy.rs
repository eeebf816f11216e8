//! kube-proxy's part for the ClusterIP Services, in its userspace form: each Service port is a
//! listener on the host at the Service's cluster IP (added to the bridge; the pods route to it
//! through the host), and each new connection goes to one of the endpoints the Service's
//! EndpointSlices select at that moment (round-robin); a connection already open stays where it
//! is, as with kube-proxy.
//!
//! Why not point the Service names at the endpoints in `/etc/hosts`: the Router resolves a
//! destination's name and keeps the address it got while connections to it succeed (measured
//! here: it still connected to the old address ~60 s after the file changed). A real ClusterIP
//! Service name resolves to the same virtual IP for the Service's life, so the Router's cache
//! never sees a change there; only the proxy's choice of endpoint does.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};

/// (cluster IP, port) → the endpoints a new connection may go to.
type Table = BTreeMap<SocketAddr, Vec<SocketAddr>>;

pub struct Proxy {
    /// Taken when dropped (shut down in the background: the owner may be in async code).
    runtime: Option<tokio::runtime::Runtime>,
    table: Arc<Mutex<Table>>,
    /// Cluster IPs already on the bridge.
    addresses: Vec<IpAddr>,
}

impl Proxy {
    pub fn new() -> Proxy {
        Proxy {
            runtime: Some(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .expect("proxy runtime"),
            ),
            table: Arc::new(Mutex::new(Table::new())),
            addresses: Vec::new(),
        }
    }

    /// The Services' ports and their endpoints now: listeners for new ones, new connections to
    /// the endpoints given. Returns what changed, to log.
    pub fn update(&mut self, services: Table) -> Result<Vec<String>, String> {
        let new: Vec<SocketAddr> = {
            let table = self.table.lock().unwrap();
            services
                .keys()
                .filter(|k| !table.contains_key(k))
                .copied()
                .collect()
        };
        for front in &new {
            if !self.addresses.contains(&front.ip()) {
                crate::realmysql::net::add_host_address(front.ip())?;
                self.addresses.push(front.ip());
            }
        }
        let mut changes = Vec::new();
        {
            let mut table = self.table.lock().unwrap();
            for (front, endpoints) in services {
                if table.get(&front) != Some(&endpoints) {
                    changes.push(format!("{front} -> {endpoints:?}"));
                }
                table.insert(front, endpoints);
            }
        }
        let runtime = self.runtime.as_ref().expect("running");
        for front in new {
            let listener = std::net::TcpListener::bind(front)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| format!("proxy listener on {front}: {e}"))?;
            let table = self.table.clone();
            runtime.spawn(async move {
                let Ok(listener) = TcpListener::from_std(listener) else {
                    return;
                };
                let mut next = 0usize;
                while let Ok((client, _)) = listener.accept().await {
                    let backend = {
                        let table = table.lock().unwrap();
                        let endpoints = table.get(&front).cloned().unwrap_or_default();
                        next += 1;
                        (!endpoints.is_empty()).then(|| endpoints[next % endpoints.len()])
                    };
                    // No endpoint: the connection is refused, as kube-proxy's REJECT does.
                    let Some(backend) = backend else { continue };
                    tokio::spawn(relay(client, backend));
                }
            });
        }
        Ok(changes)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn relay(mut client: TcpStream, backend: SocketAddr) {
    if let Ok(mut server) = TcpStream::connect(backend).await {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    }
}
