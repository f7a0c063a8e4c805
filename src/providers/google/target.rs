//! Google Calendar as a target. Each published item is one event whose id calsync chooses:
//! `hashing::google_event_id` of (pair, item key), lower-case base32hex, 52 characters. It
//! is written explicitly public (`visibility: "public"`), confirmed, without attendees, with
//! reminders off, tagged in `extendedProperties.private`, and with `sendUpdates=none`, so
//! nobody is ever notified. A series is written as `recurrence` lines (RRULE, RDATE, EXDATE
//! in the series' IANA zone); its overridden instances are then written onto the instances
//! Google made (found by `events.instances?originalStart=`).
//!
//! Nothing is created twice and nothing is overwritten blindly:
//! - create: `events.insert` with the derived id. A retried insert whose first answer was
//!   lost gets 409 — Google keeps ids of deleted events too — and the event is read: ours and
//!   live → done (rewritten when its content differs); ours and cancelled → restored by a PUT
//!   with `status: "confirmed"`; if Google refuses the restore (reported in the wild), the
//!   next derived id (`…r1`, `…r2`) is tried; not ours → conflict.
//! - update: PUT with `If-Match: <etag>`. 412 → read it: ours and already what we want →
//!   done; cancelled (deleted in the target) → restored; else someone changed it → conflict,
//!   left as it is.
//! - delete: DELETE with `If-Match`; gone already (404, 410, cancelled) is done; a moved etag
//!   is settled by reading it: still ours and holding only what calsync writes → deleted.
//!
//! Writes run with `concurrency` requests in flight (the shared pool), one request per event,
//! rather than batches: a throttled item is retried alone by `net` with its `Retry-After`,
//! Google counts each batch item against the quota anyway, and at 4 in flight the writes
//! keep well ahead of the per-user quota. After a 403 `quotaExceeded` no further write is
//! sent in the run.

use super::wire::{self, text};
use super::{Client, PAGE_SIZE, classify, is_quota, with_query};
use crate::config::GoogleSettings;
use crate::hashing;
use crate::model::{ItemKey, Moment, PublicDetails, PublicEvent};
use crate::net::{NetError, Request};
use crate::policy;
use crate::providers::{
    Applied, Context, OwnedEvent, ProviderError, Target, Write, WriteError, pool,
};
use crate::store::Store;
use serde_json::Value;

/// The items of a page that has none.
static EMPTY: Vec<Value> = Vec::new();
use std::sync::atomic::{AtomicBool, Ordering};

/// Derived ids tried for one item when Google refuses to restore a cancelled event.
const RESTORE_TRIES: usize = 3;

/// A Google calendar written as a target.
pub struct GoogleTarget<'a> {
    writer: Writer,
    store: &'a Store,
    concurrency: usize,
    checked: bool,
}

/// What the write workers share (no state file: it stays on the calling thread).
struct Writer {
    client: Client,
    pair: String,
    pair_prefix: String,
    /// The calendar's own zone, for times without one (floating).
    floating: String,
    /// Google answered `quotaExceeded`: nothing more is sent in this run.
    quota_hit: AtomicBool,
}

/// How reading an event after a refused write came out.
enum Settled {
    Done(Applied),
    /// Ours, cancelled, and Google would not restore it.
    RestoreRefused,
}

impl<'a> GoogleTarget<'a> {
    /// # Errors
    /// [`ProviderError::Config`] for a key that cannot be used.
    pub fn new(settings: &GoogleSettings, ctx: &Context<'a>) -> Result<Self, ProviderError> {
        Ok(GoogleTarget {
            writer: Writer {
                client: Client::new(settings, ctx, "target")?,
                pair: ctx.pair.name.clone(),
                pair_prefix: hashing::pair_tag_prefix(&ctx.pair.name),
                floating: "UTC".into(),
                quota_hit: AtomicBool::new(false),
            },
            store: ctx.store,
            concurrency: settings.concurrency.max(1),
            checked: false,
        })
    }
}

