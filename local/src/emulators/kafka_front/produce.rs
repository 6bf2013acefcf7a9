//! Produce, judged as MSK judges it.
//!
//! Kafka's broker checks, in this order (`KafkaApis.handleProduceRequest`): a transactional
//! producer's WRITE on its transactional id (MSK: `kafka-cluster:AlterTransactionalId`, refused
//! with TRANSACTIONAL_ID_AUTHORIZATION_FAILED for the whole request); records carrying a producer
//! id need IDEMPOTENT_WRITE on the cluster (MSK: `kafka-cluster:WriteDataIdempotently` on the
//! cluster ARN, CLUSTER_AUTHORIZATION_FAILED for the whole request — MSK still asks for it where
//! Kafka ≥ 2.8 no longer does, see KIP-679 in MSK's guide); then WRITE on each topic (MSK:
//! `kafka-cluster:WriteData` on the topic ARN), a refused topic answered with
//! TOPIC_AUTHORIZATION_FAILED on each of its partitions while the others are produced.
//!
//! Whether records are idempotent is read from the records themselves, as the broker does
//! (`hasIdempotentRecords`): which connection asked for the producer id does not matter —
//! librdkafka may ask on its bootstrap connection and produce on the leader's.
//!
//! A partly refused request is relayed without its refused topics, and their errors are added to
//! the broker's answer. A request with `acks=0` gets no answer at all, so a refused one closes the
//! connection, which is how a Kafka broker tells such a client of an error.

use anyhow::{Result, bail};
use kafka_protocol::messages::produce_request::TopicProduceData;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};

use super::connection::{Edit, Step};
use super::frame::{
    Frame, RequestKey, after_header, decode_request, decode_response, encode_request, encode_response, read_uvarint,
};
use super::judge::{
    CLUSTER_AUTHORIZATION_FAILED, Judge, TOPIC_AUTHORIZATION_FAILED, TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
};

