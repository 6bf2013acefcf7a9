//! The soak's plan, all of it drawn from one seed: the products, the customers and their
//! journeys, the admins' changes, and the fault schedule. The same seed gives the same plan on
//! any machine (ChaCha8, a portable generator; nothing here reads the clock or the environment),
//! so a break found with `--seed 42` is replayed with `--seed 42`. What the plan cannot fix is the
//! interleaving: the stack's processes run concurrently, so two runs of one plan are two histories
//! of the same traffic and the same faults.
//!
//! Times are offsets from the start of the traffic. Faults overlap on purpose: their start times
//! are drawn independently, so a broker outage, a DynamoDB throttling window and a crash land on
//! top of each other as real outages do.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;

/// What can go wrong, as `--faults` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// A function instance killed mid-invocation: early (before its DynamoDB commit, most likely)
    /// or at its answer (after the commit), through the crash switch.
    Crash,
    /// The payment side failing: the mock gateway's or the webhook's instance killed mid-call
    /// (charges answered 5xx, webhook deliveries failing and redelivered later).
    Gateway,
    /// A share of `TransactWriteItems` cancelled with `TransactionConflict` (DynamoDB proxy).
    DdbConflict,
    /// A share of all DynamoDB requests throttled (`ProvisionedThroughputExceededException`).
    DdbThrottle,
    /// Every partition's writes limited (AWS's 1,000 units/s, scaled down): hot products throttle.
    DdbPartition,
    /// The Kafka broker unreachable for tens of seconds, then back.
    BrokerDown,
    /// SES unreachable for a while, then back.
    SesDown,
    /// Some customers sign up with an address SES refuses (`MessageRejected`).
    SesRefusal,
    /// SES throttling at a sending quota (`MaxSendRate`, 14 e-mails a second as a new production
    /// account starts): the SES gate's quota lowered for a while, under warm notifier instances
    /// that read a generous one at cold start.
    SesThrottle,
    /// The sweeper runs as if the reservation window had passed: every order awaiting payment
    /// expires at once, while its customers are still paying.
    ExpirySweep,
    /// The schedules (sweeper, refund worker, webhook redelivery) stop firing for a while.
    ScheduleLate,
    /// A share of all DynamoDB requests answered HTTP 500 `InternalServerError` (the SDK retries
    /// it; past its retries the shop reads it as transient). Drawn after every other kind, so
    /// that adding it left every seed's other faults, and its traffic, as they were.
    DdbInternalError,
    /// A function running past its `Timeout`: an API function's next invocation stands still
    /// (stall switch) early or at its answer, until the timeout kills it (`Sandbox.Timedout`);
    /// what it committed stays, its answer is lost. Drawn after `ddb-internal`, like the next.
    Timeout,
    /// The payment side slow or timing out: the mock gateway's or the webhook's next invocation
    /// stands still for 1–8 s (past `POST /payments`' 5 s wait for the gateway from 5 s on:
    /// answered "try again" while the charge may go through) or past its `Timeout`.
    GatewaySlow,
}

impl FaultKind {
    pub const ALL: [FaultKind; 14] = [
        FaultKind::Crash,
        FaultKind::Gateway,
        FaultKind::DdbConflict,
        FaultKind::DdbThrottle,
        FaultKind::DdbPartition,
        FaultKind::BrokerDown,
        FaultKind::SesDown,
        FaultKind::SesRefusal,
        FaultKind::SesThrottle,
        FaultKind::ExpirySweep,
        FaultKind::ScheduleLate,
        FaultKind::DdbInternalError,
        FaultKind::Timeout,
        FaultKind::GatewaySlow,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::Gateway => "gateway",
            FaultKind::DdbConflict => "ddb-conflict",
            FaultKind::DdbThrottle => "ddb-throttle",
            FaultKind::DdbPartition => "ddb-partition",
            FaultKind::BrokerDown => "broker-down",
            FaultKind::SesDown => "ses-down",
            FaultKind::SesRefusal => "ses-refusal",
            FaultKind::SesThrottle => "ses-throttle",
            FaultKind::ExpirySweep => "expiry-sweep",
            FaultKind::ScheduleLate => "schedule-late",
            FaultKind::DdbInternalError => "ddb-internal",
            FaultKind::Timeout => "timeout",
            FaultKind::GatewaySlow => "gateway-slow",
        }
    }
}

