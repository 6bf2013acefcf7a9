//! Stock buckets: one product's stock spread over N items, so that a hot product is not one hot
//! partition.
//!
//! DynamoDB serves one partition key at most about 1,000 write units per second, and a
//! transactional write costs 2 units per item, so reservations of a product whose stock is one
//! item top out near 500 per second however far Lambda scales (`docs/capacity.md`). A product may
//! therefore hold its stock in `N` *buckets*: bucket 0 is the product item itself (so `N = 1` is
//! the plain layout), bucket `k > 0` an item of its own with its own partition key. Each bucket
//! keeps the three counters of [`super::stock::Stock`] and their invariant; the product's stock is
//! their sum.
//!
//! This module is the pure part of that design:
//! - [`first_choice`]: a line first goes, whole, to one active bucket picked at random, so that
//!   concurrent buyers spread evenly without reading anything;
//! - [`allocate`]: when that bucket was short, a strongly consistent look at every bucket decides
//!   where the line can come from, split over several buckets if no single one holds it — and only
//!   when the buckets together are short is the answer "out of stock";
//! - [`redistribute`]: an admin's adjustment, or a change of `N`, becomes one signed adjustment per
//!   bucket that leaves every active bucket with an even share of what is sellable and the retired
//!   ones (`k >= N`, kept while orders hold units there) with none. Reserved units never move: the
//!   order that holds them records their bucket and settles exactly there.

use super::stock::Stock;
use serde::{Deserialize, Serialize};

/// Most buckets a product may have: one transaction then writes at most 32 stock items, well
/// inside DynamoDB's 100 actions, and 32 × 500 reservations/s is more than any flash sale here.
pub const MAX_STOCK_BUCKETS: u16 = 32;

/// How many buckets new reservations of a product use: `1..=MAX_STOCK_BUCKETS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct StockBuckets(u16);

impl StockBuckets {
    pub const ONE: Self = Self(1);

