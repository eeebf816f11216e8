//! The S3 edge: a client for one bucket, streaming multipart writes with bounded memory,
//! streaming reads, and the clean-up a failed backup needs.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    SharedHttpClient,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier,
};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use base64::Engine;
use bytes::Bytes;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

/// S3's smallest part (all but the last).
pub(crate) const MIN_PART_SIZE: usize = 5 << 20;
/// S3's largest part.
pub(crate) const MAX_PART_SIZE: usize = 5 << 30;
/// S3's part-count limit.
pub(crate) const MAX_PARTS: i32 = 10_000;
/// Parts per size tier: the part size doubles after every tier (see [`part_size`]).
const PARTS_PER_TIER: i32 = 1_000;

/// Where and how to reach the bucket. Credentials come from the environment, never from args.
#[derive(Clone, Debug)]
pub struct S3Config {
    /// Custom endpoint (MinIO, Ceph...); `None` for AWS.
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    pub path_style: bool,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Attempts per request (the SDK retries throttling, 5xx and connection errors with backoff).
    pub max_attempts: u32,
    /// CA certificates trusted in addition to the system roots (an endpoint behind a private CA).
    pub ca: Option<CaBundle>,
}

/// PEM certificates to trust, and where they came from (named in errors).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaBundle {
    pub origin: String,
    pub pem: Vec<u8>,
}

impl CaBundle {
    /// Reads a PEM file.
    pub(crate) fn read(path: &Path) -> Result<CaBundle, S3Error> {
        let origin = path.display().to_string();
        let pem = std::fs::read(path).map_err(|source| S3Error::CaFile {
            origin: origin.clone(),
            source,
        })?;
        Ok(CaBundle { origin, pem })
    }

    /// How many certificates the bundle holds, each checked to be usable as a trust anchor.
    fn check(&self) -> Result<usize, S3Error> {
        let bad = |message: String| S3Error::BadCa {
            origin: self.origin.clone(),
            message,
        };
        let certs = CertificateDer::pem_slice_iter(&self.pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("malformed PEM: {e}")))?;
        if certs.is_empty() {
            return Err(bad(
                "it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
            ));
        }
        let mut roots = rustls::RootCertStore::empty();
        for (i, cert) in certs.iter().enumerate() {
            roots
                .add(cert.clone())
                .map_err(|e| bad(format!("certificate {} is not a usable CA: {e}", i + 1)))?;
        }
        Ok(certs.len())
    }

    /// An HTTPS client trusting the system roots and these certificates. The SDK's trust store
    /// panics on a certificate it cannot parse, so they are checked here first.
    pub fn http_client(&self) -> Result<SharedHttpClient, S3Error> {
        let n = self.check()?;
        tracing::debug!(origin = %self.origin, certificates = n, "trusting extra CA certificates");
        let trust = TrustStore::default().with_pem_certificate(self.pem.clone());
        let context = TlsContext::builder()
            .with_trust_store(trust)
            .build()
            .map_err(|e| S3Error::BadCa {
                origin: self.origin.clone(),
                message: e.to_string(),
            })?;
        Ok(aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(context)
            .build_https())
    }
}

/// How the bytes of an upload are protected on their way to the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PayloadIntegrity {
    /// Plain HTTP: SigV4 signs the body's SHA-256, so nothing on the path can change it unnoticed
    /// (the server recomputes it).
    SignedSha256,
    /// HTTPS: TLS already protects the bytes in flight, so the body is not hashed for the
    /// signature (`UNSIGNED-PAYLOAD`); a CRC32C header (hardware CRC, nearly free) lets the
    /// server still verify every part's bytes.
    UnsignedCrc32c,
}

impl PayloadIntegrity {
    /// HTTPS for AWS (no endpoint) and `https://` endpoints, the signed SHA-256 otherwise.
    pub(crate) fn for_endpoint(endpoint: Option<&str>) -> PayloadIntegrity {
        let https = endpoint.is_none_or(|e| {
            e.get(..8)
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
        });
        if https {
            PayloadIntegrity::UnsignedCrc32c
        } else {
            PayloadIntegrity::SignedSha256
        }
    }

