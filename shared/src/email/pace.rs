//! Keeping pace with SES's sending quota: how fast the notifier may send, and what it does when
//! SES says "too fast".
//!
//! **The quota.** An SES account may send at most `MaxSendRate` e-mails a second (1 in the
//! sandbox; out of it, whatever AWS granted: 14 is a common start) and `Max24HourSend` in 24
//! hours, per Region, counted per recipient, shared by everything that sends with the account.
//! SESv2 `GetAccount` answers both (`SendQuota`). Past the rate, `SendEmail` answers HTTP 429
//! `TooManyRequestsException` "Maximum sending rate exceeded." and drops the e-mail (the SES
//! developer guide: "wait, then retry"); past the day's quota, "Daily message quota exceeded.".
//!
//! **Which rate.** [`send_rate`]: `NOTIFIER_MAX_SEND_RATE`, when set, **wins** and `GetAccount` is
//! not called at all (for an operator who shares the account's quota with other senders, or
//! splits it between concurrent notifier instances: Lambda runs one per Kafka partition at most);
//! otherwise the account's `MaxSendRate`, read once per instance at cold start ([`Pace::load`]).
//! Until it is known (`GetAccount` failed: SES unreachable, no permission), the instance paces at
//! [`FALLBACK_RATE`], the lowest SES grants, and asks again at its next invocation.
//!
//! **Pacing.** [`Pacer`] is a GCRA rate limiter (the `governor` crate) at that rate with a burst
//! of one: two sends of one instance are never closer than `1 / rate`, whatever the batch's
//! concurrency bound lets start at once. Each instance paces itself; several at once can still
//! exceed the account's rate together, which is what throttling is for:
//!
//! **Throttled = later.** An e-mail SES throttled was not accepted, so sending it again cannot
//! send it twice. [`after_throttle`] decides: wait (exponential backoff with jitter, never less
//! than one pacing period) and try again within this invocation, holding the whole instance off
//! meanwhile ([`Pacer::hold_off`]: the quota is the account's, not the e-mail's) — or, when the
//! tries are used up or the wait would not end in time, leave the e-mail for the batch's
//! redelivery: it is not recorded, so the redelivered batch sends it (and skips what was sent).
//! The SDK's own retries of a throttled `SendEmail` are switched off (`email::sender`): they
//! would retry at once, unpaced.
//!
//! **In time.** A paced batch can take longer than the function may run, and an invocation that
//! times out never writes its records (every e-mail it sent would go again). So no send starts
//! later than [`END_RESERVE`] before the invocation's deadline ([`sending_window`]); what has not
//! started by then waits for the redelivery too.
//!
//! Everything here is pure or takes its clock (a `governor` [`Clock`]), so it is unit-tested
//! without sleeping.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use super::sender::MailSender;

/// The account's sending quota, as SESv2 `GetAccount` answers it (`SendQuota`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SendQuota {
    /// E-mails (recipients) a second.
    pub max_send_rate: f64,
    /// E-mails in 24 hours; `-1` is unlimited.
    pub max_24_hour_send: f64,
    pub sent_last_24_hours: f64,
}

/// The pace until the account's rate is known: SES's lowest (the sandbox's), 1 e-mail a second.
pub const FALLBACK_RATE: f64 = 1.0;
/// How long `GetAccount` may take at cold start before the instance starts at [`FALLBACK_RATE`].
pub const QUOTA_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Kept free at the end of an invocation: no send starts later, so that the last answers and the
/// batch's records (one `BatchWriteItem` per 25) are in before the deadline.
pub const END_RESERVE: Duration = Duration::from_secs(10);
/// A send still unanswered this close to the deadline is given up on (as failed: the batch comes
/// again), so that the records of the rest are written.
pub const RECORD_RESERVE: Duration = Duration::from_secs(3);
/// Throttles of one e-mail this invocation waits out before leaving it for the redelivery.
pub const MAX_THROTTLE_RETRIES: u32 = 8;
/// The longest wait after a throttle.
pub const MAX_THROTTLE_WAIT: Duration = Duration::from_secs(5);
/// The shortest base of the backoff after a throttle (a fast rate's period is shorter).
pub const MIN_THROTTLE_WAIT: Duration = Duration::from_millis(100);