impl Writer {
    fn write(&self, write: &Write) -> Result<Applied, WriteError> {
        if self.quota_hit.load(Ordering::SeqCst) {
            return Err(WriteError::Failed(ProviderError::Transient {
                endpoint: "google".into(),
                detail: format!(
                    "write of {} not sent: Google's calendar usage limit was reached earlier in this run",
                    write.item()
                ),
            }));
        }
        if let Write::Create { event, .. } | Write::Update { event, .. } = write
            && let Some(why) = unfit_for_google(event)
        {
            return Err(WriteError::Failed(ProviderError::Failed {
                what: format!("write of {}", write.item()),
                detail: why,
            }));
        }
        match write {
            // The id derives from the tag, so a create whose outcome is unknown settles
            // itself (a 409): nothing to look up first.
            Write::Create {
                item, event, tag, ..
            } => self.create(item, event, tag),
            Write::Update {
                target_id,
                etag,
                event,
                tag,
                ..
            } => self.update(target_id, etag.as_deref(), event, tag),
            Write::Delete {
                target_id, etag, ..
            } => self.delete(target_id, etag.as_deref()),
        }
    }

    fn fail(&self, e: NetError, what: &str) -> WriteError {
        if is_quota(&e) {
            self.quota_hit.store(true, Ordering::SeqCst);
        }
        WriteError::Failed(classify(e, what))
    }

    // --------------------------------------------------------------------------------------
    // Requests.

    fn with_updates_none(url: &str) -> String {
        with_query(url, &[("sendUpdates", "none")])
    }

    fn json_request(method: reqwest::Method, url: &str, body: &Value) -> Request {
        Request::new(method, Self::with_updates_none(url))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .body(serde_json::to_vec(body).expect("JSON serialises"))
    }

    fn insert(&self, body: &Value) -> Result<Value, NetError> {
        let req = Self::json_request(reqwest::Method::POST, &self.client.events_url(), body);
        let resp = self.client.send(&req)?;
        Ok(serde_json::from_slice(&resp.body).unwrap_or(Value::Null))
    }

    fn put(&self, id: &str, body: &Value, etag: Option<&str>) -> Result<Value, NetError> {
        let mut req = Self::json_request(reqwest::Method::PUT, &self.client.event_url(id), body);
        if let Some(etag) = etag {
            req = req.header("If-Match", etag);
        }
        let resp = self.client.send(&req)?;
        Ok(serde_json::from_slice(&resp.body).unwrap_or(Value::Null))
    }

