//! Every number the configuration takes, with its range and default: one table that parsing
//! checks each value against and the README's configuration reference lists (a test holds
//! the two together). A value outside its range is a configuration error (78) naming the key
//! and the range, never a panic or an overflow further on (a window of four billion days, a
//! deadline past the end of time).

/// One numeric key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Number {
    /// The key as the README names it (`pair.past_days`, `net.retries`).
    pub key: &'static str,
    pub min: i64,
    pub max: i64,
    /// `None` where the default is another key's value.
    pub default: Option<i64>,
}

/// The upper bound of `retention_days`, also of `cleanup --retention-days`.
pub const RETENTION_DAYS_MAX: i64 = 36_500;

const fn n(key: &'static str, min: i64, max: i64, default: i64) -> Number {
    Number {
        key,
        min,
        max,
        default: Some(default),
    }
}

/// The numbers, in the order the README lists them.
pub const NUMBERS: &[Number] = &[
    n("net.retries", 0, 10, 3),
    n("net.backoff_ms", 1, 60_000, 1_000),
    n("net.timeout_seconds", 1, 3_600, 30),
    n("net.deadline_seconds", 1, 86_400, 600),
    n("net.concurrency", 1, 64, 4),
    n("net.max_response_mib", 1, 1_024, 64),
    n("history.keep_runs", 1, 100_000, 100),
    n("history.keep_metrics_days", 0, 3_650, 7),
    n("health.stale_fail_factor", 1, 100, 4),
    n("health.failure_window_runs", 1, 1_000, 10),
    n("health.failure_warn_percent", 1, 100, 25),
    n("health.failure_fail_percent", 1, 100, 75),
    n("health.cursor_warn_days", 1, 365, 2),
    n("pair.past_days", 0, 3_650, 30),
    n("pair.future_days", 0, 3_650, 365),
    n("pair.retention_days", 0, RETENTION_DAYS_MAX, 180),
    n("pair.max_delete_percent", 0, 100, 50),
    n("pair.max_delete_min", 0, 1_000_000, 10),
    n("pair.stale_after_minutes", 1, 43_200, 60),
    n("pair.max_occurrences", 1, 100_000, 1_000),
    Number {
        key: "pair.source.concurrency",
        min: 1,
        max: 64,
        default: None,
    },
    Number {
        key: "pair.target.concurrency",
        min: 1,
        max: 64,
        default: None,
    },
];

/// The row of a key.
///
/// # Panics
/// For a key the table lacks: a programming error the unit tests catch.
pub fn number(key: &str) -> &'static Number {
    NUMBERS
        .iter()
        .find(|n| n.key == key)
        .unwrap_or_else(|| panic!("config key {key} has no row in NUMBERS"))
}

/// The default of a key that has one.
pub fn default_of(key: &str) -> i64 {
    number(key)
        .default
        .unwrap_or_else(|| panic!("config key {key} has no default of its own"))
}

impl Number {
    /// The value when it is in range, else what is wrong (naming the range).
    ///
    /// # Errors
    /// A value outside `min..=max`.
    pub fn check<T: TryFrom<i64>>(&self, value: i64) -> Result<T, String> {
        if (self.min..=self.max).contains(&value)
            && let Ok(v) = T::try_from(value)
        {
            return Ok(v);
        }
        Err(format!(
            "must be a whole number from {} to {} (is {})",
            grouped(self.min),
            grouped(self.max),
            grouped(value)
        ))
    }
}

/// A whole number with thousands separators, as the README writes them (`36,500`).
pub fn grouped(value: i64) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if value < 0 {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_is_in_its_range_and_keys_are_unique() {
        for (i, row) in NUMBERS.iter().enumerate() {
            if let Some(d) = row.default {
                assert!((row.min..=row.max).contains(&d), "{}", row.key);
            }
            assert!(
                NUMBERS[i + 1..].iter().all(|other| other.key != row.key),
                "{} twice",
                row.key
            );
        }
    }

    #[test]
    fn out_of_range_names_the_range() {
        let row = number("pair.past_days");
        assert_eq!(row.check::<u32>(3_650), Ok(3_650));
        assert_eq!(
            row.check::<u32>(99_999_999_999).unwrap_err(),
            "must be a whole number from 0 to 3,650 (is 99,999,999,999)"
        );
        assert_eq!(
            row.check::<u32>(-1).unwrap_err(),
            "must be a whole number from 0 to 3,650 (is -1)"
        );
        assert_eq!(grouped(1_000_000), "1,000,000");
        assert_eq!(grouped(100), "100");
    }
}