    /// The checksum a multipart upload is created with (every part must then carry one).
    fn algorithm(self) -> Option<ChecksumAlgorithm> {
        match self {
            PayloadIntegrity::SignedSha256 => None,
            PayloadIntegrity::UnsignedCrc32c => Some(ChecksumAlgorithm::Crc32C),
        }
    }

    /// The `x-amz-checksum-crc32c` value of `body`, when this mode sends one.
    fn checksum(self, body: &[u8]) -> Option<String> {
        self.algorithm().map(|_| crc32c_base64(body))
    }
}

/// A body's CRC32C as S3 headers carry it: the 4 big-endian bytes, base64.
pub fn crc32c_base64(body: &[u8]) -> String {
    let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, body) as u32;
    base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())
}

#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("S3 {op} of s3://{bucket}/{key} failed: {message}")]
    Request {
        op: &'static str,
        bucket: String,
        key: String,
        message: String,
    },
    #[error("bucket {bucket} does not exist (HTTP 404); create it or fix the bucket name")]
    NoSuchBucket { bucket: String },
    #[error(
        "access to bucket {bucket} denied (HTTP 403): the access key or secret is wrong, or the \
         key may not use this bucket"
    )]
    AccessDenied { bucket: String },
    #[error("bucket {bucket} is not reachable: {message}; check the endpoint and region")]
    Bucket { bucket: String, message: String },
    #[error(
        "object s3://{bucket}/{key} would need more than {MAX_PARTS} parts; raise the part size"
    )]
    TooManyParts { bucket: String, key: String },
    #[error("cannot read the S3 CA bundle {origin}: {source}")]
    CaFile {
        origin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the S3 CA bundle {origin} is not usable: {message}")]
    BadCa { origin: String, message: String },
    #[error(
        "TLS handshake with {endpoint} failed: {message}; if its certificate is signed by a \
         private CA, give that CA's certificate (--s3-ca-file, or caSecret in the storage spec)"
    )]
    Tls { endpoint: String, message: String },
    #[error("S3 part upload task for s3://{bucket}/{key} failed: {message}")]
    Task {
        bucket: String,
        key: String,
        message: String,
    },
}

/// Size of part `n` (1-based): `base` for the first 1,000 parts, then doubling every 1,000 parts
/// (capped at S3's 5 GiB). With the 5 MiB minimum base, 10,000 parts hold 4.8 TiB, about S3's
/// 5 TiB object limit, while objects under 5 GB never use parts larger than `base` — so memory
/// stays (workers × parts in flight × base) for any realistic chunk.
pub(crate) fn part_size(n: i32, base: usize) -> usize {
    let tier = ((n.max(1) - 1) / PARTS_PER_TIER) as u32;
    base.saturating_mul(1usize << tier.min(20))
        .min(MAX_PART_SIZE)
}

/// The SDK configuration for `cfg`.
fn client_config(cfg: &S3Config) -> Result<aws_sdk_s3::config::Builder, S3Error> {
    let creds = Credentials::new(
        cfg.access_key_id.clone(),
        cfg.secret_access_key.clone(),
        None,
        None,
        "environment",
    );
    let mut b = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(cfg.region.clone()))
        .credentials_provider(creds)
        .force_path_style(cfg.path_style)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(cfg.max_attempts.max(1))
                .with_initial_backoff(Duration::from_millis(200)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(300))
                .build(),
        )
        // Integrity in flight: see [`PayloadIntegrity`] (the uploads set their checksum
        // themselves). At rest, zstd frames carry content checksums and the manifest each
        // chunk's XXH3, checked on restore; a response CRC on top would only cost CPU.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    if let Some(ep) = &cfg.endpoint {
        b = b.endpoint_url(ep);
    }
    if let Some(ca) = &cfg.ca {
        b = b.http_client(ca.http_client()?);
    }
    Ok(b)
}