    /// DELETE; `Ok(false)` when the precondition failed.
    fn remove(&self, id: &str, etag: Option<&str>) -> Result<bool, WriteError> {
        let mut req = Request::new(
            reqwest::Method::DELETE,
            Self::with_updates_none(&self.client.event_url(id)),
        );
        if let Some(etag) = etag {
            req = req.header("If-Match", etag);
        }
        match self.client.send(&req) {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.status(), Some(404 | 410)) => Ok(true),
            Err(e) if e.status() == Some(412) => Ok(false),
            Err(e) => Err(self.fail(e, "deleting an event")),
        }
    }

    /// The event (cancelled ones too), or `None` when Google has none by that id.
    fn fetch(&self, id: &str) -> Result<Option<Value>, WriteError> {
        match self.client.get_json(&self.client.event_url(id), &[]) {
            Ok(v) if v.is_object() => Ok(Some(v)),
            Ok(_) => Err(WriteError::Failed(ProviderError::Failed {
                what: format!("reading event {id}"),
                detail: "the answer is not an event".into(),
            })),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(self.fail(e, "reading an event")),
        }
    }

    fn master_body(&self, event: &PublicEvent, id: Option<&str>, tag: &str) -> Value {
        wire::master_body(event, id, tag, &self.pair_prefix, &self.floating)
    }

    // --------------------------------------------------------------------------------------
    // Writes.

    fn create(
        &self,
        item: &ItemKey,
        event: &PublicEvent,
        tag: &str,
    ) -> Result<Applied, WriteError> {
        let base = hashing::google_event_id(&self.pair, item);
        for attempt in 0..RESTORE_TRIES {
            let id = match attempt {
                0 => base.clone(),
                n => format!("{base}r{n}"),
            };
            let body = self.master_body(event, Some(&id), tag);
            match self.insert(&body) {
                Ok(created) => {
                    let etag = text(&created, "etag").map(str::to_string);
                    return self.after_master(&id, etag, event, tag, false);
                }
                Err(e) if e.status() == Some(409) => match self.settle(&id, event, tag, true)? {
                    Settled::Done(applied) => return Ok(applied),
                    Settled::RestoreRefused => continue,
                },
                Err(e) => return Err(self.fail(e, "creating an event")),
            }
        }
        Err(WriteError::Failed(ProviderError::Failed {
            what: format!("creating event {base}"),
            detail: "Google refused to restore calsync's deleted events under every id tried"
                .into(),
        }))
    }

    fn update(
        &self,
        id: &str,
        etag: Option<&str>,
        event: &PublicEvent,
        tag: &str,
    ) -> Result<Applied, WriteError> {
        let Some(etag) = etag else {
            // No version known to condition on: settle it like a create that found one.
            return self.settled(id, event, tag, true);
        };
        match self.put(id, &self.master_body(event, None, tag), Some(etag)) {
            Ok(updated) => {
                let etag = text(&updated, "etag").map(str::to_string);
                self.after_master(id, etag, event, tag, true)
            }
            Err(e) if matches!(e.status(), Some(404 | 412)) => self.settled(id, event, tag, false),
            Err(e) => Err(self.fail(e, "updating an event")),
        }
    }

    fn settled(
        &self,
        id: &str,
        event: &PublicEvent,
        tag: &str,
        rewrite_ours: bool,
    ) -> Result<Applied, WriteError> {
        match self.settle(id, event, tag, rewrite_ours)? {
            Settled::Done(applied) => Ok(applied),
            Settled::RestoreRefused => Err(WriteError::Failed(ProviderError::Failed {
                what: format!("restoring event {id}"),
                detail: "Google refused to restore calsync's event that was deleted in the target"
                    .into(),
            })),
        }
    }

    /// After a refused write: read the event and decide (see the module doc). `rewrite_ours`:
    /// an event of ours with other content is rewritten (a create found its own earlier
    /// attempt) rather than left as a conflict (an update found someone's change).
    fn settle(
        &self,
        id: &str,
        event: &PublicEvent,
        tag: &str,
        rewrite_ours: bool,
    ) -> Result<Settled, WriteError> {
        let Some(found) = self.fetch(id)? else {
            // Not there at all (an update of an event Google never had): create it.
            let body = self.master_body(event, Some(id), tag);
            return match self.insert(&body) {
                Ok(created) => {
                    let etag = text(&created, "etag").map(str::to_string);
                    self.after_master(id, etag, event, tag, false)
                        .map(Settled::Done)
                }
                Err(e) if e.status() == Some(409) => Err(conflict(id)),
                Err(e) => Err(self.fail(e, "creating an event")),
            };
        };
        if wire::tag_of(&found) != Some(tag) {
            return Err(conflict(id));
        }
        let etag = text(&found, "etag").map(str::to_string);
        if wire::is_cancelled(&found) {
            // Ours, deleted (by a run whose answer was lost, or by someone in the target):
            // restored with `status: "confirmed"` (the body always carries it).
            return match self.put(id, &self.master_body(event, None, tag), etag.as_deref()) {
                Ok(restored) => {
                    log::info!(event = "google.restored", target_id = id;
                               "calsync's cancelled event was restored under its own id");
                    let etag = text(&restored, "etag").map(str::to_string);
                    self.after_master(id, etag, event, tag, true)
                        .map(Settled::Done)
                }
                Err(e) if e.status() == Some(403) && !is_quota(&e) => {
                    log::warn!(event = "google.restore_refused", target_id = id;
                               "Google refused to restore calsync's cancelled event; trying the next derived id");
                    Ok(Settled::RestoreRefused)
                }
                Err(e) if e.status() == Some(412) => Err(conflict(id)),
                Err(e) => Err(self.fail(e, "restoring an event")),
            };
        }
        if holds(&found, event) {
            return self
                .after_master(id, etag, event, tag, true)
                .map(Settled::Done);
        }
        if !rewrite_ours {
            return Err(conflict(id));
        }
        match self.put(id, &self.master_body(event, None, tag), etag.as_deref()) {
            Ok(updated) => {
                let etag = text(&updated, "etag").map(str::to_string);
                self.after_master(id, etag, event, tag, true)
                    .map(Settled::Done)
            }
            Err(e) if e.status() == Some(412) => Err(conflict(id)),
            Err(e) => Err(self.fail(e, "updating an event")),
        }
    }

    /// Once the master holds what it should: the overridden instances of a series. `existed`:
    /// the event was there before this write, so instances written earlier are reconciled.
    fn after_master(
        &self,
        id: &str,
        etag: Option<String>,
        event: &PublicEvent,
        tag: &str,
        existed: bool,
    ) -> Result<Applied, WriteError> {
        let etag = if event.is_series() && (existed || !event.overrides.is_empty()) {
            match self.write_instances(id, event, tag)? {
                Some(fresh) => Some(fresh),
                None => etag,
            }
        } else {
            etag
        };
        Ok(Applied {
            target_id: id.to_string(),
            etag,
        })
    }

    /// Writes each override onto its instance, resets instances calsync changed before that
    /// are no longer overridden, and cancels those that became EXDATEs. Returns the master's
    /// etag when anything was written (it may have moved).
    fn write_instances(
        &self,
        id: &str,
        event: &PublicEvent,
        tag: &str,
    ) -> Result<Option<String>, WriteError> {
        let existing = self.exceptions(id, tag)?;
        let start = &event.details.start;
        let same = |a: &Moment, b: &Moment| a.to_utc() == b.to_utc();
        let mut wrote = false;
        for ov in &event.overrides {
            let found = existing
                .iter()
                .find(|(rid, _)| same(rid, &ov.recurrence_id));
            let instance = match found {
                Some((_, ex)) if !wire::is_cancelled(ex) && holds_details(ex, &ov.details) => {
                    continue;
                }
                Some((_, ex)) => ex.clone(),
                None => self.instance_at(id, &ov.recurrence_id)?,
            };
            self.put_instance(&instance, &ov.details, tag)?;
            wrote = true;
        }
        for (rid, ex) in &existing {
            if event.overrides.iter().any(|o| same(&o.recurrence_id, rid)) {
                continue;
            }
            let excluded = event.exdates.iter().any(|x| same(x, rid));
            match (wire::is_cancelled(ex), excluded) {
                (true, true) => {}
                (false, true) => {
                    let ex_id = text(ex, "id").unwrap_or_default();
                    if !self.remove(ex_id, None)? {
                        return Err(conflict(ex_id));
                    }
                    wrote = true;
                }
                // Changed (or hidden) by an earlier write, no longer overridden: back to
                // the series' own details at its own time.
                (_, false) => {
                    let details = wire::at_instance(&event.details, start, rid);
                    self.put_instance(ex, &details, tag)?;
                    wrote = true;
                }
            }
        }
        if !wrote {
            return Ok(None);
        }
        Ok(self
            .fetch(id)?
            .and_then(|m| text(&m, "etag").map(str::to_string)))
    }

    /// The exceptions Google holds for series `id` (cancelled ones included), by original
    /// start.
    fn exceptions(&self, id: &str, tag: &str) -> Result<Vec<(Moment, Value)>, WriteError> {
        let filter = format!("{}={tag}", wire::TAG_KEY);
        let mut out = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let mut q = vec![
                ("privateExtendedProperty", filter.as_str()),
                ("singleEvents", "false"),
                ("showDeleted", "true"),
                ("maxResults", PAGE_SIZE),
            ];
            if let Some(t) = &page_token {
                q.push(("pageToken", t));
            }
            let page = self
                .client
                .get_json(&self.client.events_url(), &q)
                .map_err(|e| self.fail(e, "listing a series' instances"))?;
            for item in page
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if text(item, "recurringEventId") != Some(id) {
                    continue;
                }
                let rid = wire::moment_of(item.get("originalStartTime")).map_err(|e| {
                    WriteError::Failed(ProviderError::Failed {
                        what: format!("reading the instances of {id}"),
                        detail: e,
                    })
                })?;
                out.push((rid, item.clone()));
            }
            match text(&page, "nextPageToken") {
                Some(next) if page_token.as_deref() != Some(next) => {
                    page_token = Some(next.to_string())
                }
                _ => return Ok(out),
            }
        }
    }

    /// The instance of series `id` that originally starts at `rid`.
    fn instance_at(&self, id: &str, rid: &Moment) -> Result<Value, WriteError> {
        let url = format!("{}/instances", self.client.event_url(id));
        let original = wire::rfc3339(rid);
        let page = self
            .client
            .get_json(
                &url,
                &[
                    ("originalStart", original.as_str()),
                    ("showDeleted", "true"),
                ],
            )
            .map_err(|e| self.fail(e, "finding an instance"))?;
        page.get("items")
            .and_then(Value::as_array)
            .and_then(|items| items.first())
            .cloned()
            .ok_or_else(|| {
                WriteError::Failed(ProviderError::Failed {
                    what: format!("writing an instance of {id}"),
                    detail: format!("the series has no instance at {rid}"),
                })
            })
    }

    fn put_instance(
        &self,
        instance: &Value,
        details: &PublicDetails,
        tag: &str,
    ) -> Result<(), WriteError> {
        let id = text(instance, "id").unwrap_or_default();
        let body = wire::instance_body(instance, details, tag, &self.pair_prefix, &self.floating);
        match self.put(id, &body, None) {
            Ok(_) => Ok(()),
            Err(e) => Err(self.fail(e, "writing an instance")),
        }
    }

    fn delete(&self, id: &str, etag: Option<&str>) -> Result<Applied, WriteError> {
        let gone = Applied {
            target_id: id.to_string(),
            etag: None,
        };
        if etag.is_some() && self.remove(id, etag)? {
            return Ok(gone);
        }
        // The etag moved (or none is known): look before deleting.
        let Some(found) = self.fetch(id)? else {
            return Ok(gone);
        };
        if wire::is_cancelled(&found) {
            return Ok(gone);
        }
        let ours = wire::tag_of(&found).is_some_and(|t| hashing::is_pair_tag(&self.pair, t));
        if !ours || !is_pristine(&found) {
            return Err(conflict(id));
        }
        if self.remove(id, text(&found, "etag"))? {
            Ok(gone)
        } else {
            Err(conflict(id))
        }
    }
}

