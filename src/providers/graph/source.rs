//! Graph as a source: `calendarView/delta` over the pair's window.
//!
//! A round starts with the window (whole UTC days around the pair's window) and follows
//! `@odata.nextLink` pages verbatim to an `@odata.deltaLink`, which becomes the cursor (JSON
//! with the calendar and the window, so a changed window starts a new round). Later runs
//! follow the delta link and hear only what changed. An expired or invalid delta
//! (`syncStateNotFound`, `resyncRequired`, a 410) starts one full round, logged; the engine's
//! deletion guard judges what it would remove.
//!
//! One source item is a single event or a whole series. Delta lists a series as its
//! occurrences and exceptions (occurrences carry little more than their times), so a page
//! that mentions any part of a series makes the provider read the series once per run: the
//! master (subject, sensitivity, recurrence) and its `/instances` over the window. The
//! recurrence pattern becomes an RRULE, checked against the instances Graph lists (an
//! instance the rule does not give fails the series closed); an exception becomes an
//! override (it carries its own sensitivity and `isCancelled`, which `policy` judges); an
//! instance the rule gives but Graph no longer lists was deleted, and becomes an EXDATE.
//! A removed id that was an occurrence (remembered per run in the state file's cache) makes
//! its series be read again; any other removed id is a removed item.
//!
//! Fail closed: a page missing, cut short or not understood fails the read (the engine then
//! deletes nothing); an event that cannot be read exactly is reported skipped and removed.

use super::batch::{self, Op};
use super::{Graph, wire};
use crate::config::GraphSettings;
use crate::model::{Moment, Override, Recurrence, SourceEvent, SourceKey};
use crate::net::NetError;
use crate::plan::ReadKind;
use crate::providers::{Context, PageSink, ProviderError, ReadEnd, Source, SourcePage};
use crate::store::Store;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeSet, HashSet};

/// Items per delta page asked for (`Prefer: odata.maxpagesize`).
const PAGE_SIZE: usize = 100;
/// How long an occurrence id is remembered as belonging to its series.
const OCCURRENCE_MEMORY_SECONDS: i64 = 2 * 86_400;

/// What the source remembers between runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    calendar: String,
    /// The window, RFC 3339 (`…Z`).
    from: String,
    to: String,
    link: String,
}

/// Why a round stopped.
enum Stop {
    /// The delta or skip link expired: start a new round.
    Expired(String),
    Failed(ProviderError),
}

impl From<ProviderError> for Stop {
    fn from(e: ProviderError) -> Self {
        Stop::Failed(e)
    }
}

/// A Graph calendar read as a source.
pub struct GraphSource<'a> {
    graph: Graph,
    calendar: String,
    store: &'a Store,
    pair: String,
    /// The delta window: the pair's window widened to whole UTC days.
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
    retries: u32,
    backoff: std::time::Duration,
    /// Series masters read in this run (each at most once).
    read: HashSet<String>,
}

impl<'a> GraphSource<'a> {
    /// Resolves the calendar (cached for an hour in the state file).
    ///
    /// # Errors
    /// The resolution's errors, by cause.
    pub fn new(settings: &GraphSettings, ctx: &Context<'a>) -> Result<Self, ProviderError> {
        let graph = Graph::new(settings, ctx)?;
        let resolved = super::resolve_calendar(&graph, settings, ctx);
        graph.save_token(ctx.store);
        let (calendar, _) = resolved?;
        let day = |t: DateTime<Utc>| {
            t.date_naive()
                .and_hms_opt(0, 0, 0)
                .expect("midnight")
                .and_utc()
        };
        Ok(GraphSource {
            graph,
            calendar,
            store: ctx.store,
            pair: ctx.pair.name.clone(),
            from: day(ctx.window.from),
            to: day(ctx.window.to) + Duration::days(1),
            now: ctx.now,
            retries: ctx.settings.net.retries,
            backoff: std::time::Duration::from_millis(ctx.settings.net.backoff_ms),
            read: HashSet::new(),
        })
    }