/// A client bound to one bucket.
#[derive(Clone, Debug)]
pub struct Bucket {
    client: Client,
    name: String,
    integrity: PayloadIntegrity,
}

/// What a finished object is: its key and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredObject {
    pub(crate) key: String,
    pub(crate) bytes: u64,
}

impl Bucket {
    /// Builds the client and checks the bucket is there and the credentials work.
    pub(crate) async fn open(cfg: &S3Config) -> Result<Bucket, S3Error> {
        Bucket::open_with(cfg, client_config(cfg)?).await
    }

    async fn open_with(
        cfg: &S3Config,
        conf: aws_sdk_s3::config::Builder,
    ) -> Result<Bucket, S3Error> {
        let bucket = Bucket {
            client: Client::from_conf(conf.build()),
            name: cfg.bucket.clone(),
            integrity: PayloadIntegrity::for_endpoint(cfg.endpoint.as_deref()),
        };
        bucket
            .client
            .head_bucket()
            .bucket(&bucket.name)
            .send()
            .await
            .map_err(|e| {
                let bucket = bucket.name.clone();
                if let Some(tls) = tls_failure(&e) {
                    return S3Error::Tls {
                        endpoint: cfg
                            .endpoint
                            .clone()
                            .unwrap_or_else(|| format!("AWS S3 ({})", cfg.region)),
                        message: tls.to_string(),
                    };
                }
                match e.raw_response().map(|r| r.status().as_u16()) {
                    Some(404) => S3Error::NoSuchBucket { bucket },
                    Some(403) => S3Error::AccessDenied { bucket },
                    _ => S3Error::Bucket {
                        bucket,
                        message: describe(&e),
                    },
                }
            })?;
        Ok(bucket)
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    fn err<E>(&self, op: &'static str, key: &str, e: &SdkError<E>) -> S3Error
    where
        E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    {
        S3Error::Request {
            op,
            bucket: self.name.clone(),
            key: key.to_string(),
            message: describe(e),
        }
    }

    /// Starts a streaming upload of `key`; its part buffers come from `budget`.
    pub(crate) fn writer(&self, key: String, base_part: usize, budget: PartBudget) -> ObjectWriter {
        ObjectWriter {
            bucket: self.clone(),
            key,
            base_part: base_part.max(MIN_PART_SIZE),
            budget,
            part: None,
            upload_id: None,
            next_part: 1,
            pending: VecDeque::new(),
            done: Vec::new(),
            bytes: 0,
        }
    }

    /// Uploads a small object in one request.
    pub(crate) async fn put(
        &self,
        key: &str,
        body: impl Into<Bytes>,
    ) -> Result<StoredObject, S3Error> {
        let body = body.into();
        let stored = StoredObject {
            key: key.to_string(),
            bytes: body.len() as u64,
        };
        let request = self
            .client
            .put_object()
            .bucket(&self.name)
            .key(key)
            .set_checksum_crc32_c(self.integrity.checksum(&body))
            .body(ByteStream::from(body))
            .customize();
        let sent = match self.integrity {
            PayloadIntegrity::SignedSha256 => request.send().await,
            PayloadIntegrity::UnsignedCrc32c => request.disable_payload_signing().send().await,
        };
        sent.map_err(|e| self.err("PutObject", key, &e))?;
        Ok(stored)
    }

    /// Opens `key` for streaming reads.
    pub(crate) async fn get(&self, key: &str) -> Result<ByteStream, S3Error> {
        let out = self
            .client
            .get_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
            .map_err(|e| self.err("GetObject", key, &e))?;
        Ok(out.body)
    }

    /// Reads a whole (small) object.
    pub(crate) async fn get_all(&self, key: &str) -> Result<Vec<u8>, S3Error> {
        let body = self.get(key).await?;
        let data = body.collect().await.map_err(|e| S3Error::Request {
            op: "GetObject",
            bucket: self.name.clone(),
            key: key.to_string(),
            message: e.to_string(),
        })?;
        Ok(data.to_vec())
    }

    /// Whether `key` exists.
    pub(crate) async fn exists(&self, key: &str) -> Result<bool, S3Error> {
        match self
            .client
            .head_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) => Err(self.err("HeadObject", key, &e)),
        }
    }

