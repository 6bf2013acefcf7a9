//! What one write does to one item: the item before (read from DynamoDB Local) and after, as the
//! index budget ([`super::index_partitions`]) needs them to know which index entries a write
//! changes, and how big they are.
//!
//! Items are DynamoDB JSON (`{"name": {"S": "x"}, "n": {"N": "3"}}`). The image after a write is
//! computed here, without DynamoDB Local, before the write is judged:
//!
//! * `Put`: its `Item`; `Delete`: nothing; `ConditionCheck`: the item unchanged;
//! * `Update`: the `UpdateExpression` applied to the image before — `SET a = :v`, `a = b`,
//!   `if_not_exists(a, :v)`, `a + :v`, `a - :v`, `list_append(a, :v)`; `REMOVE a`; `ADD a :v`
//!   (numbers and sets); `DELETE a :v` — with `#name` and `:value` placeholders resolved. Only
//!   top-level attributes matter to an index (a key is a top-level scalar); a change inside a map
//!   or list, or anything not understood, marks its top-level attribute **changed** with its
//!   value unknown, which costs an index write rather than hiding one.
//!
//! The image before is read just before the write is judged, not atomically with it: two writes
//! of one item at the same instant may both see the older image. That costs at most an index
//! write too many or too few in a race; the budget is a model of AWS's limits, not a ledger.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// An item in DynamoDB JSON: attribute name → typed value.
pub type Image = Map<String, Value>;

/// One write's effect on one item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Change {
    pub before: Option<Image>,
    pub after: Option<Image>,
    /// Top-level attributes changed in a way not computed here (nested paths, unknown forms).
    pub unknown: BTreeSet<String>,
}

impl Change {
    /// Top-level attributes whose value differs before and after (or is unknown).
    pub fn changed(&self) -> BTreeSet<String> {
        let empty = Image::new();
        let before = self.before.as_ref().unwrap_or(&empty);
        let after = self.after.as_ref().unwrap_or(&empty);
        let mut changed: BTreeSet<String> = self.unknown.clone();
        for name in before.keys().chain(after.keys()) {
            if before.get(name) != after.get(name) {
                changed.insert(name.clone());
            }
        }
        changed
    }
}

/// The effect of one write action (`Put`, `Update`, `Delete`, `ConditionCheck`, as in a
/// transaction; `PutItem` and friends use the same names) with body `action` on an item whose
/// image is `before`.
pub fn change(kind: &str, action: &Value, before: Option<Image>) -> Change {
    match kind {
        "Put" => Change { after: action.get("Item").and_then(Value::as_object).cloned(), before, ..Change::default() },
        "Delete" => Change { before, ..Change::default() },
        "Update" => {
            let names = action.get("ExpressionAttributeNames").and_then(Value::as_object);
            let values = action.get("ExpressionAttributeValues").and_then(Value::as_object);
            let expression = action.get("UpdateExpression").and_then(Value::as_str).unwrap_or("");
            // An update creates the item if absent: its key attributes are in the image.
            let mut start = before.clone().unwrap_or_default();
            if before.is_none()
                && let Some(key) = action.get("Key").and_then(Value::as_object)
            {
                start.extend(key.clone());
            }
            let (after, unknown) = apply_update(&start, expression, names, values);
            Change { before, after: Some(after), unknown }
        }
        _ => Change { after: before.clone(), before, ..Change::default() },
    }
}

/// The key of the item a write action names, in DynamoDB JSON (`key_names`: the table's key
/// attributes): `Key`, or the key attributes of a `Put`'s `Item`.
pub fn item_key(kind: &str, action: &Value, key_names: &[String]) -> Option<Image> {
    let source = if kind == "Put" { action.get("Item")? } else { action.get("Key")? };
    let source = source.as_object()?;
    key_names.iter().map(|k| source.get(k).map(|v| (k.clone(), v.clone()))).collect()
}

/// DynamoDB's item size, near enough: attribute names plus values (strings and binaries by
/// their bytes, numbers about one byte per two digits, maps and lists 3 bytes plus 1 per element).
pub fn size(image: &Image) -> usize {
    image.iter().map(|(name, v)| name.len() + value_size(v)).sum()
}

fn value_size(v: &Value) -> usize {
    let Some((kind, inner)) = v.as_object().and_then(|o| o.iter().next()) else { return 1 };
    match (kind.as_str(), inner) {
        ("S", Value::String(s)) => s.len(),
        ("B", Value::String(b)) => b.len() * 3 / 4,
        ("N", Value::String(n)) => n.len().div_ceil(2) + 1,
        ("SS" | "NS" | "BS", Value::Array(items)) => {
            items.iter().map(|i| i.as_str().map_or(1, str::len)).sum::<usize>().max(1)
        }
        ("L", Value::Array(items)) => 3 + items.iter().map(|i| value_size(i) + 1).sum::<usize>(),
        ("M", Value::Object(m)) => 3 + m.iter().map(|(k, i)| k.len() + value_size(i) + 1).sum::<usize>(),
        _ => 1,
    }
}

