//! X protocol benchmarks (`cargo bench --bench xproto`): frame + message decode throughput, the
//! capabilities-probe round trip, and notice-to-event latency on a TLS session, both against the
//! loopback test server. Prints one line per measurement.

#[allow(dead_code)]
mod server;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use innodb_operator::xproto::client::{self, Session};
use innodb_operator::xproto::frame::{DEFAULT_MAX_FRAME_LEN, FrameCodec, encode_frame};
use innodb_operator::xproto::messages::{
    GroupReplicationStateChanged, NoticeFrame, NoticeScope, NoticeType, ServerMessage,
};
use innodb_operator::xproto::notice::group_replication_event;
use innodb_operator::xproto::{
    ConnOptions, Credentials, SessionOptions, TlsOptions, TlsVerify, tls,
};
use prost::Message;
use server::{Behavior, FakeXServer, PASSWORD, USER};
use tokio_util::codec::Decoder;

fn percentiles(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name}: n={} p50={:?} p90={:?} p99={:?} max={:?}",
        samples.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
}

fn decode_throughput() {
    let payload = GroupReplicationStateChanged {
        r#type: 2,
        view_id: Some("17000000000000000:42".into()),
    }
    .encode_to_vec();
    let notice = NoticeFrame {
        r#type: NoticeType::GroupReplicationStateChanged as u32,
        scope: Some(NoticeScope::Global as i32),
        payload: Some(payload),
    }
    .encode_to_vec();
    let frames = 200_000;
    let mut wire = BytesMut::new();
    for _ in 0..frames {
        encode_frame(11, &notice, DEFAULT_MAX_FRAME_LEN, &mut wire).unwrap();
    }
    let bytes = wire.len();
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let mut src = wire.clone();
        let mut codec = FrameCodec::default();
        let started = Instant::now();
        let mut events = 0usize;
        while let Some(frame) = codec.decode(&mut src).unwrap() {
            if let ServerMessage::Notice(n) = ServerMessage::decode(&frame).unwrap() {
                events += usize::from(group_replication_event(&n).unwrap().is_some());
            }
        }
        best = best.min(started.elapsed());
        assert_eq!(events, frames);
    }
    println!(
        "decode GR notice frames: {frames} frames ({bytes} bytes) in {best:?}: {:.0} frames/s, {:.0} MB/s",
        frames as f64 / best.as_secs_f64(),
        bytes as f64 / best.as_secs_f64() / 1e6
    );
}

async fn probe_latency() {
    let server = FakeXServer::start(Behavior::Normal).await;
    let options = ConnOptions::default();
    let mut samples = Vec::new();
    let mut whole = Vec::new();
    for _ in 0..500 {
        let started = Instant::now();
        samples.push(client::probe(&server.endpoint(), &options).await.unwrap());
        whole.push(started.elapsed());
    }
    percentiles("probe capabilities round trip", samples);
    percentiles("probe incl. connect and close", whole);
}

async fn notice_latency() {
    let server = FakeXServer::start(Behavior::Normal).await;
    let options = SessionOptions {
        credentials: Credentials::new(USER, PASSWORD),
        tls: TlsOptions {
            verify: TlsVerify::CaPem(server.ca_pem.clone()),
            server_name: Some("localhost".into()),
        },
    };
    let config = tls::client_config(&options.tls).unwrap();
    let mut opens = Vec::new();
    for _ in 0..50 {
        let started = Instant::now();
        let session = Session::open(
            &server.endpoint(),
            &options,
            config.clone(),
            &ConnOptions::default(),
        )
        .await
        .unwrap();
        opens.push(started.elapsed());
        session.close().await;
    }
    percentiles("session open (TCP+TLS+PLAIN+enable_notices)", opens);
    let mut session = Session::open(
        &server.endpoint(),
        &options,
        config,
        &ConnOptions::default(),
    )
    .await
    .unwrap();
    let mut samples = Vec::new();
    for i in 0..1000u32 {
        let started = Instant::now();
        server.push_notice(2 + i % 3, "1:1");
        session.next_event().await.unwrap();
        samples.push(started.elapsed());
    }
    percentiles("notice pushed -> typed event", samples);
    let mut pings = Vec::new();
    for _ in 0..500 {
        pings.push(session.ping().await.unwrap());
    }
    percentiles("session ping", pings);
}

fn main() {
    decode_throughput();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(probe_latency());
    runtime.block_on(notice_latency());
}
