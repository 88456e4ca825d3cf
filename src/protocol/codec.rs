//! TCP framing of the port-9999 protocol (PROTOCOL.md §1.2): a 4-byte big-endian payload length,
//! then the obfuscated JSON. UDP carries the obfuscated JSON without the prefix.
//!
//! [`FrameCodec`] is a `tokio_util` codec: decoding a partial frame returns `Ok(None)` ("need
//! more"), never an error; a length over the cap is an error before anything is allocated.
//! Some old firmware answers with a length of 0 and ends the reply by closing the stream; the
//! codec then collects bytes until EOF (still capped).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::cipher;

/// Size of the length prefix.
pub const HEADER_LEN: usize = 4;

/// Default cap on a reply: a six-outlet strip's sysinfo is ~3 KiB and python-kasa assumes a
/// device never builds more than ~16 KiB, so 64 KiB leaves room without trusting a hostile header.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;

/// Why a byte stream is not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length header announces more than the cap allows.
    #[error("frame length {len} exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    /// A zero-length (read-until-EOF) reply grew past the cap.
    #[error("unterminated reply exceeds the {max}-byte limit")]
    UnterminatedTooLarge { max: usize },
    /// The stream ended in the middle of a frame.
    #[error("connection closed after {got} of {expected} bytes of a frame")]
    Truncated { got: usize, expected: usize },
}

/// Where decoding a buffer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameStatus {
    /// A whole frame: the payload is `buf[HEADER_LEN..HEADER_LEN + len]`.
    Complete { len: usize },
    /// `needed` more bytes must arrive before a frame is complete.
    Incomplete { needed: usize },
    /// The header says 0: the reply runs until the peer closes the stream.
    UntilEof,
}

/// Inspects the start of `buf` without allocating or consuming anything.
pub fn check_frame(buf: &[u8], max: usize) -> Result<FrameStatus, FrameError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(FrameStatus::Incomplete {
            needed: HEADER_LEN - buf.len(),
        });
    };
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if len == 0 {
        return Ok(FrameStatus::UntilEof);
    }
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let have = buf.len() - HEADER_LEN;
    if have < len {
        Ok(FrameStatus::Incomplete { needed: len - have })
    } else {
        Ok(FrameStatus::Complete { len })
    }
}

/// Builds a complete TCP frame (header + obfuscated payload) from plain JSON bytes.
pub fn encode_frame(plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + plain.len());
    out.extend_from_slice(&(plain.len() as u32).to_be_bytes());
    out.extend_from_slice(plain);
    cipher::encrypt_in_place(&mut out[HEADER_LEN..]);
    out
}

/// Builds a UDP datagram (no prefix) from plain JSON bytes.
pub fn encode_datagram(plain: &[u8]) -> Vec<u8> {
    cipher::encrypt(plain)
}

/// Decodes a UDP datagram into plain bytes.
pub fn decode_datagram(datagram: &[u8]) -> Vec<u8> {
    cipher::decrypt(datagram)
}

/// Length-prefixed framing with the cipher applied; items are plain (de-obfuscated) payloads.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max: usize,
    until_eof: bool,
}

