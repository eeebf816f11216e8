//! A TCP proxy in front of the apiserver that a test can cut: from the cut on it forwards
//! nothing, either way, and keeps every connection open (a partition, not a refusal: requests
//! hang until the client gives up on them).

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub struct Proxy {
    pub addr: SocketAddr,
    cut: CancellationToken,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a loopback port and forwards each connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let cut = CancellationToken::new();
        let token = cut.clone();
        let accept = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                if token.is_cancelled() {
                    held.push(conn);
                    continue;
                }
                tokio::spawn(forward(conn, upstream, token.clone()));
            }
        });
        Proxy { addr, cut, accept }
    }

    /// Partitions every connection, present and future.
    pub fn cut(&self) {
        self.cut.cancel();
    }
}

async fn forward(conn: TcpStream, upstream: SocketAddr, cut: CancellationToken) {
    let Ok(up) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_in, mut client_out) = conn.into_split();
    let (mut up_in, mut up_out) = up.into_split();
    tokio::select! {
        _ = async {
            tokio::join!(
                tokio::io::copy(&mut client_in, &mut up_out),
                tokio::io::copy(&mut up_in, &mut client_out),
            )
        } => {}
        // Silent from now on, with both connections left open.
        () = cut.cancelled() => std::future::pending().await,
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
