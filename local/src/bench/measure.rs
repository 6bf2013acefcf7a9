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
