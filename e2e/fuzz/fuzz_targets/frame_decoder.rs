//! Fuzzes the X protocol frame decoder and message decoders with arbitrary server bytes, fed in
//! arbitrary chunks. Checks: no panic; chunked decoding yields the same frames as decoding all at
//! once; every frame re-encodes to exactly the bytes it was decoded from.
#![no_main]

#[allow(dead_code)]
#[path = "../../../src/xproto/frame.rs"]
mod frame;
#[allow(dead_code)]
#[path = "../../../src/xproto/messages.rs"]
mod messages;
#[allow(dead_code)]
#[path = "../../../src/xproto/notice.rs"]
mod notice;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

const MAX_FRAME: usize = 4096;

/// Decodes `chunks` in order; returns the frames and whether decoding stopped on an error.
fn decode_chunks<'a>(chunks: impl Iterator<Item = &'a [u8]>) -> (Vec<frame::Frame>, bool) {
    let mut codec = frame::FrameCodec::new(MAX_FRAME);
    let mut src = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        src.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut src) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(_) => return (frames, true),
            }
        }
    }
    let failed = codec.decode_eof(&mut src).is_err();
    (frames, failed)
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk_len, body)) = data.split_first() else {
        return;
    };
    let (whole, whole_failed) = decode_chunks(std::iter::once(body));
    let (chunked, chunked_failed) = decode_chunks(body.chunks(usize::from(chunk_len).max(1)));
    assert_eq!(whole, chunked);
    assert_eq!(whole_failed, chunked_failed);

    let mut reencoded = BytesMut::new();
    for frame in &whole {
        frame::encode_frame(frame.msg_type, &frame.payload, MAX_FRAME, &mut reencoded).unwrap();
        if let Ok(messages::ServerMessage::Notice(n)) = messages::ServerMessage::decode(frame) {
            let _ = notice::group_replication_event(&n);
        }
        let _ = messages::ClientMessage::decode(frame);
    }
    assert_eq!(&reencoded[..], &body[..reencoded.len()]);
});
