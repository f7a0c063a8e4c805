//! Google Calendar as a source. One item is one single event, or one series: the master (its
//! id is the source key) with its modified and cancelled instances.
//!
//! How the calendar is read (Google's sync guide):
//! - in full (no cursor, `--full`, another window, an expired token): `events.list` with
//!   `singleEvents=false` (series as masters), bounded by the pair's window (`timeMin`,
//!   `timeMax`), page after page, and the `nextSyncToken` of the last page kept as the cursor.
//!   Each series listed is completed with all its exceptions (one `events.list` by its
//!   `iCalUID`, unbounded): a private or cancelled instance outside the window is still an
//!   instance of the published series, and must leave it too;
//! - incrementally: the same list with only `syncToken` (Google refuses the window, `q`,
//!   `orderBy`… beside it; it must repeat `singleEvents`). A run with nothing changed costs
//!   this one request. Changes are not bounded by the window: the policy places each item
//!   (one moved out of the window is withdrawn). An item that mentions a series (its master,
//!   or one instance) brings the whole series, read as above once per run. A cancelled single
//!   or master is a removed key;
//! - a 410 (`fullSyncRequired`) for the token: one full read, which the deletion guard judges.
//!
//! The cursor (JSON) names the calendar and the window's days it was made with; with other
//! ones the read starts over in full. It reaches the state file only after the changes it
//! covers are applied (the engine stores it).
//!
//! Fail closed: a page that fails or cannot be read fails the read (nothing is deleted); an
//! item that cannot be read faithfully (a zone that is not IANA, an RRULE that cannot be read
//! exactly) is reported skipped with its key, and removed, so what it published before goes.

use super::wire::{self, text};
use super::{Client, PAGE_SIZE};
use crate::config::GoogleSettings;
use crate::model::SourceKey;
use crate::plan::ReadKind;
use crate::policy::Window;
use crate::providers::{Context, PageSink, ProviderError, ReadEnd, Source, SourcePage};
use crate::store::Store;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The items of a page that has none.
static EMPTY: Vec<Value> = Vec::new();
use std::collections::{BTreeMap, BTreeSet};

/// Items handed to the engine at once.
const PAGE: usize = 200;

/// What the source remembers between runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    calendar: String,
    past_days: u32,
    future_days: u32,
    sync_token: String,
}

/// How a paged listing ended.
enum Paged {
    Done {
        sync_token: Option<String>,
    },
    /// The sync token is no longer valid (410): read in full.
    Expired,
}

/// A Google calendar read as a source.
pub struct GoogleSource<'a> {
    client: Client,
    store: &'a Store,
    calendar_id: String,
    window: Window,
    days: (u32, u32),
}

impl<'a> GoogleSource<'a> {
    /// # Errors
    /// [`ProviderError::Config`] for a key that cannot be used.
    pub fn new(settings: &GoogleSettings, ctx: &Context<'a>) -> Result<Self, ProviderError> {
        Ok(GoogleSource {
            client: Client::new(settings, ctx, "source")?,
            store: ctx.store,
            calendar_id: settings.calendar_id.clone(),
            window: ctx.window,
            days: (ctx.pair.window.past_days, ctx.pair.window.future_days),
        })
    }

    /// Lists pages of events with `query`, handing each page's items to `on_page`.
    fn pages(
        &self,
        query: &[(&str, &str)],
        what: &str,
        on_page: &mut dyn FnMut(Vec<Value>) -> Result<(), ProviderError>,
    ) -> Result<Paged, ProviderError> {
        let syncing = query.iter().any(|(k, _)| *k == "syncToken");
        let mut page_token: Option<String> = None;
        loop {
            let mut q = query.to_vec();
            if let Some(t) = &page_token {
                q.push(("pageToken", t));
            }
            let answer = match self.client.get_json(&self.client.events_url(), &q) {
                Ok(v) => v,
                Err(e) if syncing && e.status() == Some(410) => return Ok(Paged::Expired),
                Err(e) => return Err(self.client.calendar_error(e, what)),
            };
            let Some(items) = answer.get("items").map_or(Some(&EMPTY), Value::as_array) else {
                return Err(self.unreadable(what));
            };
            if !answer.is_object() {
                return Err(self.unreadable(what));
            }
            on_page(items.clone())?;
            match text(&answer, "nextPageToken") {
                Some(next) if page_token.as_deref() == Some(next) => {
                    return Err(ProviderError::Failed {
                        what: what.to_string(),
                        detail: "Google answered the same page token again".into(),
                    });
                }
                Some(next) => page_token = Some(next.to_string()),
                None => {
                    return Ok(Paged::Done {
                        sync_token: text(&answer, "nextSyncToken").map(str::to_string),
                    });
                }
            }
        }
    }

