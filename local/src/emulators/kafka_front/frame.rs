//! Kafka's framing, and the part of a request header that every request shares.
//!
//! Everything on a Kafka connection is a *frame*: a 4-byte big-endian size, then that many bytes.
//! A request's bytes start with its header:
//!
//! ```text
//! api_key i16 | api_version i16 | correlation_id i32 | client_id nullable string (i16 length) | tagged fields (header v2)
//! ```
//!
//! Header v1 has the first four; header v2, used by an API's *flexible* versions (those whose
//! message definition lists them under `flexibleVersions`: Produce ≥ 9, Metadata ≥ 9,
//! SaslAuthenticate ≥ 2, InitProducerId ≥ 2, ApiVersions ≥ 3 …), adds tagged fields — but keeps
//! `client_id` a classic i16-length string, so that any broker can read who is asking. The first
//! eight bytes are the same in every version of every API, and they are all the front reads of a
//! request it passes through: the key and version say how to read the broker's answer.
//!
//! A response starts with the `correlation_id` (header v0), plus tagged fields for flexible
//! versions (header v1) — except ApiVersions, whose response header is always v0: a client reads
//! it before it knows which versions the broker speaks.
//!
//! Requests the front answers or judges are decoded whole, and the responses it writes encoded,
//! with the `kafka-protocol` crate's types, generated from Apache Kafka's own JSON message
//! definitions for every version; each type knows its header version ([`HeaderVersion`]).

use std::io;

use anyhow::{Context, Result, anyhow};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The largest frame read: Kafka's own default limit for a request (`socket.request.max.bytes`).
pub const MAX_FRAME: usize = 100 * 1024 * 1024;

/// One frame, its 4-byte size included (a frame passed on is written as it was read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame(Bytes);

impl Frame {
    /// Frames `body`.
    pub fn from_body(body: &[u8]) -> Self {
        let mut buf = BytesMut::with_capacity(4 + body.len());
        buf.put_i32(body.len() as i32);
        buf.put_slice(body);
        Self(buf.freeze())
    }

    /// The bytes after the size.
    pub fn body(&self) -> Bytes {
        self.0.slice(4..)
    }

    /// The whole frame, as it goes on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Reads one frame; `None` when the peer closed the connection between frames.
pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<Frame>> {
    let mut size = [0u8; 4];
    match r.read_exact(&mut size).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let declared = i32::from_be_bytes(size);
    let len = usize::try_from(declared)
        .ok()
        .filter(|n| *n <= MAX_FRAME)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("a frame of {declared} bytes")))?;
    let mut buf = BytesMut::zeroed(4 + len);
    buf[..4].copy_from_slice(&size);
    r.read_exact(&mut buf[4..]).await?;
    Ok(Some(Frame(buf.freeze())))
}

/// The fixed start of every request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestKey {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

impl RequestKey {
    /// Reads it from a request's body; `None` if it is shorter than that.
    pub fn peek(body: &[u8]) -> Option<Self> {
        let i16_at = |i: usize| Some(i16::from_be_bytes(body.get(i..i + 2)?.try_into().ok()?));
        Some(Self {
            api_key: i16_at(0)?,
            api_version: i16_at(2)?,
            correlation_id: i32::from_be_bytes(body.get(4..8)?.try_into().ok()?),
        })
    }

    /// The API, if the front knows it.
    pub fn api(&self) -> Option<ApiKey> {
        ApiKey::try_from(self.api_key).ok()
    }
}

/// The request's body after its header (any API, any version), without decoding the header: the
/// header version is the API's ([`ApiKey::request_header_version`]), the layout the module docs'.
pub fn after_header(body: &[u8], api: ApiKey, version: i16) -> Option<&[u8]> {
    let header_version = api.request_header_version(version);
    let mut rest = body.get(8..)?;
    if header_version >= 1 {
        let len = i16::from_be_bytes(rest.get(..2)?.try_into().ok()?);
        let skip = 2 + usize::try_from(len).unwrap_or(0); // -1: null
        rest = rest.get(skip..)?;
    }
    if header_version >= 2 {
        let mut fields = read_uvarint(&mut rest)?;
        while fields > 0 {
            let _tag = read_uvarint(&mut rest)?;
            let size = read_uvarint(&mut rest)? as usize;
            rest = rest.get(size..)?;
            fields -= 1;
        }
    }
    Some(rest)
}

