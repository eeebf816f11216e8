//! Tests of the S3 edge: what goes on the wire, CA bundles, part sizes and buffers.

use super::*;
use std::sync::{Arc, Mutex};

use aws_sdk_s3::config::http::{HttpRequest, HttpResponse};
use aws_sdk_s3::primitives::SdkBody;
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, SharedHttpConnector, http_client_fn,
};

/// What the client sent: method, URI, headers and body of every request.
#[derive(Clone, Debug)]
struct Sent {
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Sent {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Records each request and answers as S3 would for the calls the writer makes (the server
/// side is MinIO's job in the data-path tests; this only sees what leaves the client).
#[derive(Clone, Debug, Default)]
struct Recorder(Arc<Mutex<Vec<Sent>>>);

impl HttpConnector for Recorder {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let sent = Sent {
            method: request.method().to_string(),
            uri: request.uri().to_string(),
            headers: request
                .headers()
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: request.body().bytes().unwrap_or_default().to_vec(),
        };
        let body = if sent.method == "POST" && sent.uri.contains("uploads") {
            "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>\
             <UploadId>up-1</UploadId></InitiateMultipartUploadResult>"
        } else if sent.method == "POST" {
            "<CompleteMultipartUploadResult><ETag>\"all\"</ETag></CompleteMultipartUploadResult>"
        } else {
            ""
        };
        let mut response =
            HttpResponse::new(200u16.try_into().expect("status"), SdkBody::from(body));
        response.headers_mut().insert("ETag", "\"e\"");
        self.0.lock().expect("recorder").push(sent);
        HttpConnectorFuture::ready(Ok(response))
    }
}

fn config(endpoint: &str) -> S3Config {
    S3Config {
        endpoint: Some(endpoint.into()),
        region: "us-east-1".into(),
        bucket: "b".into(),
        path_style: true,
        access_key_id: "id".into(),
        secret_access_key: "secret".into(),
        max_attempts: 1,
        ca: None,
    }
}

/// Writes a 2.5-part object and a small one through `endpoint`; returns what was sent.
async fn upload_through(endpoint: &str) -> (Vec<Sent>, Vec<u8>) {
    let recorder = Recorder::default();
    let connector = SharedHttpConnector::new(recorder.clone());
    let cfg = config(endpoint);
    let conf = client_config(&cfg)
        .unwrap()
        .http_client(http_client_fn(move |_, _| connector.clone()));
    let bucket = Bucket::open_with(&cfg, conf).await.unwrap();
    let data: Vec<u8> = (0..MIN_PART_SIZE * 5 / 2)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let budget = PartBudget::new(3);
    let mut w = bucket.writer("k".into(), MIN_PART_SIZE, budget.clone());
    w.write(&data).await.unwrap();
    w.finish().await.unwrap();
    // The SDK let go of every part: all buffers are back, ready for the next object.
    assert_eq!(budget.permits.available_permits(), 3);
    let spare: Vec<(usize, usize)> = budget
        .spare_buffers()
        .iter()
        .map(|b| (b.len(), b.capacity()))
        .collect();
    assert!(!spare.is_empty());
    assert!(spare.iter().all(|&b| b == (0, MIN_PART_SIZE)), "{spare:?}");
    bucket.put("small", b"manifest".to_vec()).await.unwrap();
    let sent = recorder.0.lock().unwrap().clone();
    (sent, data)
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

#[tokio::test]
async fn https_parts_are_unsigned_with_a_crc32c_the_completion_repeats() {
    let (sent, data) = upload_through("https://s3.example:9000").await;
    let create = sent
        .iter()
        .find(|r| r.method == "POST" && r.uri.contains("?uploads"))
        .expect("CreateMultipartUpload");
    assert_eq!(create.header("x-amz-checksum-algorithm"), Some("CRC32C"));
    let parts: Vec<&Sent> = sent
        .iter()
        .filter(|r| r.uri.contains("partNumber="))
        .collect();
    assert_eq!(parts.len(), 3);
    let mut crcs = Vec::new();
    for part in &parts {
        assert_eq!(
            part.header("x-amz-content-sha256"),
            Some("UNSIGNED-PAYLOAD")
        );
        let crc = part.header("x-amz-checksum-crc32c").expect("part checksum");
        assert_eq!(
            crc,
            crc32c_base64(&part.body),
            "the CRC is of the part's bytes"
        );
        assert!(
            part.header("content-encoding").is_none(),
            "no aws-chunked body"
        );
        crcs.push(crc.to_string());
    }
    let bodies: Vec<u8> = parts.iter().flat_map(|p| p.body.clone()).collect();
    assert_eq!(bodies.len(), data.len());
    let complete = sent
        .iter()
        .find(|r| r.method == "POST" && r.uri.contains("uploadId=up-1"))
        .expect("CompleteMultipartUpload");
    let xml = String::from_utf8_lossy(&complete.body);
    for crc in &crcs {
        assert!(
            xml.contains(&format!("<ChecksumCRC32C>{crc}</ChecksumCRC32C>")),
            "{xml}"
        );
    }
    let put = sent
        .iter()
        .find(|r| r.uri.contains("/b/small"))
        .expect("PutObject");
    assert_eq!(put.header("x-amz-content-sha256"), Some("UNSIGNED-PAYLOAD"));
    assert_eq!(
        put.header("x-amz-checksum-crc32c"),
        Some(crc32c_base64(b"manifest").as_str())
    );
}

#[tokio::test]
async fn plain_http_parts_keep_the_signed_sha256_and_send_no_crc() {
    let (sent, _) = upload_through("http://s3.example:9000").await;
    let bodies: Vec<&Sent> = sent.iter().filter(|r| r.method == "PUT").collect();
    assert_eq!(bodies.len(), 4, "three parts and the small object");
    for r in bodies {
        assert_eq!(
            r.header("x-amz-content-sha256"),
            Some(sha256_hex(&r.body).as_str())
        );
        assert!(r.header("x-amz-checksum-crc32c").is_none());
    }
    let create = sent.iter().find(|r| r.uri.contains("?uploads")).unwrap();
    assert!(create.header("x-amz-checksum-algorithm").is_none());
}

#[test]
fn https_is_aws_or_an_https_endpoint() {
    use PayloadIntegrity::*;
    assert_eq!(PayloadIntegrity::for_endpoint(None), UnsignedCrc32c);
    assert_eq!(
        PayloadIntegrity::for_endpoint(Some("https://minio:9000")),
        UnsignedCrc32c
    );
    assert_eq!(
        PayloadIntegrity::for_endpoint(Some("HTTPS://minio")),
        UnsignedCrc32c
    );
    assert_eq!(
        PayloadIntegrity::for_endpoint(Some("http://minio:9000")),
        SignedSha256
    );
    assert_eq!(
        PayloadIntegrity::for_endpoint(Some("https:/")),
        SignedSha256
    );
}

#[test]
fn crc32c_is_the_castagnoli_check_value_big_endian_base64() {
    // CRC-32C("123456789") = 0xE3069283
    assert_eq!(crc32c_base64(b"123456789"), "4waSgw==");
    assert_eq!(crc32c_base64(b""), "AAAAAA==");
}

fn ca_pem() -> String {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().pem()
}

#[test]
fn a_ca_bundle_holds_one_or_more_usable_certificates() {
    let bundle = |pem: &str| CaBundle {
        origin: "ca.pem".into(),
        pem: pem.as_bytes().to_vec(),
    };
    assert_eq!(bundle(&ca_pem()).check().unwrap(), 1);
    assert_eq!(
        bundle(&format!("{}\n{}", ca_pem(), ca_pem()))
            .check()
            .unwrap(),
        2
    );
    assert!(bundle(&ca_pem()).http_client().is_ok());
    for (pem, want) in [
        ("", "holds no PEM certificate"),
        ("just text\n", "holds no PEM certificate"),
        (
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
            "malformed PEM",
        ),
        (
            "-----BEGIN CERTIFICATE-----\nAAECAwQ=\n-----END CERTIFICATE-----\n",
            "certificate 1 is not a usable CA",
        ),
    ] {
        let err = bundle(pem).http_client().expect_err(pem).to_string();
        assert!(
            err.contains("S3 CA bundle ca.pem is not usable") && err.contains(want),
            "{err}"
        );
    }
    let err = CaBundle::read(Path::new("/nonexistent/ca.pem"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot read the S3 CA bundle /nonexistent/ca.pem"),
        "{err}"
    );
}

#[tokio::test]
async fn a_part_buffer_comes_back_when_the_last_reference_to_its_body_drops() {
    let budget = PartBudget::new(1);
    let mut part = budget.take().await.unwrap();
    part.buf.extend_from_slice(&[7; 1000]);
    let at = part.buf.as_ptr();
    let body = part.into_body(&budget);
    let retry_copy = body.clone();
    assert_eq!(&body[..], &[7; 1000]);
    drop(body);
    let early = tokio::time::timeout(Duration::from_millis(50), budget.take()).await;
    assert!(early.is_err(), "still held while a reference is alive");
    drop(retry_copy);
    let again = budget.take().await.unwrap();
    assert_eq!(again.buf.as_ptr(), at, "the same memory, not a new buffer");
    assert!(again.buf.is_empty() && again.buf.capacity() >= 1000);
}

#[tokio::test]
async fn part_buffers_wait_for_an_upload_to_give_one_back() {
    let budget = PartBudget::new(2);
    let a = budget.take().await;
    let _b = budget.take().await;
    let third = tokio::time::timeout(Duration::from_millis(50), budget.take()).await;
    assert!(third.is_err(), "a third buffer is never handed out");
    drop(a);
    let again = tokio::time::timeout(Duration::from_secs(1), budget.take()).await;
    assert!(again.is_ok(), "a returned buffer is handed out again");
}

#[test]
fn part_sizes_grow_by_tiers() {
    assert_eq!(part_size(1, MIN_PART_SIZE), MIN_PART_SIZE);
    assert_eq!(part_size(1000, MIN_PART_SIZE), MIN_PART_SIZE);
    assert_eq!(part_size(1001, MIN_PART_SIZE), 2 * MIN_PART_SIZE);
    assert_eq!(part_size(10_000, 1 << 30), MAX_PART_SIZE);
}

#[test]
fn ten_thousand_parts_hold_almost_five_tib() {
    let total: u128 = (1..=MAX_PARTS)
        .map(|n| part_size(n, MIN_PART_SIZE) as u128)
        .sum();
    assert!(total >= 4_800u128 << 30, "{total}");
    // and a 5 GB object never needs parts bigger than the base
    let first_tier: u128 = (1..=PARTS_PER_TIER)
        .map(|n| part_size(n, MIN_PART_SIZE) as u128)
        .sum();
    assert!(first_tier >= 5_000_000_000);
}