/// Where the rate the notifier paces at came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateSource {
    /// `NOTIFIER_MAX_SEND_RATE`.
    Configured,
    /// `GetAccount`'s `SendQuota.MaxSendRate`.
    Account,
}

/// The rate to pace at, e-mails a second: the configured one wins; else the account's, when it
/// is a usable number; `None` when neither is known (the caller uses [`FALLBACK_RATE`]).
pub fn send_rate(configured: Option<f64>, account: Option<&SendQuota>) -> Option<(f64, RateSource)> {
    let usable = |r: f64| r.is_finite() && r > 0.0;
    match (configured, account) {
        (Some(r), _) if usable(r) => Some((r, RateSource::Configured)),
        (_, Some(q)) if usable(q.max_send_rate) => Some((q.max_send_rate, RateSource::Account)),
        _ => None,
    }
}

/// How long a notifier invocation with `time_left` until its deadline may start sends.
pub fn sending_window(time_left: Duration) -> Duration {
    time_left.saturating_sub(END_RESERVE)
}

/// What to do with an e-mail SES just throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterThrottle {
    /// Hold the instance off this long, then send it again.
    RetryIn(Duration),
    /// Leave it unrecorded for the batch's redelivery.
    Later,
}

/// The decision after the `throttles`-th throttle of one e-mail (1 for the first), pacing at
/// `rate`, with `time_left` until no send may start; `jitter` in `[0, 1)`. The wait doubles from
/// one pacing period (at least [`MIN_THROTTLE_WAIT`]) up to [`MAX_THROTTLE_WAIT`], the upper half
/// of it jittered so that the instance's concurrent sends do not come back in step.
pub fn after_throttle(throttles: u32, rate: f64, time_left: Duration, jitter: f64) -> AfterThrottle {
    if throttles > MAX_THROTTLE_RETRIES {
        return AfterThrottle::Later;
    }
    let period = if rate.is_finite() && rate > 0.0 {
        Duration::try_from_secs_f64(1.0 / rate).unwrap_or(MAX_THROTTLE_WAIT)
    } else {
        MAX_THROTTLE_WAIT
    };
    let base = period.clamp(MIN_THROTTLE_WAIT, MAX_THROTTLE_WAIT);
    let doubled = base.saturating_mul(1 << (throttles.saturating_sub(1)).min(16)).min(MAX_THROTTLE_WAIT);
    let wait = doubled / 2 + doubled.mul_f64(jitter.clamp(0.0, 1.0) / 2.0);
    if wait >= time_left { AfterThrottle::Later } else { AfterThrottle::RetryIn(wait) }
}

type Limiter<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// One instance's pace: at most one send per `1 / rate`, and nothing while held off.
pub struct Pacer<C: Clock = DefaultClock> {
    rate: f64,
    /// `None`: a rate too fast to pace (sub-nanosecond periods).
    limiter: Option<Limiter<C>>,
    clock: C,
    held_until: Mutex<Option<C::Instant>>,
}

impl Pacer<DefaultClock> {
    pub fn new(rate: f64) -> Self {
        Self::with_clock(rate, DefaultClock::default())
    }
}

impl<C: Clock + Clone> Pacer<C> {
    /// At `rate` e-mails a second (a rate that is not a positive number paces at [`FALLBACK_RATE`]).
    pub fn with_clock(rate: f64, clock: C) -> Self {
        let rate = if rate.is_finite() && rate > 0.0 { rate } else { FALLBACK_RATE };
        let limiter = Duration::try_from_secs_f64(1.0 / rate)
            .ok()
            .and_then(Quota::with_period)
            .map(|quota| RateLimiter::direct_with_clock(quota, clock.clone()));
        Self { rate, limiter, clock, held_until: Mutex::new(None) }
    }
}

impl<C: Clock> Pacer<C> {
    /// E-mails a second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// `Ok`: send now (the turn is taken). `Err(wait)`: ask again after `wait`.
    pub fn try_send(&self) -> Result<(), Duration> {
        let now = self.clock.now();
        if let Some(until) = *self.held_until.lock().unwrap()
            && until > now
        {
            return Err(until.duration_since(now).into());
        }
        match &self.limiter {
            None => Ok(()),
            Some(limiter) => limiter.check().map_err(|not_until| not_until.wait_time_from(now)),
        }
    }