/// One token of an update expression.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A path (`a`, `#n`, `a.b[1]`) or a placeholder (`:v`) or a function name.
    Word(String),
    Punct(char),
}

fn tokens(expression: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in expression.chars() {
        if c.is_alphanumeric() || matches!(c, '_' | '#' | ':' | '.' | '[' | ']') {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            out.push(Token::Word(std::mem::take(&mut word)));
        }
        if !c.is_whitespace() {
            out.push(Token::Punct(c));
        }
    }
    if !word.is_empty() {
        out.push(Token::Word(word));
    }
    out
}

/// `SET`, `REMOVE`, `ADD`, `DELETE` (reserved words: never an attribute name unescaped).
fn clause(token: &Token) -> Option<&'static str> {
    let Token::Word(w) = token else { return None };
    ["SET", "REMOVE", "ADD", "DELETE"].into_iter().find(|k| w.eq_ignore_ascii_case(k))
}

/// Splits a clause's tokens into its comma-separated actions (commas inside parentheses stay).
fn actions(tokens: &[Token]) -> Vec<&[Token]> {
    let (mut depth, mut start, mut out) = (0i32, 0, Vec::new());
    for (i, t) in tokens.iter().enumerate() {
        match t {
            Token::Punct('(') => depth += 1,
            Token::Punct(')') => depth -= 1,
            Token::Punct(',') if depth == 0 => {
                out.push(&tokens[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&tokens[start..]);
    out.into_iter().filter(|a| !a.is_empty()).collect()
}

struct Eval<'a> {
    before: &'a Image,
    names: Option<&'a Map<String, Value>>,
    values: Option<&'a Map<String, Value>>,
}

impl Eval<'_> {
    /// The top-level attribute a path names, and whether the path goes deeper.
    fn top(&self, path: &str) -> (String, bool) {
        let end = path.find(['.', '[']).unwrap_or(path.len());
        let first = &path[..end];
        let name = match first.strip_prefix('#') {
            Some(_) => self.names.and_then(|n| n.get(first)).and_then(Value::as_str).unwrap_or(first).to_owned(),
            None => first.to_owned(),
        };
        (name, end < path.len())
    }

    /// The value of one operand (`:v`, a top-level path, a function call), if computable.
    fn operand(&self, tokens: &[Token]) -> Option<Value> {
        match tokens {
            [Token::Word(w)] if w.starts_with(':') => self.values?.get(w).cloned(),
            [Token::Word(w)] => match self.top(w) {
                (name, false) => self.before.get(&name).cloned(),
                _ => None,
            },
            [Token::Word(f), Token::Punct('('), args @ .., Token::Punct(')')] => {
                let args = actions(args);
                match (f.to_ascii_lowercase().as_str(), &args[..]) {
                    ("if_not_exists", [path, fallback]) => match path {
                        [Token::Word(p)] if !self.top(p).1 => {
                            self.before.get(&self.top(p).0).cloned().or_else(|| self.operand(fallback))
                        }
                        _ => None,
                    },
                    ("list_append", [a, b]) => {
                        let (a, b) = (self.operand(a)?, self.operand(b)?);
                        let mut list = a.get("L")?.as_array()?.clone();
                        list.extend(b.get("L")?.as_array()?.iter().cloned());
                        Some(serde_json::json!({ "L": list }))
                    }
                    _ => None,
                }
            }
            _ => {
                // `a + b` / `a - b` at the top level.
                let at = tokens.iter().position(|t| matches!(t, Token::Punct('+' | '-')))?;
                let (a, b) = (self.operand(&tokens[..at])?, self.operand(&tokens[at + 1..])?);
                let sign = if tokens[at] == Token::Punct('-') { -1 } else { 1 };
                number_sum(&a, &b, sign)
            }
        }
    }
}

fn number(v: &Value) -> Option<&str> {
    v.get("N")?.as_str()
}

/// `a + sign × b` of two DynamoDB numbers (integers exactly, else as floats).
fn number_sum(a: &Value, b: &Value, sign: i128) -> Option<Value> {
    let (a, b) = (number(a)?, number(b)?);
    let sum = match (a.parse::<i128>(), b.parse::<i128>()) {
        (Ok(a), Ok(b)) => (a + sign * b).to_string(),
        _ => (a.parse::<f64>().ok()? + sign as f64 * b.parse::<f64>().ok()?).to_string(),
    };
    Some(serde_json::json!({ "N": sum }))
}

/// The image after `expression`, and the attributes changed in ways not computed.
fn apply_update(
    before: &Image,
    expression: &str,
    names: Option<&Map<String, Value>>,
    values: Option<&Map<String, Value>>,
) -> (Image, BTreeSet<String>) {
    let eval = Eval { before, names, values };
    let mut after = before.clone();
    let mut unknown = BTreeSet::new();
    let all = tokens(expression);
    let mut clauses: BTreeMap<usize, &'static str> = BTreeMap::new();
    for (i, t) in all.iter().enumerate() {
        if let Some(c) = clause(t) {
            clauses.insert(i, c);
        }
    }
    let starts: Vec<(usize, &'static str)> = clauses.into_iter().collect();
    for (n, (at, kind)) in starts.iter().enumerate() {
        let end = starts.get(n + 1).map_or(all.len(), |(next, _)| *next);
        for action in actions(&all[at + 1..end]) {
            let Some(Token::Word(path)) = action.first() else { continue };
            let (name, nested) = eval.top(path);
            if nested {
                unknown.insert(name);
                continue;
            }
            // The attribute's new value: `Some(None)` removed, `None` not computable here.
            let value: Option<Option<Value>> = match *kind {
                "SET" => match action.get(1) {
                    Some(Token::Punct('=')) => eval.operand(&action[2..]).map(Some),
                    _ => None,
                },
                "REMOVE" => Some(None),
                "ADD" => match (before.get(&name), eval.operand(&action[1..])) {
                    (None, Some(v)) => Some(Some(v)),
                    (Some(old), Some(v)) => number_sum(old, &v, 1).or_else(|| set_union(old, &v)).map(Some),
                    _ => None,
                },
                _ => None,
            };
            match value {
                Some(Some(v)) => {
                    after.insert(name, v);
                }
                Some(None) => {
                    after.remove(&name);
                }
                None => {
                    unknown.insert(name);
                }
            }
        }
    }
    (after, unknown)
}

fn set_union(a: &Value, b: &Value) -> Option<Value> {
    let (kind, a) = a.as_object()?.iter().next()?;
    let b = b.get(kind)?.as_array()?;
    let mut all: Vec<Value> = a.as_array()?.clone();
    for v in b {
        if !all.contains(v) {
            all.push(v.clone());
        }
    }
    Some(serde_json::json!({ kind: all }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn image(v: Value) -> Image {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn an_update_applies_set_remove_and_add_to_the_image_before() {
        let before = image(json!({
            "pk": {"S": "PRODUCT#1"}, "sk": {"S": "PRODUCT"}, "gsi1pk": {"S": "CATALOG"},
            "reserved_stock": {"N": "2"}, "sellable_stock": {"N": "8"}, "name": {"S": "Tea"}
        }));
        let action = json!({
            "Key": {"pk": {"S": "PRODUCT#1"}, "sk": {"S": "PRODUCT"}},
            "UpdateExpression": "SET reserved_stock = reserved_stock + :q, #s = #s - :q, tags = if_not_exists(tags, :none) REMOVE gsi1pk ADD hits :one",
            "ExpressionAttributeNames": {"#s": "sellable_stock"},
            "ExpressionAttributeValues": {":q": {"N": "3"}, ":none": {"L": []}, ":one": {"N": "1"}}
        });
        let c = change("Update", &action, Some(before));
        let after = c.after.clone().unwrap();
        assert_eq!(after["reserved_stock"], json!({"N": "5"}));
        assert_eq!(after["sellable_stock"], json!({"N": "5"}));
        assert_eq!(after["tags"], json!({"L": []}));
        assert_eq!(after["hits"], json!({"N": "1"}));
        assert!(!after.contains_key("gsi1pk"));
        assert_eq!(
            c.changed().into_iter().collect::<Vec<_>>(),
            ["gsi1pk", "hits", "reserved_stock", "sellable_stock", "tags"]
        );
    }

    #[test]
    fn a_nested_or_unknown_change_marks_its_attribute_changed() {
        let before = image(json!({"pk": {"S": "a"}, "m": {"M": {"x": {"N": "1"}}}, "gsi2pk": {"S": "P"}}));
        let action = json!({
            "UpdateExpression": "set m.x = :v, gsi2pk = size(:v)",
            "ExpressionAttributeValues": {":v": {"N": "2"}}
        });
        let c = change("Update", &action, Some(before));
        assert_eq!(c.unknown.into_iter().collect::<Vec<_>>(), ["gsi2pk", "m"]);
    }

    #[test]
    fn an_update_of_an_absent_item_creates_it_with_its_key() {
        let action = json!({"Key": {"pk": {"S": "a"}, "sk": {"S": "b"}}, "UpdateExpression": "SET x = :x",
                            "ExpressionAttributeValues": {":x": {"S": "y"}}});
        let c = change("Update", &action, None);
        assert_eq!(c.after.unwrap().len(), 3);
        assert_eq!(change("Delete", &action, None), Change::default());
    }

    #[test]
    fn keys_and_sizes() {
        let put = json!({"Item": {"pk": {"S": "a"}, "sk": {"S": "b"}, "x": {"S": "0123456789"}}});
        let key = item_key("Put", &put, &["pk".to_owned(), "sk".to_owned()]).unwrap();
        assert_eq!(key.len(), 2);
        // Names and values: pk + a, sk + b, x + 10 characters.
        assert_eq!(size(&image(put["Item"].clone())), 2 + 1 + 2 + 1 + 1 + 10);
        assert_eq!(value_size(&json!({"N": "1234"})), 3);
        assert_eq!(value_size(&json!({"L": [{"S": "ab"}]})), 3 + 3);
    }
}