/// Functions whose instances the `crash` fault kills (the API and the event pipeline).
pub const CRASHABLE: &[&str] = &[
    "PlaceOrderFunction",
    "OrdersFunction",
    "CartFunction",
    "ProductsFunction",
    "PaymentsFunction",
    "SignupFunction",
    "OutboxRelayFunction",
    "NotifierFunction",
    "SweeperFunction",
    "RefundsFunction",
];
/// The payment side (`gateway` fault).
pub const GATEWAY: &[&str] = &["MockGatewayFunction", "PaymentWebhookFunction", "MockGatewayDeliveriesFunction"];
/// Functions the `timeout` fault stalls past their `Timeout` (10 s; `POST /payments` 20 s).
pub const TIMEOUTS: &[&str] =
    &["PlaceOrderFunction", "OrdersFunction", "CartFunction", "ProductsFunction", "PaymentsFunction", "SignupFunction"];
/// The payment side the `gateway-slow` fault slows down (10 s and 20 s timeouts; the deliveries
/// function's 60 s would outlast a short soak).
pub const GATEWAY_SLOW: &[&str] = &["MockGatewayFunction", "PaymentWebhookFunction"];
/// A stall this long outlasts every function's `Timeout` that [`TIMEOUTS`] and [`GATEWAY_SLOW`] name.
pub const PAST_TIMEOUT_MS: u64 = 25_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub seed: u64,
    pub duration: Duration,
    pub products: Vec<ProductSpec>,
    pub customers: Vec<CustomerSpec>,
    pub admin: Vec<AdminAction>,
    pub faults: Vec<Fault>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProductSpec {
    pub name: String,
    pub stock: i64,
    pub buckets: u16,
    /// Most orders go to the hot ones (few products, many buyers: scarcity and contention).
    pub hot: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CustomerSpec {
    /// The address is put on SES's refusal list before the sign-up (`ses-refusal`).
    pub refused: bool,
    pub journeys: Vec<Journey>,
}

/// One visit that ends in an order (or in `out_of_stock`).
#[derive(Debug, Clone, PartialEq)]
pub struct Journey {
    pub start: Duration,
    /// Product pages looked at first.
    pub browse: Vec<usize>,
    /// `(product index, quantity)`.
    pub lines: Vec<(usize, u32)>,
    /// Order the cart (filled line by line first) rather than a `lines` body.
    pub via_cart: bool,
    pub idempotency_key: Uuid,
    /// Pause between steps.
    pub think: Duration,
    pub ending: Ending,
}

/// How a journey ends once its order is placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ending {
    /// `POST /payments` with this test token (see docs/payments.md).
    Pay(Token),
    /// `POST /orders/{id}/cancel`.
    Cancel,
    /// Nothing: the sweeper expires it.
    LetExpire,
    /// Pay with a delayed charge, then cancel before it settles: the money must go back.
    PayDelayedThenCancel,
    /// Pay and cancel at the same moment: one of them wins, nothing is lost either way.
    PayRacingCancel,
}

/// The mock gateway's test cards (what each does: `shop::mock_gateway::scenario`).
pub use shop::mock_gateway::scenario::Token;

