//! The bounded write pool shared by targets that write one request per event (CalDAV,
//! Google) or per small group (Graph's `$batch`).
//!
//! Round trips, not the server, bound a remote sync (DESIGN.md, Cost): with 50 ms of latency
//! one write after another manages 20 a second. The pool keeps `concurrency` units of work in
//! flight on scoped threads and hands back one result per unit, in input order. After a
//! failure that no later write can fix (credentials refused, the breaker open, a stop asked)
//! the units not yet started are not sent: each gets the `skipped` result instead.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Runs `work` on every unit with at most `concurrency` in flight; one result per unit, in
/// input order. `fatal` tells which results stop the units not yet started, and `skipped`
/// makes their results.
pub fn run<T: Sync, R: Send>(
    units: &[T],
    concurrency: usize,
    work: impl Fn(&T) -> R + Sync,
    fatal: impl Fn(&R) -> bool + Sync,
    skipped: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    if units.is_empty() {
        return Vec::new();
    }
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let slots: Vec<Mutex<Option<R>>> = units.iter().map(|_| Mutex::new(None)).collect();
    let worker = || {
        loop {
            let i = next.fetch_add(1, Ordering::SeqCst);
            let Some(unit) = units.get(i) else { break };
            let result = if stop.load(Ordering::SeqCst) {
                skipped(unit)
            } else {
                work(unit)
            };
            if fatal(&result) {
                stop.store(true, Ordering::SeqCst);
            }
            *slots[i].lock().expect("a result slot") = Some(result);
        }
    };
    let threads = concurrency.clamp(1, units.len());
    if threads == 1 {
        worker();
    } else {
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(worker);
            }
        });
    }
    slots
        .into_iter()
        .map(|s| {
            s.into_inner()
                .expect("a result slot")
                .expect("every unit was taken by a worker")
        })
        .collect()
}

/// [`run`] for writes: a write that failed for good stops the rest, which are reported as
/// not attempted.
pub fn apply_writes(
    writes: &[super::Write],
    concurrency: usize,
    write: impl Fn(&super::Write) -> Result<super::Applied, super::WriteError> + Sync,
) -> Vec<Result<super::Applied, super::WriteError>> {
    run(
        writes,
        concurrency,
        write,
        |result| matches!(result, Err(super::WriteError::Failed(e)) if e.ends_the_pair()),
        |w| Err(not_attempted(w.item())),
    )
}

/// The result of a write that was never sent.
pub fn not_attempted(item: &crate::model::ItemKey) -> super::WriteError {
    super::WriteError::Failed(super::ProviderError::Failed {
        what: format!("write of {item}"),
        detail: "not attempted: an earlier write failed for good".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn results_come_back_in_input_order_with_bounded_concurrency() {
        let in_flight = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let units: Vec<u32> = (0..40).collect();
        let out = run(
            &units,
            4,
            |n| {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                // Long enough that workers overlap; correctness does not depend on it.
                std::thread::sleep(std::time::Duration::from_millis(2));
                in_flight.fetch_sub(1, Ordering::SeqCst);
                n * 2
            },
            |_| false,
            |_| 0,
        );
        assert_eq!(out, units.iter().map(|n| n * 2).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 4);
    }

    #[test]
    fn a_fatal_result_stops_the_units_not_yet_started() {
        let units: Vec<u32> = (0..10).collect();
        let started = AtomicUsize::new(0);
        let out = run(
            &units,
            1,
            |n| {
                started.fetch_add(1, Ordering::SeqCst);
                *n
            },
            |r| *r == 3,
            |_| 99,
        );
        assert_eq!(out, vec![0, 1, 2, 3, 99, 99, 99, 99, 99, 99]);
        assert_eq!(started.load(Ordering::SeqCst), 4);
    }
}
