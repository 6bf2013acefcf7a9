//! IAM's two wildcards, `*` (any run of characters) and `?` (one character), and the two ways
//! IAM applies them.
//!
//! **Actions** (`Action`, `NotAction`) are matched whole and without regard to case: "the prefix
//! and the action name are case insensitive", so `DynamoDB:getitem` is `dynamodb:GetItem`, and a
//! wildcard may stand anywhere, service prefix included (`dynamodb:Get*`, `*`).
//!
//! **Resources** (`Resource`, `NotResource`) are ARNs, matched with case: IAM's documentation
//! (IAM JSON policy elements: Resource, "Using wildcards in resource ARNs") says wildcards work
//! "within the individual segments of an ARN (the parts separated by colons)", that a `*` "can
//! expand to replace everything within a segment, including characters like a forward slash
//! (`/`)", and that "if the `*` wildcard is the last character of a resource ARN segment, it can
//! expand to match beyond the colon boundaries". So `…:table/ShopTable/index/*` matches every
//! index of the table, `…:table/ShopTable` matches the table only (no wildcard, no prefix
//! match), and a trailing `*` also covers a DynamoDB stream label, which has colons in it
//! (`…/stream/2015-05-11T21:21:33.291`). A `*` in the middle of a segment stops at a colon, and
//! `?` never matches one.

/// Does action pattern `pattern` match `action`? Case-insensitive; `*` and `?` match anything.
pub(super) fn action_matches(pattern: &str, action: &str) -> bool {
    let (pattern, action) = (pattern.to_ascii_lowercase(), action.to_ascii_lowercase());
    glob(pattern.as_bytes(), action.as_bytes(), |_| true, true)
}

/// Does resource pattern `pattern` (an ARN with wildcards, or `*`) match the ARN `resource`?
/// Case-sensitive; a `*` crosses a colon only when it ends its segment.
pub(super) fn resource_matches(pattern: &str, resource: &str) -> bool {
    let p = pattern.as_bytes();
    let ends_segment = |i: usize| p.get(i + 1).is_none_or(|&next| next == b':');
    glob(p, resource.as_bytes(), ends_segment, false)
}

