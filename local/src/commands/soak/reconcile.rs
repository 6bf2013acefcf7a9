//! The invariants, checked once the stack is at rest ([`super::quiesce`]), against what is really
//! there: the whole table read from DynamoDB Local (behind no proxy, so no fault touches the
//! reading), the mock gateway's charges (items of the same table), the mail moto accepted, the
//! dead-letter queue, and what the clients saw. Only what this soak made is judged (its products,
//! its customers' orders, their charges, refunds and events), so it can run on a stack the test
//! suite used before.
//!
//! | invariant | how |
//! |---|---|
//! | stock buckets are sound | per bucket `0 ≤ reserved ≤ available`, `sellable = available − reserved`, none negative |
//! | units are conserved | per product, summed over buckets: `available = initial + adjustments − units of PAID orders` |
//! | reservations are held by orders | per product: `reserved` = units of orders still `PENDING_PAYMENT` |
//! | money taken is paid for or paid back | every succeeded charge pays exactly one `PAID` order, or has a refund the gateway paid (`REFUNDED`, `amount_refunded` = amount) |
//! | no `PAID` order without its charge | the order's `charge_id` is a succeeded charge for this order and its total |
//! | every order a client was given exists, once per key | each order id a client got is in the table; a customer has as many orders as it placed |
//! | every event is published | no outbox item of the soak still pending |
//! | one e-mail per transition | per event with an e-mail: exactly one to its recipient with its subject and ids (none if SES refused the address, and only then), and the notifier's record of it says `SENT` (a claim left `SENDING`, or no record, would be decided or sent again by a redelivery). The one exception is an **unknown outcome** the notifier counted (`EmailsOutcomeUnknown`: an instance died between SES's answer and its record): up to one more e-mail per such attempt if its kind is sent again (record `attempt` ≥ 2), none or one if its kind is let be (record `UNKNOWN`), and only as its kind's decision (`shop::email::unknown`) says — reported apart, not a break |
//! | dead letters are explained | any new one while every event got published in the end (the sweeper's redrive) |
//! | every 5xx was retried to an answer | no client gave up |
//! | only documented answers | no client got a status its route does not give |
//! | no instance died unasked | `unexpected_exits` of the pools, new during the soak |

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::Result;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Map, Value};
use shop::email::unknown::AfterUnknown;
use shop::events::event::EventType;

use super::traffic::Records;

/// Everything the reconcile reads.
pub struct Inputs<'a> {
    pub products: &'a [String],
    pub initial_stock: Vec<i64>,
    pub records: &'a Records,
    pub items: Vec<Value>,
    pub mail: Vec<crate::emulators::ses::SentMail>,
    pub new_dead_letters: usize,
    /// Requests the clients made (each retried until answered or given up on).
    pub requests: usize,
    pub gave_up: Vec<(f64, String, String)>,
    pub unexpected_exits: Vec<String>,
    /// When the traffic started, on the wall clock (to place an order's `created_at` in the run).
    pub started_at: time::OffsetDateTime,
}

pub struct Check {
    pub name: &'static str,
    pub checked: usize,
    pub broken: usize,
}

pub struct Break {
    pub invariant: &'static str,
    pub what: String,
    /// Seconds into the run it concerns, if known (the timeline around it is printed).
    pub at: Option<f64>,
}

#[derive(Default)]
pub struct Outcome {
    pub checks: Vec<Check>,
    pub breaks: Vec<Break>,
    pub orders_by_state: BTreeMap<String, usize>,
    pub charges_by_status: BTreeMap<String, usize>,
    pub refunds_by_state: BTreeMap<String, usize>,
    pub emails_by_subject: BTreeMap<String, usize>,
    pub emails_refused: usize,
    /// E-mails of unknown outcome (a notifier died between SES's answer and its record; see
    /// `shop::email::unknown`), by decision, and how many of them did reach their customer twice
    /// (sent again) or not at all (let be): accounted for, not breaks.
    pub emails_unknown: EmailsUnknown,
    /// Refunds the gateway refused because the soak delivered their charge's webhook before the
    /// charge settled on the real clock (see the money check).
    pub refunds_refused_early: usize,
}

#[derive(Default, Debug)]
pub struct EmailsUnknown {
    pub sent_again: usize,
    pub twice: usize,
    pub let_be: usize,
    pub never: usize,
}