    fn initial_url(&self) -> String {
        format!(
            "{}/calendars/{}/calendarView/delta?startDateTime={}&endDateTime={}",
            self.graph.mailbox,
            super::path_segment(&self.calendar),
            self.from.format("%Y-%m-%dT%H:%M:%SZ"),
            self.to.format("%Y-%m-%dT%H:%M:%SZ")
        )
    }

    /// One delta round from `link` (a delta link; `None` starts a new round).
    fn round(&mut self, link: Option<&str>, sink: &mut PageSink<'_>) -> Result<ReadEnd, Stop> {
        let incremental = link.is_some();
        let mut url = link.map_or_else(|| self.initial_url(), str::to_string);
        let mut items = 0usize;
        loop {
            let req = self
                .graph
                .get_preferring(url.clone(), &format!("odata.maxpagesize={PAGE_SIZE}"));
            let resp = match self.graph.send(&req) {
                Ok(resp) => resp,
                Err(e) => {
                    return Err(match expired(&e) {
                        Some(code) => Stop::Expired(code),
                        None => Stop::Failed(ProviderError::from_net(
                            e,
                            &self.graph.what("calendarView delta"),
                        )),
                    });
                }
            };
            let page = super::parse_object(&resp.body).ok_or_else(|| {
                Stop::Failed(ProviderError::Failed {
                    what: self.graph.what("calendarView delta"),
                    detail: "a page that is not a JSON object".into(),
                })
            })?;
            let Some(values) = page["value"].as_array() else {
                return Err(Stop::Failed(ProviderError::Failed {
                    what: self.graph.what("calendarView delta"),
                    detail: "a page without a value array".into(),
                }));
            };
            items += values.len();
            let out = self.take_page(values)?;
            sink(out)?;
            let next = page["@odata.nextLink"].as_str();
            let delta = page["@odata.deltaLink"].as_str();
            match (next, delta) {
                (Some(next), _) => {
                    self.graph.check_link(&url, next, "calendarView delta")?;
                    url = next.to_string();
                }
                (None, Some(delta)) => {
                    self.graph.check_link(&url, delta, "calendarView delta")?;
                    let cursor = Cursor {
                        calendar: self.calendar.clone(),
                        from: rfc3339(self.from),
                        to: rfc3339(self.to),
                        link: delta.to_string(),
                    };
                    let kind = match (incremental, items) {
                        (false, _) => ReadKind::Full,
                        (true, 0) => ReadKind::Unchanged,
                        (true, _) => ReadKind::Delta,
                    };
                    return Ok(ReadEnd {
                        kind,
                        cursor: Some(serde_json::to_string(&cursor).expect("cursors serialise")),
                    });
                }
                (None, None) => {
                    return Err(Stop::Failed(ProviderError::Failed {
                        what: self.graph.what("calendarView delta"),
                        detail: "a page with neither a next link nor a delta link (cut short)"
                            .into(),
                    }));
                }
            }
        }
    }

    /// Turns one delta page into items: singles at once, series read whole.
    fn take_page(&mut self, values: &[Value]) -> Result<SourcePage, ProviderError> {
        let mut page = SourcePage::default();
        let mut series: BTreeSet<String> = BTreeSet::new();
        for v in values {
            let Some(id) = v["id"].as_str().filter(|id| !id.is_empty()) else {
                return Err(ProviderError::Failed {
                    what: self.graph.what("calendarView delta"),
                    detail: "an item without an id".into(),
                });
            };
            if v.get("@removed").is_some() {
                match self.master_of(id)? {
                    Some(master) => {
                        series.insert(master);
                    }
                    None => page.removed.push(SourceKey(id.to_string())),
                }
                continue;
            }
            match v["type"].as_str() {
                Some("seriesMaster") => {
                    series.insert(id.to_string());
                }
                Some("occurrence" | "exception") => match v["seriesMasterId"].as_str() {
                    Some(master) => {
                        series.insert(master.to_string());
                    }
                    None => {
                        return Err(ProviderError::Failed {
                            what: self.graph.what("calendarView delta"),
                            detail: format!("occurrence {id} names no series master"),
                        });
                    }
                },
                _ => self.take_single(id, v, &mut page),
            }
        }
        let wanted: Vec<String> = series
            .into_iter()
            .filter(|m| !self.read.contains(m))
            .collect();
        self.take_series(&wanted, &mut page)?;
        Ok(page)
    }

