//! X protocol framing: `[u32 little-endian length][u8 message type][protobuf payload]`, where the
//! length counts the type byte plus the payload.
//!
//! [`FrameCodec`] is an incremental `tokio_util` codec: it waits for partial frames, rejects a
//! length above its limit before allocating anything for it, and never panics on malformed input.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Bytes in the frame header before the type byte.
pub(crate) const LENGTH_LEN: usize = 4;

/// Default upper bound for one frame (type byte + payload). The monitor only exchanges small
/// control messages, so 1 MiB is generous; the server's own default limit is far larger.
pub const DEFAULT_MAX_FRAME_LEN: usize = 1 << 20;

/// One frame: the message type byte and its still-encoded protobuf payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub msg_type: u8,
    pub payload: Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error(
        "X protocol frame declares {len} bytes, above the limit of {max}: the peer is not an X protocol server or sent a corrupt stream"
    )]
    TooLarge { len: usize, max: usize },
    #[error(
        "X protocol frame declares length 0, which cannot hold the type byte: the stream is corrupt"
    )]
    ZeroLength,
    #[error("connection closed in the middle of an X protocol frame ({buffered} bytes buffered)")]
    Truncated { buffered: usize },
    #[error("X protocol connection I/O failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Encodes and decodes [`Frame`]s with a maximum frame length.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_frame_len: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_LEN)
    }
}

impl FrameCodec {
    /// `max_frame_len` bounds the type byte plus payload of every frame in both directions; it is
    /// clamped to what the 32-bit length field can express.
    pub(crate) fn new(max_frame_len: usize) -> Self {
        Self {
            max_frame_len: max_frame_len.min(u32::MAX as usize),
        }
    }
}