    /// Keys of multipart uploads still open under `prefix`, with their upload ids.
    pub(crate) async fn open_uploads(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, String)>, S3Error> {
        let out = self
            .client
            .list_multipart_uploads()
            .bucket(&self.name)
            .prefix(prefix)
            .send()
            .await
            .map_err(|e| self.err("ListMultipartUploads", prefix, &e))?;
        Ok(out
            .uploads()
            .iter()
            .filter_map(|u| Some((u.key()?.to_string(), u.upload_id()?.to_string())))
            .collect())
    }

    /// Aborts every open multipart upload under `prefix`.
    pub(crate) async fn abort_uploads(&self, prefix: &str) -> Result<usize, S3Error> {
        let uploads = self.open_uploads(prefix).await?;
        for (key, id) in &uploads {
            self.abort(key, id).await?;
        }
        Ok(uploads.len())
    }

    async fn abort(&self, key: &str, upload_id: &str) -> Result<(), S3Error> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.name)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| self.err("AbortMultipartUpload", key, &e))?;
        Ok(())
    }

    /// Keys of the objects under `prefix`.
    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<String>, S3Error> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.name)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| self.err("ListObjectsV2", prefix, &e))?;
            keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|o| o.key().map(String::from)),
            );
            token = out.next_continuation_token().map(String::from);
            if token.is_none() {
                return Ok(keys);
            }
        }
    }

    /// Deletes every object under `prefix`.
    pub(crate) async fn delete_prefix(&self, prefix: &str) -> Result<usize, S3Error> {
        let keys = self.list(prefix).await?;
        for batch in keys.chunks(1000) {
            let objects = batch
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| S3Error::Request {
                    op: "DeleteObjects",
                    bucket: self.name.clone(),
                    key: prefix.to_string(),
                    message: e.to_string(),
                })?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| S3Error::Request {
                    op: "DeleteObjects",
                    bucket: self.name.clone(),
                    key: prefix.to_string(),
                    message: e.to_string(),
                })?;
            self.client
                .delete_objects()
                .bucket(&self.name)
                .delete(delete)
                .send()
                .await
                .map_err(|e| self.err("DeleteObjects", prefix, &e))?;
        }
        Ok(keys.len())
    }
}

/// The TLS error (certificate, handshake) under a request that never got a response.
fn tls_failure<E>(e: &SdkError<E>) -> Option<&rustls::Error>
where
    E: std::error::Error + 'static,
{
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // io::Error::source() skips the error it wraps, and rustls errors travel inside
        // (nested) io::Errors: descend into the wrapped error instead.
        next = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// The SDK error with its whole chain (service code and message included).
fn describe<E>(e: &SdkError<E>) -> String
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    let status = e
        .raw_response()
        .map(|r| format!("HTTP {} ", r.status().as_u16()))
        .unwrap_or_default();
    match e.as_service_error() {
        Some(s) => format!(
            "{status}{}: {}",
            s.code().unwrap_or("error"),
            s.message().unwrap_or("no message")
        ),
        None => DisplayErrorContext(e).to_string(),
    }
}