    fn take_single(&self, id: &str, v: &Value, page: &mut SourcePage) {
        let key = SourceKey(id.to_string());
        // A single instance is an instant: without a zone calsync knows, UTC is exact.
        let own = wire::own_zone(v).unwrap_or(chrono_tz::Tz::UTC);
        match wire::details(v, own) {
            Ok(main) => page.events.push(SourceEvent {
                key,
                main,
                recurrence: None,
                overrides: vec![],
            }),
            Err(reason) => skip(page, key, reason),
        }
    }

    /// Reads series masters and their instances (two calls per series, in batches).
    fn take_series(
        &mut self,
        masters: &[String],
        page: &mut SourcePage,
    ) -> Result<(), ProviderError> {
        if masters.is_empty() {
            return Ok(());
        }
        let mut ops = Vec::new();
        for m in masters {
            let event = format!("{}/events/{}", self.graph.mailbox, super::path_segment(m));
            ops.push(Op::get(event.clone()));
            ops.push(Op::get(format!(
                "{event}/instances?startDateTime={}&endDateTime={}&$top=500",
                self.from.format("%Y-%m-%dT%H:%M:%SZ"),
                self.to.format("%Y-%m-%dT%H:%M:%SZ")
            )));
        }
        let replies = batch::run(&self.graph, &ops, self.retries, self.backoff);
        self.graph.save_token(self.store);
        let mut remember: Vec<(String, String)> = Vec::new();
        for (n, m) in masters.iter().enumerate() {
            self.read.insert(m.clone());
            let key = SourceKey(m.clone());
            let master = replies[2 * n].as_ref().map_err(clone_error)?;
            if master.status == 404 {
                page.removed.push(key);
                continue;
            }
            if !master.ok() {
                return Err(batch::item_error(&self.graph, "series master", master));
            }
            let instances = replies[2 * n + 1].as_ref().map_err(clone_error)?;
            if !instances.ok() {
                if instances.status == 404 {
                    page.removed.push(key);
                    continue;
                }
                return Err(batch::item_error(
                    &self.graph,
                    "series instances",
                    instances,
                ));
            }
            let mut listed: Vec<Value> =
                instances.body["value"].as_array().cloned().ok_or_else(|| {
                    ProviderError::Failed {
                        what: self.graph.what("series instances"),
                        detail: "an answer without a value array".into(),
                    }
                })?;
            // More than one page of instances: the rest directly.
            if let Some(next) = instances.body["@odata.nextLink"].as_str() {
                let from = format!("{}/events/{}/instances", self.graph.mailbox, m);
                self.graph.check_link(&from, next, "series instances")?;
                listed.extend(self.graph.list(self.graph.get(next), "series instances")?);
            }
            for i in &listed {
                if let Some(id) = i["id"].as_str() {
                    remember.push((id.to_string(), m.clone()));
                }
            }
            match series_event(m, &master.body, &listed, self.from, self.to) {
                Ok(event) => page.events.push(event),
                Err(reason) => skip(page, key, reason),
            }
        }
        self.remember(&remember)?;
        Ok(())
    }

    fn occurrence_key(&self, id: &str) -> String {
        format!(
            "graph.occurrence.{}",
            crate::hashing::sha256_hex(
                format!("{}\0{}\0{id}", self.pair, self.calendar).as_bytes()
            )
        )
    }