/// Appends one frame to `out`. Fails only when the frame exceeds `max_frame_len`.
pub fn encode_frame(
    msg_type: u8,
    payload: &[u8],
    max_frame_len: usize,
    out: &mut BytesMut,
) -> Result<(), FrameError> {
    let len = payload.len() + 1;
    if len > max_frame_len.min(u32::MAX as usize) {
        return Err(FrameError::TooLarge {
            len,
            max: max_frame_len,
        });
    }
    out.reserve(LENGTH_LEN + len);
    out.put_u32_le(len as u32);
    out.put_u8(msg_type);
    out.put_slice(payload);
    Ok(())
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let Some(header) = src.get(..LENGTH_LEN) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len == 0 {
            return Err(FrameError::ZeroLength);
        }
        if len > self.max_frame_len {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_frame_len,
            });
        }
        let total = LENGTH_LEN + len;
        if src.len() < total {
            // Bounded by max_frame_len, checked above.
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(LENGTH_LEN);
        let msg_type = src.get_u8();
        let payload = src.split_to(len - 1).freeze();
        Ok(Some(Frame { msg_type, payload }))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(FrameError::Truncated {
                buffered: src.len(),
            }),
        }
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        encode_frame(frame.msg_type, &frame.payload, self.max_frame_len, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(data: &[u8]) -> BytesMut {
        BytesMut::from(data)
    }

    #[test]
    fn empty_payload_frame_is_five_bytes() {
        let mut out = BytesMut::new();
        encode_frame(1, &[], 16, &mut out).unwrap();
        assert_eq!(&out[..], &[1, 0, 0, 0, 1]);
    }

    #[test]
    fn decodes_one_frame_and_leaves_the_rest() {
        let mut src = bytes(&[3, 0, 0, 0, 11, 0xAA, 0xBB, 9, 9]);
        let frame = FrameCodec::default().decode(&mut src).unwrap().unwrap();
        assert_eq!(frame.msg_type, 11);
        assert_eq!(&frame.payload[..], &[0xAA, 0xBB]);
        assert_eq!(&src[..], &[9, 9]);
    }

    #[test]
    fn split_reads_at_every_byte_boundary() {
        let mut wire = BytesMut::new();
        encode_frame(2, b"hello", 64, &mut wire).unwrap();
        encode_frame(0, b"", 64, &mut wire).unwrap();
        for cut in 0..=wire.len() {
            let mut codec = FrameCodec::new(64);
            let mut src = BytesMut::new();
            let mut frames = Vec::new();
            for chunk in [&wire[..cut], &wire[cut..]] {
                src.extend_from_slice(chunk);
                while let Some(frame) = codec.decode(&mut src).unwrap() {
                    frames.push(frame);
                }
            }
            assert_eq!(frames.len(), 2, "cut at {cut}");
            assert_eq!(frames[0].msg_type, 2);
            assert_eq!(&frames[0].payload[..], b"hello");
            assert_eq!(frames[1].msg_type, 0);
            assert!(frames[1].payload.is_empty());
            assert!(src.is_empty());
        }
    }

    #[test]
    fn byte_by_byte_feed() {
        let mut wire = BytesMut::new();
        encode_frame(11, &[7; 300], 1024, &mut wire).unwrap();
        let mut codec = FrameCodec::new(1024);
        let mut src = BytesMut::new();
        let mut got = None;
        for (i, b) in wire.iter().enumerate() {
            src.put_u8(*b);
            let out = codec.decode(&mut src).unwrap();
            if i + 1 < wire.len() {
                assert!(out.is_none());
            } else {
                got = out;
            }
        }
        let frame = got.unwrap();
        assert_eq!(frame.payload.len(), 300);
    }

    #[test]
    fn oversized_length_is_rejected_before_the_body_arrives() {
        let mut src = bytes(&[0xFF, 0xFF, 0xFF, 0x7F]);
        let err = FrameCodec::new(1024).decode(&mut src).unwrap_err();
        assert!(
            matches!(
                err,
                FrameError::TooLarge {
                    len: 0x7FFF_FFFF,
                    max: 1024
                }
            ),
            "{err}"
        );
        assert!(src.capacity() < 1024, "nothing was allocated for the body");
    }

    #[test]
    fn limit_is_inclusive() {
        let mut wire = BytesMut::new();
        encode_frame(5, &[0; 9], 10, &mut wire).unwrap();
        assert!(FrameCodec::new(10).decode(&mut wire).unwrap().is_some());
        assert!(matches!(
            encode_frame(5, &[0; 10], 10, &mut BytesMut::new()),
            Err(FrameError::TooLarge { len: 11, max: 10 })
        ));
    }

    #[test]
    fn zero_length_is_an_error() {
        let mut src = bytes(&[0, 0, 0, 0, 1]);
        assert!(matches!(
            FrameCodec::default().decode(&mut src),
            Err(FrameError::ZeroLength)
        ));
    }

    #[test]
    fn truncated_frame_at_eof_is_an_error() {
        let mut codec = FrameCodec::default();
        let mut src = bytes(&[10, 0, 0, 0, 2, 1, 2]);
        assert!(codec.decode(&mut src).unwrap().is_none());
        assert!(matches!(
            codec.decode_eof(&mut src),
            Err(FrameError::Truncated { buffered: 7 })
        ));
        let mut header_only = bytes(&[10, 0]);
        assert!(matches!(
            codec.decode_eof(&mut header_only),
            Err(FrameError::Truncated { buffered: 2 })
        ));
        assert!(codec.decode_eof(&mut BytesMut::new()).unwrap().is_none());
    }

    #[test]
    fn unknown_type_passes_through_framing() {
        let mut src = bytes(&[2, 0, 0, 0, 0xEE, 0x42]);
        let frame = FrameCodec::default().decode(&mut src).unwrap().unwrap();
        assert_eq!(frame.msg_type, 0xEE);
        assert_eq!(&frame.payload[..], &[0x42]);
    }

    #[test]
    fn encoder_round_trips_through_decoder() {
        let mut codec = FrameCodec::default();
        let mut wire = BytesMut::new();
        let frame = Frame {
            msg_type: 17,
            payload: Bytes::from_static(b"\x08\x01"),
        };
        codec.encode(frame.clone(), &mut wire).unwrap();
        assert_eq!(codec.decode(&mut wire).unwrap(), Some(frame));
    }

    proptest::proptest! {
        #[test]
        fn decoder_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let mut codec = FrameCodec::new(32);
            let mut src = BytesMut::from(&data[..]);
            while let Ok(Some(_)) = codec.decode(&mut src) {}
            let _ = codec.decode_eof(&mut src);
        }
    }
}