impl Outcome {
    fn check(&mut self, name: &'static str, checked: usize, breaks: Vec<Break>) {
        debug_assert!(breaks.iter().all(|b| b.invariant == name));
        self.checks.push(Check { name, checked, broken: breaks.len() });
        self.breaks.extend(breaks);
    }
}

/// Scans the whole table (from DynamoDB Local itself), each item as JSON.
pub async fn scan(db: &aws_sdk_dynamodb::Client, table: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = db
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(aws_sdk_dynamodb::Error::from)?;
        out.extend(page.items().iter().map(|item| Value::Object(object(item))));
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(out);
        }
    }
}

fn object(item: &HashMap<String, AttributeValue>) -> Map<String, Value> {
    item.iter().map(|(k, v)| (k.clone(), json(v))).collect()
}

fn json(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => n.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::String(n.clone())),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::L(l) => Value::Array(l.iter().map(json).collect()),
        AttributeValue::M(m) => Value::Object(object(m)),
        AttributeValue::Ss(s) => Value::Array(s.iter().cloned().map(Value::String).collect()),
        _ => Value::Null,
    }
}

fn s<'v>(item: &'v Value, k: &str) -> &'v str {
    item[k].as_str().unwrap_or_default()
}

fn n(item: &Value, k: &str) -> i64 {
    item[k].as_i64().unwrap_or_default()
}