    /// Remembers which series each occurrence id belongs to, so that a removed occurrence
    /// (delta names only its id) makes its series be read again.
    fn remember(&self, pairs: &[(String, String)]) -> Result<(), ProviderError> {
        if pairs.is_empty() {
            return Ok(());
        }
        let until = self.now.timestamp() + OCCURRENCE_MEMORY_SECONDS;
        self.store.transaction(|s| {
            for (id, master) in pairs {
                s.cache(&self.occurrence_key(id), master, until)?;
            }
            Ok(())
        })?;
        Ok(())
    }

    fn master_of(&self, id: &str) -> Result<Option<String>, ProviderError> {
        Ok(self
            .store
            .cached(&self.occurrence_key(id), self.now.timestamp())?)
    }
}

impl Source for GraphSource<'_> {
    fn read(
        &mut self,
        cursor: Option<&str>,
        sink: &mut PageSink<'_>,
    ) -> Result<ReadEnd, ProviderError> {
        let usable = cursor
            .and_then(|c| serde_json::from_str::<Cursor>(c).ok())
            .filter(|c| {
                c.calendar == self.calendar
                    && c.from == rfc3339(self.from)
                    && c.to == rfc3339(self.to)
            });
        if cursor.is_some() && usable.is_none() {
            log::info!(event = "graph.delta_new_round", pair = self.pair.as_str();
                       "the window or calendar changed: a new delta round");
        }
        let mut link = usable.map(|c| c.link);
        if link.is_none() {
            // A new round (at least daily): the occurrence ids remembered from earlier rounds
            // that have expired are forgotten, so the cache does not grow with time.
            self.store.forget_expired(self.now.timestamp())?;
        }
        let mut expiries = 0;
        let result = loop {
            match self.round(link.as_deref(), sink) {
                Ok(end) => break Ok(end),
                Err(Stop::Failed(e)) => break Err(e),
                Err(Stop::Expired(code)) if expiries == 0 => {
                    expiries += 1;
                    log::warn!(event = "graph.delta_expired", pair = self.pair.as_str(),
                               code = code.as_str();
                               "the delta link expired: a full resync (under the deletion guard)");
                    self.read.clear();
                    link = None;
                }
                Err(Stop::Expired(code)) => {
                    break Err(ProviderError::Failed {
                        what: self.graph.what("calendarView delta"),
                        detail: format!("a new delta round expired at once ({code})"),
                    });
                }
            }
        };
        self.graph.save_token(self.store);
        result
    }
}

