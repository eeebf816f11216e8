//! A loopback HTTP proxy in front of the S3 server that fails chosen requests: it answers the
//! first `n` UploadPart requests with `500 InternalError` and forwards everything else. Every
//! connection carries one request (`Connection: close` is forced), so each request is seen.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct FaultProxy {
    pub port: u16,
    /// UploadPart requests answered with an error so far.
    pub failed: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    pub async fn start(upstream: u16, fail_parts: usize) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let failed = Arc::new(AtomicUsize::new(0));
        let counter = failed.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let _ = serve(client, upstream, fail_parts, &counter).await;
                });
            }
        });
        FaultProxy { port, failed, task }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut client: TcpStream,
    upstream: u16,
    fail_parts: usize,
    failed: &AtomicUsize,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
        if head.len() > 64 << 10 {
            return Ok(());
        }
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_string();
    let headers: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
    let header = |name: &str| {
        headers.iter().find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    if header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        client.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
    }
    let is_part = request_line.starts_with("PUT ") && request_line.contains("partNumber=");
    if is_part
        && failed
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < fail_parts).then_some(n + 1)
            })
            .is_ok()
    {
        let mut left: u64 = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut buf = vec![0u8; 64 << 10];
        while left > 0 {
            let n = client.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n as u64);
        }
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InternalError</Code>\
                    <Message>injected by the data-path test</Message></Error>";
        let resp = format!(
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/xml\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        client.write_all(resp.as_bytes()).await?;
        return client.shutdown().await;
    }
    let mut forwarded = request_line + "\r\n";
    for h in headers
        .iter()
        .filter(|h| !h.to_ascii_lowercase().starts_with("connection:"))
        .filter(|h| !h.to_ascii_lowercase().starts_with("expect:"))
    {
        forwarded.push_str(h);
        forwarded.push_str("\r\n");
    }
    forwarded.push_str("Connection: close\r\n\r\n");
    let mut up = TcpStream::connect(("127.0.0.1", upstream)).await?;
    up.write_all(forwarded.as_bytes()).await?;
    let (mut cr, mut cw) = client.split();
    let (mut ur, mut uw) = up.split();
    let to_upstream = async {
        let _ = tokio::io::copy(&mut cr, &mut uw).await;
        std::future::pending::<()>().await
    };
    let to_client = async {
        let _ = tokio::io::copy(&mut ur, &mut cw).await;
        let _ = cw.shutdown().await;
    };
    // The exchange ends when the upstream closes after its response (it was told to).
    tokio::select! {
        _ = to_upstream => {}
        _ = to_client => {}
    }
    Ok(())
}
