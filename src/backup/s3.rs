//! The S3 edge: a client for one bucket, streaming multipart writes with bounded memory,
//! streaming reads, and the clean-up a failed backup needs.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

/// S3's smallest part (all but the last).
pub const MIN_PART_SIZE: usize = 5 << 20;
/// S3's largest part.
pub const MAX_PART_SIZE: usize = 5 << 30;
/// S3's part-count limit.
pub const MAX_PARTS: i32 = 10_000;
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
pub fn part_size(n: i32, base: usize) -> usize {
    let tier = ((n.max(1) - 1) / PARTS_PER_TIER) as u32;
    base.saturating_mul(1usize << tier.min(20))
        .min(MAX_PART_SIZE)
}

/// A client bound to one bucket.
#[derive(Clone, Debug)]
pub struct Bucket {
    client: Client,
    name: String,
}

/// What a finished object is: its key and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    pub key: String,
    pub bytes: u64,
}

impl Bucket {
    /// Builds the client and checks the bucket is there and the credentials work.
    pub async fn open(cfg: &S3Config) -> Result<Bucket, S3Error> {
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
            // Integrity: SigV4 signs every payload's SHA-256 (S3 refuses a part that does not
            // match), zstd frames carry content checksums and the manifest each chunk's XXH3,
            // checked on restore; a per-request CRC on top would only cost CPU.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(ep) = &cfg.endpoint {
            b = b.endpoint_url(ep);
        }
        let bucket = Bucket {
            client: Client::from_conf(b.build()),
            name: cfg.bucket.clone(),
        };
        bucket
            .client
            .head_bucket()
            .bucket(&bucket.name)
            .send()
            .await
            .map_err(|e| {
                let bucket = bucket.name.clone();
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

    pub fn name(&self) -> &str {
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
    pub fn writer(&self, key: String, base_part: usize, budget: PartBudget) -> ObjectWriter {
        ObjectWriter {
            bucket: self.clone(),
            key,
            base_part: base_part.max(MIN_PART_SIZE),
            budget,
            permit: None,
            buf: Vec::new(),
            upload_id: None,
            next_part: 1,
            pending: VecDeque::new(),
            done: Vec::new(),
            bytes: 0,
        }
    }

    /// Uploads a small object in one request.
    pub async fn put(&self, key: &str, body: Vec<u8>) -> Result<StoredObject, S3Error> {
        let stored = StoredObject {
            key: key.to_string(),
            bytes: body.len() as u64,
        };
        self.client
            .put_object()
            .bucket(&self.name)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| self.err("PutObject", key, &e))?;
        Ok(stored)
    }

    /// Opens `key` for streaming reads.
    pub async fn get(&self, key: &str) -> Result<ByteStream, S3Error> {
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
    pub async fn get_all(&self, key: &str) -> Result<Vec<u8>, S3Error> {
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
    pub async fn exists(&self, key: &str) -> Result<bool, S3Error> {
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
    pub async fn open_uploads(&self, prefix: &str) -> Result<Vec<(String, String)>, S3Error> {
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
    pub async fn abort_uploads(&self, prefix: &str) -> Result<usize, S3Error> {
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
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, S3Error> {
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
    pub async fn delete_prefix(&self, prefix: &str) -> Result<usize, S3Error> {
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
/// upload to finish.
#[derive(Clone, Debug)]
pub struct PartBudget(Arc<Semaphore>);

impl PartBudget {
    pub fn new(buffers: usize) -> Self {
        PartBudget(Arc::new(Semaphore::new(buffers.max(1))))
    }

    async fn take(&self) -> OwnedSemaphorePermit {
        // The semaphore is never closed, so acquiring only waits.
        loop {
            if let Ok(p) = self.0.clone().acquire_owned().await {
                return p;
            }
        }
    }
}

/// A streaming upload: bytes are buffered up to one part and a full part goes up while the next
/// fills. Objects that fit in one part are a single PutObject. On any error the multipart upload
/// is aborted before the error is returned.
pub struct ObjectWriter {
    bucket: Bucket,
    key: String,
    base_part: usize,
    budget: PartBudget,
    /// The budget's buffer that `buf` fills.
    permit: Option<OwnedSemaphorePermit>,
    buf: Vec<u8>,
    upload_id: Option<String>,
    next_part: i32,
    pending: VecDeque<JoinHandle<Result<CompletedPart, S3Error>>>,
    done: Vec<CompletedPart>,
    bytes: u64,
}

impl ObjectWriter {
    /// Appends `data`, uploading a part whenever one is full. The buffer never grows past one
    /// part, and every part buffer is one of the budget's.
    pub async fn write(&mut self, mut data: &[u8]) -> Result<(), S3Error> {
        self.bytes += data.len() as u64;
        while !data.is_empty() {
            let target = part_size(self.next_part, self.base_part);
            if self.permit.is_none() {
                self.permit = Some(self.budget.take().await);
            }
            if self.buf.capacity() == 0 {
                self.buf.reserve_exact(target);
            }
            let take = (target - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == target
                && let Err(e) = self.send_part().await
            {
                self.abort().await;
                return Err(e);
            }
        }
        Ok(())
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
                    .send()
                    .await
                    .map_err(|e| self.bucket.err("CreateMultipartUpload", &self.key, &e))?;
                let id = out.upload_id().unwrap_or_default().to_string();
                self.upload_id = Some(id.clone());
                id
            }
        };
        let body = Bytes::from(std::mem::take(&mut self.buf));
        let permit = self.permit.take();
        let n = self.next_part;
        self.next_part += 1;
        let bucket = self.bucket.clone();
        let key = self.key.clone();
        self.pending.push_back(tokio::spawn(async move {
            let _buffer_returns_after_upload = permit;
            let out = bucket
                .client
                .upload_part()
                .bucket(&bucket.name)
                .key(&key)
                .upload_id(upload_id)
                .part_number(n)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| bucket.err("UploadPart", &key, &e))?;
            Ok(CompletedPart::builder()
                .part_number(n)
                .set_e_tag(out.e_tag().map(String::from))
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
    pub async fn finish(mut self) -> Result<StoredObject, S3Error> {
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
            self.bucket
                .put(&self.key, std::mem::take(&mut self.buf))
                .await?;
            self.permit = None;
            return Ok(stored);
        };
        if !self.buf.is_empty() {
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
    pub async fn abort(&mut self) {
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

    #[tokio::test]
    async fn part_buffers_wait_for_an_upload_to_give_one_back() {
        let budget = PartBudget::new(2);
        let a = budget.take().await;
        let _b = budget.take().await;
        let third = tokio::time::timeout(Duration::from_millis(50), budget.take()).await;
        assert!(third.is_err(), "a third buffer is never handed out");
        drop(a);
        tokio::time::timeout(Duration::from_secs(1), budget.take())
            .await
            .expect("a returned buffer is handed out again");
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
