//! Metadata, judged as MSK judges it: `kafka-cluster:DescribeTopic` on each topic.
//!
//! Kafka answers a topic the caller may not describe with TOPIC_AUTHORIZATION_FAILED and nothing
//! else about it (no id, no partitions), and a request for *all* topics lists only those it may
//! describe. The front does the same: topics named in the request are judged before it is relayed
//! and the refused ones are taken out of it — so the broker neither describes nor auto-creates
//! them — then put back into the answer as errors; topics the request did not name (all topics,
//! or topics asked for by id) are judged in the broker's answer.
//!
//! One corner: in v0 an empty list means all topics, so a v0 request whose every topic is refused
//! is relayed as it is, and the broker's description of those topics replaced by the errors.

use std::collections::BTreeSet;

use anyhow::Result;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::connection::{Edit, Step};
use super::frame::{Frame, RequestKey, decode_request, decode_response, encode_request, encode_response};
use super::judge::{Judge, TOPIC_AUTHORIZATION_FAILED};

/// Judges a function's Metadata request.
pub fn judge(judge: &Judge, key: RequestKey, frame: Frame) -> Result<Step> {
    let (header, request) = decode_request::<MetadataRequest>(&frame, key)?;
    let mut answer = Described {
        version: key.api_version,
        all_topics: request.topics.as_ref().is_none_or(|t| t.is_empty() && key.api_version == 0),
        requested: BTreeSet::new(),
        refused: BTreeSet::new(),
        judge: judge.clone(),
    };
    for name in request.topics.iter().flatten().filter_map(|t| t.name.as_ref()) {
        let name = name.0.to_string();
        if judge.may_describe_topic(&name) {
            answer.requested.insert(name);
        } else {
            answer.refused.insert(name);
        }
    }
    let frame = match &request.topics {
        Some(topics) if !answer.refused.is_empty() => {
            let kept: Vec<_> = topics
                .iter()
                .filter(|t| !t.name.as_ref().is_some_and(|n| answer.refused.contains(n.0.as_str())))
                .cloned()
                .collect();
            if kept.is_empty() && key.api_version == 0 {
                frame
            } else {
                encode_request(&header, &request.clone().with_topics(Some(kept)))?
            }
        }
        _ => frame,
    };
    Ok(Step::Relay { frame, answer: Some(Edit::Metadata(answer)) })
}

/// What the front does to the broker's answer.
#[derive(Debug, Clone)]
pub struct Described {
    version: i16,
    /// The request asked for every topic.
    all_topics: bool,
    /// Named in the request and allowed.
    requested: BTreeSet<String>,
    /// Named in the request and refused.
    refused: BTreeSet<String>,
    judge: Judge,
}

impl Described {
    pub fn apply(&self, frame: &Frame) -> Result<Frame> {
        let (header, mut response) = decode_response::<MetadataResponse>(frame, self.version)?;
        let mut topics = Vec::with_capacity(response.topics.len() + self.refused.len());
        for topic in std::mem::take(&mut response.topics) {
            let Some(name) = topic.name.as_ref().map(|n| n.0.to_string()) else {
                topics.push(topic); // an unknown id: nothing to describe
                continue;
            };
            if self.refused.contains(&name) {
                continue; // answered below
            }
            if self.requested.contains(&name) || self.judge.may_describe_topic(&name) {
                topics.push(topic);
            } else if !self.all_topics {
                // Asked for by id: refused by id, its name withheld.
                topics.push(refused(None).with_topic_id(topic.topic_id));
            }
        }
        topics.extend(self.refused.iter().map(|name| refused(Some(name))));
        response.topics = topics;
        encode_response(header.correlation_id, self.version, &response)
    }
}

/// A topic the caller may not describe, as Kafka answers it.
fn refused(name: Option<&str>) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(TOPIC_AUTHORIZATION_FAILED)
        .with_name(name.map(|n| TopicName(StrBytes::from_string(n.to_owned()))))
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

    /// Metadata v4 request: header v1, topics (nullable array of names), allow_auto_topic_creation.
    fn request_v4(topics: Option<&[&str]>) -> Frame {
        let w = b().i16(3).i16(4).i32(8).string(Some("rdkafka"));
        let w = match topics {
            None => w.i32(-1),
            Some(topics) => topics.iter().fold(w.i32(topics.len() as i32), |w, t| w.string(Some(t))),
        };
        w.i8(1).frame()
    }

    /// Metadata v4 response: throttle, brokers [id, host, port, rack], cluster_id, controller_id,
    /// topics [error_code, name, is_internal, partitions [error, index, leader, replicas, isr]].
    fn response_v4(topics: &[(i16, &str, bool)]) -> Frame {
        let w = b().i32(8).i32(0).i32(1).i32(1).string(Some("127.0.0.1")).i32(9092).string(None);
        let w = w.string(Some("cluster")).i32(1).i32(topics.len() as i32);
        topics
            .iter()
            .fold(w, |w: Wire, (code, name, described)| {
                let w = w.i16(*code).string(Some(name)).i8(0);
                if *described { w.i32(1).i16(0).i32(0).i32(1).i32(1).i32(1).i32(1).i32(1) } else { w.i32(0) }
            })
            .frame()
    }

    fn key(frame: &Frame) -> RequestKey {
        RequestKey::peek(&frame.body()).unwrap()
    }

    #[test]
    fn refused_topics_are_taken_out_of_the_request_and_answered_29() {
        let frame = request_v4(Some(&["allowed", "secret"]));
        let Step::Relay { frame: relayed, answer: Some(Edit::Metadata(described)) } =
            judge(&relay(), key(&frame), frame).unwrap()
        else {
            panic!()
        };
        assert_eq!(relayed, request_v4(Some(&["allowed"])));
        let broker = response_v4(&[(0, "allowed", true)]);
        assert_eq!(described.apply(&broker).unwrap(), response_v4(&[(0, "allowed", true), (29, "secret", false)]));
    }

    #[test]
    fn all_topics_lists_only_those_the_caller_may_describe() {
        let frame = request_v4(None);
        let Step::Relay { frame: relayed, answer: Some(Edit::Metadata(described)) } =
            judge(&relay(), key(&frame), frame.clone()).unwrap()
        else {
            panic!()
        };
        assert_eq!(relayed, frame);
        let broker = response_v4(&[(0, "allowed", true), (0, "secret", true)]);
        assert_eq!(described.apply(&broker).unwrap(), response_v4(&[(0, "allowed", true)]));
    }

    #[test]
    fn a_request_for_allowed_topics_is_relayed_untouched() {
        let frame = request_v4(Some(&["allowed"]));
        let Step::Relay { frame: relayed, answer: Some(Edit::Metadata(described)) } =
            judge(&relay(), key(&frame), frame.clone()).unwrap()
        else {
            panic!()
        };
        assert_eq!(relayed, frame);
        let broker = response_v4(&[(0, "allowed", true)]);
        assert_eq!(described.apply(&broker).unwrap(), broker);
    }
}
