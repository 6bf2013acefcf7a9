//! The write budget of the table's global secondary indexes: which index partitions a base-table
//! write costs, and how much, as AWS charges it.
//!
//! An index has partitions like the table, with the same limit (1,000 write units/s per
//! partition key, docs/capacity.md), and when an index cannot take its share DynamoDB throttles
//! the **base-table** write. What a base write costs an index (DynamoDB developer guide, "Global
//! secondary indexes", provisioned throughput considerations / write capacity units):
//!
//! * nothing, when the item is in the index neither before nor after, or when the write changes
//!   neither the index's key attributes nor an attribute it projects (`ALL`: any attribute;
//!   `KEYS_ONLY`: the table's and the index's keys; `INCLUDE`: those and its `NonKeyAttributes`);
//! * one entry write when the item enters the index (its key attributes become defined), leaves
//!   it (one of them is removed or the item deleted), or stays under the same key with a
//!   projected attribute changed;
//! * **two** when an index key attribute changes value: the old entry is deleted, the new one put;
//! * each entry write costs 1 write unit per KB of the *index entry* (the table and index keys
//!   plus the projected attributes; the whole item for `ALL`), at least 1. The index is updated
//!   after the base write commits, so a transactional write costs the index the same as a single
//!   one (the transaction's 2 units per item are its prepare and commit on the table).
//!
//! To know that, the proxy needs the index definitions — read from template.yaml, the same
//! `AWS::DynamoDB::Table` the table was created from ([`Indexes::from_template`]) — and the item
//! before the write ([`super::item_images`]: one `BatchGetItem` to DynamoDB Local per write
//! request, only while the partition limits are on). The resulting [`IndexWrite`]s are spent from
//! the same token buckets as the table's partitions, keyed by table, index and index partition
//! key: a request whose index partition is short is refused whole, like one whose table
//! partition is.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use super::item_images::{Change, Image, size};
use crate::template::Table;

/// How an index projects the base item.
#[derive(Debug, Clone, PartialEq)]
pub enum Projection {
    All,
    KeysOnly,
    /// Keys and these attributes.
    Include(BTreeSet<String>),
}

/// One global secondary index.
#[derive(Debug, Clone, PartialEq)]
pub struct Gsi {
    pub name: String,
    pub hash: String,
    pub range: Option<String>,
    pub projection: Projection,
}

/// A table's key attributes and its indexes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableIndexes {
    /// The table's key attribute names (hash, then range).
    pub keys: Vec<String>,
    pub gsis: Vec<Gsi>,
}

/// Every table's indexes, by table name.
#[derive(Debug, Clone, Default)]
pub struct Indexes(HashMap<String, TableIndexes>);

impl Indexes {
    /// From the template's tables (their `KeySchema` and `GlobalSecondaryIndexes`).
    pub fn from_template(tables: &[Table]) -> Self {
        Self(tables.iter().map(|t| (t.name.clone(), of_table(&t.properties))).collect())
    }

    /// The indexes of `table`, if it has any.
    pub fn of(&self, table: &str) -> Option<&TableIndexes> {
        self.0.get(table).filter(|t| !t.gsis.is_empty())
    }
}

fn key_schema(schema: Option<&Value>) -> (Option<String>, Option<String>) {
    let mut hash = None;
    let mut range = None;
    for k in schema.and_then(Value::as_array).into_iter().flatten() {
        let name = k.get("AttributeName").and_then(Value::as_str).map(str::to_owned);
        match k.get("KeyType").and_then(Value::as_str) {
            Some("HASH") => hash = name,
            Some("RANGE") => range = name,
            _ => {}
        }
    }
    (hash, range)
}

fn of_table(properties: &Value) -> TableIndexes {
    let (hash, range) = key_schema(properties.get("KeySchema"));
    let keys = hash.into_iter().chain(range).collect();
    let gsis = properties
        .get("GlobalSecondaryIndexes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|g| {
            let (hash, range) = key_schema(g.get("KeySchema"));
            let projection = g.get("Projection");
            let projection = match projection.and_then(|p| p.get("ProjectionType")).and_then(Value::as_str) {
                Some("ALL") => Projection::All,
                Some("INCLUDE") => Projection::Include(
                    projection
                        .and_then(|p| p.get("NonKeyAttributes"))
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect(),
                ),
                _ => Projection::KeysOnly,
            };
            Some(Gsi { name: g.get("IndexName")?.as_str()?.to_owned(), hash: hash?, range, projection })
        })
        .collect();
    TableIndexes { keys, gsis }
}