    pub fn parse(n: i64) -> Result<Self, String> {
        u16::try_from(n)
            .ok()
            .filter(|n| (1..=MAX_STOCK_BUCKETS).contains(n))
            .map(Self)
            .ok_or_else(|| format!("must be between 1 and {MAX_STOCK_BUCKETS}"))
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

impl Default for StockBuckets {
    fn default() -> Self {
        Self::ONE
    }
}

impl TryFrom<u16> for StockBuckets {
    type Error = String;
    fn try_from(n: u16) -> Result<Self, String> {
        Self::parse(i64::from(n))
    }
}

impl From<StockBuckets> for u16 {
    fn from(n: StockBuckets) -> u16 {
        n.0
    }
}

/// Units of one order line held in one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    pub bucket: u16,
    pub quantity: u32,
}

/// The bucket a line tries first: the active bucket `random % n`.
pub fn first_choice(quantity: u32, n: StockBuckets, random: u64) -> Vec<Share> {
    let bucket = u16::try_from(random % u64::from(n.get())).unwrap_or(0);
    vec![Share { bucket, quantity }]
}

/// Where `quantity` units can come from, given every bucket's stock (`(bucket, stock)`, as read
/// consistently): the first bucket that holds the whole line, looking from `random` on, else the
/// fewest buckets taken greedily from the fullest. `None` when all buckets together are short.
pub fn allocate(quantity: u32, buckets: &[(u16, Stock)], random: u64) -> Option<Vec<Share>> {
    let want = i64::from(quantity);
    if buckets.iter().map(|(_, s)| s.sellable.max(0)).sum::<i64>() < want {
        return None;
    }
    let len = buckets.len();
    let start = usize::try_from(random % len.max(1) as u64).unwrap_or(0);
    if let Some((bucket, _)) = (0..len).map(|i| buckets[(start + i) % len]).find(|(_, s)| s.sellable >= want) {
        return Some(vec![Share { bucket, quantity }]);
    }
    let mut fullest: Vec<(u16, i64)> = buckets.iter().map(|(b, s)| (*b, s.sellable)).filter(|(_, s)| *s > 0).collect();
    fullest.sort_by_key(|(b, s)| (std::cmp::Reverse(*s), *b));
    let mut left = want;
    let mut shares = Vec::new();
    for (bucket, sellable) in fullest {
        let take = sellable.min(left);
        shares.push(Share { bucket, quantity: u32::try_from(take).ok()? });
        left -= take;
        if left == 0 {
            return Some(shares);
        }
    }
    None
}

/// Signed adjustment per bucket (`(bucket, delta)`, zero deltas left out) that adds `change` to
/// the product's sellable units and leaves them spread evenly over the first `n` buckets, with
/// none in retired ones. `Err(sellable)` when removing more than is sellable.
pub fn redistribute(buckets: &[(u16, Stock)], n: StockBuckets, change: i64) -> Result<Vec<(u16, i64)>, i64> {
    let sellable: i64 = buckets.iter().map(|(_, s)| s.sellable).sum();
    let total = sellable.checked_add(change).filter(|t| *t >= 0).ok_or(sellable)?;
    let active = i64::from(n.get());
    let (each, extra) = (total / active, total % active);
    let target = |bucket: u16| match i64::from(bucket) {
        k if k < extra => each + 1,
        k if k < active => each,
        _ => 0,
    };
    let mut deltas: Vec<(u16, i64)> = buckets.iter().map(|(b, s)| (*b, target(*b) - s.sellable)).collect();
    // Buckets that do not exist yet (N grew) start empty.
    for b in 0..n.get() {
        if !buckets.iter().any(|(k, _)| *k == b) {
            deltas.push((b, target(b)));
        }
    }
    deltas.retain(|(_, d)| *d != 0);
    deltas.sort_unstable();
    Ok(deltas)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::stock::Transition;

    fn stock(sellable: i64, reserved: i64) -> Stock {
        Stock { available: sellable + reserved, reserved, sellable }
    }

    #[test]
    fn bucket_counts_are_bounded() {
        assert!(StockBuckets::parse(0).is_err());
        assert!(StockBuckets::parse(33).is_err());
        assert!(StockBuckets::parse(i64::MIN).is_err());
        assert!(StockBuckets::parse(i64::MAX).is_err());
        assert_eq!(StockBuckets::parse(16).unwrap().get(), 16);
        assert!(serde_json::from_str::<StockBuckets>("0").is_err());
    }

    #[test]
    fn first_choice_is_one_active_bucket() {
        let n = StockBuckets::parse(16).unwrap();
        assert_eq!(first_choice(3, n, 35), vec![Share { bucket: 3, quantity: 3 }]);
        assert_eq!(first_choice(3, StockBuckets::ONE, 35), vec![Share { bucket: 0, quantity: 3 }]);
    }

    #[test]
    fn allocate_prefers_one_bucket_then_splits_then_refuses() {
        let buckets = [(0, stock(1, 0)), (1, stock(0, 4)), (2, stock(5, 0)), (3, stock(2, 0))];
        assert_eq!(allocate(4, &buckets, 0), Some(vec![Share { bucket: 2, quantity: 4 }]));
        assert_eq!(allocate(2, &buckets, 3), Some(vec![Share { bucket: 3, quantity: 2 }]));
        assert_eq!(
            allocate(7, &buckets, 1),
            Some(vec![Share { bucket: 2, quantity: 5 }, Share { bucket: 3, quantity: 2 }])
        );
        assert_eq!(allocate(8, &buckets, 0).map(|s| s.len()), Some(3));
        assert_eq!(allocate(9, &buckets, 0), None, "reserved units are not sellable");
        assert_eq!(allocate(1, &[], 7), None);
    }

    #[test]
    fn allocated_shares_always_fit_their_buckets() {
        for seed in 0..200u64 {
            let buckets: Vec<(u16, Stock)> =
                (0..8).map(|b| (b, stock(((seed * 7 + u64::from(b) * 13) % 5) as i64, 1))).collect();
            for q in 1..=30 {
                if let Some(shares) = allocate(q, &buckets, seed) {
                    assert_eq!(shares.iter().map(|s| s.quantity).sum::<u32>(), q);
                    for s in shares {
                        let (_, b) = buckets[usize::from(s.bucket)];
                        assert!(b.apply(Transition::Reserve(i64::from(s.quantity))).is_some());
                    }
                } else {
                    assert!(buckets.iter().map(|(_, s)| s.sellable).sum::<i64>() < i64::from(q));
                }
            }
        }
    }

    #[test]
    fn redistribute_spreads_sellable_evenly_and_conserves_units() {
        let before = [(0, stock(50, 3))];
        let n = StockBuckets::parse(16).unwrap();
        let deltas = redistribute(&before, n, 0).unwrap();
        assert_eq!(deltas[0], (0, 4 - 50), "bucket 0 keeps 4 (50 = 2 × 4 + 14 × 3)");
        assert_eq!(deltas.len(), 16);
        assert_eq!(deltas.iter().map(|(_, d)| d).sum::<i64>(), 0, "no unit created or lost");
        assert!(deltas.iter().all(|(b, d)| *b == 0 || *d == if *b < 2 { 4 } else { 3 }));
    }

    #[test]
    fn redistribute_drains_retired_buckets_and_applies_the_change() {
        let before = [(0, stock(1, 0)), (1, stock(2, 5)), (2, stock(6, 0)), (3, stock(3, 0))];
        let deltas = redistribute(&before, StockBuckets::parse(2).unwrap(), 10).unwrap();
        // 12 sellable + 10 = 22 → 11 and 11; buckets 2 and 3 retire empty; bucket 1 keeps its 5 reserved.
        assert_eq!(deltas, vec![(0, 10), (1, 9), (2, -6), (3, -3)]);
        for (b, d) in &deltas {
            let (_, s) = before[usize::from(*b)];
            assert!(s.apply(Transition::Adjust(*d)).is_some_and(|s| s.holds_invariant()));
        }
        assert_eq!(redistribute(&before, StockBuckets::ONE, -13), Err(12));
        assert_eq!(redistribute(&before, StockBuckets::ONE, -12).unwrap().iter().map(|(_, d)| d).sum::<i64>(), -12);
    }
}
