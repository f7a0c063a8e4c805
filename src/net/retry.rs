//! The retry policy's pure parts: which answers are retried, how long to wait.

use chrono::{DateTime, Utc};
use std::time::Duration;

/// How often and how patiently a request is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    /// The first backoff; it doubles per retry.
    pub backoff: Duration,
}

/// Reasons (Google's `errors[].reason`, Graph's `error.code`) that mean "slow down".
const RATE_LIMIT_REASONS: &[&str] = &[
    "rateLimitExceeded",
    "userRateLimitExceeded",
    "TooManyRequests",
    "ApplicationThrottled",
    "ErrorServerBusy",
];

pub(crate) fn is_rate_limit_reason(reason: Option<&str>) -> bool {
    reason.is_some_and(|r| RATE_LIMIT_REASONS.contains(&r))
}

/// Statuses retried: 5xx, 429, 423 (a CalDAV resource locked by a concurrent write), and 403
/// when the body says it is a rate limit.
pub(crate) fn is_retryable_status(status: u16, reason: Option<&str>) -> bool {
    matches!(status, 500..=599 | 429 | 423) || (status == 403 && is_rate_limit_reason(reason))
}

/// Answers that say "too much at once" rather than "broken": 423 (a resource locked by a
/// concurrent write — servers that serialise writes behind one lock answer it to every write
/// that overlaps another), 429, 503, and 403 with a rate-limit reason. An endpoint that gives
/// one gets one request at a time for the rest of the run.
pub(crate) fn asks_to_slow_down(status: u16, reason: Option<&str>) -> bool {
    matches!(status, 423 | 429 | 503) || (status == 403 && is_rate_limit_reason(reason))
}

/// The machine-readable reason of a JSON error body, if any: Google's
/// `error.errors[0].reason`, else `error.code` when it is a string (Graph), else `error` (OAuth).
pub(crate) fn reason_of(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let err = v.get("error")?;
    if let Some(r) = err
        .get("errors")
        .and_then(|e| e.get(0))
        .and_then(|e| e.get("reason"))
        .and_then(|r| r.as_str())
    {
        return Some(r.to_string());
    }
    if let Some(c) = err.get("code").and_then(|c| c.as_str()) {
        return Some(c.to_string());
    }
    err.as_str().map(str::to_string)
}

/// Reads a `Retry-After` value: delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((when - now).to_std().unwrap_or(Duration::ZERO))
}

/// Exponential backoff with full jitter: a random wait in `[0, backoff × 2^(attempt-1)]`.
pub fn backoff_delay(policy: &RetryPolicy, attempt: u32) -> Duration {
    let ceiling = policy.backoff.saturating_mul(
        1u32.checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX),
    );
    let mut bytes = [0u8; 8];
    let fraction = match getrandom::fill(&mut bytes) {
        Ok(()) => (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    };
    ceiling.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_retried() {
        let cases: &[(u16, Option<&str>, bool)] = &[
            (500, None, true),
            (502, None, true),
            (503, None, true),
            (429, None, true),
            (423, None, true),
            (403, Some("rateLimitExceeded"), true),
            (403, Some("userRateLimitExceeded"), true),
            (403, Some("quotaExceeded"), false),
            (403, Some("forbiddenForNonOrganizer"), false),
            (403, None, false),
            (401, None, false),
            (404, None, false),
            (409, None, false),
            (410, None, false),
            (412, None, false),
        ];
        for (status, reason, want) in cases {
            assert_eq!(
                is_retryable_status(*status, *reason),
                *want,
                "{status} {reason:?}"
            );
        }
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2026-11-29T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 29 Nov 2026 10:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 29 Nov 2026 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn only_busy_answers_ask_to_slow_down() {
        for (status, reason) in [
            (423, None),
            (429, None),
            (503, None),
            (403, Some("rateLimitExceeded")),
        ] {
            assert!(asks_to_slow_down(status, reason), "{status} {reason:?}");
        }
        for (status, reason) in [
            (500, None),
            (502, None),
            (403, None),
            (403, Some("forbidden")),
            (404, None),
            (412, None),
        ] {
            assert!(!asks_to_slow_down(status, reason), "{status} {reason:?}");
        }
    }

    #[test]
    fn backoff_stays_under_its_doubling_ceiling() {
        let p = RetryPolicy {
            retries: 3,
            backoff: Duration::from_secs(1),
        };
        for attempt in 1..=4u32 {
            let ceiling = Duration::from_secs(1 << (attempt - 1));
            for _ in 0..50 {
                assert!(backoff_delay(&p, attempt) <= ceiling);
            }
        }
    }

    #[test]
    fn error_reasons_are_read_from_google_graph_and_oauth_bodies() {
        let google = br#"{"error":{"code":403,"message":"x","errors":[{"domain":"usageLimits","reason":"rateLimitExceeded"}]}}"#;
        let graph = br#"{"error":{"code":"syncStateNotFound","message":"x"}}"#;
        let oauth = br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#;
        assert_eq!(reason_of(google).as_deref(), Some("rateLimitExceeded"));
        assert_eq!(reason_of(graph).as_deref(), Some("syncStateNotFound"));
        assert_eq!(reason_of(oauth).as_deref(), Some("invalid_grant"));
        assert_eq!(reason_of(b"<html>"), None);
    }
}