/// The part buffers every writer of one backup shares: a writer takes one before it fills a
/// part and the part's upload gives it back. Memory for parts is at most `buffers` parts, however
/// many objects and workers there are; a writer whose next part has no buffer waits for an
/// upload to finish. Buffers are reused, not freed: a fresh multi-MiB buffer costs a page fault
/// and a zeroed page for every 4 KiB written into it.
#[derive(Clone, Debug)]
pub(crate) struct PartBudget {
    permits: Arc<Semaphore>,
    spare: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl PartBudget {
    pub(crate) fn new(buffers: usize) -> Self {
        PartBudget {
            permits: Arc::new(Semaphore::new(buffers.max(1))),
            spare: Arc::default(),
        }
    }

    /// Waits for a free buffer (empty, with whatever capacity it had); `None` only if the budget
    /// was closed (it never is).
    async fn take(&self) -> Option<PartBuffer> {
        let permit = self.permits.clone().acquire_owned().await.ok()?;
        let buf = self.spare_buffers().pop().unwrap_or_default();
        Some(PartBuffer { buf, permit })
    }

    fn spare_buffers(&self) -> MutexGuard<'_, Vec<Vec<u8>>> {
        // The list is only pushed to and popped from: a panic elsewhere cannot leave it torn.
        self.spare.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One buffer of a [`PartBudget`], held while it fills.
#[derive(Debug)]
struct PartBuffer {
    buf: Vec<u8>,
    permit: OwnedSemaphorePermit,
}

impl PartBuffer {
    /// The filled part as a body for the SDK; when the SDK drops its last reference (the upload
    /// ended, however), the buffer goes back to `budget`.
    fn into_body(self, budget: &PartBudget) -> Bytes {
        Bytes::from_owner(UploadingPart {
            buf: self.buf,
            budget: budget.clone(),
            _permit: self.permit,
        })
    }
}

/// A part's bytes while the SDK holds them.
struct UploadingPart {
    buf: Vec<u8>,
    budget: PartBudget,
    /// Released after `drop` returned the buffer (fields drop after `Drop::drop`), so a waiting
    /// writer finds it.
    _permit: OwnedSemaphorePermit,
}

impl AsRef<[u8]> for UploadingPart {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for UploadingPart {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        self.budget.spare_buffers().push(buf);
    }
}

/// A streaming upload: bytes are buffered up to one part and a full part goes up while the next
/// fills. Objects that fit in one part are a single PutObject. On any error the multipart upload
/// is aborted before the error is returned.
pub(crate) struct ObjectWriter {
    bucket: Bucket,
    key: String,
    base_part: usize,
    budget: PartBudget,
    /// The budget's buffer being filled.
    part: Option<PartBuffer>,
    upload_id: Option<String>,
    next_part: i32,
    pending: VecDeque<JoinHandle<Result<CompletedPart, S3Error>>>,
    done: Vec<CompletedPart>,
    bytes: u64,
}

impl ObjectWriter {
    /// Appends `data`, uploading a part whenever one is full. The buffer never grows past one
    /// part, and every part buffer is one of the budget's.
    pub(crate) async fn write(&mut self, mut data: &[u8]) -> Result<(), S3Error> {
        self.bytes += data.len() as u64;
        while !data.is_empty() {
            let target = part_size(self.next_part, self.base_part);
            let part = match &mut self.part {
                Some(part) => part,
                None => {
                    self.part
                        .insert(self.budget.take().await.ok_or_else(|| S3Error::Task {
                            bucket: self.bucket.name.clone(),
                            key: self.key.clone(),
                            message: "the part buffer budget was closed".to_string(),
                        })?)
                }
            };
            part.buf.reserve_exact(target - part.buf.len());
            let take = (target - part.buf.len()).min(data.len());
            part.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if part.buf.len() == target
                && let Err(e) = self.send_part().await
            {
                self.abort().await;
                return Err(e);
            }
        }
        Ok(())
    }

    /// The filled part as an upload body, or an empty one.
    fn take_body(&mut self) -> Bytes {
        self.part
            .take()
            .map(|part| part.into_body(&self.budget))
            .unwrap_or_default()
    }

    async fn send_part(&mut self) -> Result<(), S3Error> {
        if self.next_part > MAX_PARTS {
            return Err(S3Error::TooManyParts {
                bucket: self.bucket.name.clone(),
                key: self.key.clone(),
            });
        }
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let out = self
                    .bucket
                    .client
                    .create_multipart_upload()
                    .bucket(&self.bucket.name)
                    .key(&self.key)
                    .set_checksum_algorithm(self.bucket.integrity.algorithm())
                    .send()
                    .await
                    .map_err(|e| self.bucket.err("CreateMultipartUpload", &self.key, &e))?;
                let id = out.upload_id().unwrap_or_default().to_string();
                self.upload_id = Some(id.clone());
                id
            }
        };
        // Uploads that already finished report now: a failed part stops the object early.
        while self.pending.front().is_some_and(|h| h.is_finished()) {
            self.collect_oldest().await?;
        }
        let body = self.take_body();
        let n = self.next_part;
        self.next_part += 1;
        let bucket = self.bucket.clone();
        let key = self.key.clone();
        self.pending.push_back(tokio::spawn(async move {
            let checksum = bucket.integrity.checksum(&body);
            let request = bucket
                .client
                .upload_part()
                .bucket(&bucket.name)
                .key(&key)
                .upload_id(upload_id)
                .part_number(n)
                .set_checksum_crc32_c(checksum.clone())
                .body(ByteStream::from(body))
                .customize();
            let sent = match bucket.integrity {
                PayloadIntegrity::SignedSha256 => request.send().await,
                PayloadIntegrity::UnsignedCrc32c => request.disable_payload_signing().send().await,
            };
            let out = sent.map_err(|e| bucket.err("UploadPart", &key, &e))?;
            // CompleteMultipartUpload must name every part's checksum of an upload created
            // with one.
            Ok(CompletedPart::builder()
                .part_number(n)
                .set_e_tag(out.e_tag().map(String::from))
                .set_checksum_crc32_c(checksum)
                .build())
        }));
        Ok(())
    }