    /// SES throttled a send: no send of this instance starts for `pause` (a later hold that ends
    /// sooner does not shorten it).
    pub fn hold_off(&self, pause: Duration) {
        let until = self.clock.now() + pause.into();
        let mut held = self.held_until.lock().unwrap();
        if held.is_none_or(|h| h < until) {
            *held = Some(until);
        }
    }
}

/// The notifier's pace over an instance's life: the configured rate, or the account's once read.
pub struct Pace {
    configured: Option<f64>,
    known: RwLock<Option<Arc<Pacer>>>,
    fallback: Arc<Pacer>,
}

impl Pace {
    /// With `NOTIFIER_MAX_SEND_RATE` (`configured`) the pace is known at once and `GetAccount` is
    /// never called.
    pub fn new(configured: Option<f64>) -> Self {
        let known = send_rate(configured, None).map(|(rate, _)| {
            tracing::info!(rate, source = "NOTIFIER_MAX_SEND_RATE", "pacing SES sends");
            Arc::new(Pacer::new(rate))
        });
        Self { configured, known: RwLock::new(known), fallback: Arc::new(Pacer::new(FALLBACK_RATE)) }
    }

    /// Reads the account's quota if the pace is not known yet (at cold start, and at the start of
    /// an invocation while it failed before).
    pub async fn load<S: MailSender>(&self, sender: &S) {
        if self.known.read().unwrap().is_some() {
            return;
        }
        let quota = match tokio::time::timeout(QUOTA_READ_TIMEOUT, sender.send_quota()).await {
            Ok(Ok(quota)) => quota,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, rate = FALLBACK_RATE,
                    "could not read the SES sending quota (GetAccount); pacing at the fallback rate until it can");
                return;
            }
            Err(_) => {
                tracing::warn!(
                    rate = FALLBACK_RATE,
                    "no answer to GetAccount in time; pacing at the fallback rate until there is one"
                );
                return;
            }
        };
        match send_rate(self.configured, Some(&quota)) {
            Some((rate, _)) => {
                tracing::info!(
                    rate,
                    source = "GetAccount",
                    max_24_hour_send = quota.max_24_hour_send,
                    sent_last_24_hours = quota.sent_last_24_hours,
                    "pacing SES sends"
                );
                *self.known.write().unwrap() = Some(Arc::new(Pacer::new(rate)));
            }
            None => tracing::warn!(
                ?quota,
                rate = FALLBACK_RATE,
                "the SES sending quota has no usable MaxSendRate; pacing at the fallback rate"
            ),
        }
    }

    /// The pacer to send with now.
    pub fn pacer(&self) -> Arc<Pacer> {
        self.known.read().unwrap().clone().unwrap_or_else(|| self.fallback.clone())
    }

    /// Whether the pace is the configured or the account's (not the fallback).
    pub fn is_known(&self) -> bool {
        self.known.read().unwrap().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    const ACCOUNT: SendQuota = SendQuota { max_send_rate: 14.0, max_24_hour_send: 50_000.0, sent_last_24_hours: 3.0 };

    #[test]
    fn the_configured_rate_wins_over_the_account() {
        assert_eq!(send_rate(Some(5.0), Some(&ACCOUNT)), Some((5.0, RateSource::Configured)));
        assert_eq!(send_rate(None, Some(&ACCOUNT)), Some((14.0, RateSource::Account)));
        assert_eq!(send_rate(Some(0.0), Some(&ACCOUNT)), Some((14.0, RateSource::Account)), "not a rate");
        assert_eq!(send_rate(Some(f64::NAN), None), None);
        let zero = SendQuota { max_send_rate: 0.0, ..ACCOUNT };
        assert_eq!(send_rate(None, Some(&zero)), None, "unusable: the caller falls back");
        assert_eq!(send_rate(None, None), None);
    }

    /// Counts the sends a pacer lets through while `clock` advances by `step` until `until`.
    fn sends_over(
        pacer: &Pacer<FakeRelativeClock>,
        clock: &FakeRelativeClock,
        step: Duration,
        until: Duration,
    ) -> usize {
        let mut sent = 0;
        let mut elapsed = Duration::ZERO;
        while elapsed < until {
            while pacer.try_send().is_ok() {
                sent += 1;
            }
            clock.advance(step);
            elapsed += step;
        }
        sent
    }

    #[test]
    fn a_pacer_lets_one_send_through_per_period_and_says_how_long_to_wait() {
        let clock = FakeRelativeClock::default();
        let pacer = Pacer::with_clock(5.0, clock.clone());
        assert_eq!(pacer.try_send(), Ok(()), "the first goes at once");
        assert_eq!(pacer.try_send(), Err(Duration::from_millis(200)), "burst of one: the next in 1/5 s");
        clock.advance(Duration::from_millis(150));
        assert_eq!(pacer.try_send(), Err(Duration::from_millis(50)));
        clock.advance(Duration::from_millis(50));
        assert_eq!(pacer.try_send(), Ok(()));
        // Asking eagerly every millisecond for 8 s: never more than the rate.
        let clock = FakeRelativeClock::default();
        let pacer = Pacer::with_clock(5.0, clock.clone());
        assert_eq!(sends_over(&pacer, &clock, Duration::from_millis(1), Duration::from_secs(8)), 40);
    }

    #[test]
    fn fractional_and_extreme_rates_are_paced_or_not_at_all() {
        let clock = FakeRelativeClock::default();
        let half = Pacer::with_clock(0.5, clock.clone());
        assert_eq!(sends_over(&half, &clock, Duration::from_millis(10), Duration::from_secs(10)), 5);
        let fast = Pacer::with_clock(1e12, FakeRelativeClock::default());
        assert!((0..1000).all(|_| fast.try_send().is_ok()), "too fast to pace: never waits");
        let clock = FakeRelativeClock::default();
        let nonsense = Pacer::with_clock(-3.0, clock.clone());
        assert_eq!(nonsense.rate(), FALLBACK_RATE);
    }

    #[test]
    fn a_hold_off_stops_every_send_until_it_ends_and_is_never_shortened() {
        let clock = FakeRelativeClock::default();
        let pacer = Pacer::with_clock(100.0, clock.clone());
        pacer.hold_off(Duration::from_secs(2));
        pacer.hold_off(Duration::from_millis(500));
        assert_eq!(pacer.try_send(), Err(Duration::from_secs(2)));
        clock.advance(Duration::from_millis(1999));
        assert_eq!(pacer.try_send(), Err(Duration::from_millis(1)));
        clock.advance(Duration::from_millis(1));
        assert_eq!(pacer.try_send(), Ok(()));
    }

    #[test]
    fn a_throttle_waits_at_least_a_period_doubling_up_to_the_cap_then_leaves_it_for_later() {
        let plenty = Duration::from_secs(60);
        // 5/s: base 200 ms; the wait is in [d/2, d) for d = 200, 400, 800, ... ms, capped at 5 s.
        assert_eq!(after_throttle(1, 5.0, plenty, 0.0), AfterThrottle::RetryIn(Duration::from_millis(100)));
        assert_eq!(
            after_throttle(1, 5.0, plenty, 0.999_999),
            AfterThrottle::RetryIn(Duration::from_nanos(199_999_900))
        );
        assert_eq!(after_throttle(3, 5.0, plenty, 0.0), AfterThrottle::RetryIn(Duration::from_millis(400)));
        assert_eq!(after_throttle(8, 5.0, plenty, 0.0), AfterThrottle::RetryIn(Duration::from_millis(2500)));
        // A fast rate still waits the minimum; a slow one a whole period (capped).
        assert_eq!(after_throttle(1, 1000.0, plenty, 0.0), AfterThrottle::RetryIn(Duration::from_millis(50)));
        assert_eq!(after_throttle(1, 0.1, plenty, 0.0), AfterThrottle::RetryIn(Duration::from_millis(2500)));
        // Used up, or no time left to wait: the redelivery sends it.
        assert_eq!(after_throttle(MAX_THROTTLE_RETRIES + 1, 5.0, plenty, 0.0), AfterThrottle::Later);
        assert_eq!(after_throttle(1, 5.0, Duration::from_millis(100), 0.0), AfterThrottle::Later);
        assert_eq!(
            after_throttle(1, 5.0, Duration::from_millis(101), 0.0),
            AfterThrottle::RetryIn(Duration::from_millis(100))
        );
    }

    #[test]
    fn sends_start_only_while_the_end_of_the_invocation_is_far_enough() {
        assert_eq!(sending_window(Duration::from_secs(60)), Duration::from_secs(50));
        assert_eq!(sending_window(Duration::from_secs(5)), Duration::ZERO);
    }
}