impl Ending {
    pub fn name(self) -> String {
        match self {
            Ending::Pay(t) => format!("pay {}", t.as_str()),
            Ending::Cancel => "cancel".into(),
            Ending::LetExpire => "let expire".into(),
            Ending::PayDelayedThenCancel => "pay tok_delay, then cancel".into(),
            Ending::PayRacingCancel => "pay and cancel at once".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AdminAction {
    pub at: Duration,
    pub product: usize,
    pub change: AdminChange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminChange {
    /// `stock_adjustment` (negative: stock taken out; refused below the reserved units).
    Restock(i64),
    /// A new price in cents.
    Reprice(i64),
    /// A new `stock_buckets`.
    Rebucket(u16),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub at: Duration,
    pub kind: FaultKind,
    /// How long it lasts (zero for an instant one: a crash, a sweep).
    pub lasts: Duration,
    pub detail: Detail,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Detail {
    None,
    /// The function whose next invocation dies, `after_ms` into it (large: at its answer).
    Crash {
        function: &'static str,
        after_ms: u64,
    },
    /// A rate in `0..=1`.
    Rate(f64),
    /// Write units per second per partition at AWS's scale, times this scale.
    CapacityScale(f64),
    /// E-mails a second (SES's `MaxSendRate`).
    SendRate(f64),
    /// The function whose next invocation stands still `after_ms` into it (large: at its
    /// answer), for `for_ms`.
    Stall {
        function: &'static str,
        after_ms: u64,
        for_ms: u64,
    },
}

impl Fault {
    pub fn describe(&self) -> String {
        let detail = match &self.detail {
            Detail::None => String::new(),
            Detail::Crash { function, after_ms } => {
                let when = if *after_ms >= AT_ANSWER_MS { "at its answer".into() } else { format!("{after_ms} ms in") };
                format!(" {function}, {when}")
            }
            Detail::Rate(r) => format!(" {:.0}%", r * 100.0),
            Detail::CapacityScale(s) => format!(" at {s} of AWS's partition limit"),
            Detail::SendRate(r) => format!(" at {r} e-mails/s"),
            Detail::Stall { function, after_ms, for_ms } => {
                let when = if *after_ms >= AT_ANSWER_MS { "at its answer".into() } else { format!("{after_ms} ms in") };
                let how_long =
                    if *for_ms >= PAST_TIMEOUT_MS { "past its Timeout".into() } else { format!("for {for_ms} ms") };
                format!(" {function}, {when}, {how_long}")
            }
        };
        let lasts = if self.lasts.is_zero() { String::new() } else { format!(" for {}s", self.lasts.as_secs()) };
        format!("{}{detail}{lasts}", self.kind.name())
    }
}

/// An `after_ms` this large kills the instance when it posts its result, after its commit.
pub const AT_ANSWER_MS: u64 = 60_000;

/// Customers' journeys per minute of soak, on average, each.
const JOURNEYS_PER_CUSTOMER_MINUTE: f64 = 6.0;

impl Plan {
    /// The whole plan for `seed`: `customers` buying for `duration`, faults of `kinds` only.
    pub fn new(seed: u64, duration: Duration, customers: usize, kinds: &[FaultKind]) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let products = products(&mut rng);
        let customers = (0..customers)
            .map(|_| {
                // Drawn whatever `--faults` says, so that the journeys after it stay the same.
                let refusable = rng.random_bool(0.15);
                let refused = refusable && kinds.contains(&FaultKind::SesRefusal);
                CustomerSpec { refused, journeys: journeys(&mut rng, duration, &products) }
            })
            .collect();
        let admin = admin(&mut rng, duration, &products);
        let faults = faults(&mut rng, duration, kinds);
        Plan { seed, duration, products, customers, admin, faults }
    }

    pub fn journeys(&self) -> usize {
        self.customers.iter().map(|c| c.journeys.len()).sum()
    }
}

fn products(rng: &mut ChaCha8Rng) -> Vec<ProductSpec> {
    let mut out = Vec::new();
    for i in 0..2 {
        out.push(ProductSpec {
            name: format!("Soak hot item {i}"),
            stock: rng.random_range(20..=60),
            buckets: [1, 4, 8, 16][rng.random_range(0..4)],
            hot: true,
        });
    }
    for i in 0..4 {
        out.push(ProductSpec {
            name: format!("Soak cold item {i}"),
            stock: rng.random_range(5..=25),
            buckets: if rng.random_bool(0.25) { 2 } else { 1 },
            hot: false,
        });
    }
    out
}

fn pick_product(rng: &mut ChaCha8Rng, products: &[ProductSpec]) -> usize {
    let hot: Vec<usize> = (0..products.len()).filter(|&i| products[i].hot).collect();
    if rng.random_bool(0.7) { hot[rng.random_range(0..hot.len())] } else { rng.random_range(0..products.len()) }
}

fn journeys(rng: &mut ChaCha8Rng, duration: Duration, products: &[ProductSpec]) -> Vec<Journey> {
    let mean_gap = 60.0 / JOURNEYS_PER_CUSTOMER_MINUTE;
    let mut at = rng.random_range(0.0..mean_gap);
    let mut out = Vec::new();
    while at < duration.as_secs_f64() {
        let browse = (0..rng.random_range(0..3)).map(|_| pick_product(rng, products)).collect();
        let mut lines: Vec<(usize, u32)> = Vec::new();
        for _ in 0..rng.random_range(1..=2) {
            let p = pick_product(rng, products);
            if !lines.iter().any(|(q, _)| *q == p) {
                lines.push((p, rng.random_range(1..=3)));
            }
        }
        let ending = match rng.random_range(0..100) {
            0..40 => Ending::Pay(Token::Success),
            40..50 => Ending::Pay(Token::Fail),
            50..56 => Ending::Pay(Token::Delay),
            56..62 => Ending::Pay(Token::Duplicate),
            62..68 => Ending::Pay(Token::OutOfOrder),
            68..71 => Ending::Pay(Token::Late),
            71..80 => Ending::Cancel,
            80..88 => Ending::LetExpire,
            88..94 => Ending::PayDelayedThenCancel,
            _ => Ending::PayRacingCancel,
        };
        out.push(Journey {
            start: Duration::from_secs_f64(at),
            browse,
            lines,
            via_cart: rng.random_bool(0.4),
            idempotency_key: uuid::Builder::from_random_bytes(rng.random()).into_uuid(),
            think: Duration::from_millis(rng.random_range(50..400)),
            ending,
        });
        at += rng.random_range(0.5 * mean_gap..1.5 * mean_gap);
    }
    out
}

fn admin(rng: &mut ChaCha8Rng, duration: Duration, products: &[ProductSpec]) -> Vec<AdminAction> {
    let mut out = Vec::new();
    let mut at = rng.random_range(2.0..8.0);
    while at < duration.as_secs_f64() {
        let product = pick_product(rng, products);
        let change = match rng.random_range(0..10) {
            0..5 => AdminChange::Restock(rng.random_range(5..=20)),
            5 => AdminChange::Restock(-rng.random_range(1..=3)),
            6..8 => AdminChange::Reprice(rng.random_range(900..=2500)),
            _ => AdminChange::Rebucket([1, 2, 4, 8, 16][rng.random_range(0..5)]),
        };
        out.push(AdminAction { at: Duration::from_secs_f64(at), product, change });
        at += rng.random_range(4.0..10.0);
    }
    out
}

fn faults(rng: &mut ChaCha8Rng, duration: Duration, kinds: &[FaultKind]) -> Vec<Fault> {
    let secs = duration.as_secs_f64();
    let minutes = (secs / 60.0).max(1.0);
    let mut out = Vec::new();
    // Faults start in the first 85% of the run, so that each one is over (and its effects
    // retried) while traffic still flows; the quiesce switches off whatever is left.
    let start = |rng: &mut ChaCha8Rng| Duration::from_secs_f64(rng.random_range(0.05 * secs..0.85 * secs));
    let count = |rng: &mut ChaCha8Rng, per_minute: f64| {
        let n = per_minute * minutes;
        (n.floor() as usize + usize::from(rng.random_bool(n.fract()))).max(1)
    };
    // Draw every kind's faults from the generator whether or not it is selected, so that
    // `--faults` picks from one plan instead of making another.
    for kind in FaultKind::ALL {
        let mut drawn = Vec::new();
        match kind {
            // A gateway fault is a crash of the mock gateway's own functions: one shape, two lists.
            FaultKind::Crash | FaultKind::Gateway => {
                let (per_minute, functions): (f64, &[&'static str]) =
                    if kind == FaultKind::Crash { (6.0, CRASHABLE) } else { (3.0, GATEWAY) };
                for _ in 0..count(rng, per_minute) {
                    let function = functions[rng.random_range(0..functions.len())];
                    let after_ms = if rng.random_bool(0.5) { rng.random_range(1..40) } else { AT_ANSWER_MS };
                    drawn.push(Fault {
                        at: start(rng),
                        kind,
                        lasts: Duration::ZERO,
                        detail: Detail::Crash { function, after_ms },
                    });
                }
            }
            FaultKind::DdbConflict | FaultKind::DdbThrottle => {
                for _ in 0..count(rng, 1.0) {
                    let rate = rng.random_range(0.1..0.4);
                    drawn.push(Fault { at: start(rng), kind, lasts: secs_in(rng, 5, 15), detail: Detail::Rate(rate) });
                }
            }
            FaultKind::DdbPartition => {
                for _ in 0..count(rng, 0.5) {
                    drawn.push(Fault {
                        at: start(rng),
                        kind,
                        lasts: secs_in(rng, 5, 15),
                        detail: Detail::CapacityScale(0.02),
                    });
                }
            }
            FaultKind::BrokerDown | FaultKind::SesDown => {
                for _ in 0..count(rng, 0.5) {
                    drawn.push(Fault { at: start(rng), kind, lasts: secs_in(rng, 10, 30), detail: Detail::None });
                }
            }
            FaultKind::SesThrottle => {
                for _ in 0..count(rng, 0.5) {
                    drawn.push(Fault {
                        at: start(rng),
                        kind,
                        lasts: secs_in(rng, 10, 30),
                        detail: Detail::SendRate(14.0),
                    });
                }
            }
            FaultKind::ExpirySweep => {
                for _ in 0..count(rng, 0.5) {
                    drawn.push(Fault { at: start(rng), kind, lasts: Duration::ZERO, detail: Detail::None });
                }
            }
            FaultKind::ScheduleLate => {
                for _ in 0..count(rng, 0.5) {
                    drawn.push(Fault { at: start(rng), kind, lasts: secs_in(rng, 10, 30), detail: Detail::None });
                }
            }
            // Applied to customers (their addresses), not at a time.
            FaultKind::SesRefusal => {}
            // Last in `ALL`: its draws come after every other kind's.
            FaultKind::DdbInternalError => {
                for _ in 0..count(rng, 0.5) {
                    let rate = rng.random_range(0.05..0.25);
                    drawn.push(Fault { at: start(rng), kind, lasts: secs_in(rng, 5, 15), detail: Detail::Rate(rate) });
                }
            }
            // After `ddb-internal`, for the same reason.
            FaultKind::Timeout | FaultKind::GatewaySlow => {
                let functions = if kind == FaultKind::Timeout { TIMEOUTS } else { GATEWAY_SLOW };
                for _ in 0..count(rng, 1.0) {
                    let function = functions[rng.random_range(0..functions.len())];
                    let after_ms = if rng.random_bool(0.5) { rng.random_range(1..40) } else { AT_ANSWER_MS };
                    let for_ms = if kind == FaultKind::Timeout || rng.random_bool(0.3) {
                        PAST_TIMEOUT_MS
                    } else {
                        rng.random_range(1_000..8_000)
                    };
                    drawn.push(Fault {
                        at: start(rng),
                        kind,
                        lasts: Duration::ZERO,
                        detail: Detail::Stall { function, after_ms, for_ms },
                    });
                }
            }
        }
        if kinds.contains(&kind) {
            out.extend(drawn);
        }
    }
    out.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.kind.cmp(&b.kind)));
    out
}

fn secs_in(rng: &mut ChaCha8Rng, low: u64, high: u64) -> Duration {
    Duration::from_secs(rng.random_range(low..=high))
}

/// `--faults`: `all` (the default), `none`, or a comma-separated list of kinds.
pub fn parse_faults(spec: &str) -> Result<Vec<FaultKind>, String> {
    match spec.trim() {
        "all" => return Ok(FaultKind::ALL.to_vec()),
        "none" => return Ok(Vec::new()),
        _ => {}
    }
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|name| {
            FaultKind::ALL.into_iter().find(|k| k.name() == name).ok_or_else(|| {
                let known: Vec<&str> = FaultKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown fault `{name}` (known: all, none, {})", known.join(", "))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn the_same_seed_gives_the_same_plan() {
        let a = Plan::new(42, MINUTE, 16, &FaultKind::ALL);
        let b = Plan::new(42, MINUTE, 16, &FaultKind::ALL);
        assert_eq!(a, b);
        assert!(a.journeys() > 50, "{} journeys", a.journeys());
        assert!(!a.faults.is_empty() && !a.admin.is_empty());
    }

    #[test]
    fn another_seed_gives_another_plan() {
        let a = Plan::new(42, MINUTE, 16, &FaultKind::ALL);
        let b = Plan::new(43, MINUTE, 16, &FaultKind::ALL);
        assert_ne!(a.faults, b.faults);
        assert_ne!(a.customers, b.customers);
    }

    #[test]
    fn choosing_faults_filters_one_schedule_and_leaves_the_traffic_alone() {
        let all = Plan::new(7, MINUTE, 8, &FaultKind::ALL);
        let some = Plan::new(7, MINUTE, 8, &[FaultKind::Crash, FaultKind::BrokerDown, FaultKind::SesRefusal]);
        let filtered: Vec<Fault> =
            all.faults.iter().filter(|f| matches!(f.kind, FaultKind::Crash | FaultKind::BrokerDown)).cloned().collect();
        assert_eq!(some.faults, filtered);
        assert_eq!(some.customers, all.customers);
        assert_eq!(some.admin, all.admin);
        let none = Plan::new(7, MINUTE, 8, &[]);
        assert!(none.faults.is_empty());
        assert!(none.customers.iter().all(|c| !c.refused));
        let journeys = |p: &Plan| p.customers.iter().map(|c| c.journeys.clone()).collect::<Vec<_>>();
        assert_eq!(journeys(&none), journeys(&all));
    }

    #[test]
    fn every_kind_is_scheduled_and_faults_overlap() {
        let plan = Plan::new(1, MINUTE, 8, &FaultKind::ALL);
        for kind in FaultKind::ALL.into_iter().filter(|k| *k != FaultKind::SesRefusal) {
            assert!(plan.faults.iter().any(|f| f.kind == kind), "no {}", kind.name());
        }
        let windows: Vec<&Fault> = plan.faults.iter().filter(|f| !f.lasts.is_zero()).collect();
        let overlapping = windows.iter().enumerate().any(|(i, a)| {
            windows[i + 1..].iter().any(|b| a.kind != b.kind && b.at < a.at + a.lasts && a.at < b.at + b.lasts)
        });
        assert!(overlapping, "no two faults of different kinds overlap: {windows:?}");
        assert!(plan.faults.iter().all(|f| f.at + f.lasts <= MINUTE + Duration::from_secs(30)));
        assert!(plan.faults.windows(2).all(|w| w[0].at <= w[1].at), "sorted by time");
    }

    #[test]
    fn journeys_stay_within_the_run_and_use_every_ending() {
        let plan = Plan::new(3, 5 * MINUTE, 16, &FaultKind::ALL);
        let endings: std::collections::BTreeSet<Ending> =
            plan.customers.iter().flat_map(|c| c.journeys.iter().map(|j| j.ending)).collect();
        assert_eq!(endings.len(), 10, "{endings:?}");
        for c in &plan.customers {
            assert!(c.journeys.iter().all(|j| j.start < 5 * MINUTE && !j.lines.is_empty()));
            assert!(c.journeys.windows(2).all(|w| w[0].start < w[1].start));
        }
        let keys: std::collections::BTreeSet<Uuid> =
            plan.customers.iter().flat_map(|c| c.journeys.iter().map(|j| j.idempotency_key)).collect();
        assert_eq!(keys.len(), plan.journeys(), "one Idempotency-Key per journey");
    }

    #[test]
    fn faults_parse() {
        assert_eq!(parse_faults("all").unwrap().len(), FaultKind::ALL.len());
        assert!(parse_faults("none").unwrap().is_empty());
        assert_eq!(parse_faults("crash, broker-down").unwrap(), vec![FaultKind::Crash, FaultKind::BrokerDown]);
        assert!(parse_faults("meteor").unwrap_err().contains("known: all, none, crash"));
    }
}
