//! "Has everything written so far gone through?": the barrier a test waits on instead of
//! sleeping, `POST /_local/events/settle` on the Invoke API.
//!
//! An e-mail is the end of a pipeline: a transaction writes an outbox item, the table's stream
//! hands it to the outbox relay ([`crate::streams`]), the relay produces it to Kafka, the MSK
//! trigger hands it to the notifier ([`crate::msk`]), and the notifier sends it. A test that
//! wants "exactly one e-mail", not "at least one", must know that nothing it caused is still on
//! its way. Waiting a few seconds only makes that likely; this module makes it known, in two
//! steps, each against a mark taken when its step begins (so traffic that comes later, from tests
//! running alongside, never holds the barrier up):
//!
//! 1. **The stream.** Each stream trigger records its [`StreamProgress`]: per shard, the start of
//!    the last `GetRecords` poll that reached the shard's end with the highest sequence number
//!    read by then, and the sequence numbers still with the function (handed over, neither
//!    succeeded nor given up on). Once a shard scan and a caught-up poll have *started* after the
//!    request arrived, every record written before it has been read; the step ends when none of
//!    those is still with the function. A shard that is closed and read counts as read to its end.
//! 2. **Kafka.** Then the relay has produced all it will for those records, so the topics' high
//!    watermarks, read now, cover them. The step ends when every MSK trigger's consumer group has
//!    committed past them, which the trigger does only after the function succeeded or it gave
//!    the batch up (see [`crate::msk`]). The offsets are the broker's, as `kafka-consumer-groups
//!    --describe` would show them.
//!
//! What this cannot see is what was never written: a relay that failed gives the event back to
//! the outbox, and only the sweeper's redrive sends it again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::time::Instant;

use crate::msk::MskTrigger;

/// How long the barrier waits at most before it says what it is still waiting for.
pub const LIMIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(20);

/// What a stream trigger has read and what it still has with the function (see the module docs).
#[derive(Debug, Default)]
pub struct StreamProgress(Mutex<Streams>);

#[derive(Debug, Default)]
struct Streams {
    /// When the last completed shard scan (`DescribeStream`) started.
    scanned: Option<Instant>,
    shards: BTreeMap<String, Shard>,
}

#[derive(Debug, Default)]
struct Shard {
    /// The start of the last poll that reached the shard's end, and the highest sequence number
    /// read by then.
    caught_up: Option<(Instant, u128)>,
    /// Closed and read to its end, with every record done.
    finished: bool,
    /// Handed to the function, not yet done with.
    in_flight: BTreeSet<u128>,
}

/// A sequence number as a number: the API's are decimal strings of up to 40 digits, compared by value.
pub fn sequence_number(s: &str) -> u128 {
    s.parse().unwrap_or(u128::MAX)
}