/// Whether a delta call failed because its link expired (the documented answers), and with
/// which code.
fn expired(e: &NetError) -> Option<String> {
    let status = e.status()?;
    let code = super::error_code(e);
    let named = code.as_deref().is_some_and(|c| {
        ["syncStateNotFound", "resyncRequired", "syncStateInvalid"]
            .iter()
            .any(|x| x.eq_ignore_ascii_case(c))
    });
    (status == 410 || (status < 500 && named)).then(|| code.unwrap_or_else(|| "HTTP 410".into()))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn skip(page: &mut SourcePage, key: SourceKey, reason: String) {
    // Also removed: what it published before must not stay with content that may have
    // turned private.
    page.removed.push(key.clone());
    page.skipped.push((Some(key), reason));
}

fn clone_error(e: &ProviderError) -> ProviderError {
    match e {
        ProviderError::Auth { endpoint, detail } => ProviderError::Auth {
            endpoint: endpoint.clone(),
            detail: detail.clone(),
        },
        ProviderError::Transient { endpoint, detail } => ProviderError::Transient {
            endpoint: endpoint.clone(),
            detail: detail.clone(),
        },
        ProviderError::BreakerOpen { endpoint } => ProviderError::BreakerOpen {
            endpoint: endpoint.clone(),
        },
        ProviderError::Interrupted => ProviderError::Interrupted,
        ProviderError::Config(c) => ProviderError::Config(c.clone()),
        other => ProviderError::Failed {
            what: "Graph".into(),
            detail: other.to_string(),
        },
    }
}

/// A series as one source item: the master's fields and rule, its exceptions as overrides,
/// and instances the rule gives that Graph no longer lists as EXDATEs.
///
/// # Errors
/// A reason (ids and names of parts only) when it cannot be read exactly.
fn series_event(
    id: &str,
    master: &Value,
    instances: &[Value],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<SourceEvent, String> {
    let all_day = master["isAllDay"].as_bool().unwrap_or(false);
    let zone_name = master["recurrence"]["range"]["recurrenceTimeZone"]
        .as_str()
        .filter(|z| !z.is_empty())
        .or_else(|| master["originalStartTimeZone"].as_str())
        .unwrap_or("");
    let tz = match wire::zone(zone_name) {
        Some(tz) => tz,
        None if all_day => chrono_tz::Tz::UTC,
        None => return Err(format!("the series' time zone '{zone_name}' is not known")),
    };
    let main = wire::details(master, tz)?;
    if master["recurrence"].is_null() {
        // Not (or no longer) a series: a single event.
        return Ok(SourceEvent {
            key: SourceKey(id.to_string()),
            main,
            recurrence: None,
            overrides: vec![],
        });
    }
    let end = main.effective_end();
    // Instances Graph lists, by original start in the series' form.
    let series_form = |instant: DateTime<Utc>| {
        crate::recurrence::in_series_form(&wire::in_zone(instant, tz), &main.start)
    };
    let mut listed: Vec<(Moment, &Value)> = Vec::new();
    for i in instances {
        let original = i["originalStart"]
            .as_str()
            .and_then(wire::parse_instant)
            .ok_or("an instance without originalStart")?;
        listed.push((series_form(original), i));
    }
    let mut chosen = None;
    for clamp in [false, true] {
        let rule = wire::graph_rule(&master["recurrence"], &main.start, clamp)
            .map_err(|e| format!("recurrence: {e}"))?;
        let rec = Recurrence {
            rules: vec![rule],
            rdates: vec![],
            periods: Vec::new(),
            exrules: Vec::new(),
            exdates: vec![],
        };
        let generated = crate::recurrence::instances(
            &main.start,
            &end,
            &rec,
            from - Duration::days(1),
            to + Duration::days(1),
            crate::recurrence::MAX_EXPANSION,
        )
        .map_err(|e| format!("recurrence: {e}"))?;
        let starts: HashSet<&Moment> = generated.iter().map(|g| &g.recurrence_id).collect();
        if listed.iter().all(|(o, _)| starts.contains(o)) {
            chosen = Some((rec, generated));
            break;
        }
    }
    let Some((mut rec, generated)) = chosen else {
        return Err("the recurrence pattern cannot be read exactly (an instance Graph lists is not one the rule gives)".into());
    };
    let listed_starts: HashSet<&Moment> = listed.iter().map(|(o, _)| o).collect();
    let in_view = |i: &crate::recurrence::Instance| {
        let (s, e) = (i.start.to_utc(), i.end.to_utc());
        s < to && (e > from || (s == e && s >= from))
    };
    for g in generated.iter().filter(|g| in_view(g)) {
        if !listed_starts.contains(&g.recurrence_id) {
            rec.exdates.push(g.recurrence_id.clone());
        }
    }
    let mut overrides = Vec::new();
    for (original, i) in &listed {
        if i["type"].as_str() != Some("exception") {
            continue;
        }
        let own = wire::own_zone(i).unwrap_or(tz);
        let details = wire::details(i, own).map_err(|e| format!("an exception: {e}"))?;
        overrides.push(Override {
            recurrence_id: original.clone(),
            details,
        });
    }
    Ok(SourceEvent {
        key: SourceKey(id.to_string()),
        main,
        recurrence: Some(rec),
        overrides,
    })
}