pub fn reconcile(input: &Inputs<'_>) -> Outcome {
    let mut out = Outcome::default();
    let customers: BTreeMap<String, bool> =
        input.records.customers.iter().map(|c| (c.email.to_lowercase(), c.refused)).collect();
    let by_sk = |sk: &'static str| input.items.iter().filter(move |i| s(i, "sk") == sk);
    let orders: BTreeMap<String, &Value> = by_sk("ORDER")
        .filter(|o| customers.contains_key(&s(o, "email").to_lowercase()))
        .map(|o| (s(o, "id").to_owned(), o))
        .collect();
    let at = |order: &Value| {
        time::OffsetDateTime::parse(s(order, "created_at"), &time::format_description::well_known::Rfc3339)
            .ok()
            .map(|t| (t - input.started_at).as_seconds_f64())
    };
    for o in orders.values() {
        *out.orders_by_state.entry(s(o, "state").to_owned()).or_default() += 1;
    }

    stock(input, &orders, &mut out);
    let charges: BTreeMap<String, &Value> = by_sk("CHARGE")
        .filter(|c| orders.contains_key(s(c, "reference")))
        .map(|c| (s(c, "id").to_owned(), c))
        .collect();
    let refunds: BTreeMap<String, &Value> = by_sk("REFUND")
        .filter(|r| orders.contains_key(s(r, "order_id")))
        .map(|r| (s(r, "charge_id").to_owned(), r))
        .collect();
    for c in charges.values() {
        *out.charges_by_status.entry(s(c, "final_status").to_owned()).or_default() += 1;
    }
    for r in refunds.values() {
        *out.refunds_by_state.entry(s(r, "state").to_owned()).or_default() += 1;
    }

    // Money taken is paid for or paid back.
    let mut broken = Vec::new();
    let taken: Vec<&&Value> = charges.values().filter(|c| s(c, "final_status") == "succeeded").collect();
    for c in &taken {
        let id = s(c, "id");
        let order = orders.get(s(c, "reference"));
        let pays = orders.values().filter(|o| s(o, "state") == "PAID" && s(o, "charge_id") == id).count();
        let refund = refunds.get(id);
        let refunded = refund.is_some_and(|r| s(r, "state") == "REFUNDED") && n(c, "amount_refunded") == n(c, "amount");
        // The quiesce delivers delayed and late webhooks hours "early" (the schedule's time), while
        // the gateway still reads the charge as pending on the real clock and refuses its refund
        // ("it is pending"): an artifact of the soak's time travel, not of the shop (a real
        // provider sends `charge.succeeded` once the charge has succeeded), and noted as such.
        // Only that refusal, made before the charge settled, is excused; any other is a break.
        let refused_before_settled = refund.is_some_and(|r| {
            let refused_at =
                time::OffsetDateTime::parse(s(r, "updated_at"), &time::format_description::well_known::Rfc3339)
                    .map_or(i64::MAX, |t| t.unix_timestamp());
            s(r, "state") == "FAILED" && s(r, "failure").contains("it is pending") && refused_at < n(c, "settles_at")
        });
        let early = pays == 0 && refused_before_settled;
        if early {
            out.refunds_refused_early += 1;
        }
        let fine = (pays == 1 && refund.is_none()) || (pays == 0 && refunded) || early;
        if !fine {
            let refund =
                refund.map_or("no refund".to_owned(), |r| format!("refund {} {}", s(r, "state"), s(r, "failure")));
            broken.push(Break {
                invariant: "money taken is paid for or paid back",
                what: format!(
                    "charge {id} ({} cents, order {} {}): pays {pays} PAID order(s), {refund}, gateway refunded {}",
                    n(c, "amount"),
                    s(c, "reference"),
                    order.map_or("?", |o| s(o, "state")),
                    n(c, "amount_refunded"),
                ),
                at: order.and_then(|o| at(o)),
            });
        }
    }
    out.check("money taken is paid for or paid back", taken.len(), broken);

    let mut broken = Vec::new();
    let paid: Vec<&&Value> = orders.values().filter(|o| s(o, "state") == "PAID").collect();
    for o in &paid {
        let charge = charges.get(s(o, "charge_id"));
        let fine = charge.is_some_and(|c| {
            s(c, "final_status") == "succeeded"
                && s(c, "reference") == s(o, "id")
                && n(c, "amount") == n(o, "total_amount")
        });
        if !fine {
            broken.push(Break {
                invariant: "no PAID order without its charge",
                what: format!("order {} is PAID with charge {:?}: {:?}", s(o, "id"), s(o, "charge_id"), charge),
                at: at(o),
            });
        }
    }
    out.check("no PAID order without its charge", paid.len(), broken);

    // Every order a client was given exists, and no key made two.
    let mut broken = Vec::new();
    let mut per_customer: BTreeMap<String, usize> = BTreeMap::new();
    for o in orders.values() {
        *per_customer.entry(s(o, "email").to_lowercase()).or_default() += 1;
    }
    let mut given = 0;
    for c in &input.records.customers {
        given += c.orders.len();
        for r in &c.orders {
            if !orders.contains_key(&r.id.to_string()) {
                broken.push(Break {
                    invariant: "every order a client was given exists, once per key",
                    what: format!("order {} ({}, {}) is not in the table", r.id, c.email, r.ending.name()),
                    at: Some(r.at),
                });
            }
        }
        let stored = per_customer.get(&c.email.to_lowercase()).copied().unwrap_or(0);
        if stored != c.orders.len() {
            let ids: BTreeSet<String> = c.orders.iter().map(|r| r.id.to_string()).collect();
            let extra: Vec<&String> = orders
                .iter()
                .filter(|(id, o)| s(o, "email").eq_ignore_ascii_case(&c.email) && !ids.contains(*id))
                .map(|(id, _)| id)
                .collect();
            broken.push(Break {
                invariant: "every order a client was given exists, once per key",
                what: format!(
                    "{} placed {} order(s), the table has {stored}; not given to it: {extra:?}",
                    c.email,
                    c.orders.len()
                ),
                at: c.orders.first().map(|r| r.at),
            });
        }
    }
    out.check("every order a client was given exists, once per key", given, broken);

    emails(input, &customers, &orders, &at, &mut out);

    let published = out.checks.iter().find(|c| c.name == "every event is published").is_some_and(|c| c.broken == 0);
    let dlq = if input.new_dead_letters > 0 && !published {
        vec![Break {
            invariant: "dead letters are explained",
            what: format!("{} new dead letter(s), and some events were never published", input.new_dead_letters),
            at: None,
        }]
    } else {
        vec![]
    };
    out.check("dead letters are explained", input.new_dead_letters, dlq);

    let gave_up = input
        .gave_up
        .iter()
        .map(|(at, what, last)| Break {
            invariant: "every 5xx was retried to an answer",
            what: format!("{what}: still {last} when the client gave up"),
            at: Some(*at),
        })
        .collect();
    out.check("every 5xx was retried to an answer", input.requests, gave_up);
    let unexpected = input
        .records
        .unexpected
        .iter()
        .map(|(at, what)| Break { invariant: "only documented answers", what: what.clone(), at: Some(*at) })
        .collect();
    out.check("only documented answers", input.requests, unexpected);
    let exits = input
        .unexpected_exits
        .iter()
        .map(|e| Break { invariant: "no instance died unasked", what: e.clone(), at: None })
        .collect();
    out.check("no instance died unasked", input.unexpected_exits.len(), exits);
    out
}

