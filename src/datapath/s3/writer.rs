//! Streaming multipart writes with bounded memory: the part buffers a backup's writers share
//! ([`PartBudget`]) and one object's writer ([`ObjectWriter`]), which uploads each part as soon
//! as it is full, several at a time, and completes (or aborts) the upload.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::*;

impl Bucket {
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
}

/// The part buffers every writer of one backup shares: a writer takes one before it fills a
/// part and the part's upload gives it back. Memory for parts is at most `buffers` parts, however
/// many objects and workers there are; a writer whose next part has no buffer waits for an
/// upload to finish. Buffers are reused, not freed: a fresh multi-MiB buffer costs a page fault
/// and a zeroed page for every 4 KiB written into it.
#[derive(Clone, Debug)]
pub(crate) struct PartBudget {
    pub(super) permits: Arc<Semaphore>,
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
    pub(super) async fn take(&self) -> Option<PartBuffer> {
        let permit = self.permits.clone().acquire_owned().await.ok()?;
        let buf = self.spare_buffers().pop().unwrap_or_default();
        Some(PartBuffer { buf, permit })
    }

    pub(super) fn spare_buffers(&self) -> MutexGuard<'_, Vec<Vec<u8>>> {
        // The list is only pushed to and popped from: a panic elsewhere cannot leave it torn.
        self.spare.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One buffer of a [`PartBudget`], held while it fills.
#[derive(Debug)]
pub(super) struct PartBuffer {
    pub(super) buf: Vec<u8>,
    permit: OwnedSemaphorePermit,
}

impl PartBuffer {
    /// The filled part as a body for the SDK; when the SDK drops its last reference (the upload
    /// ended, however), the buffer goes back to `budget`.
    pub(super) fn into_body(self, budget: &PartBudget) -> Bytes {
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