/// One index entry write that a base write causes.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexWrite {
    pub index: String,
    /// The index partition key's value.
    pub partition: String,
    pub units: f64,
}

/// A scalar key value as the budget names its partition.
fn scalar(v: &Value) -> String {
    v.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).map_or_else(|| v.to_string(), str::to_owned)
}

impl Gsi {
    /// The entry's key (hash, range) if the item is in this (sparse) index.
    fn key(&self, image: &Image) -> Option<(String, Option<String>)> {
        let hash = image.get(&self.hash).map(scalar)?;
        match &self.range {
            Some(r) => Some((hash, Some(image.get(r).map(scalar)?))),
            None => Some((hash, None)),
        }
    }

    fn projects(&self, attribute: &str, table_keys: &[String]) -> bool {
        attribute == self.hash
            || self.range.as_deref() == Some(attribute)
            || table_keys.iter().any(|k| k == attribute)
            || match &self.projection {
                Projection::All => true,
                Projection::KeysOnly => false,
                Projection::Include(names) => names.contains(attribute),
            }
    }

    /// Write units of this index's entry of `image`: 1 per KB of what it projects, at least 1.
    fn entry_units(&self, image: &Image, table_keys: &[String]) -> f64 {
        let projected: Image =
            image.iter().filter(|(k, _)| self.projects(k, table_keys)).map(|(k, v)| (k.clone(), v.clone())).collect();
        (size(&projected).div_ceil(1024)).max(1) as f64
    }

    /// The entry writes `change` costs this index.
    fn writes(&self, change: &Change, table_keys: &[String]) -> Vec<IndexWrite> {
        let before = change.before.as_ref().and_then(|i| Some((i, self.key(i)?)));
        let after = change.after.as_ref().and_then(|i| Some((i, self.key(i)?)));
        let write = |(image, (hash, _)): (&Image, (String, Option<String>))| IndexWrite {
            index: self.name.clone(),
            units: self.entry_units(image, table_keys),
            partition: hash,
        };
        let key_unknown = change.unknown.iter().any(|a| *a == self.hash || self.range.as_deref() == Some(a));
        match (before, after) {
            (None, None) => Vec::new(),
            (None, Some(new)) => vec![write(new)],
            (Some(old), None) => vec![write(old)],
            (Some(old), Some(new)) if old.1 != new.1 || key_unknown => vec![write(old), write(new)],
            (Some(_), Some(new)) => {
                if change.changed().iter().any(|a| self.projects(a, table_keys)) {
                    vec![write(new)]
                } else {
                    Vec::new()
                }
            }
        }
    }
}