/// The stock invariants, per product of the soak.
fn stock(input: &Inputs<'_>, orders: &BTreeMap<String, &Value>, out: &mut Outcome) {
    let (mut sound, mut conserved, mut held) = (Vec::new(), Vec::new(), Vec::new());
    let mut buckets_checked = 0;
    for (index, id) in input.products.iter().enumerate() {
        let pk = format!("PRODUCT#{id}");
        let buckets: Vec<&Value> = input
            .items
            .iter()
            .filter(|i| {
                let p = s(i, "pk");
                (p == pk && s(i, "sk") == "PRODUCT")
                    || (p.starts_with(&format!("{pk}#STOCK#")) && s(i, "sk") == "STOCK")
            })
            .collect();
        let mut total = (0, 0, 0);
        for b in &buckets {
            buckets_checked += 1;
            let (a, r, sl) = (n(b, "available_stock"), n(b, "reserved_stock"), n(b, "sellable_stock"));
            if !(a >= 0 && r >= 0 && sl >= 0 && r <= a && sl == a - r) {
                sound.push(Break {
                    invariant: "stock buckets are sound",
                    what: format!("{} ({}): available {a}, reserved {r}, sellable {sl}", s(b, "pk"), s(b, "sk")),
                    at: None,
                });
            }
            total = (total.0 + a, total.1 + r, total.2 + sl);
        }
        let units = |state: &str| -> i64 {
            orders
                .values()
                .filter(|o| s(o, "state") == state)
                .flat_map(|o| o["lines"].as_array().cloned().unwrap_or_default())
                .filter(|l| s(l, "product_id") == id)
                .map(|l| n(&l, "quantity"))
                .sum()
        };
        let adjustments: Vec<_> = input.records.adjustments.iter().filter(|a| a.product == index).collect();
        let applied: i64 = adjustments.iter().filter(|a| a.applied).map(|a| a.delta).sum();
        let expected = input.initial_stock[index] + applied - units("PAID");
        if total.0 != expected {
            // The admin sends each adjustment with an Idempotency-Key, so a retry after an attempt
            // that died past its commit applies nothing: if the units are off anyway, name the
            // adjustments whose attempts were ambiguous, the first place to look.
            let maybe: Vec<String> = adjustments
                .iter()
                .filter(|a| a.ambiguous > 0)
                .map(|a| {
                    format!(
                        "{:+} ({} ambiguous attempt(s), {})",
                        a.delta,
                        a.ambiguous,
                        if a.applied { "then applied" } else { "not confirmed" }
                    )
                })
                .collect();
            let hint = if maybe.is_empty() {
                String::new()
            } else {
                format!("; retried stock adjustments that may have applied more than once: {}", maybe.join(", "))
            };
            conserved.push(Break {
                invariant: "units are conserved",
                what: format!(
                    "product {id}: available {} ≠ initial {} + adjustments {applied:+} − paid {} = {expected} (off by {:+}){hint}",
                    total.0,
                    input.initial_stock[index],
                    units("PAID"),
                    total.0 - expected
                ),
                at: None,
            });
        }
        let pending = units("PENDING_PAYMENT");
        if total.1 != pending {
            held.push(Break {
                invariant: "reservations are held by orders",
                what: format!("product {id}: reserved {} ≠ {pending} units of orders awaiting payment", total.1),
                at: None,
            });
        }
    }
    out.check("stock buckets are sound", buckets_checked, sound);
    out.check("units are conserved", input.products.len(), conserved);
    out.check("reservations are held by orders", input.products.len(), held);
}

