//! The broker's ApiVersions answer, as the front speaks it.
//!
//! A client picks each request's version from the broker's ApiVersions list, and librdkafka
//! attempts SASL only if that list has SaslHandshake ≥ 1 and SaslAuthenticate (its
//! `RD_KAFKA_FEATURE_SASL_AUTH_REQ`). The front answers those two itself, so it puts in the
//! versions *it* speaks, whatever tansu says about them; and it narrows the versions of the
//! requests it judges to those it can read:
//!
//! - SaslHandshake 1 (after v0 the SASL messages follow as raw frames, which the front does not
//!   speak; clients since Kafka 1.0 and librdkafka use v1), SaslAuthenticate 0–2;
//! - Produce 3–12: older versions carry message sets, which the `kafka-protocol` crate does not
//!   decode (Kafka 4 removed those versions), and v13 names topics by id, which the front would
//!   first have to map to the names IAM judges;
//! - Metadata and InitProducerId: what the crate decodes.
//!
//! Everything else is relayed as the broker lists it. An error answer (UNSUPPORTED_VERSION, with
//! which a client retries at a version the broker knows) is relayed untouched.

use anyhow::Result;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

use super::frame::{Frame, decode_response, encode_response};

/// The SaslHandshake and SaslAuthenticate versions the front answers.
pub const SASL: [(ApiKey, i16, i16); 2] = [(ApiKey::SaslHandshake, 1, 1), (ApiKey::SaslAuthenticate, 0, 2)];

/// The versions of the requests the front judges that it can read.
fn readable(api: ApiKey) -> Option<(i16, i16)> {
    let crate_range = api.valid_versions();
    match api {
        ApiKey::Produce => Some((crate_range.min.max(3), crate_range.max.min(12))),
        ApiKey::Metadata | ApiKey::InitProducerId => Some((crate_range.min, crate_range.max)),
        _ => None,
    }
}

/// Rewrites the broker's answer to an ApiVersions request of `version`.
pub fn rewrite(frame: &Frame, version: i16) -> Result<Frame> {
    let (header, mut response) = decode_response::<ApiVersionsResponse>(frame, version)?;
    if response.error_code != 0 {
        return Ok(frame.clone());
    }
    adjust(&mut response.api_keys);
    encode_response(header.correlation_id, version, &response)
}

/// Puts in the SASL APIs and narrows the judged ones (see the module docs).
pub fn adjust(api_keys: &mut Vec<ApiVersion>) {
    api_keys.retain(|a| !SASL.iter().any(|(api, _, _)| *api as i16 == a.api_key));
    api_keys.extend(SASL.iter().map(|(api, min, max)| {
        ApiVersion::default().with_api_key(*api as i16).with_min_version(*min).with_max_version(*max)
    }));
    for entry in api_keys.iter_mut() {
        let Some((min, max)) = ApiKey::try_from(entry.api_key).ok().and_then(readable) else { continue };
        let (narrow_min, narrow_max) = (entry.min_version.max(min), entry.max_version.min(max));
        // No overlap: leave it; a judged request the front cannot read closes its connection.
        if narrow_min <= narrow_max {
            (entry.min_version, entry.max_version) = (narrow_min, narrow_max);
        }
    }
    api_keys.sort_by_key(|a| a.api_key);
}

#[cfg(test)]
mod tests {
    use super::super::frame::tests::b;
    use super::*;

    #[test]
    fn a_v0_answer_gains_the_sasl_apis_and_narrows_produce() {
        // ApiVersions v0 response: correlation id, error_code, [api_key, min, max] (i32 count).
        let broker = b().i32(4).i16(0).i32(3).i16(0).i16(0).i16(13).i16(3).i16(0).i16(12).i16(18).i16(0).i16(3).frame();
        let front = b()
            .i32(4)
            .i16(0)
            .i32(5)
            .raw(&b().i16(0).i16(3).i16(12).0) // Produce 3–12
            .raw(&b().i16(3).i16(0).i16(12).0) // Metadata as the broker has it
            .raw(&b().i16(17).i16(1).i16(1).0) // SaslHandshake
            .raw(&b().i16(18).i16(0).i16(3).0)
            .raw(&b().i16(36).i16(0).i16(2).0) // SaslAuthenticate
            .frame();
        assert_eq!(rewrite(&broker, 0).unwrap(), front);
    }

    #[test]
    fn a_flexible_answer_keeps_header_v0_and_its_tagged_fields() {
        // v3: header v0 (no tags), error_code, compact array of [key, min, max, tags],
        // throttle_time_ms, then tagged fields: tag 0, SupportedFeatures, 8 bytes: a compact array
        // of one [name, min, max, tags].
        let entry = |key: i16, min: i16, max: i16| b().i16(key).i16(min).i16(max).no_tags().0;
        let feature = b().uvarint(2).compact_string(Some("x")).i16(1).i16(1).no_tags().0;
        let tail = b().i32(0).uvarint(1).uvarint(0).uvarint(feature.len() as u32).raw(&feature).0;
        let broker = b().i32(1).i16(0).uvarint(3).raw(&entry(17, 0, 1)).raw(&entry(18, 0, 4)).raw(&tail).frame();
        let front = b()
            .i32(1)
            .i16(0)
            .uvarint(4)
            .raw(&entry(17, 1, 1))
            .raw(&entry(18, 0, 4))
            .raw(&entry(36, 0, 2))
            .raw(&tail)
            .frame();
        assert_eq!(rewrite(&broker, 3).unwrap(), front);
    }

    #[test]
    fn an_error_answer_is_relayed_untouched() {
        let unsupported = b().i32(1).i16(35).i32(1).i16(18).i16(0).i16(2).frame();
        assert_eq!(rewrite(&unsupported, 0).unwrap(), unsupported);
    }
}
