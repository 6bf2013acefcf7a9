//! Timing many concurrent calls: a latency histogram (hdrhistogram, µs, 3 significant digits)
//! and the wall time of the whole run, for percentiles and throughput.

use std::time::{Duration, Instant};

use anyhow::Result;
use futures::StreamExt;
use hdrhistogram::Histogram;

/// Latencies (µs) and wall time of one run.
pub struct Latencies {
    pub histogram: Histogram<u64>,
    pub wall: Duration,
}

impl Latencies {
    /// The latency at `quantile` (0.5 = p50), in ms.
    pub fn ms(&self, quantile: f64) -> f64 {
        self.histogram.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// `p50 / p95 / p99 ms` as the report shows them.
    pub fn percentiles(&self) -> String {
        format!("{:.1} / {:.1} / {:.1} ms", self.ms(0.5), self.ms(0.95), self.ms(0.99))
    }

    /// Completed calls per second of wall time.
    pub fn per_second(&self) -> f64 {
        self.histogram.len() as f64 / self.wall.as_secs_f64()
    }
}

/// Runs `op(0..count)` with `concurrency` in flight, timing each call from its start to its
/// result; returns the latencies and the results (in completion order). The first error stops
/// the run: a benchmark whose calls fail measures nothing worth printing.
pub async fn measure<T, F, Fut>(count: usize, concurrency: usize, op: F) -> Result<(Latencies, Vec<T>)>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut results = Vec::with_capacity(count);
    let started = Instant::now();
    let mut timed = futures::stream::iter(0..count)
        .map(|i| {
            let call = op(i);
            async move {
                let t = Instant::now();
                call.await.map(|r| (t.elapsed(), r))
            }
        })
        .buffer_unordered(concurrency);
    while let Some(done) = timed.next().await {
        let (elapsed, result) = done?;
        histogram.record(elapsed.as_micros().max(1) as u64)?;
        results.push(result);
    }
    Ok((Latencies { histogram, wall: started.elapsed() }, results))
}

/// One timed call of [`interleaved`]: when it started, how long it took, what it returned.
pub struct Timed<T> {
    pub start: Instant,
    pub elapsed: Duration,
    pub result: T,
}

/// Both columns of an [`interleaved`] run.
pub struct Pairs<A, B> {
    pub a: Latencies,
    pub b: Latencies,
    /// In completion order.
    pub a_calls: Vec<Timed<A>>,
    pub b_calls: Vec<Timed<B>>,
}

/// Runs `count` pairs of calls `a(i)` and `b(i)` one after the other, `concurrency` pairs in
/// flight, alternating which goes first (`a` then `b` for even `i`, `b` then `a` for odd), and
/// times each call on its own.
///
/// This is how a request is set against its floor: measured one column after the other, the
/// second column would run on a DynamoDB Local (a JVM) warmed up by the first, and with whatever
/// the first left running in the background (the outbox relay, the notifier); interleaved, both
/// columns see the same database, the same background and the same machine at the same time.
/// The wall time covers both columns, so there is no per-column throughput.
pub async fn interleaved<A, B, FA, FB, FutA, FutB>(
    count: usize,
    concurrency: usize,
    a: FA,
    b: FB,
) -> Result<Pairs<A, B>>
where
    FA: Fn(usize) -> FutA,
    FB: Fn(usize) -> FutB,
    FutA: Future<Output = Result<A>>,
    FutB: Future<Output = Result<B>>,
{
    async fn timed<T>(call: impl Future<Output = Result<T>>) -> Result<Timed<T>> {
        let start = Instant::now();
        let result = call.await?;
        Ok(Timed { start, elapsed: start.elapsed(), result })
    }
    let started = Instant::now();
    let mut pairs = futures::stream::iter(0..count)
        .map(|i| {
            let (a, b) = (&a, &b);
            async move {
                if i % 2 == 0 {
                    let first = timed(a(i)).await?;
                    Ok::<_, anyhow::Error>((first, timed(b(i)).await?))
                } else {
                    let first = timed(b(i)).await?;
                    Ok((timed(a(i)).await?, first))
                }
            }
        })
        .buffer_unordered(concurrency);
    let (mut a_calls, mut b_calls) = (Vec::with_capacity(count), Vec::with_capacity(count));
    while let Some(pair) = pairs.next().await {
        let (x, y) = pair?;
        a_calls.push(x);
        b_calls.push(y);
    }
    let wall = started.elapsed();
    Ok(Pairs {
        a: Latencies { histogram: histogram(a_calls.iter().map(|c| c.elapsed))?, wall },
        b: Latencies { histogram: histogram(b_calls.iter().map(|c| c.elapsed))?, wall },
        a_calls,
        b_calls,
    })
}

/// A latency histogram (µs) of these durations.
pub fn histogram(durations: impl IntoIterator<Item = Duration>) -> Result<Histogram<u64>> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    for d in durations {
        h.record(d.as_micros().max(1) as u64)?;
    }
    Ok(h)
}