impl FrameCodec {
    /// A codec that refuses frames longer than `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            until_eof: false,
        }
    }

    /// The cap on a frame's payload.
    pub fn max_frame(&self) -> usize {
        self.max
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

impl Decoder for FrameCodec {
    type Item = Bytes;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        if self.until_eof {
            if src.len() > self.max {
                return Err(FrameError::UnterminatedTooLarge { max: self.max }.into());
            }
            return Ok(None);
        }
        match check_frame(src, self.max)? {
            FrameStatus::Incomplete { needed } => {
                src.reserve(needed);
                Ok(None)
            }
            FrameStatus::UntilEof => {
                src.advance(HEADER_LEN);
                self.until_eof = true;
                self.decode(src)
            }
            FrameStatus::Complete { len } => {
                src.advance(HEADER_LEN);
                let mut payload = src.split_to(len);
                cipher::decrypt_in_place(&mut payload);
                Ok(Some(payload.freeze()))
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        if self.until_eof {
            self.until_eof = false;
            if src.len() > self.max {
                return Err(FrameError::UnterminatedTooLarge { max: self.max }.into());
            }
            let mut payload = src.split();
            cipher::decrypt_in_place(&mut payload);
            return Ok(Some(payload.freeze()));
        }
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        if src.is_empty() {
            return Ok(None);
        }
        let (got, expected) = match check_frame(src, self.max)? {
            FrameStatus::Incomplete { needed } if src.len() >= HEADER_LEN => {
                (src.len() - HEADER_LEN, src.len() - HEADER_LEN + needed)
            }
            _ => (src.len(), HEADER_LEN),
        };
        src.clear();
        Err(FrameError::Truncated { got, expected }.into())
    }
}

impl Encoder<&[u8]> for FrameCodec {
    type Error = CodecError;

    fn encode(&mut self, plain: &[u8], dst: &mut BytesMut) -> Result<(), CodecError> {
        if plain.len() > self.max {
            return Err(FrameError::TooLarge {
                len: plain.len(),
                max: self.max,
            }
            .into());
        }
        dst.reserve(HEADER_LEN + plain.len());
        dst.put_u32(plain.len() as u32);
        let start = dst.len();
        dst.extend_from_slice(plain);
        cipher::encrypt_in_place(&mut dst[start..]);
        Ok(())
    }
}

/// Errors of the codec: a bad frame, or the I/O beneath it.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYSINFO: &[u8] = br#"{"system":{"get_sysinfo":{}}}"#;

    fn frame(plain: &[u8]) -> BytesMut {
        BytesMut::from(&encode_frame(plain)[..])
    }

    #[test]
    fn encodes_the_reference_frame() {
        let expected =
            hex::decode("0000001dd0f281f88bff9af7d5ef94b6d1b4c09fec95e68fe187e8caf08bf68bf6")
                .expect("hex");
        assert_eq!(encode_frame(SYSINFO), expected);
        let mut dst = BytesMut::new();
        FrameCodec::default()
            .encode(SYSINFO, &mut dst)
            .expect("encode");
        assert_eq!(&dst[..], &expected[..]);
    }

    #[test]
    fn header_fragment_needs_more() {
        let mut codec = FrameCodec::default();
        let full = frame(SYSINFO);
        let mut buf = BytesMut::from(&full[..2]);
        assert!(codec.decode(&mut buf).expect("no error").is_none());
        assert_eq!(buf.len(), 2, "nothing consumed");
        buf.extend_from_slice(&full[2..]);
        assert_eq!(
            &codec.decode(&mut buf).expect("ok").expect("frame")[..],
            SYSINFO
        );
    }

    #[test]
    fn partial_body_needs_more() {
        let mut codec = FrameCodec::default();
        let full = frame(SYSINFO);
        let mut buf = BytesMut::from(&full[..10]);
        assert!(codec.decode(&mut buf).expect("no error").is_none());
        assert_eq!(
            check_frame(&buf, DEFAULT_MAX_FRAME),
            Ok(FrameStatus::Incomplete {
                needed: full.len() - 10
            })
        );
        buf.extend_from_slice(&full[10..]);
        assert_eq!(
            &codec.decode(&mut buf).expect("ok").expect("frame")[..],
            SYSINFO
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn two_frames_in_one_buffer() {
        let mut codec = FrameCodec::default();
        let second = br#"{"emeter":{"get_realtime":{}}}"#;
        let mut buf = frame(SYSINFO);
        buf.extend_from_slice(&frame(second));
        assert_eq!(
            &codec.decode(&mut buf).expect("ok").expect("one")[..],
            SYSINFO
        );
        assert_eq!(
            &codec.decode(&mut buf).expect("ok").expect("two")[..],
            second
        );
        assert!(codec.decode(&mut buf).expect("ok").is_none());
    }

    #[test]
    fn oversized_length_is_refused_before_the_body_arrives() {
        let mut codec = FrameCodec::new(1024);
        let mut buf = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff][..]);
        let cap_before = buf.capacity();
        match codec.decode(&mut buf) {
            Err(CodecError::Frame(FrameError::TooLarge { len, max })) => {
                assert_eq!(len, 0x7fff_ffff);
                assert_eq!(max, 1024);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert_eq!(buf.capacity(), cap_before, "nothing was reserved for it");
    }

    #[test]
    fn zero_length_reads_until_eof() {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::from(&[0, 0, 0, 0][..]);
        buf.extend_from_slice(&cipher::encrypt(SYSINFO));
        assert!(codec.decode(&mut buf).expect("ok").is_none());
        let got = codec.decode_eof(&mut buf).expect("ok").expect("frame");
        assert_eq!(&got[..], SYSINFO);
    }

    #[test]
    fn zero_length_stream_is_capped() {
        let mut codec = FrameCodec::new(16);
        let mut buf = BytesMut::from(&[0, 0, 0, 0][..]);
        buf.extend_from_slice(&[b'x'; 32]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CodecError::Frame(FrameError::UnterminatedTooLarge {
                max: 16
            }))
        ));
    }

    #[test]
    fn eof_mid_frame_is_truncated() {
        let mut codec = FrameCodec::default();
        let full = frame(SYSINFO);
        let mut buf = BytesMut::from(&full[..12]);
        match codec.decode_eof(&mut buf) {
            Err(CodecError::Frame(FrameError::Truncated { got, expected })) => {
                assert_eq!(got, 8);
                assert_eq!(expected, SYSINFO.len());
            }
            other => panic!("expected Truncated, got {other:?}"),
        }
        let mut buf = BytesMut::from(&full[..3]);
        assert!(matches!(
            codec.decode_eof(&mut buf),
            Err(CodecError::Frame(FrameError::Truncated { .. }))
        ));
    }

    #[test]
    fn garbage_with_plausible_header_decodes_to_bytes_not_panic() {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::from(&[0, 0, 0, 3, 0xde, 0xad, 0xbe][..]);
        let got = codec
            .decode(&mut buf)
            .expect("framing is fine")
            .expect("frame");
        assert_eq!(got.len(), 3);
        assert!(serde_json::from_slice::<serde_json::Value>(&got).is_err());
    }

    #[test]
    fn datagrams_have_no_prefix() {
        let d = encode_datagram(SYSINFO);
        assert_eq!(d.len(), SYSINFO.len());
        assert_eq!(decode_datagram(&d), SYSINFO);
    }

    proptest::proptest! {
        #[test]
        fn decoder_never_panics(chunks: Vec<Vec<u8>>) {
            let mut codec = FrameCodec::new(4096);
            let mut buf = BytesMut::new();
            for chunk in chunks {
                buf.extend_from_slice(&chunk);
                loop {
                    match codec.decode(&mut buf) {
                        Ok(Some(_)) => continue,
                        Ok(None) => break,
                        Err(_) => { buf.clear(); codec = FrameCodec::new(4096); break; }
                    }
                }
            }
            let _ = codec.decode_eof(&mut buf);
        }

        #[test]
        fn frames_round_trip_in_any_split(payload: Vec<u8>, split in 0usize..64) {
            let mut codec = FrameCodec::default();
            let full = encode_frame(&payload);
            let at = split.min(full.len());
            let mut buf = BytesMut::from(&full[..at]);
            let early = codec.decode(&mut buf).expect("no error");
            let got = match early {
                Some(f) => f,
                None => {
                    buf.extend_from_slice(&full[at..]);
                    match codec.decode(&mut buf).expect("no error") {
                        Some(f) => f,
                        // an empty payload is the zero-length (until-EOF) form
                        None => codec.decode_eof(&mut buf).expect("ok").expect("frame"),
                    }
                }
            };
            proptest::prop_assert_eq!(&got[..], &payload[..]);
        }
    }
}