/// An unsigned varint (LEB128, as the protocol's compact lengths and tagged fields use).
pub fn read_uvarint(buf: &mut &[u8]) -> Option<u32> {
    let mut value = 0u32;
    for shift in (0..35).step_by(7) {
        let (&byte, rest) = buf.split_first()?;
        *buf = rest;
        value |= u32::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Decodes a request the front judges or answers, header and body.
pub fn decode_request<T: Decodable>(frame: &Frame, key: RequestKey) -> Result<(RequestHeader, T)> {
    let api = key.api().ok_or_else(|| anyhow!("unknown API key {}", key.api_key))?;
    let mut buf = frame.body();
    let header = RequestHeader::decode(&mut buf, api.request_header_version(key.api_version))
        .with_context(|| format!("{api:?} v{} request header", key.api_version))?;
    let body = T::decode(&mut buf, key.api_version).with_context(|| format!("{api:?} v{} request", key.api_version))?;
    Ok((header, body))
}

/// Encodes a request (a judged one with some of it taken out) under the client's own header.
pub fn encode_request<T: Encodable>(header: &RequestHeader, body: &T) -> Result<Frame> {
    let version = header.request_api_version;
    let api = ApiKey::try_from(header.request_api_key).map_err(|_| anyhow!("unknown API key"))?;
    let mut buf = BytesMut::new();
    header.encode(&mut buf, api.request_header_version(version))?;
    body.encode(&mut buf, version)?;
    Ok(Frame::from_body(&buf))
}

/// Encodes the response to request `correlation_id`, in the request's `version`.
pub fn encode_response<T: Encodable + HeaderVersion>(correlation_id: i32, version: i16, body: &T) -> Result<Frame> {
    let mut buf = BytesMut::new();
    ResponseHeader::default().with_correlation_id(correlation_id).encode(&mut buf, T::header_version(version))?;
    body.encode(&mut buf, version)?;
    Ok(Frame::from_body(&buf))
}

/// Decodes a broker's response to a request of `version`.
pub fn decode_response<T: Decodable + HeaderVersion>(frame: &Frame, version: i16) -> Result<(ResponseHeader, T)> {
    let mut buf = frame.body();
    let header = ResponseHeader::decode(&mut buf, T::header_version(version))?;
    Ok((header, T::decode(&mut buf, version)?))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Writes protocol primitives, for hand-made fixtures.
    #[derive(Default)]
    pub struct Wire(pub Vec<u8>);

    impl Wire {
        pub fn i8(mut self, v: i8) -> Self {
            self.0.push(v as u8);
            self
        }
        pub fn i16(mut self, v: i16) -> Self {
            self.0.extend(v.to_be_bytes());
            self
        }
        pub fn i32(mut self, v: i32) -> Self {
            self.0.extend(v.to_be_bytes());
            self
        }
        pub fn i64(mut self, v: i64) -> Self {
            self.0.extend(v.to_be_bytes());
            self
        }
        pub fn uvarint(mut self, mut v: u32) -> Self {
            while v >= 0x80 {
                self.0.push((v as u8 & 0x7f) | 0x80);
                v >>= 7;
            }
            self.0.push(v as u8);
            self
        }
        /// A classic string: i16 length (-1: null), bytes.
        pub fn string(self, s: Option<&str>) -> Self {
            match s {
                None => self.i16(-1),
                Some(s) => self.i16(s.len() as i16).raw(s.as_bytes()),
            }
        }
        /// A compact (flexible versions) string: unsigned varint length + 1 (0: null), bytes.
        pub fn compact_string(self, s: Option<&str>) -> Self {
            match s {
                None => self.uvarint(0),
                Some(s) => self.uvarint(s.len() as u32 + 1).raw(s.as_bytes()),
            }
        }
        pub fn raw(mut self, b: &[u8]) -> Self {
            self.0.extend_from_slice(b);
            self
        }
        /// No tagged fields.
        pub fn no_tags(self) -> Self {
            self.uvarint(0)
        }
        pub fn frame(self) -> Frame {
            Frame::from_body(&self.0)
        }
    }

    pub fn b() -> Wire {
        Wire::default()
    }

    #[tokio::test]
    async fn frames_are_read_whole_and_the_end_between_frames_is_none() {
        let wire = [b().i32(3).raw(b"abc").0, b().i32(0).0].concat();
        let mut r = &wire[..];
        assert_eq!(read(&mut r).await.unwrap().unwrap().body(), &b"abc"[..]);
        assert_eq!(read(&mut r).await.unwrap().unwrap().body(), &b""[..]);
        assert_eq!(read(&mut r).await.unwrap(), None);
        let negative = b().i32(-1).0;
        assert!(read(&mut &negative[..]).await.is_err());
        let cut = b().i32(10).raw(b"abc").0;
        assert!(read(&mut &cut[..]).await.is_err(), "a frame cut short is an error, not an end");
    }

    #[test]
    fn the_request_key_is_the_first_eight_bytes() {
        let body = b().i16(36).i16(2).i32(7).string(Some("rdkafka")).no_tags().0;
        let key = RequestKey::peek(&body).unwrap();
        assert_eq!(key, RequestKey { api_key: 36, api_version: 2, correlation_id: 7 });
        assert_eq!(key.api(), Some(ApiKey::SaslAuthenticate));
        assert_eq!(RequestKey::peek(&body[..7]), None);
        assert_eq!(RequestKey { api_key: 9999, ..key }.api(), None);
    }

    #[test]
    fn the_header_is_skipped_per_its_version() {
        // Produce v3: header v1 (client id, no tags).
        let v3 = b().i16(0).i16(3).i32(1).string(Some("c")).raw(b"BODY").0;
        assert_eq!(after_header(&v3, ApiKey::Produce, 3), Some(&b"BODY"[..]));
        // Produce v9 is flexible: header v2, client id still an i16 string, then tagged fields
        // (here one: tag 5, 2 bytes).
        let v9 = b().i16(0).i16(9).i32(1).string(None).uvarint(1).uvarint(5).uvarint(2).raw(b"xy").raw(b"BODY").0;
        assert_eq!(after_header(&v9, ApiKey::Produce, 9), Some(&b"BODY"[..]));
        // A header cut in its tagged fields.
        assert_eq!(after_header(&v9[..13], ApiKey::Produce, 9), None);
    }

    #[test]
    fn uvarints_are_little_endian_base_128() {
        assert_eq!(read_uvarint(&mut &[0x00][..]), Some(0));
        assert_eq!(read_uvarint(&mut &[0x96, 0x01][..]), Some(150));
        assert_eq!(read_uvarint(&mut &[0x80][..]), None);
    }

    #[test]
    fn responses_carry_the_header_of_their_version() {
        use kafka_protocol::messages::{ApiVersionsResponse, SaslHandshakeResponse};
        // SaslHandshake v1 is not flexible: header v0.
        let handshake = encode_response(9, 1, &SaslHandshakeResponse::default()).unwrap();
        assert_eq!(handshake, b().i32(9).i16(0).i32(0).frame());
        // ApiVersions v3 is flexible, but its response header stays v0 (no tag byte after the id).
        let versions = encode_response(9, 3, &ApiVersionsResponse::default()).unwrap();
        assert_eq!(versions, b().i32(9).i16(0).uvarint(1).i32(0).no_tags().frame());
        let (header, _) = decode_response::<ApiVersionsResponse>(&versions, 3).unwrap();
        assert_eq!(header.correlation_id, 9);
    }
}
