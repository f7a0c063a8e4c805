//! The circuit breaker, one per remote endpoint (scheme, host, port), persisted in the state
//! file so it spans runs (DESIGN.md, Resilience).
//!
//! CLOSED → OPEN after [`THRESHOLD`] consecutive failures (a failure is one call that still
//! fails after its retries with a retryable cause; a plain 4xx is not the endpoint's fault and,
//! like any answer, resets the count) → HALF_OPEN once [`COOLDOWN`] has passed (one probe) →
//! CLOSED when the probe succeeds, OPEN again when it fails. While OPEN the endpoint is not
//! called. The state machine is pure; `now` is passed in (Unix seconds), so tests move time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Consecutive failures that open the breaker.
pub const THRESHOLD: u32 = 5;
/// How long an open breaker refuses calls before it lets one probe through (seconds).
pub const COOLDOWN_SECS: i64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        Some(match s {
            "closed" => State::Closed,
            "open" => State::Open,
            "half_open" => State::HalfOpen,
            _ => return None,
        })
    }
}

/// One endpoint's breaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breaker {
    pub state: State,
    /// Consecutive failures counted while closed.
    pub failures: u32,
    /// When it last opened (Unix seconds).
    pub opened_at: Option<i64>,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            state: State::Closed,
            failures: 0,
            opened_at: None,
        }
    }
}

/// A change of state, for the log and the audit chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
}

impl Breaker {
    /// May a call go out now? An open breaker whose cooldown has passed turns half-open and
    /// lets the call through as its probe.
    pub fn admit(&mut self, now: i64) -> (bool, Option<Transition>) {
        match self.state {
            State::Closed | State::HalfOpen => (true, None),
            State::Open => {
                let cooled = self.opened_at.is_none_or(|t| now - t >= COOLDOWN_SECS);
                if cooled {
                    self.state = State::HalfOpen;
                    (
                        true,
                        Some(Transition {
                            from: State::Open,
                            to: State::HalfOpen,
                        }),
                    )
                } else {
                    (false, None)
                }
            }
        }
    }

    /// Records how a call ended: `failed` for a retryable failure after its retries.
    pub fn record(&mut self, failed: bool, now: i64) -> Option<Transition> {
        let from = self.state;
        match (self.state, failed) {
            (State::Closed, false) => {
                self.failures = 0;
                None
            }
            (State::Closed, true) => {
                self.failures += 1;
                if self.failures >= THRESHOLD {
                    self.open(now);
                    Some(Transition {
                        from,
                        to: State::Open,
                    })
                } else {
                    None
                }
            }
            (State::HalfOpen, false) => {
                *self = Breaker::default();
                Some(Transition {
                    from,
                    to: State::Closed,
                })
            }
            (State::HalfOpen, true) => {
                self.open(now);
                Some(Transition {
                    from,
                    to: State::Open,
                })
            }
            // A call admitted before another one opened the breaker: its outcome does not
            // reopen or close anything.
            (State::Open, _) => None,
        }
    }

    fn open(&mut self, now: i64) {
        self.state = State::Open;
        self.opened_at = Some(now);
        self.failures = THRESHOLD;
    }
}

/// The breakers of one run, shared by every clone of the run's `Http`.
#[derive(Debug, Clone, Default)]
pub struct Breakers {
    inner: Arc<Mutex<BreakerBook>>,
}

#[derive(Debug, Default)]
struct BreakerBook {
    by_endpoint: BTreeMap<String, Breaker>,
    transitions: Vec<(String, Transition)>,
}

impl Breakers {
    /// Starts from what the state file remembers.
    pub fn load(rows: impl IntoIterator<Item = (String, Breaker)>) -> Breakers {
        let b = Breakers::default();
        b.inner.lock().expect("breaker lock").by_endpoint = rows.into_iter().collect();
        b
    }

    pub fn admit(&self, endpoint: &str, now: i64) -> bool {
        let mut book = self.inner.lock().expect("breaker lock");
        let (ok, t) = book
            .by_endpoint
            .entry(endpoint.to_string())
            .or_default()
            .admit(now);
        if let Some(t) = t {
            book.transitions.push((endpoint.to_string(), t));
        }
        ok
    }

    pub fn record(&self, endpoint: &str, failed: bool, now: i64) {
        let mut book = self.inner.lock().expect("breaker lock");
        if let Some(t) = book
            .by_endpoint
            .entry(endpoint.to_string())
            .or_default()
            .record(failed, now)
        {
            book.transitions.push((endpoint.to_string(), t));
        }
    }

    /// Every breaker, for saving.
    pub fn snapshot(&self) -> Vec<(String, Breaker)> {
        let book = self.inner.lock().expect("breaker lock");
        book.by_endpoint
            .iter()
            .map(|(e, b)| (e.clone(), b.clone()))
            .collect()
    }

    /// Transitions since the last call (each returned once).
    pub fn take_transitions(&self) -> Vec<(String, Transition)> {
        std::mem::take(&mut self.inner.lock().expect("breaker lock").transitions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_open_it_and_any_answer_resets_the_count() {
        let mut b = Breaker::default();
        for _ in 0..4 {
            assert_eq!(b.record(true, 0), None);
        }
        assert_eq!(b.record(false, 0), None, "an answer resets");
        assert_eq!(b.failures, 0);
        for _ in 0..4 {
            b.record(true, 10);
        }
        assert_eq!(
            b.record(true, 10),
            Some(Transition {
                from: State::Closed,
                to: State::Open
            })
        );
        assert_eq!(b.admit(10 + COOLDOWN_SECS - 1), (false, None));
    }

    #[test]
    fn after_the_cooldown_one_probe_decides() {
        let open = Breaker {
            state: State::Open,
            failures: 5,
            opened_at: Some(1000),
        };
        let mut ok = open.clone();
        assert_eq!(
            ok.admit(1000 + COOLDOWN_SECS),
            (
                true,
                Some(Transition {
                    from: State::Open,
                    to: State::HalfOpen
                })
            )
        );
        assert_eq!(
            ok.record(false, 1300),
            Some(Transition {
                from: State::HalfOpen,
                to: State::Closed
            })
        );
        assert_eq!(ok, Breaker::default());

        let mut bad = open;
        bad.admit(2000);
        assert_eq!(
            bad.record(true, 2000),
            Some(Transition {
                from: State::HalfOpen,
                to: State::Open
            })
        );
        assert_eq!(bad.opened_at, Some(2000));
        assert_eq!(bad.admit(2100), (false, None), "the cooldown starts again");
    }

    #[test]
    fn the_book_keeps_endpoints_apart_and_reports_transitions_once() {
        let book = Breakers::default();
        for _ in 0..5 {
            assert!(book.admit("https://a:443", 0));
            book.record("https://a:443", true, 0);
        }
        assert!(!book.admit("https://a:443", 1));
        assert!(book.admit("https://b:443", 1));
        let t = book.take_transitions();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].0, "https://a:443");
        assert!(book.take_transitions().is_empty());
    }
}