/// Holds nothing calsync would not write: explicitly public, no attendees, Meet data,
/// attachments or reminders.
fn is_pristine(found: &Value) -> bool {
    wire::read_back(found, &[])
        .is_ok_and(|r| r.foreign.is_empty() && r.markings.iter().all(policy::is_marked_public))
}

/// The master holds exactly `event` (its overrides are checked apart), as calsync writes it.
fn holds(found: &Value, event: &PublicEvent) -> bool {
    let mut want = wire::with_ends(event);
    want.overrides.clear();
    wire::read_back(found, &[]).is_ok_and(|r| {
        r.foreign.is_empty()
            && r.markings.iter().all(policy::is_marked_public)
            && wire::with_ends(&r.event) == want
    })
}

/// Why a published event cannot be written to Google faithfully, if so: a series in a zone
/// only its feed defines (Google knows IANA zones; the series' instances would follow
/// Google's idea of that zone's DST, not the feed's), or RDATE periods (each with its own
/// end, which Google's `recurrence` cannot hold). Such a series is never approximated: the
/// write fails naming the item, and `recurrence = "expand"` publishes its occurrences.
fn unfit_for_google(event: &PublicEvent) -> Option<String> {
    if event.is_series() && !event.defined_zones().is_empty() {
        return Some(
            "a series in a time zone that only its feed defines cannot be held by Google \
             faithfully; set recurrence = \"expand\" for this pair"
                .into(),
        );
    }
    if !event.periods.is_empty() {
        return Some(
            "a series with RDATE periods (instances with their own ends) cannot be held by \
             Google faithfully; set recurrence = \"expand\" for this pair"
                .into(),
        );
    }
    None
}

