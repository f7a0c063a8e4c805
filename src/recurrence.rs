//! Recurrence: the instances of a series in a time range. (Stub until the calcard-based
//! implementation lands: DTSTART and RDATE only.)

use crate::model::{Moment, Recurrence};
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub recurrence_id: Moment,
    pub start: Moment,
    pub end: Moment,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid recurrence: {0}")]
pub struct RecurrenceError(String);

pub fn instances(
    start: &Moment,
    end: &Moment,
    rec: &Recurrence,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<Instance>, RecurrenceError> {
    let _ = (end, rec, from, to, limit);
    Ok(vec![Instance {
        recurrence_id: start.clone(),
        start: start.clone(),
        end: end.clone(),
    }])
}

pub fn series_end(
    start: &Moment,
    end: &Moment,
    rec: &Recurrence,
) -> Result<Option<DateTime<Utc>>, RecurrenceError> {
    let _ = (start, rec);
    Ok(Some(end.to_utc()))
}