    fn unreadable(&self, what: &str) -> ProviderError {
        ProviderError::Failed {
            what: what.to_string(),
            detail: format!(
                "the answer for calendar {} is not an event listing",
                self.client.calendar
            ),
        }
    }

    /// A whole series: the master and every exception of it, unbounded by the window.
    /// `None` when the series is gone (deleted, or no longer there).
    fn series(
        &self,
        id: &str,
        ical_uid: Option<&str>,
    ) -> Result<Option<(Value, Vec<Value>)>, ProviderError> {
        let uid = match ical_uid {
            Some(uid) => uid.to_string(),
            None => {
                let master = match self.client.get_json(&self.client.event_url(id), &[]) {
                    Ok(v) => v,
                    Err(e) if matches!(e.status(), Some(404 | 410)) => return Ok(None),
                    Err(e) => return Err(super::classify(e, "reading a series master")),
                };
                if wire::is_cancelled(&master) {
                    return Ok(None);
                }
                match text(&master, "iCalUID") {
                    Some(uid) => uid.to_string(),
                    None if wire::recurrence_lines(&master).is_none() => {
                        return Ok(Some((master, Vec::new())));
                    }
                    None => {
                        return Err(ProviderError::Failed {
                            what: "reading a series".into(),
                            detail: format!("the series {id} has no iCalUID"),
                        });
                    }
                }
            }
        };
        let mut items = Vec::new();
        let query = [
            ("iCalUID", uid.as_str()),
            ("singleEvents", "false"),
            ("showDeleted", "true"),
            ("maxResults", PAGE_SIZE),
        ];
        self.pages(&query, "listing a series", &mut |page| {
            items.extend(page);
            Ok(())
        })?;
        let mut master = None;
        let mut exceptions = Vec::new();
        for item in items {
            if text(&item, "recurringEventId") == Some(id) {
                exceptions.push(item);
            } else if text(&item, "id") == Some(id) && item.get("recurringEventId").is_none() {
                master = Some(item);
            }
        }
        Ok(master
            .filter(|m| !wire::is_cancelled(m))
            .map(|m| (m, exceptions)))
    }

    /// Everything in the window.
    fn read_full(&self, sink: &mut PageSink<'_>) -> Result<ReadEnd, ProviderError> {
        let time_min = self
            .window
            .from
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let time_max = self
            .window
            .to
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let query = [
            ("singleEvents", "false"),
            ("timeMin", time_min.as_str()),
            ("timeMax", time_max.as_str()),
            ("maxResults", PAGE_SIZE),
        ];
        // Series are completed after the listing: id → iCalUID.
        let mut series: BTreeMap<String, Option<String>> = BTreeMap::new();
        let paged = self.pages(&query, "listing the calendar", &mut |items| {
            let mut page = SourcePage::default();
            for item in &items {
                if wire::is_cancelled(item) && item.get("recurringEventId").is_none() {
                    continue;
                }
                if let Some(master) = text(item, "recurringEventId") {
                    // An instance in the window whose master is not (yet) listed.
                    series.entry(master.to_string()).or_insert(None);
                } else if wire::recurrence_lines(item).is_some() {
                    let id = text(item, "id").unwrap_or_default().to_string();
                    series.insert(id, text(item, "iCalUID").map(str::to_string));
                } else {
                    take(&mut page, item, &[]);
                }
            }
            crate::providers::hand_in_pieces(page, PAGE, sink)
        })?;
        let Paged::Done {
            sync_token: Some(token),
        } = paged
        else {
            return Err(ProviderError::Failed {
                what: "listing the calendar".into(),
                detail: "the last page carries no nextSyncToken".into(),
            });
        };
        self.complete_series(&series, sink)?;
        Ok(ReadEnd {
            kind: ReadKind::Full,
            cursor: Some(self.cursor(token)),
        })
    }