/// Wildcard matching, by dynamic programming over (pattern position, text position), so a
/// pattern with many `*` costs at most |pattern| × |text| steps. `star_crosses_colon(i)` says
/// whether the `*` at pattern position `i` may match a `:`; `question_matches_colon` the same
/// for every `?`.
fn glob(pattern: &[u8], text: &[u8], star_crosses_colon: impl Fn(usize) -> bool, question_matches_colon: bool) -> bool {
    // matches[j]: does pattern[i..] match text[j..], for the current i (computed from the end).
    let mut matches = vec![false; text.len() + 1];
    matches[text.len()] = true;
    for i in (0..pattern.len()).rev() {
        let mut row = vec![false; text.len() + 1];
        for j in (0..=text.len()).rev() {
            let here = text.get(j).copied();
            row[j] = match pattern[i] {
                b'*' => {
                    // Match nothing, or one more character and stay on the `*`.
                    matches[j]
                        || here.is_some_and(|c| c != b':' || star_crosses_colon(i)) && row.get(j + 1) == Some(&true)
                }
                b'?' => here.is_some_and(|c| c != b':' || question_matches_colon) && matches[j + 1],
                literal => here == Some(literal) && matches[j + 1],
            };
        }
        matches = row;
    }
    matches[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/ShopTable";

    #[test]
    fn actions_ignore_case_and_take_wildcards_anywhere() {
        // "iam:ListAccessKeys is the same as IAM:listaccesskeys" (IAM JSON policy elements: Action).
        assert!(action_matches("iam:ListAccessKeys", "IAM:listaccesskeys"));
        assert!(action_matches("s3:*", "s3:GetObject"));
        assert!(action_matches("*", "dynamodb:GetItem"));
        assert!(action_matches("iam:*AccessKey*", "iam:CreateAccessKey"));
        assert!(action_matches("iam:*AccessKey*", "iam:ListAccessKeys"));
        assert!(action_matches("dynamodb:Get*", "dynamodb:GetItem"));
        assert!(action_matches("dynamodb:Get?tem", "dynamodb:GetItem"));
        assert!(action_matches("dynamo*:Get*", "dynamodb:GetRecords"));
        assert!(!action_matches("dynamodb:Get*", "dynamodb:BatchGetItem"));
        assert!(!action_matches("dynamodb:GetItem", "dynamodb:GetItems"));
        assert!(!action_matches("sqs:SendMessage", "sqs:SendMessageBatch"));
        assert!(action_matches("sqs:SendMessage*", "sqs:SendMessageBatch"));
    }

    #[test]
    fn resources_are_case_sensitive_and_exact_without_a_wildcard() {
        assert!(resource_matches(TABLE, TABLE));
        assert!(!resource_matches(TABLE, "arn:aws:dynamodb:us-east-1:123456789012:table/shoptable"));
        assert!(!resource_matches(TABLE, "arn:aws:dynamodb:us-east-1:123456789012:table/ShopTable2"));
        assert!(resource_matches("*", TABLE));
    }

    #[test]
    fn a_table_grant_is_not_a_grant_on_its_indexes_or_its_stream() {
        let index = format!("{TABLE}/index/gsi1");
        let stream = format!("{TABLE}/stream/2015-05-11T21:21:33.291");
        assert!(!resource_matches(TABLE, &index));
        assert!(resource_matches(&format!("{TABLE}/index/*"), &index));
        assert!(resource_matches(&format!("{TABLE}/index/gsi1"), &index));
        assert!(!resource_matches(&format!("{TABLE}/index/gsi1"), &format!("{TABLE}/index/gsi2")));
        assert!(!resource_matches(TABLE, &stream));
        assert!(!resource_matches(&format!("{TABLE}/index/*"), &stream));
        // The label has colons: the trailing `*` ends its segment, so it crosses them.
        assert!(resource_matches(&format!("{TABLE}/stream/*"), &stream));
        assert!(resource_matches(&format!("{TABLE}/stream/local"), &format!("{TABLE}/stream/local")));
    }

    #[test]
    fn a_star_spans_slashes_within_its_segment() {
        // IAM JSON policy elements: Resource, the S3 example: the wildcards apply to every object
        // below, "not only the first object listed".
        let pattern = "arn:aws:s3:::amzn-s3-demo-bucket/*/test/*";
        for object in [
            "amzn-s3-demo-bucket/1/test/object.jpg",
            "amzn-s3-demo-bucket/1/2/test/object.jpg",
            "amzn-s3-demo-bucket/1/2/test/3/object.jpg",
            "amzn-s3-demo-bucket/1/2/3/test/4/object.jpg",
            "amzn-s3-demo-bucket/1///test///object.jpg",
            "amzn-s3-demo-bucket/1/test/.jpg",
            "amzn-s3-demo-bucket//test/object.jpg",
            "amzn-s3-demo-bucket/1/test/",
        ] {
            assert!(resource_matches(pattern, &format!("arn:aws:s3:::{object}")), "{object}");
        }
        for object in [
            "amzn-s3-demo-bucket/1-test/object.jpg",
            "amzn-s3-demo-bucket/test/object.jpg",
            "amzn-s3-demo-bucket/1/2/test.jpg",
        ] {
            assert!(!resource_matches(pattern, &format!("arn:aws:s3:::{object}")), "{object}");
        }
    }

    #[test]
    fn a_star_crosses_colons_only_at_the_end_of_its_segment() {
        // Region and account wildcarded, each `*` a whole segment.
        assert!(resource_matches("arn:aws:dynamodb:*:*:table/ShopTable", TABLE));
        assert!(resource_matches("arn:aws:dynamodb:us-east-1:123456789012:*", TABLE));
        // `us-*` ends its segment: it may run on over the colons.
        assert!(resource_matches("arn:aws:dynamodb:us-*:table/ShopTable", TABLE));
        // A `*` inside a segment stops at the colon.
        assert!(!resource_matches("arn:aws:dynamodb:us*1:table/ShopTable", TABLE));
        assert!(resource_matches("arn:aws:dynamodb:us*1:123456789012:table/ShopTable", TABLE));
        // `?` is one character of a segment, never a colon.
        assert!(resource_matches("arn:aws:sqs:us-east-?:123456789012:Q", "arn:aws:sqs:us-east-1:123456789012:Q"));
        assert!(!resource_matches("arn:aws:sqs:us-east-1?123456789012:Q", "arn:aws:sqs:us-east-1:123456789012:Q"));
    }
}