impl StreamProgress {
    fn with<T>(&self, f: impl FnOnce(&mut Streams) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A shard scan that started at `at` listed `shards`.
    pub fn scanned(&self, at: Instant, shards: impl IntoIterator<Item = String>) {
        self.with(|s| {
            for id in shards {
                s.shards.entry(id).or_default();
            }
            s.scanned = Some(at);
        });
    }

    /// A record of `shard` goes to the function.
    pub fn handed(&self, shard: &str, sequence: u128) {
        self.with(|s| s.shards.entry(shard.to_owned()).or_default().in_flight.insert(sequence));
    }

    /// The function is done with these records (succeeded or given up on).
    pub fn done(&self, shard: &str, sequences: &[u128]) {
        self.with(|s| {
            if let Some(shard) = s.shards.get_mut(shard) {
                for n in sequences {
                    shard.in_flight.remove(n);
                }
            }
        });
    }

    /// A poll that started at `at` reached the shard's end; `read` is the highest sequence number
    /// read from the shard so far.
    pub fn caught_up(&self, shard: &str, at: Instant, read: u128) {
        self.with(|s| s.shards.entry(shard.to_owned()).or_default().caught_up = Some((at, read)));
    }

    /// The shard is closed, read to its end and done with.
    pub fn finished(&self, shard: &str) {
        self.with(|s| s.shards.entry(shard.to_owned()).or_default().finished = true);
    }

    /// Step 1's mark: per shard, the sequence number up to which every record written before
    /// `since` lies, once a scan and a caught-up poll have started after it; `Err` names the shard
    /// (or the scan) still to come.
    fn mark(&self, since: Instant) -> Result<BTreeMap<String, u128>, String> {
        self.with(|s| {
            if s.scanned.is_none_or(|at| at < since) {
                return Err("the stream's shards to be listed".to_owned());
            }
            s.shards
                .iter()
                .map(|(id, shard)| match shard.caught_up {
                    _ if shard.finished => Ok((id.clone(), u128::MAX)),
                    Some((at, read)) if at >= since => Ok((id.clone(), read)),
                    _ => Err(format!("shard {id} to be read to its end")),
                })
                .collect()
        })
    }

    /// `Err` names a shard with a record up to its mark still with the function.
    fn passed(&self, mark: &BTreeMap<String, u128>) -> Result<(), String> {
        self.with(|s| {
            for (id, up_to) in mark {
                if let Some(first) = s.shards.get(id).and_then(|shard| shard.in_flight.first())
                    && first <= up_to
                {
                    return Err(format!("record {first} of shard {id} to be processed"));
                }
            }
            Ok(())
        })
    }
}

/// Waits until everything written before the call has gone through the stream triggers and
/// then the MSK triggers (see the module docs), for [`LIMIT`] at most. `Err` says what it was
/// still waiting for.
pub async fn settle(
    streams: &[(String, std::sync::Arc<StreamProgress>)],
    msk: &[MskTrigger],
    bootstrap: &str,
) -> Result<Duration, String> {
    let start = Instant::now();
    let deadline = start + LIMIT;
    let waiting = |what: String| format!("still waiting after {} s for {what}", LIMIT.as_secs());
    for (function, progress) in streams {
        let mark = loop {
            match progress.mark(start) {
                Ok(mark) => break mark,
                Err(what) if Instant::now() > deadline => return Err(waiting(format!("{function}: {what}"))),
                Err(_) => tokio::time::sleep(POLL).await,
            }
        };
        while let Err(what) = progress.passed(&mark) {
            if Instant::now() > deadline {
                return Err(waiting(format!("{function}: {what}")));
            }
            tokio::time::sleep(POLL).await;
        }
    }
    for trigger in msk {
        let (trigger, bootstrap) = (trigger.clone(), bootstrap.to_owned());
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::task::spawn_blocking(move || committed_past_ends(&trigger, &bootstrap, left))
            .await
            .map_err(|e| format!("{e}"))?
            .map_err(waiting)?;
    }
    Ok(start.elapsed())
}

/// Step 2 for one MSK trigger: reads its topics' high watermarks, then waits until its group's
/// committed offsets reach them. Blocking (librdkafka's calls are).
fn committed_past_ends(trigger: &MskTrigger, bootstrap: &str, left: Duration) -> Result<(), String> {
    let deadline = std::time::Instant::now() + left;
    let timeout = Duration::from_secs(5).min(left.max(POLL));
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", &trigger.function)
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| format!("a Kafka client for {}: {e}", trigger.function))?;
    let mut ends = TopicPartitionList::new();
    for topic in &trigger.topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout).map_err(|e| format!("topic {topic}: {e}"))?;
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            let (_, high) = consumer
                .fetch_watermarks(topic, partition.id(), timeout)
                .map_err(|e| format!("{topic}-{}: {e}", partition.id()))?;
            ends.add_partition_offset(topic, partition.id(), Offset::Offset(high)).map_err(|e| e.to_string())?;
        }
    }
    loop {
        let committed = consumer
            .committed_offsets(ends.clone(), timeout)
            .map_err(|e| format!("{}'s committed offsets: {e}", trigger.function))?;
        let behind = ends.elements().into_iter().find_map(|end| {
            let at = match committed.find_partition(end.topic(), end.partition()).map(|c| c.offset()) {
                Some(Offset::Offset(n)) => n,
                _ => 0,
            };
            let Offset::Offset(high) = end.offset() else { return None };
            (at < high).then(|| {
                format!("{} to commit {}-{} up to {high} (at {at})", trigger.function, end.topic(), end.partition())
            })
        });
        match behind {
            None => return Ok(()),
            Some(what) if std::time::Instant::now() > deadline => return Err(what),
            Some(_) => std::thread::sleep(POLL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_passes_its_mark_once_every_record_up_to_it_is_done() {
        let p = StreamProgress::default();
        let since = Instant::now();
        assert!(p.mark(since).is_err(), "no scan yet");
        p.scanned(since, ["a".to_owned()]);
        assert!(p.mark(since).unwrap_err().contains("shard a"), "not read since");
        p.handed("a", 5);
        p.handed("a", 9);
        p.caught_up("a", since, 9);
        let mark = p.mark(since).unwrap();
        p.handed("a", 12);
        assert!(p.passed(&mark).unwrap_err().contains("record 5"));
        p.done("a", &[5, 9]);
        assert_eq!(p.passed(&mark), Ok(()), "12 came after the mark");
    }

    #[test]
    fn a_finished_shard_is_read_to_its_end() {
        let p = StreamProgress::default();
        let since = Instant::now();
        p.scanned(since, ["a".to_owned(), "b".to_owned()]);
        p.caught_up("b", since, 0);
        p.finished("a");
        assert_eq!(p.mark(since).unwrap()["a"], u128::MAX);
    }

    #[test]
    fn sequence_numbers_compare_by_value() {
        assert!(sequence_number("000000000000000000099") < sequence_number("100"));
        assert_eq!(sequence_number("x"), u128::MAX);
    }
}