/// Events published, and one e-mail per event that has one.
fn emails(
    input: &Inputs<'_>,
    customers: &BTreeMap<String, bool>,
    orders: &BTreeMap<String, &Value>,
    at: &dyn Fn(&Value) -> Option<f64>,
    out: &mut Outcome,
) {
    let mut mail: HashMap<String, Vec<&crate::emulators::ses::SentMail>> = HashMap::new();
    for m in &input.mail {
        for to in &m.to {
            mail.entry(to.to_lowercase()).or_default().push(m);
        }
    }
    let markers: HashMap<&str, &Value> = input
        .items
        .iter()
        .filter(|i| s(i, "sk") == "EMAIL")
        .filter_map(|i| Some((s(i, "pk").strip_prefix("EMAIL_SENT#")?, i)))
        .collect();
    let (mut unpublished, mut wrong, mut events, mut with_mail) = (Vec::new(), Vec::new(), 0, 0);
    for item in input.items.iter().filter(|i| s(i, "sk") == "EVENT") {
        let Ok(event) = serde_json::from_str::<Value>(s(item, "payload")) else { continue };
        let data = &event["data"];
        let recipient = s(data, "email").to_lowercase();
        let Some(&refused) = customers.get(&recipient) else { continue };
        events += 1;
        let id = s(item, "id");
        let order_at = orders.get(s(data, "order_id")).and_then(|o| at(o));
        let kind = s(&event, "type");
        if item.get("gsi1pk").is_some_and(|v| s_val(v).starts_with("OUTBOX")) {
            unpublished.push(Break {
                invariant: "every event is published",
                what: format!("{kind} {id} (order {}) is still in the outbox", s(data, "order_id")),
                at: order_at,
            });
        }
        let Some(subject) =
            EventType::ALL.into_iter().find(|t| t.as_str() == kind).and_then(shop::email::templates::kind).map(|k| k.1)
        else {
            continue;
        };
        with_mail += 1;
        // What tells two e-mails of one subject to one address apart: the order, and for a refund
        // (one per charge) the charge; the order e-mails do not show the charge.
        let fields: &[&str] = if kind.starts_with("refund.") { &["order_id", "charge_id"] } else { &["order_id"] };
        let ids: Vec<&str> = fields.iter().map(|k| s(data, k)).filter(|v| !v.is_empty()).collect();
        let sent = mail.get(&recipient).map_or(0, |ms| {
            ms.iter().filter(|m| m.subject == subject && ids.iter().all(|i| m.body.contains(i))).count()
        });
        let marker = markers.get(id).map(|m| s(m, "status"));
        // An attempt past the first followed one whose outcome was unknown: each earlier attempt
        // may have gone out (`shop::email::unknown`), and the notifier counted it
        // (`EmailsOutcomeUnknown`). Only a kind that is sent again may have a second attempt, and
        // only a kind that is let be may be settled `UNKNOWN`.
        let attempt = markers.get(id).map_or(1, |m| n(m, "attempt").max(1)) as usize;
        let after_unknown = attempt >= 2;
        let decision = EventType::ALL.into_iter().find(|t| t.as_str() == kind).map(shop::email::unknown::after_unknown);
        let decided_right = match marker {
            Some("UNKNOWN") => decision == Some(AfterUnknown::LetBe),
            _ if after_unknown => decision == Some(AfterUnknown::SendAgain),
            _ => true,
        };
        // What the record allows: `SENT` one e-mail, `REFUSED` none, `UNKNOWN` (let be) none,
        // plus one for each attempt whose outcome was unknown. A claim left `SENDING`, or no
        // record, is unsettled: the next delivery would decide or send it.
        let expected = match marker {
            Some("SENT") => Some(1..=attempt),
            Some("REFUSED") => Some(0..=attempt - 1),
            Some("UNKNOWN") => Some(0..=attempt),
            _ => None,
        };
        if marker == Some("REFUSED") {
            out.emails_refused += 1;
        } else {
            *out.emails_by_subject.entry(subject.to_owned()).or_default() += sent;
        }
        if after_unknown && marker != Some("UNKNOWN") {
            out.emails_unknown.sent_again += 1;
            out.emails_unknown.twice += usize::from(sent >= 2);
        }
        if marker == Some("UNKNOWN") {
            out.emails_unknown.let_be += 1;
            out.emails_unknown.never += usize::from(sent == 0);
        }
        if !expected.is_some_and(|e| e.contains(&sent)) || (marker == Some("REFUSED") && !refused) || !decided_right {
            let what = match (sent, marker) {
                (_, Some("REFUSED")) if !refused => "refused by SES, though SES accepts the address".to_owned(),
                (n, _) if !decided_right => {
                    format!(
                        "{n} e-mail(s), record {marker:?} attempt {attempt}: not what its kind's unknown outcome calls for"
                    )
                }
                (n, Some("SENDING") | None) => {
                    format!("{n} e-mail(s), but its record is {marker:?}: a redelivery would decide or send it again")
                }
                (0, _) => format!("lost: no e-mail (marker {marker:?})"),
                (n, _) => format!(
                    "{n} e-mails (marker {marker:?}{})",
                    if after_unknown { ", after an unknown outcome" } else { "" }
                ),
            };
            wrong.push(Break {
                invariant: "one e-mail per transition",
                what: format!("{kind} {id} to {recipient} (order {}): {what}", s(data, "order_id")),
                at: order_at,
            });
        }
    }
    out.check("every event is published", events, unpublished);
    out.check("one e-mail per transition", with_mail, wrong);
}

fn s_val(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}
