//! The S3 edge: a client for one bucket, streaming multipart writes with bounded memory,
//! streaming reads, and the clean-up a failed backup needs. The multipart writer is in
//! [`writer`], the tests in `tests.rs`.

use std::path::Path;
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
use aws_sdk_s3::types::{ChecksumAlgorithm, Delete, ObjectIdentifier};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use base64::Engine;
use bytes::Bytes;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

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
pub(crate) struct Bucket {
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

    /// A request `op` on `key` of this bucket failed.
    fn failed(&self, op: &'static str, key: &str, message: impl ToString) -> S3Error {
        S3Error::Request {
            op,
            bucket: self.name.clone(),
            key: key.to_string(),
            message: message.to_string(),
        }
    }

    /// A request `op` on `key` of this bucket failed in the SDK.
    fn err<E>(&self, op: &'static str, key: &str, e: &SdkError<E>) -> S3Error
    where
        E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    {
        self.failed(op, key, describe(e))
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
        let data = body
            .collect()
            .await
            .map_err(|e| self.failed("GetObject", key, e))?;
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
                .map_err(|e| self.failed("DeleteObjects", prefix, e))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| self.failed("DeleteObjects", prefix, e))?;
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

mod writer;
pub(crate) use writer::PartBudget;

#[cfg(test)]
mod tests;
