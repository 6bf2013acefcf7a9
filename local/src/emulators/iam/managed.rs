//! AWS managed policies: the ones a SAM function's role holds without the template writing
//! them, and the few a template may name in `Policies` or `ManagedPolicyArns`.
//!
//! AWS owns these documents and can change them; what a role holds is their default version.
//! Each is copied here as the AWS Managed Policy Reference Guide publishes it
//! (`docs.aws.amazon.com/aws-managed-policy/latest/reference/<Name>.html`, "JSON policy
//! document"), with the version it was copied at. A name not listed is refused: the local stack
//! cannot know what it grants, and guessing would allow or deny silently.

use anyhow::{Result, bail};
use serde_json::Value as Json;

/// One AWS managed policy.
pub(super) struct ManagedPolicy {
    pub name: &'static str,
    /// `arn:aws:iam::aws:policy/<path><name>`.
    pub path: &'static str,
    /// Its JSON policy document, as published.
    pub document: &'static str,
}

impl ManagedPolicy {
    pub fn arn(&self) -> String {
        format!("arn:aws:iam::aws:policy/{}{}", self.path, self.name)
    }

    pub fn document(&self) -> Json {
        serde_json::from_str(self.document).expect("a managed policy's document is JSON")
    }
}

/// Finds a managed policy by its name (`AWSLambdaBasicExecutionRole`, as SAM's `Policies`
/// accepts) or its ARN.
pub(super) fn find(name_or_arn: &str) -> Result<&'static ManagedPolicy> {
    let found = POLICIES.iter().find(|p| p.name == name_or_arn || p.arn() == name_or_arn);
    match found {
        Some(p) => Ok(p),
        None => bail!(
            "the AWS managed policy {name_or_arn} is not one the local stack knows ({}): copy its JSON \
             document from the AWS Managed Policy Reference Guide into emulators/iam/managed.rs, or \
             grant what the function needs with a statement",
            POLICIES.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
        ),
    }
}

pub(super) const BASIC_EXECUTION: &str = "AWSLambdaBasicExecutionRole";
pub(super) const XRAY_WRITE_ONLY: &str = "AWSXrayWriteOnlyAccess";
pub(super) const VPC_ACCESS_EXECUTION: &str = "AWSLambdaVPCAccessExecutionRole";
pub(super) const DYNAMODB_EXECUTION: &str = "AWSLambdaDynamoDBExecutionRole";
pub(super) const KINESIS_EXECUTION: &str = "AWSLambdaKinesisExecutionRole";
pub(super) const SQS_QUEUE_EXECUTION: &str = "AWSLambdaSQSQueueExecutionRole";
pub(super) const MSK_EXECUTION: &str = "AWSLambdaMSKExecutionRole";

const POLICIES: &[ManagedPolicy] = &[
    // v1 (default), April 09, 2015.
    ManagedPolicy {
        name: BASIC_EXECUTION,
        path: "service-role/",
        document: r#"{ "Version" : "2012-10-17", "Statement" : [ { "Effect" : "Allow", "Action" : [ "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents" ], "Resource" : "*" } ] }"#,
    },
    // v2 (default), August 28, 2018. SAM's tracing policy in the `aws` partition.
    ManagedPolicy {
        name: XRAY_WRITE_ONLY,
        path: "",
        document: r#"{ "Version" : "2012-10-17", "Statement" : [ { "Effect" : "Allow", "Action" : [ "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets", "xray:GetSamplingStatisticSummaries" ], "Resource" : [ "*" ] } ] }"#,
    },
    // v2 (default), February 13, 2024. SAM's tracing policy in the China and GovCloud partitions.
    ManagedPolicy {
        name: "AWSXRayDaemonWriteAccess",
        path: "",
        document: r#"{ "Version" : "2012-10-17", "Statement" : [ { "Sid" : "AWSXRayDaemonWriteAccess", "Effect" : "Allow", "Action" : [ "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets", "xray:GetSamplingStatisticSummaries" ], "Resource" : [ "*" ] } ] }"#,
    },
    // v3 (default), January 05, 2024.
    ManagedPolicy {
        name: VPC_ACCESS_EXECUTION,
        path: "service-role/",
        document: r#"{ "Version" : "2012-10-17", "Statement" : [ { "Sid" : "AWSLambdaVPCAccessExecutionPermissions", "Effect" : "Allow", "Action" : [ "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets", "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses" ], "Resource" : "*" } ] }"#,
    },
    // v1 (default), April 09, 2015.
    ManagedPolicy {
        name: DYNAMODB_EXECUTION,
        path: "service-role/",
        document: r#"{ "Version" : "2012-10-17", "Statement" : [ { "Effect" : "Allow", "Action" : [ "dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams", "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents" ], "Resource" : "*" } ] }"#,
    },
    // v2 (default), November 19, 2018.
    ManagedPolicy {
        name: KINESIS_EXECUTION,
        path: "service-role/",
        document: r#"{ "Version" : "2012-10-17", "Statement" : [ { "Effect" : "Allow", "Action" : [ "kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards", "kinesis:ListStreams", "kinesis:SubscribeToShard", "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents" ], "Resource" : "*" } ] }"#,
    },
    // Not checked against its reference page (not at hand when this was written): the document
    // as a published write-up of SAM-generated roles shows it, agreeing with the Lambda
    // Developer Guide ("read a message from an Amazon SQS queue and write to CloudWatch Logs").
    // Compare with the reference page before an SQS trigger relies on it.
    ManagedPolicy {
        name: SQS_QUEUE_EXECUTION,
        path: "service-role/",
        document: r#"{ "Version" : "2012-10-17", "Statement" : [ { "Effect" : "Allow", "Action" : [ "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents" ], "Resource" : "*" } ] }"#,
    },
    // v2 (default), August 02, 2022. Nothing of `kafka-cluster:*`: with IAM access control the
    // function's own statements must let the poller connect, describe and read (see the notifier).
    ManagedPolicy {
        name: MSK_EXECUTION,
        path: "service-role/",
        document: r#"{ "Version" : "2012-10-17", "Statement" : [ { "Effect" : "Allow", "Action" : [ "kafka:DescribeCluster", "kafka:DescribeClusterV2", "kafka:GetBootstrapBrokers", "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs", "ec2:DeleteNetworkInterface", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups", "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents" ], "Resource" : "*" } ] }"#,
    },
];

#[cfg(test)]
mod tests {
    use super::super::policy::Policy;
    use super::*;

    #[test]
    fn every_document_is_one_the_evaluator_reads() {
        for p in POLICIES {
            Policy::parse(p.name, &p.document()).unwrap();
        }
    }

    #[test]
    fn found_by_name_or_arn_and_unknown_ones_are_refused_by_name() {
        assert_eq!(find("AWSLambdaBasicExecutionRole").unwrap().name, BASIC_EXECUTION);
        assert_eq!(
            find("arn:aws:iam::aws:policy/service-role/AWSLambdaDynamoDBExecutionRole").unwrap().name,
            DYNAMODB_EXECUTION
        );
        assert_eq!(find("arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess").unwrap().name, XRAY_WRITE_ONLY);
        let e = find("AmazonDynamoDBFullAccess").err().unwrap().to_string();
        assert!(e.contains("AmazonDynamoDBFullAccess") && e.contains("managed.rs"), "{e}");
    }
}