/// Judges a function's Produce.
pub fn judge(judge: &Judge, key: RequestKey, frame: Frame) -> Result<Step> {
    if key.api_version > 12 {
        bail!("Produce v{} names topics by id", key.api_version);
    }
    let (header, request) = decode_request::<ProduceRequest>(&frame, key)?;
    let answered = request.acks != 0;
    let answer = |response: ProduceResponse| -> Result<Step> {
        if !answered {
            return Ok(Step::Close);
        }
        Ok(Step::Answer(encode_response(key.correlation_id, key.api_version, &response)?))
    };
    let whole = match &request.transactional_id {
        Some(id) if !judge.may_alter_transactional_id(&id.0) => Some(TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
        _ if idempotent(&request) && !judge.may_write_idempotently() => Some(CLUSTER_AUTHORIZATION_FAILED),
        _ => None,
    };
    if let Some(code) = whole {
        return answer(refusal(&request.topic_data, code));
    }
    let (allowed, refused): (Vec<_>, Vec<_>) =
        request.topic_data.iter().cloned().partition(|topic| judge.may_write(&topic.name));
    if refused.is_empty() {
        return Ok(Step::Relay { frame, answer: answered.then_some(Edit::AsIs) });
    }
    if allowed.is_empty() {
        return answer(refusal(&refused, TOPIC_AUTHORIZATION_FAILED));
    }
    let part = request.clone().with_topic_data(allowed);
    Ok(Step::Relay {
        frame: encode_request(&header, &part)?,
        answer: answered.then(|| {
            Edit::Produce(Refused {
                version: key.api_version,
                topics: refusal(&refused, TOPIC_AUTHORIZATION_FAILED).responses,
            })
        }),
    })
}

/// The `acks` of a Produce of any version, read without decoding it (a connection the front does
/// not judge may use versions it cannot decode): after the header, `transactional_id` (v3+; a
/// compact string from v9, when Produce became flexible), then `acks`.
pub fn acks(frame: &Frame, key: RequestKey) -> Option<i16> {
    let body = frame.body();
    let mut rest = after_header(&body, ApiKey::Produce, key.api_version)?;
    if key.api_version >= 9 {
        let len = read_uvarint(&mut rest)?; // length + 1, 0 for null
        rest = rest.get(len.saturating_sub(1) as usize..)?;
    } else if key.api_version >= 3 {
        let len = i16::from_be_bytes(rest.get(..2)?.try_into().ok()?);
        rest = rest.get(2 + usize::try_from(len).unwrap_or(0)..)?;
    }
    Some(i16::from_be_bytes(rest.get(..2)?.try_into().ok()?))
}

/// Whether any partition's records come from an idempotent (or transactional) producer.
fn idempotent(request: &ProduceRequest) -> bool {
    request.topic_data.iter().flat_map(|t| &t.partition_data).any(|p| p.records.as_deref().is_some_and(has_producer_id))
}

/// Whether a batch of `records` carries a producer id. A record batch (magic 2) has it at byte 43
/// of its 61-byte header: `baseOffset i64, batchLength i32, partitionLeaderEpoch i32, magic i8,
/// crc u32, attributes i16, lastOffsetDelta i32, baseTimestamp i64, maxTimestamp i64,
/// producerId i64, …`, -1 without one. Old message sets (magic 0 and 1, magic at the same byte
/// 16) have none.
pub fn has_producer_id(mut records: &[u8]) -> bool {
    const HEADER: usize = 61;
    while records.len() >= HEADER {
        let producer_id = i64::from_be_bytes(records[43..51].try_into().unwrap_or_default());
        if records[16] == 2 && producer_id >= 0 {
            return true;
        }
        let len = i32::from_be_bytes(records[8..12].try_into().unwrap_or_default());
        records = records.get(12 + usize::try_from(len).unwrap_or(usize::MAX)..).unwrap_or_default();
    }
    false
}

/// The answer refusing `topics` with `code` on every partition (no offset: -1).
fn refusal(topics: &[TopicProduceData], code: i16) -> ProduceResponse {
    let topic = |t: &TopicProduceData| {
        let partition =
            |index| PartitionProduceResponse::default().with_index(index).with_error_code(code).with_base_offset(-1);
        TopicProduceResponse::default()
            .with_name(t.name.clone())
            .with_topic_id(t.topic_id)
            .with_partition_responses(t.partition_data.iter().map(|p| partition(p.index)).collect())
    };
    ProduceResponse::default().with_responses(topics.iter().map(topic).collect())
}

/// The refused topics of a partly relayed Produce, added to the broker's answer.
#[derive(Debug, Clone)]
pub struct Refused {
    version: i16,
    topics: Vec<TopicProduceResponse>,
}

impl Refused {
    pub fn apply(&self, frame: &Frame) -> Result<Frame> {
        let (header, mut response) = decode_response::<ProduceResponse>(frame, self.version)?;
        response.responses.extend(self.topics.iter().cloned());
        encode_response(header.correlation_id, self.version, &response)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::frame::tests::{Wire, b};
    use super::super::judge::Cluster;
    use super::super::sasl::tests::{CLUSTER, authorizer};
    use super::*;

    fn relay() -> Judge {
        Judge::new(authorizer(), Arc::new(Cluster::new(CLUSTER)), "Relay".into())
    }

    /// A record batch header (no records) with `producer_id`.
    fn batch(producer_id: i64) -> Vec<u8> {
        b().i64(0).i32(49).i32(-1).i8(2).i32(0).i16(0).i32(0).i64(0).i64(0).i64(producer_id).i16(0).i32(0).i32(0).0
    }

    /// Produce v7 (non-flexible): header v1, then transactional_id, acks, timeout_ms, and per
    /// topic its name and [partition index, records].
    fn produce_v7(acks: i16, topics: &[(&str, &[u8])]) -> Frame {
        let mut w =
            b().i16(0).i16(7).i32(42).string(Some("rdkafka")).string(None).i16(acks).i32(5000).i32(topics.len() as i32);
        for (name, records) in topics {
            w = w.string(Some(name)).i32(1).i32(0).i32(records.len() as i32).raw(records);
        }
        w.frame()
    }

    fn key(frame: &Frame) -> RequestKey {
        RequestKey::peek(&frame.body()).unwrap()
    }

    #[test]
    fn acks_are_read_in_every_version() {
        let v7 = produce_v7(-1, &[]);
        assert_eq!(acks(&v7, key(&v7)), Some(-1));
        // v9, flexible: header with tags, compact transactional id "tx".
        let v9 =
            b().i16(0).i16(9).i32(1).string(Some("c")).no_tags().compact_string(Some("tx")).i16(0).i32(5000).frame();
        assert_eq!(acks(&v9, key(&v9)), Some(0));
        // v2: no transactional id, acks first.
        let v2 = b().i16(0).i16(2).i32(1).string(Some("c")).i16(1).frame();
        assert_eq!(acks(&v2, key(&v2)), Some(1));
    }

    #[test]
    fn a_producer_id_is_found_in_any_batch() {
        assert!(has_producer_id(&batch(7)));
        assert!(!has_producer_id(&batch(-1)));
        assert!(has_producer_id(&[batch(-1), batch(3)].concat()));
        let mut legacy = batch(7);
        legacy[16] = 1;
        assert!(!has_producer_id(&legacy), "message set v1 has no producer id");
        assert!(!has_producer_id(&batch(7)[..60]));
    }

    #[test]
    fn allowed_topics_are_relayed_untouched() {
        let frame = produce_v7(-1, &[("allowed", &batch(7))]);
        match judge(&relay(), key(&frame), frame.clone()).unwrap() {
            Step::Relay { frame: relayed, answer: Some(Edit::AsIs) } => assert_eq!(relayed, frame),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_refused_topic_is_answered_29_per_partition_and_the_rest_is_relayed() {
        let frame = produce_v7(-1, &[("allowed", &batch(-1)), ("secret", &batch(-1))]);
        let Step::Relay { frame: relayed, answer: Some(Edit::Produce(refused)) } =
            judge(&relay(), key(&frame), frame).unwrap()
        else {
            panic!()
        };
        assert_eq!(relayed, produce_v7(-1, &[("allowed", &batch(-1))]));
        // Produce v7 response: [name, [index, error_code, base_offset, log_append_time_ms,
        // log_start_offset]], throttle_time_ms.
        let partition = |w: Wire, code: i16, offset: i64| w.i32(0).i16(code).i64(offset).i64(-1).i64(-1);
        let broker = partition(b().i32(42).i32(1).string(Some("allowed")).i32(1), 0, 10).i32(0).frame();
        let answer = partition(
            partition(b().i32(42).i32(2).string(Some("allowed")).i32(1), 0, 10).string(Some("secret")).i32(1),
            29,
            -1,
        )
        .i32(0)
        .frame();
        assert_eq!(refused.apply(&broker).unwrap(), answer);
    }

    #[test]
    fn refusals_of_everything_are_answered_by_the_front() {
        let frame = produce_v7(-1, &[("secret", &batch(-1))]);
        let Step::Answer(answer) = judge(&relay(), key(&frame), frame).unwrap() else { panic!() };
        assert_eq!(
            answer,
            b().i32(42).i32(1).string(Some("secret")).i32(1).i32(0).i16(29).i64(-1).i64(-1).i64(-1).i32(0).frame()
        );
        // With acks=0 there is no answer to give: the connection is closed.
        let silent = produce_v7(0, &[("secret", &batch(-1))]);
        assert!(matches!(judge(&relay(), key(&silent), silent).unwrap(), Step::Close));
    }

    #[test]
    fn idempotent_records_need_write_data_idempotently() {
        let stranger = Judge::new(authorizer(), Arc::new(Cluster::new(CLUSTER)), "Stranger".into());
        let frame = produce_v7(-1, &[("allowed", &batch(7))]);
        let Step::Answer(answer) = judge(&stranger, key(&frame), frame).unwrap() else { panic!() };
        let (_, response) = decode_response::<ProduceResponse>(&answer, 7).unwrap();
        assert_eq!(response.responses[0].partition_responses[0].error_code, CLUSTER_AUTHORIZATION_FAILED);
    }

    #[test]
    fn topic_ids_cannot_be_judged() {
        let v13 = b().i16(0).i16(13).i32(1).string(Some("c")).no_tags().frame();
        assert!(judge(&relay(), key(&v13), v13).is_err());
    }
}