impl TableIndexes {
    /// Every index entry write `change` costs this table's indexes.
    pub fn writes(&self, change: &Change) -> Vec<IndexWrite> {
        self.gsis.iter().flat_map(|g| g.writes(change, &self.keys)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulators::dynamodb_proxy::item_images::change;
    use serde_json::json;

    fn indexes() -> TableIndexes {
        let properties = json!({
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            "GlobalSecondaryIndexes": [
                {"IndexName": "gsi1", "Projection": {"ProjectionType": "ALL"},
                 "KeySchema": [{"AttributeName": "gsi1pk", "KeyType": "HASH"}, {"AttributeName": "gsi1sk", "KeyType": "RANGE"}]},
                {"IndexName": "gsi3", "Projection": {"ProjectionType": "KEYS_ONLY"},
                 "KeySchema": [{"AttributeName": "gsi3pk", "KeyType": "HASH"}, {"AttributeName": "gsi3sk", "KeyType": "RANGE"}]},
                {"IndexName": "inc", "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["name"]},
                 "KeySchema": [{"AttributeName": "incpk", "KeyType": "HASH"}]}
            ]
        });
        of_table(&properties)
    }

    fn product(extra: Value) -> Image {
        let mut item = json!({
            "pk": {"S": "PRODUCT#1"}, "sk": {"S": "PRODUCT"}, "gsi1pk": {"S": "CATALOG"}, "gsi1sk": {"S": "1"},
            "gsi3pk": {"S": "CATALOG"}, "gsi3sk": {"S": "1"}, "incpk": {"S": "I"}, "name": {"S": "Tea"},
            "sellable_stock": {"N": "5"}
        });
        item.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        item.as_object().unwrap().clone()
    }

    fn summary(writes: &[IndexWrite]) -> Vec<(&str, &str, f64)> {
        writes.iter().map(|w| (w.index.as_str(), w.partition.as_str(), w.units)).collect()
    }

    #[test]
    fn reads_the_template_shape() {
        let t = indexes();
        assert_eq!(t.keys, ["pk", "sk"]);
        assert_eq!(t.gsis[0].projection, Projection::All);
        assert_eq!(t.gsis[1].projection, Projection::KeysOnly);
        assert_eq!(t.gsis[2].projection, Projection::Include(["name".to_owned()].into()));
        assert_eq!(t.gsis[2].range, None);
    }

    #[test]
    fn a_stock_write_costs_only_the_index_that_projects_the_stock() {
        let t = indexes();
        let update = json!({
            "Key": {"pk": {"S": "PRODUCT#1"}, "sk": {"S": "PRODUCT"}},
            "UpdateExpression": "SET sellable_stock = sellable_stock - :q",
            "ExpressionAttributeValues": {":q": {"N": "1"}}
        });
        let writes = t.writes(&change("Update", &update, Some(product(json!({})))));
        assert_eq!(summary(&writes), [("gsi1", "CATALOG", 1.0)]);
        // A projected attribute changes: ALL and INCLUDE(name) pay, KEYS_ONLY does not.
        let rename = json!({"UpdateExpression": "SET #n = :n", "ExpressionAttributeNames": {"#n": "name"},
                            "ExpressionAttributeValues": {":n": {"S": "Coffee"}}});
        let writes = t.writes(&change("Update", &rename, Some(product(json!({})))));
        assert_eq!(summary(&writes), [("gsi1", "CATALOG", 1.0), ("inc", "I", 1.0)]);
        // Setting what is already there changes nothing.
        let same = json!({"UpdateExpression": "SET #n = :n", "ExpressionAttributeNames": {"#n": "name"},
                          "ExpressionAttributeValues": {":n": {"S": "Tea"}}});
        assert!(t.writes(&change("Update", &same, Some(product(json!({}))))).is_empty());
    }

    #[test]
    fn entering_leaving_and_moving_cost_one_one_and_two_entries() {
        let t = indexes();
        let order = json!({"Item": {"pk": {"S": "ORDER#1"}, "sk": {"S": "ORDER"},
                                    "gsi1pk": {"S": "PENDING#3"}, "gsi1sk": {"S": "9"}}});
        let put = change("Put", &order, None);
        assert_eq!(summary(&t.writes(&put)), [("gsi1", "PENDING#3", 1.0)]);
        let before = put.after.clone();
        let leave = json!({"UpdateExpression": "REMOVE gsi1pk, gsi1sk SET #s = :paid",
                           "ExpressionAttributeNames": {"#s": "state"}, "ExpressionAttributeValues": {":paid": {"S": "PAID"}}});
        assert_eq!(summary(&t.writes(&change("Update", &leave, before.clone()))), [("gsi1", "PENDING#3", 1.0)]);
        let mv = json!({"UpdateExpression": "SET gsi1pk = :q", "ExpressionAttributeValues": {":q": {"S": "DONE"}}});
        assert_eq!(
            summary(&t.writes(&change("Update", &mv, before.clone()))),
            [("gsi1", "PENDING#3", 1.0), ("gsi1", "DONE", 1.0)]
        );
        assert_eq!(summary(&t.writes(&change("Delete", &json!({}), before))), [("gsi1", "PENDING#3", 1.0)]);
        // A ConditionCheck changes nothing.
        assert!(t.writes(&change("ConditionCheck", &json!({}), Some(product(json!({}))))).is_empty());
    }

    #[test]
    fn a_big_entry_costs_a_unit_per_kilobyte_of_what_is_projected() {
        let t = indexes();
        let big = "x".repeat(2500);
        let put = json!({"Item": product(json!({"description": {"S": big}}))});
        let writes = t.writes(&change("Put", &put, None));
        // ALL projects the 2.5 KB description (3 units); KEYS_ONLY and INCLUDE(name) do not.
        assert_eq!(summary(&writes), [("gsi1", "CATALOG", 3.0), ("gsi3", "CATALOG", 1.0), ("inc", "I", 1.0)]);
    }
}