    /// Reads each series named and hands it whole (or its key as removed).
    fn complete_series(
        &self,
        series: &BTreeMap<String, Option<String>>,
        sink: &mut PageSink<'_>,
    ) -> Result<(), ProviderError> {
        let mut page = SourcePage::default();
        for (id, uid) in series {
            match self.series(id, uid.as_deref())? {
                Some((master, exceptions)) => {
                    let exceptions: Vec<&Value> = exceptions.iter().collect();
                    take(&mut page, &master, &exceptions);
                }
                None => page.removed.push(SourceKey(id.clone())),
            }
            if page.events.len() >= PAGE {
                crate::providers::hand_in_pieces(std::mem::take(&mut page), PAGE, sink)?;
            }
        }
        crate::providers::hand_in_pieces(page, PAGE, sink)
    }

    /// Changes since `token`; `None` when the token expired.
    fn read_delta(
        &self,
        token: &str,
        sink: &mut PageSink<'_>,
    ) -> Result<Option<ReadEnd>, ProviderError> {
        let query = [
            ("syncToken", token),
            ("singleEvents", "false"),
            ("maxResults", PAGE_SIZE),
        ];
        let mut changed = false;
        let mut series: BTreeMap<String, Option<String>> = BTreeMap::new();
        let mut gone: BTreeSet<String> = BTreeSet::new();
        let paged = self.pages(&query, "reading changes", &mut |items| {
            let mut page = SourcePage::default();
            for item in &items {
                changed = true;
                let id = text(item, "id").unwrap_or_default().to_string();
                if let Some(master) = text(item, "recurringEventId") {
                    let uid = (!wire::is_cancelled(item))
                        .then(|| text(item, "iCalUID").map(str::to_string))
                        .flatten();
                    let known = series.entry(master.to_string()).or_insert(None);
                    if known.is_none() {
                        *known = uid;
                    }
                } else if wire::is_cancelled(item) {
                    series.remove(&id);
                    gone.insert(id.clone());
                    page.removed.push(SourceKey(id));
                } else if wire::recurrence_lines(item).is_some() {
                    gone.remove(&id);
                    series.insert(id, text(item, "iCalUID").map(str::to_string));
                } else {
                    // A single event (or a master whose recurrence was taken away).
                    series.remove(&id);
                    gone.remove(&id);
                    take(&mut page, item, &[]);
                }
            }
            crate::providers::hand_in_pieces(page, PAGE, sink)
        })?;
        let token = match paged {
            Paged::Expired => {
                log::warn!(event = "google.sync_token_expired", calendar = self.client.calendar.as_str();
                           "Google no longer knows the sync token (410): reading the calendar in full");
                return Ok(None);
            }
            Paged::Done {
                sync_token: Some(token),
            } => token,
            Paged::Done { sync_token: None } => {
                return Err(ProviderError::Failed {
                    what: "reading changes".into(),
                    detail: "the last page carries no nextSyncToken".into(),
                });
            }
        };
        series.retain(|id, _| !gone.contains(id));
        self.complete_series(&series, sink)?;
        Ok(Some(ReadEnd {
            kind: if changed {
                ReadKind::Delta
            } else {
                ReadKind::Unchanged
            },
            cursor: Some(self.cursor(token)),
        }))
    }

    fn cursor(&self, sync_token: String) -> String {
        serde_json::to_string(&Cursor {
            calendar: self.calendar_id.clone(),
            past_days: self.days.0,
            future_days: self.days.1,
            sync_token,
        })
        .expect("a cursor serialises")
    }
}

impl Source for GoogleSource<'_> {
    fn read(
        &mut self,
        cursor: Option<&str>,
        sink: &mut PageSink<'_>,
    ) -> Result<ReadEnd, ProviderError> {
        let previous = cursor
            .and_then(|c| serde_json::from_str::<Cursor>(c).ok())
            .filter(|c| {
                c.calendar == self.calendar_id && (c.past_days, c.future_days) == self.days
            });
        let result = match previous {
            Some(c) => match self.read_delta(&c.sync_token, sink) {
                Ok(Some(end)) => Ok(end),
                Ok(None) => self.read_full(sink),
                Err(e) => Err(e),
            },
            None => self.read_full(sink),
        };
        // A token fetched in this run is kept for the next, whatever the read came to.
        self.client.tokens.save(self.store);
        result
    }
}

/// One item into the page, or — when it cannot be read faithfully — a skip and a removal of
/// its key (fail closed).
fn take(page: &mut SourcePage, master: &Value, exceptions: &[&Value]) {
    match wire::source_event(master, exceptions) {
        Ok(event) => page.events.push(event),
        Err(reason) => {
            let key = text(master, "id").map(|id| SourceKey(id.to_string()));
            if let Some(key) = &key {
                page.removed.push(key.clone());
            }
            page.skipped.push((key, reason));
        }
    }
}
