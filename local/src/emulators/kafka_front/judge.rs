//! What MSK asks IAM about a function's Kafka requests, and about which ARN.
//!
//! MSK's IAM access control maps Kafka's ACL operations to `kafka-cluster:*` actions on ARNs
//! formed from the cluster's (developer guide, "Semantics of IAM authorization policy actions and
//! resources"): the cluster `arn:aws:kafka:<region>:<account>:cluster/<name>/<uuid>`, and under the
//! same `<name>/<uuid>` a `topic/…/<topic>`, a `group/…/<group>`, a `transactional-id/…/<id>`
//! (as [`crate::emulators::msk::MskTrigger::accesses`] forms them for the trigger).
//!
//! Locally the cluster is the one the roles are read against: `MskClusterArn` of
//! [`LOCAL_PARAMETER_OVERRIDES`], so a grant on `!Ref MskClusterArn` (or a topic ARN the template
//! builds from it) names exactly the ARNs judged here.

use std::sync::Arc;

use crate::emulators::iam::authorizer::{Access, Authorizer};
use crate::template::LOCAL_PARAMETER_OVERRIDES;

pub const CONNECT: &str = "kafka-cluster:Connect";
pub const DESCRIBE_TOPIC: &str = "kafka-cluster:DescribeTopic";
pub const WRITE_DATA: &str = "kafka-cluster:WriteData";
pub const WRITE_DATA_IDEMPOTENTLY: &str = "kafka-cluster:WriteDataIdempotently";
pub const ALTER_TRANSACTIONAL_ID: &str = "kafka-cluster:AlterTransactionalId";

/// Kafka's error codes for a refusal: a topic, the cluster, a transactional id.
pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;

/// The MSK cluster the local broker stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    arn: String,
}

impl Cluster {
    pub fn new(arn: impl Into<String>) -> Self {
        Self { arn: arn.into() }
    }

    /// The cluster the template's roles are resolved against (`MskClusterArn`).
    pub fn local() -> Self {
        let arn = LOCAL_PARAMETER_OVERRIDES
            .iter()
            .find(|(name, _)| *name == "MskClusterArn")
            .map(|(_, arn)| *arn)
            .expect("LOCAL_PARAMETER_OVERRIDES sets MskClusterArn");
        Self::new(arn)
    }

    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// `…:cluster/<name>/<uuid>` → `…:<kind>/<name>/<uuid>/<name_in_cluster>`.
    fn member(&self, kind: &str, name: &str) -> String {
        format!("{}/{name}", self.arn.replacen(":cluster/", &format!(":{kind}/"), 1))
    }

    pub fn topic_arn(&self, topic: &str) -> String {
        self.member("topic", topic)
    }

    pub fn transactional_id_arn(&self, id: &str) -> String {
        self.member("transactional-id", id)
    }
}

/// A connection authenticated as a function: each of its requests is judged by the function's role.
#[derive(Clone)]
pub struct Judge {
    iam: Authorizer,
    cluster: Arc<Cluster>,
    function: String,
}

impl std::fmt::Debug for Judge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Judge").field("function", &self.function).finish_non_exhaustive()
    }
}

impl Judge {
    pub fn new(iam: Authorizer, cluster: Arc<Cluster>, function: String) -> Self {
        Self { iam, cluster, function }
    }

    pub fn function(&self) -> &str {
        &self.function
    }

    /// May the function do `action` on `resource`? Recorded for the report; a denial is logged
    /// (once) by the [`Authorizer`].
    fn may(&self, action: &str, resource: String) -> bool {
        self.iam.authorize(&self.function, &[Access::new(action, resource)]).is_ok()
    }

    /// Metadata of a topic (Kafka's DESCRIBE on the topic).
    pub fn may_describe_topic(&self, topic: &str) -> bool {
        self.may(DESCRIBE_TOPIC, self.cluster.topic_arn(topic))
    }

    /// Produce to a topic (Kafka's WRITE on the topic).
    pub fn may_write(&self, topic: &str) -> bool {
        self.may(WRITE_DATA, self.cluster.topic_arn(topic))
    }

    /// A producer id, and records produced with one (Kafka's IDEMPOTENT_WRITE on the cluster).
    pub fn may_write_idempotently(&self) -> bool {
        self.may(WRITE_DATA_IDEMPOTENTLY, self.cluster.arn().to_owned())
    }

    /// A transactional producer's id (Kafka's WRITE on the transactional id).
    pub fn may_alter_transactional_id(&self, id: &str) -> bool {
        self.may(ALTER_TRANSACTIONAL_ID, self.cluster.transactional_id_arn(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_arns_hang_under_the_clusters_name_and_uuid() {
        let c = Cluster::new("arn:aws:kafka:us-east-1:123456789012:cluster/shop/abcd-1");
        assert_eq!(c.topic_arn("shop-events"), "arn:aws:kafka:us-east-1:123456789012:topic/shop/abcd-1/shop-events");
        assert_eq!(
            c.transactional_id_arn("tx"),
            "arn:aws:kafka:us-east-1:123456789012:transactional-id/shop/abcd-1/tx"
        );
    }

    #[test]
    fn the_local_cluster_is_the_one_the_roles_are_read_against() {
        let c = Cluster::local();
        assert!(c.arn().starts_with("arn:aws:kafka:us-east-1:123456789012:cluster/shop-local/"), "{}", c.arn());
    }
}
