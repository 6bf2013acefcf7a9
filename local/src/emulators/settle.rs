//! "Has everything written so far gone through?": the barrier a test waits on instead of
//! sleeping, `POST /_local/events/settle` on the Invoke API.
//!
//! An e-mail is the end of a pipeline: a transaction writes an outbox item, the table's stream
//! hands it to the outbox relay ([`crate::emulators::streams`]), the relay produces it to Kafka, the MSK
//! trigger hands it to the notifier ([`crate::emulators::msk`]), and the notifier sends it. A test that
//! wants "exactly one e-mail", not "at least one", must know that nothing it caused is still on
//! its way. Waiting a few seconds only makes that likely; this module makes it known, in two
//! steps, each against a mark taken once at its start (so what is written later adds to the wait
//! only what was already read by then, never an open-ended stream of new work):
//!
//! 1. **The stream.** Each stream trigger records its [`StreamProgress`]: per shard, the start of
//!    the last `GetRecords` poll that came back empty (the shard had nothing more) with the
//!    highest sequence number read by then, and the sequence numbers still with the function
//!    (handed over, neither succeeded nor given up on). Once a shard scan and an empty poll have
//!    *started* after the request arrived, every record written before it has been read; the step
//!    ends when none of those is still with the function. A shard that is closed and read counts
//!    as read to its end. (Only an empty poll counts: `GetRecords` may return fewer records than
//!    its limit, 1 MB at most, in the middle of a shard.)
//! 2. **Kafka.** Then the relay has produced all it will for those records, so the topics' high
//!    watermarks, read now, cover them. The step ends when every MSK trigger's consumer group has
//!    committed past them, which the trigger does only after the function succeeded or it gave
//!    the batch up (see [`crate::emulators::msk`]). The offsets are the broker's, as `kafka-consumer-groups
//!    --describe` would show them; a broker that does not answer is asked again until the limit.
//!
//! What this cannot see is what was never written: a relay that failed gives the event back to
//! the outbox, and only the sweeper's redrive sends it again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::emulators::msk::MskTrigger;

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
    /// The start of the last poll that came back empty, and the highest sequence number read by
    /// then.
    caught_up: Option<(Instant, Option<SequenceNumber>)>,
    /// Closed and read to its end, with every record done.
    finished: bool,
    /// Handed to the function, not yet done with.
    in_flight: BTreeSet<SequenceNumber>,
}

/// A stream record's sequence number, ordered by value. The API gives decimal strings of 21 to 40
/// digits, more than a `u128` holds, so they compare by their number of digits (leading zeros
/// aside), then as text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SequenceNumber {
    digits: usize,
    text: String,
}

impl SequenceNumber {
    pub fn parse(s: &str) -> Self {
        let text = s.trim_start_matches('0');
        Self { digits: text.len(), text: text.to_owned() }
    }
}

impl std::fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.text.is_empty() { f.write_str("0") } else { f.write_str(&self.text) }
    }
}

/// Where step 1 waits on a shard: until every record up to a sequence number is done, or (a
/// closed shard) every record.
#[derive(Debug, PartialEq)]
enum Mark {
    UpTo(Option<SequenceNumber>),
    All,
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
    pub fn handed(&self, shard: &str, sequence: SequenceNumber) {
        self.with(|s| s.shards.entry(shard.to_owned()).or_default().in_flight.insert(sequence));
    }

    /// The function is done with these records (succeeded or given up on).
    pub fn done(&self, shard: &str, sequences: &[SequenceNumber]) {
        self.with(|s| {
            if let Some(shard) = s.shards.get_mut(shard) {
                for n in sequences {
                    shard.in_flight.remove(n);
                }
            }
        });
    }

    /// A poll that started at `at` came back empty; `read` is the highest sequence number read
    /// from the shard so far.
    pub fn caught_up(&self, shard: &str, at: Instant, read: Option<SequenceNumber>) {
        self.with(|s| s.shards.entry(shard.to_owned()).or_default().caught_up = Some((at, read)));
    }

    /// The shard is closed, read to its end and done with.
    pub fn finished(&self, shard: &str) {
        self.with(|s| s.shards.entry(shard.to_owned()).or_default().finished = true);
    }

    /// Step 1's mark: per shard, the sequence number up to which every record written before
    /// `since` lies, once a scan and an empty poll have started after it; `Err` names the shard
    /// (or the scan) still to come.
    fn mark(&self, since: Instant) -> Result<BTreeMap<String, Mark>, String> {
        self.with(|s| {
            if s.scanned.is_none_or(|at| at < since) {
                return Err("the stream's shards to be listed".to_owned());
            }
            s.shards
                .iter()
                .map(|(id, shard)| match &shard.caught_up {
                    _ if shard.finished => Ok((id.clone(), Mark::All)),
                    Some((at, read)) if *at >= since => Ok((id.clone(), Mark::UpTo(read.clone()))),
                    _ => Err(format!("shard {id} to be read to its end")),
                })
                .collect()
        })
    }

    /// `Err` names a shard with a record up to its mark still with the function.
    fn passed(&self, mark: &BTreeMap<String, Mark>) -> Result<(), String> {
        self.with(|s| {
            for (id, mark) in mark {
                let Some(first) = s.shards.get(id).and_then(|shard| shard.in_flight.first()) else { continue };
                let waiting = match mark {
                    Mark::All => true,
                    Mark::UpTo(up_to) => up_to.as_ref().is_some_and(|up_to| first <= up_to),
                };
                if waiting {
                    return Err(format!("record {first} of shard {id} to be processed"));
                }
            }
            Ok(())
        })
    }
}