    async fn collect_oldest(&mut self) -> Result<(), S3Error> {
        if let Some(handle) = self.pending.pop_front() {
            let part = handle.await.map_err(|e| S3Error::Task {
                bucket: self.bucket.name.clone(),
                key: self.key.clone(),
                message: e.to_string(),
            })??;
            self.done.push(part);
        }
        Ok(())
    }

    /// Uploads what is left and completes the object.
    pub(crate) async fn finish(mut self) -> Result<StoredObject, S3Error> {
        match self.complete().await {
            Ok(obj) => Ok(obj),
            Err(e) => {
                self.abort().await;
                Err(e)
            }
        }
    }

    async fn complete(&mut self) -> Result<StoredObject, S3Error> {
        let stored = StoredObject {
            key: self.key.clone(),
            bytes: self.bytes,
        };
        let Some(_) = &self.upload_id else {
            let body = self.take_body();
            self.bucket.put(&self.key, body).await?;
            return Ok(stored);
        };
        if self.part.as_ref().is_some_and(|p| !p.buf.is_empty()) {
            self.send_part().await?;
        }
        while !self.pending.is_empty() {
            self.collect_oldest().await?;
        }
        self.done.sort_by_key(|p| p.part_number());
        let upload_id = self.upload_id.clone().unwrap_or_default();
        self.bucket
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket.name)
            .key(&self.key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(std::mem::take(&mut self.done)))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.bucket.err("CompleteMultipartUpload", &self.key, &e))?;
        self.upload_id = None;
        Ok(stored)
    }

    /// Stops the parts in flight and aborts the multipart upload (best effort: when S3 itself is
    /// gone the upload stays open until the bucket's lifecycle rule or the next sweep removes it;
    /// it never becomes an object).
    pub(crate) async fn abort(&mut self) {
        for h in self.pending.drain(..) {
            h.abort();
        }
        if let Some(id) = self.upload_id.take()
            && let Err(e) = self.bucket.abort(&self.key, &id).await
        {
            tracing::warn!(error = %e, "could not abort multipart upload");
        }
    }
}

#[cfg(test)]
mod tests {
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
}
