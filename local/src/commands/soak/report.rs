//! The soak's report: what ran, what was injected, what the stack did with it, which invariants
//! held, and every break with the seed, the fault timeline around it and the ids to look up.
//! Printed, and written to `target/soak-report.txt`.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::client::RouteFigures;
use super::faults::{Entry, Figures};
use super::plan::{FaultKind, Plan};
use super::reconcile::Outcome;
use super::traffic::Records;

/// Seconds either side of a break's moment whose fault timeline is shown.
const AROUND: f64 = 15.0;

pub struct Report<'a> {
    pub plan: &'a Plan,
    pub kinds: &'a [FaultKind],
    pub records: &'a Records,
    pub routes: &'a BTreeMap<String, RouteFigures>,
    pub faults: &'a BTreeMap<FaultKind, Figures>,
    pub timeline: &'a [Entry],
    pub outcome: &'a Outcome,
    /// `Ok(rounds)` or what was still moving.
    pub quiesce: &'a Result<usize, String>,
    pub traffic_seconds: f64,
}

impl Report<'_> {
    pub fn replay(&self) -> String {
        let faults: Vec<&str> = self.kinds.iter().map(|k| k.name()).collect();
        let faults = if faults.is_empty() { "none".to_owned() } else { faults.join(",") };
        format!(
            "cargo local soak --seed {} --minutes {} --customers {} --faults {faults}",
            self.plan.seed,
            self.plan.duration.as_secs_f64() / 60.0,
            self.plan.customers.len()
        )
    }

    pub fn text(&self) -> String {
        let mut t = String::new();
        let plan = self.plan;
        let _ = writeln!(
            t,
            "\nSoak: seed {}, {:.1} min of traffic ({:.0}s with the stragglers), {} customers, {} journeys planned",
            plan.seed,
            plan.duration.as_secs_f64() / 60.0,
            self.traffic_seconds,
            plan.customers.len(),
            plan.journeys()
        );
        let _ = writeln!(t, "  replay: {}", self.replay());

        let r = self.records;
        let placed: usize = r.customers.iter().map(|c| c.orders.len()).sum();
        let refused = r.customers.iter().filter(|c| c.refused).count();
        let _ = writeln!(t, "\nTraffic");
        let _ = writeln!(
            t,
            "  {} customers signed up ({refused} with an address SES refuses), {placed} orders placed, refused: {}",
            r.customers.iter().filter(|c| c.signed_up).count(),
            counts(&r.refused_orders)
        );
        let _ = writeln!(t, "  admin changes applied: {}", counts(&r.admin_changes));
        let mut endings: BTreeMap<String, usize> = BTreeMap::new();
        for o in r.customers.iter().flat_map(|c| &c.orders) {
            *endings.entry(o.ending.name()).or_default() += 1;
        }
        let _ = writeln!(t, "  orders by journey ending: {}", counts(&endings));
        let _ = writeln!(
            t,
            "  {:<28} {:>8} {:>9} {:>8} {:>10}  answers",
            "route", "requests", "attempts", "failed", "retried→ok"
        );
        for (route, f) in self.routes {
            let answers: BTreeMap<String, u64> = f.answers.iter().map(|(s, n)| (s.to_string(), *n)).collect();
            let _ = writeln!(
                t,
                "  {route:<28} {:>8} {:>9} {:>8} {:>10}  {}",
                f.requests,
                f.attempts,
                f.failed_attempts,
                f.retried_to_an_answer,
                counts(&answers)
            );
        }

        let o = self.outcome;
        let _ = writeln!(t, "\nOutcomes (after the quiesce)");
        let _ = writeln!(t, "  orders by state:    {}", counts(&o.orders_by_state));
        let _ = writeln!(t, "  charges by outcome: {}", counts(&o.charges_by_status));
        let _ = writeln!(t, "  refunds by state:   {}", counts(&o.refunds_by_state));
        if o.refunds_refused_early > 0 {
            let _ = writeln!(
                t,
                "    ({} FAILED only because the quiesce delivered a delayed charge's webhook before the charge settled)",
                o.refunds_refused_early
            );
        }
        let _ = writeln!(t, "  e-mails by subject: {}", counts(&o.emails_by_subject));
        let _ = writeln!(t, "  e-mails SES refused (recorded, not sent): {}", o.emails_refused);
        let u = &o.emails_unknown;
        let _ = writeln!(
            t,
            "  e-mails of unknown outcome (a notifier died between SES's answer and its record): {} sent again ({} reached their customer twice), {} let be ({} never reached them)",
            u.sent_again, u.twice, u.let_be, u.never
        );
        match self.quiesce {
            Ok(rounds) => {
                let _ = writeln!(t, "  the stack came to rest in {rounds} quiesce round(s)");
            }
            Err(last) => {
                let _ = writeln!(t, "  the stack did not come to rest ({last})");
            }
        }

        let _ = writeln!(t, "\nFaults injected by kind");
        for kind in self.kinds {
            let f = self.faults.get(kind).copied().unwrap_or_default();
            let refusals =
                if *kind == FaultKind::SesRefusal { format!(" ({refused} addresses)") } else { String::new() };
            let skipped = if f.skipped > 0 { format!(", {} not applied", f.skipped) } else { String::new() };
            let _ =
                writeln!(t, "  {:<14} {:>3}×, {:>3}s in all{skipped}{refusals}", kind.name(), f.injected, f.seconds);
        }

        let _ = writeln!(t, "\nInvariants");
        for c in &o.checks {
            let mark = if c.broken == 0 { "✓" } else { "✗" };
            let _ = writeln!(t, "  {mark} {:<52} {:>6} checked, {} broken", c.name, c.checked, c.broken);
        }

        let _ = writeln!(t, "\nBreaks: {}", o.breaks.len());
        for b in &o.breaks {
            let at = b.at.map_or(String::new(), |a| format!(" at {a:.1}s"));
            let _ = writeln!(t, "\n  ✗ {}{at}: {}", b.invariant, b.what);
            let _ = writeln!(t, "    seed {} — replay: {}", plan.seed, self.replay());
            let around: Vec<&Entry> = match b.at {
                Some(a) => self.timeline.iter().filter(|e| (e.at - a).abs() <= AROUND).collect(),
                None => self.timeline.iter().collect(),
            };
            let window = b.at.map_or("the whole run".to_owned(), |_| format!("±{AROUND:.0}s"));
            let _ = writeln!(t, "    faults, {window}:");
            for e in around {
                let _ = writeln!(t, "      {:>7.1}s  {}", e.at, e.what);
            }
        }
        if o.breaks.is_empty() {
            let _ = writeln!(t, "\nFault timeline");
            for e in self.timeline {
                let _ = writeln!(t, "  {:>7.1}s  {}", e.at, e.what);
            }
        }
        t
    }
}

fn counts<K: std::fmt::Display, V: std::fmt::Display>(m: &BTreeMap<K, V>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
}
