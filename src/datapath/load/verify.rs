//! A chunk's object as it streams from S3 into `LOAD DATA`: decompressed, hashed and checked
//! against the manifest on the way, so a corrupt or foreign object aborts the load before its
//! transaction commits.

use std::sync::{Arc, Mutex};

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use xxhash_rust::xxh3::Xxh3;
use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};

use crate::datapath::manifest::{self, ChunkEntry};

/// Decompressing stream state: counts the stored bytes, lets the decoder check every frame's
/// content checksum, hashes the decompressed rows and, at the end, compares sizes and hash with
/// the manifest. A mismatch ends the stream with an error (so the server sees
/// an aborted load) and leaves the reason in `verdict`.
struct Verify {
    body: ByteStream,
    decoder: Decoder<'static>,
    chunk: ChunkEntry,
    object_bytes: u64,
    raw: (Xxh3, u64),
    frame_done: bool,
    verdict: Arc<Mutex<Option<String>>>,
    /// Decoder output space, allocated once per chunk (a fresh buffer per network read would be
    /// a new mapping to fault in every time).
    scratch: Vec<u8>,
}

pub(super) fn verified_rows(
    body: ByteStream,
    chunk: ChunkEntry,
    verdict: Arc<Mutex<Option<String>>>,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let state = Decoder::new().map(|decoder| Verify {
        body,
        decoder,
        chunk,
        object_bytes: 0,
        raw: (Xxh3::new(), 0),
        frame_done: false,
        verdict,
        scratch: vec![0u8; 256 << 10],
    });
    futures::stream::unfold(Some(state), |state| async move {
        let mut s = match state? {
            Ok(s) => s,
            Err(e) => return Some((Err(e), None)),
        };
        match s.body.next().await {
            Some(Ok(input)) => match s.decode(&input) {
                Ok(out) => Some((Ok(out), Some(Ok(s)))),
                Err(e) => Some((Err(s.fail(e.to_string())), None)),
            },
            Some(Err(e)) => Some((
                Err(std::io::Error::other(format!(
                    "reading the object from S3: {e}"
                ))),
                None,
            )),
            None => match s.check() {
                Ok(()) => None,
                Err(detail) => Some((Err(s.fail(detail)), None)),
            },
        }
    })
}

impl Verify {
    fn decode(&mut self, input: &[u8]) -> std::io::Result<Bytes> {
        self.object_bytes += input.len() as u64;
        let mut out = Vec::with_capacity(input.len() * 4);
        let buf = &mut self.scratch;
        let mut inb = InBuffer::around(input);
        loop {
            let mut outb = OutBuffer::around(&mut buf[..]);
            let hint = self.decoder.run(&mut inb, &mut outb)?;
            let n = outb.pos();
            out.extend_from_slice(&buf[..n]);
            self.frame_done = hint == 0;
            if inb.pos() == input.len() && n < buf.len() {
                break;
            }
        }
        self.raw.0.update(&out);
        self.raw.1 += out.len() as u64;
        Ok(Bytes::from(out))
    }

    fn check(&mut self) -> Result<(), String> {
        let c = &self.chunk;
        if self.object_bytes != c.object_bytes {
            return Err(format!(
                "stored object is {} bytes, the manifest says {}",
                self.object_bytes, c.object_bytes
            ));
        }
        if !self.frame_done {
            return Err("the zstd stream is truncated".to_string());
        }
        let raw = manifest::xxh3_hex(self.raw.0.digest());
        if self.raw.1 != c.raw_bytes || raw != c.raw_xxh3 {
            return Err(format!(
                "decompressed rows are {} bytes with XXH3 {raw}, the manifest says {} bytes with XXH3 {}",
                self.raw.1, c.raw_bytes, c.raw_xxh3
            ));
        }
        Ok(())
    }

    fn fail(&self, detail: String) -> std::io::Error {
        if let Ok(mut v) = self.verdict.lock() {
            v.get_or_insert(detail.clone());
        }
        std::io::Error::other(detail)
    }
}
