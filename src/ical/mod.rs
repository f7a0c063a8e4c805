//! iCalendar text. (Interface stub until the calcard-based implementation lands.)

use crate::model::{PublicEvent, SourceEvent, SourceKey};
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;

#[derive(Debug, thiserror::Error)]
pub enum IcalError {
    #[error("not implemented")]
    Todo,
}

pub struct Feed {
    pub events: Vec<SourceEvent>,
    pub skipped: Vec<Skipped>,
}

pub struct Skipped {
    pub key: Option<SourceKey>,
    pub reason: String,
}

pub struct Published {
    pub event: PublicEvent,
    pub dtstamp: DateTime<Utc>,
    pub tag: String,
}

pub fn parse_feed(_bytes: &[u8]) -> Result<Feed, IcalError> {
    Err(IcalError::Todo)
}

pub fn parse_published(_bytes: &[u8]) -> Result<Vec<(String, PublicEvent)>, IcalError> {
    Err(IcalError::Todo)
}

pub struct CalendarWriter<'a, W: std::io::Write> {
    out: &'a mut W,
}

impl<'a, W: std::io::Write> CalendarWriter<'a, W> {
    pub fn new(
        out: &'a mut W,
        _name: Option<&str>,
        _zones: &BTreeSet<String>,
    ) -> std::io::Result<Self> {
        Ok(CalendarWriter { out })
    }
    pub fn item(&mut self, _p: &Published) -> std::io::Result<()> {
        let _ = &self.out;
        Ok(())
    }
    pub fn finish(self) -> std::io::Result<()> {
        Ok(())
    }
}
