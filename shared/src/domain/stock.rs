//! Stock of one product and the five transitions that may change it.
//!
//! The product item (and every stock bucket, see [`super::buckets`]) stores three counters
//! (`docs/data-model.md`, "Product stock"):
//! `available` (units on hand, reserved ones included), `reserved` (held by unpaid orders) and
//! `sellable = available - reserved`. `sellable` is redundant on purpose: DynamoDB condition
//! expressions cannot do arithmetic, so "is there enough to reserve?" must be a comparison against a
//! stored number. Every write changes the counters together, in one update expression, guarded by
//! the condition in [`Transition::condition`]. This module is the pure model of those writes: the
//! DynamoDB adapter turns a [`Transition`] into an expression, and tests use [`Stock::apply`] to
//! check the invariant `0 <= reserved <= available`, `sellable = available - reserved`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Stock {
    pub available: i64,
    pub reserved: i64,
    pub sellable: i64,
}

/// A change of stock, as the table applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// An order holds `q` units: `reserved += q, sellable -= q` if `sellable >= q`.
    Reserve(i64),
    /// A paid order takes its units: `available -= q, reserved -= q` if `reserved >= q`.
    Deduct(i64),
    /// A failed, cancelled or expired order gives them back: `reserved -= q, sellable += q` if `reserved >= q`.
    Release(i64),
    /// An admin adds (`d > 0`) or removes (`d < 0`) units: `available += d, sellable += d` if `sellable >= -d`.
    Adjust(i64),
    /// A payment arrived for an order that no longer holds its units (expired, cancelled, failed):
    /// take them straight from what is sellable, `available -= q, sellable -= q` if `sellable >= q`.
    /// Reserve-then-deduct in one write; `reserved` is untouched.
    Take(i64),
}

/// Deltas to add to each counter, and the guard that keeps the invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delta {
    pub available: i64,
    pub reserved: i64,
    pub sellable: i64,
}

/// `counter >= at_least`: the only shape of condition DynamoDB needs here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guard {
    pub counter: Counter,
    pub at_least: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Reserved,
    Sellable,
}

impl Transition {
    pub fn delta(self) -> Delta {
        match self {
            Self::Reserve(q) => Delta { available: 0, reserved: q, sellable: -q },
            Self::Deduct(q) => Delta { available: -q, reserved: -q, sellable: 0 },
            Self::Release(q) => Delta { available: 0, reserved: -q, sellable: q },
            Self::Adjust(d) => Delta { available: d, reserved: 0, sellable: d },
            Self::Take(q) => Delta { available: -q, reserved: 0, sellable: -q },
        }
    }

    pub fn condition(self) -> Guard {
        match self {
            Self::Reserve(q) | Self::Take(q) => Guard { counter: Counter::Sellable, at_least: q },
            Self::Deduct(q) | Self::Release(q) => Guard { counter: Counter::Reserved, at_least: q },
            Self::Adjust(d) => Guard { counter: Counter::Sellable, at_least: -d },
        }
    }
}

impl Stock {
    /// Stock of a new product with `units` on hand.
    pub fn new(units: i64) -> Self {
        Self { available: units, reserved: 0, sellable: units }
    }

    pub fn holds_invariant(&self) -> bool {
        0 <= self.reserved && self.reserved <= self.available && self.sellable == self.available - self.reserved
    }

    /// What the conditional write does: `None` when its condition fails (nothing changes).
    pub fn apply(self, t: Transition) -> Option<Self> {
        let guard = t.condition();
        let current = match guard.counter {
            Counter::Reserved => self.reserved,
            Counter::Sellable => self.sellable,
        };
        if current < guard.at_least {
            return None;
        }
        let d = t.delta();
        Some(Self {
            available: self.available + d.available,
            reserved: self.reserved + d.reserved,
            sellable: self.sellable + d.sellable,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_then_deduct_or_release() {
        let s = Stock::new(10);
        let r = s.apply(Transition::Reserve(4)).unwrap();
        assert_eq!(r, Stock { available: 10, reserved: 4, sellable: 6 });
        assert_eq!(r.apply(Transition::Deduct(4)).unwrap(), Stock { available: 6, reserved: 0, sellable: 6 });
        assert_eq!(r.apply(Transition::Release(4)).unwrap(), s);
    }

    #[test]
    fn conditions_refuse_what_would_break_the_invariant() {
        let s = Stock::new(3).apply(Transition::Reserve(2)).unwrap();
        assert_eq!(s.apply(Transition::Reserve(2)), None, "only 1 sellable");
        assert_eq!(s.apply(Transition::Deduct(3)), None, "only 2 reserved");
        assert_eq!(s.apply(Transition::Release(3)), None);
        assert_eq!(s.apply(Transition::Adjust(-2)), None, "reserved units cannot be removed");
        assert_eq!(s.apply(Transition::Adjust(-1)).unwrap(), Stock { available: 2, reserved: 2, sellable: 0 });
    }

    #[test]
    fn take_is_reserve_and_deduct_in_one_write_and_only_takes_sellable_units() {
        let s = Stock::new(5).apply(Transition::Reserve(3)).unwrap();
        let direct = s.apply(Transition::Take(2)).unwrap();
        let two_steps = s.apply(Transition::Reserve(2)).and_then(|r| r.apply(Transition::Deduct(2))).unwrap();
        assert_eq!(direct, two_steps);
        assert_eq!(direct, Stock { available: 3, reserved: 3, sellable: 0 });
        assert_eq!(direct.apply(Transition::Take(1)), None, "reserved units belong to other orders");
    }

    #[test]
    fn every_sequence_of_allowed_transitions_keeps_the_invariant() {
        // Exhaustive over short sequences with small quantities: cheap and finds off-by-ones.
        let moves: Vec<Transition> = (-3..=3)
            .flat_map(|q| {
                [
                    Transition::Reserve(q),
                    Transition::Deduct(q),
                    Transition::Release(q),
                    Transition::Adjust(q),
                    Transition::Take(q),
                ]
            })
            .filter(|t| {
                !matches!(t, Transition::Reserve(q) | Transition::Deduct(q) | Transition::Release(q) | Transition::Take(q) if *q <= 0)
            })
            .collect();
        let mut frontier = vec![Stock::new(2)];
        for _ in 0..4 {
            let mut next = Vec::new();
            for s in &frontier {
                for t in &moves {
                    if let Some(n) = s.apply(*t) {
                        assert!(n.holds_invariant(), "{s:?} --{t:?}--> {n:?}");
                        next.push(n);
                    }
                }
            }
            next.sort_by_key(|s| (s.available, s.reserved));
            next.dedup();
            frontier = next;
        }
        assert!(!frontier.is_empty());
    }
}