/// Waits until everything written before the call has gone through the stream triggers and
/// then the MSK triggers (see the module docs), for [`LIMIT`] at most. `Err` says what it was
/// still waiting for. Blocking: it polls locks and librdkafka's blocking calls, so the route runs
/// it on tokio's blocking pool.
pub fn settle(
    streams: &[(String, Arc<StreamProgress>)],
    msk: &[MskTrigger],
    bootstrap: &str,
) -> Result<Duration, String> {
    let start = Instant::now();
    let deadline = start + LIMIT;
    for (function, progress) in streams {
        let named = |what: String| format!("{function}: {what}");
        let mark = until(deadline, || progress.mark(start).map_err(named))?;
        until(deadline, || progress.passed(&mark).map_err(named))?;
    }
    for trigger in msk {
        committed_past_ends(trigger, bootstrap, deadline)?;
    }
    Ok(start.elapsed())
}

/// Step 2 for one MSK trigger: reads its topics' high watermarks, then waits until its group's
/// committed offsets reach them; a broker that does not answer is asked again until `deadline`.
fn committed_past_ends(trigger: &MskTrigger, bootstrap: &str, deadline: Instant) -> Result<(), String> {
    let timeout = Duration::from_secs(2);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", &trigger.function)
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| format!("a Kafka client for {}: {e}", trigger.function))?;
    let ends = until(deadline, || {
        let mut ends = TopicPartitionList::new();
        for topic in &trigger.topics {
            let metadata = consumer.fetch_metadata(Some(topic), timeout).map_err(|e| format!("topic {topic}: {e}"))?;
            for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
                let (_, high) = consumer
                    .fetch_watermarks(topic, partition.id(), timeout)
                    .map_err(|e| format!("the end of {topic}-{}: {e}", partition.id()))?;
                ends.add_partition_offset(topic, partition.id(), Offset::Offset(high)).map_err(|e| e.to_string())?;
            }
        }
        Ok(ends)
    })?;
    until(deadline, || {
        let committed = consumer
            .committed_offsets(ends.clone(), timeout)
            .map_err(|e| format!("{}'s committed offsets: {e}", trigger.function))?;
        for end in ends.elements() {
            let at = match committed.find_partition(end.topic(), end.partition()).map(|c| c.offset()) {
                Some(Offset::Offset(n)) => n,
                // Nothing committed yet: the group is at the start.
                _ => 0,
            };
            if let Offset::Offset(high) = end.offset()
                && at < high
            {
                return Err(format!(
                    "{} to commit {}-{} up to {high} (it is at {at})",
                    trigger.function,
                    end.topic(),
                    end.partition()
                ));
            }
        }
        Ok(())
    })
}

/// `attempt` again every [`POLL`] until it succeeds or `deadline` passes; then what its last
/// `Err` was waiting for.
fn until<T>(deadline: Instant, mut attempt: impl FnMut() -> Result<T, String>) -> Result<T, String> {
    loop {
        match attempt() {
            Ok(value) => return Ok(value),
            Err(what) if Instant::now() > deadline => {
                return Err(format!("still waiting after {} s for {what}", LIMIT.as_secs()));
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> SequenceNumber {
        SequenceNumber::parse(s)
    }

    #[test]
    fn a_shard_passes_its_mark_once_every_record_up_to_it_is_done() {
        let p = StreamProgress::default();
        let since = Instant::now();
        assert!(p.mark(since).is_err(), "no scan yet");
        p.scanned(since, ["a".to_owned()]);
        assert!(p.mark(since).unwrap_err().contains("shard a"), "not read since");
        p.handed("a", n("5"));
        p.handed("a", n("9"));
        p.caught_up("a", since, Some(n("9")));
        let mark = p.mark(since).unwrap();
        p.handed("a", n("12"));
        assert!(p.passed(&mark).unwrap_err().contains("record 5"));
        p.done("a", &[n("5"), n("9")]);
        assert_eq!(p.passed(&mark), Ok(()), "12 came after the mark");
    }

    #[test]
    fn a_finished_shard_waits_for_all_its_records() {
        let p = StreamProgress::default();
        let since = Instant::now();
        p.scanned(since, ["a".to_owned(), "b".to_owned()]);
        p.caught_up("b", since, None);
        p.handed("a", n("7"));
        p.finished("a");
        let mark = p.mark(since).unwrap();
        assert_eq!(mark["a"], Mark::All);
        assert!(p.passed(&mark).is_err());
        p.done("a", &[n("7")]);
        assert_eq!(p.passed(&mark), Ok(()));
    }

    #[test]
    fn sequence_numbers_compare_by_value_beyond_u128() {
        assert!(n("000000000000000000099") < n("100"));
        assert!(n("9999999999999999999999999999999999999999") > n("999999999999999999999999999999999999999"));
        assert!(n("1234567890123456789012345678901234567891") > n("1234567890123456789012345678901234567890"));
        assert_eq!(n("00042").to_string(), "42");
        assert_eq!(n("0").to_string(), "0");
    }
}