/// An instance holds exactly `details`.
fn holds_details(found: &Value, details: &PublicDetails) -> bool {
    let want = PublicEvent {
        uid: String::new(),
        details: details.clone(),
        rules: Vec::new(),
        rdates: Vec::new(),
        periods: Vec::new(),
        exdates: Vec::new(),
        overrides: Vec::new(),
    };
    wire::read_back(found, &[]).is_ok_and(|r| {
        let mut have = wire::with_ends(&r.event);
        have.uid = String::new();
        r.foreign.is_empty()
            && r.markings.iter().all(policy::is_marked_public)
            && have == wire::with_ends(&want)
    })
}

/// A conflict, named by the event's id so the operator can find it in the target.
fn conflict(id: &str) -> WriteError {
    log::warn!(event = "google.conflict", target_id = id;
               "the event changed in the target since calsync wrote it: left as it is");
    WriteError::Conflict
}

impl Target for GoogleTarget<'_> {
    fn prepare(&mut self) -> Result<(), ProviderError> {
        // One cheap request, even when nothing is to be written: a calendar no longer shared
        // or credentials revoked show in this run (and in `health`), not at the next change.
        // It also gives the calendar's zone, for floating times.
        if self.checked {
            return Ok(());
        }
        let client = &self.writer.client;
        let answer = client.get_json(&client.calendar_url, &[]);
        client.tokens.save(self.store);
        let calendar =
            answer.map_err(|e| client.calendar_error(e, "checking the target calendar"))?;
        if let Some(zone) =
            text(&calendar, "timeZone").filter(|z| z.parse::<chrono_tz::Tz>().is_ok())
        {
            self.writer.floating = zone.to_string();
        }
        self.checked = true;
        Ok(())
    }

    fn apply(&mut self, writes: &[Write]) -> Vec<Result<Applied, WriteError>> {
        let writer = &self.writer;
        let results = pool::apply_writes(writes, self.concurrency, |w| writer.write(w));
        writer.client.tokens.save(self.store);
        results
    }

    fn list_owned(&mut self) -> Result<Vec<OwnedEvent>, ProviderError> {
        let client = &self.writer.client;
        let filter = format!("{}={}", wire::PAIR_KEY, self.writer.pair_prefix);
        let mut items: Vec<Value> = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let mut q = vec![
                ("privateExtendedProperty", filter.as_str()),
                ("singleEvents", "false"),
                ("maxResults", PAGE_SIZE),
            ];
            if let Some(t) = &page_token {
                q.push(("pageToken", t));
            }
            let page = client
                .get_json(&client.events_url(), &q)
                .map_err(|e| client.calendar_error(e, "listing calsync's events"));
            let page = match page {
                Ok(p) => p,
                Err(e) => {
                    client.tokens.save(self.store);
                    return Err(e);
                }
            };
            let Some(list) = page.get("items").map_or(Some(&EMPTY), Value::as_array) else {
                return Err(ProviderError::Failed {
                    what: "listing calsync's events".into(),
                    detail: "the answer is not an event listing".into(),
                });
            };
            items.extend(list.iter().cloned());
            match text(&page, "nextPageToken") {
                Some(next) if page_token.as_deref() != Some(next) => {
                    page_token = Some(next.to_string())
                }
                Some(_) => {
                    return Err(ProviderError::Failed {
                        what: "listing calsync's events".into(),
                        detail: "Google answered the same page token again".into(),
                    });
                }
                None => break,
            }
        }
        client.tokens.save(self.store);
        let mut owned = Vec::new();
        for master in items
            .iter()
            .filter(|i| i.get("recurringEventId").is_none() && !wire::is_cancelled(i))
        {
            let Some(id) = text(master, "id") else {
                continue;
            };
            let exceptions: Vec<&Value> = items
                .iter()
                .filter(|i| text(i, "recurringEventId") == Some(id))
                .collect();
            let back = match wire::read_back(master, &exceptions) {
                Ok(back) => back,
                Err(reason) => {
                    log::warn!(event = "google.unreadable", target_id = id, reason = reason.as_str();
                               "calsync's event in the target cannot be read back");
                    continue;
                }
            };
            let Some(tag) = back.tag else { continue };
            owned.push(OwnedEvent {
                target_id: id.to_string(),
                tag,
                etag: text(master, "etag").map(str::to_string),
                markings: back.markings,
                foreign: back.foreign,
                dtstamp: None,
                event: back.event,
            });
        }
        Ok(owned)
    }
}
