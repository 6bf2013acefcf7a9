//! InitProducerId, judged as MSK judges it.
//!
//! An idempotent producer (`enable.idempotence=true`, the relay's) first asks for a producer id;
//! its records then carry it, and the broker deduplicates retries by it. Without a transactional
//! id Kafka requires IDEMPOTENT_WRITE on the cluster (MSK: `kafka-cluster:WriteDataIdempotently`
//! on the cluster ARN; MSK does not take Kafka ≥ 2.8's alternative of WRITE on some topic unless
//! WriteData is granted on every topic), refused with CLUSTER_AUTHORIZATION_FAILED; a
//! transactional producer needs WRITE on its transactional id (MSK:
//! `kafka-cluster:AlterTransactionalId`), refused with TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
//! librdkafka treats either refusal as fatal for the producer, as it would against MSK.

use anyhow::Result;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::connection::{Edit, Step};
use super::frame::{Frame, RequestKey, decode_request, encode_response};
use super::judge::{CLUSTER_AUTHORIZATION_FAILED, Judge, TRANSACTIONAL_ID_AUTHORIZATION_FAILED};

/// Judges a function's InitProducerId.
pub fn judge(judge: &Judge, key: RequestKey, frame: Frame) -> Result<Step> {
    let (_, request) = decode_request::<InitProducerIdRequest>(&frame, key)?;
    let refused = match &request.transactional_id {
        Some(id) => (!judge.may_alter_transactional_id(&id.0)).then_some(TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
        None => (!judge.may_write_idempotently()).then_some(CLUSTER_AUTHORIZATION_FAILED),
    };
    let Some(code) = refused else {
        return Ok(Step::Relay { frame, answer: Some(Edit::AsIs) });
    };
    let response = InitProducerIdResponse::default()
        .with_error_code(code)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    Ok(Step::Answer(encode_response(key.correlation_id, key.api_version, &response)?))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::frame::tests::b;
    use super::super::judge::Cluster;
    use super::super::sasl::tests::{CLUSTER, authorizer};
    use super::*;

    fn as_(function: &str) -> Judge {
        Judge::new(authorizer(), Arc::new(Cluster::new(CLUSTER)), function.into())
    }

    /// InitProducerId v1 (not flexible): transactional_id, transaction_timeout_ms.
    fn request_v1(transactional_id: Option<&str>) -> Frame {
        b().i16(22).i16(1).i32(3).string(Some("rdkafka")).string(transactional_id).i32(60_000).frame()
    }

    fn key(frame: &Frame) -> RequestKey {
        RequestKey::peek(&frame.body()).unwrap()
    }

    #[test]
    fn an_idempotent_producer_needs_write_data_idempotently() {
        let frame = request_v1(None);
        assert!(matches!(judge(&as_("Relay"), key(&frame), frame.clone()).unwrap(), Step::Relay { .. }));
        let Step::Answer(answer) = judge(&as_("Stranger"), key(&frame), frame).unwrap() else { panic!() };
        // v1 response: throttle_time_ms, error_code, producer_id, producer_epoch.
        assert_eq!(answer, b().i32(3).i32(0).i16(31).i64(-1).i16(-1).frame());
    }

    #[test]
    fn a_transactional_producer_needs_its_transactional_id() {
        let frame = request_v1(Some("tx"));
        let Step::Answer(answer) = judge(&as_("Relay"), key(&frame), frame).unwrap() else { panic!() };
        assert_eq!(answer, b().i32(3).i32(0).i16(53).i64(-1).i16(-1).frame());
    }
}
