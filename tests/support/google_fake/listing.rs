//! `events.list` (full and incremental), `events.instances`, paging and sync tokens.
//!
//! A listing is computed whole when its first page is asked for; the rest waits under a page
//! token, and the sync token handed out on the last page points at the change sequence as it was
//! then. So changes made while a client pages are never lost: they arrive with the next
//! incremental sync. Tokens contain `+`, `/` and `=`, as Google's do, so a client that does not
//! percent-encode them sends another token (and gets 410 or 400).

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};

use super::errors::{ApiError, Reply};
use super::events::{self, Series, parse_bool};
use super::wire::ApiRequest;
use super::{Access, Calendar, Clock, Kind, State, Stored};

/// Documented: "There are several query parameters that cannot be specified together with
/// nextSyncToken" (events.list, `syncToken`); `showDeleted=false` is refused as well.
const FORBIDDEN_WITH_SYNC: &[&str] = &[
    "iCalUID",
    "orderBy",
    "privateExtendedProperty",
    "q",
    "sharedExtendedProperty",
    "timeMin",
    "timeMax",
    "updatedMin",
];

/// Parameters that do not take part in "the same request" for paging.
const NOT_IN_FINGERPRINT: &[&str] = &[
    "pageToken",
    "maxResults",
    "alt",
    "fields",
    "key",
    "oauth_token",
    "prettyPrint",
    "quotaUser",
    "userIp",
];

/// What a sync token remembers: where in the change sequence, and the list's shape.
#[derive(Clone, Debug)]
pub struct SyncCursor {
    pub calendar: String,
    seq: u64,
    params: SyncParams,
    pub valid: bool,
}

/// The parameters an incremental request must repeat from the list that gave its token.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SyncParams {
    single_events: bool,
    show_deleted: bool,
    show_hidden: bool,
    event_types: Vec<String>,
}

/// The rest of a listing, waiting under a page token.
#[derive(Clone, Debug)]
pub struct PageCursor {
    calendar: String,
    kind: Kind,
    fingerprint: String,
    remaining: Vec<Value>,
    sync_token: Option<String>,
}

/// The parameters of an `events.list`, checked as Google checks them.
struct ListQuery {
    single_events: bool,
    show_deleted: Option<bool>,
    show_hidden: bool,
    time_min: Option<DateTime<Utc>>,
    time_max: Option<DateTime<Utc>>,
    private: Vec<(String, String)>,
    shared: Vec<(String, String)>,
    ical_uid: Option<String>,
    text: Option<String>,
    updated_min: Option<DateTime<Utc>>,
    order_by: Option<String>,
    event_types: Vec<String>,
    max_results: usize,
    sync_token: Option<String>,
    page_token: Option<String>,
}

impl ListQuery {
    fn parse(request: &ApiRequest) -> Result<ListQuery, ApiError> {
        let single_events = parse_bool(request, "singleEvents")?.unwrap_or(false);
        parse_bool(request, "alwaysIncludeEmail")?;
        parse_int(request, "maxAttendees")?;
        check_zone(request)?;
        let (time_min, time_max) = parse_window(request)?;
        let order_by = request.param("orderBy").map(str::to_string);
        match order_by.as_deref() {
            None | Some("updated") => {}
            Some("startTime") if single_events => {}
            Some("startTime") => {
                let text = "The requested ordering is not available for the particular query.";
                return Err(ApiError::invalid(text).at("parameter", "orderBy"));
            }
            Some(other) => {
                return Err(
                    ApiError::invalid(format!("Invalid value '{other}' for orderBy."))
                        .at("parameter", "orderBy"),
                );
            }
        }
        let event_types = request.params("eventTypes");
        let known = [
            "default",
            "outOfOffice",
            "focusTime",
            "workingLocation",
            "birthday",
            "fromGmail",
        ];
        if let Some(bad) = event_types.iter().find(|t| !known.contains(&t.as_str())) {
            return Err(
                ApiError::invalid(format!("Invalid value '{bad}' for eventTypes."))
                    .at("parameter", "eventTypes"),
            );
        }
        Ok(ListQuery {
            single_events,
            show_deleted: parse_bool(request, "showDeleted")?,
            show_hidden: parse_bool(request, "showHiddenInvitations")?.unwrap_or(false),
            time_min,
            time_max,
            private: property_filters(request, "privateExtendedProperty")?,
            shared: property_filters(request, "sharedExtendedProperty")?,
            ical_uid: request.param("iCalUID").map(str::to_string),
            text: request.param("q").map(str::to_lowercase),
            updated_min: parse_time(request, "updatedMin")?,
            order_by,
            event_types,
            max_results: parse_max_results(request)?,
            sync_token: request.param("syncToken").map(str::to_string),
            page_token: request.param("pageToken").map(str::to_string),
        })
    }

    fn sync_params(&self) -> SyncParams {
        let mut event_types = self.event_types.clone();
        event_types.sort();
        SyncParams {
            single_events: self.single_events,
            show_deleted: self.show_deleted.unwrap_or(false),
            show_hidden: self.show_hidden,
            event_types,
        }
    }

    /// The filters of a full listing (not the window, which series check per instance).
    fn keeps(&self, event: &Value) -> bool {
        let property = |scope: &str, (k, v): &(String, String)| {
            event["extendedProperties"][scope][k] == v.as_str()
        };
        let contains = |needle: &str| {
            ["summary", "description", "location"].iter().any(|k| {
                event[k]
                    .as_str()
                    .is_some_and(|s| s.to_lowercase().contains(needle))
            })
        };
        let event_type = event["eventType"].as_str().unwrap_or("default");
        self.private.iter().all(|f| property("private", f))
            && self.shared.iter().all(|f| property("shared", f))
            && self
                .ical_uid
                .as_ref()
                .is_none_or(|uid| event["iCalUID"] == uid.as_str())
            && self.text.as_deref().is_none_or(contains)
            && self
                .updated_min
                .is_none_or(|min| updated(event).is_some_and(|u| u >= min))
            && (self.event_types.is_empty() || self.event_types.iter().any(|t| t == event_type))
    }

    /// `timeMin` bounds the end (exclusive), `timeMax` the start (exclusive).
    fn in_window(&self, event: &Value, tz: Tz) -> bool {
        events::span(event, tz).is_some_and(|(start, end)| {
            self.time_min.is_none_or(|min| end > min) && self.time_max.is_none_or(|max| start < max)
        })
    }
}

/// `events.list`.
pub fn list(state: &mut State, calendar: &str, request: &ApiRequest) -> Result<Reply, ApiError> {
    let query = ListQuery::parse(request)?;
    if query.sync_token.is_some() {
        check_sync_restrictions(request)?;
    }
    let fingerprint = fingerprint(request);
    if let Some(token) = &query.page_token {
        return next_page(
            state,
            calendar,
            Kind::List,
            &fingerprint,
            token,
            query.max_results,
        );
    }
    let limit = state.knobs.max_instances;
    let (items, sync_token) = match &query.sync_token {
        Some(token) => {
            let cursor = state
                .sync_tokens
                .get(token)
                .filter(|c| c.valid && c.calendar == calendar)
                .ok_or_else(ApiError::full_sync_required)?;
            let params = query.sync_params();
            if cursor.params != params {
                let text = format!(
                    "fake: this syncToken belongs to a list with {:?}, not {params:?}",
                    cursor.params
                );
                return Err(ApiError::invalid(text).at("parameter", "syncToken"));
            }
            let items = changed_items(&state.calendars[calendar], cursor.seq, &params, limit);
            let next = if items.is_empty() {
                token.clone()
            } else {
                new_sync_token(state, calendar, params)
            };
            (items, next)
        }
        None => {
            let items = full_items(&state.calendars[calendar], &query, limit);
            (items, new_sync_token(state, calendar, query.sync_params()))
        }
    };
    Ok(serve_page(
        state,
        calendar,
        Kind::List,
        fingerprint,
        items,
        Some(sync_token),
        query.max_results,
    ))
}

/// `events.instances`: the instances of one series; `timeMin` is inclusive here (reference).
pub fn instances(
    state: &mut State,
    calendar: &str,
    series_id: &str,
    request: &ApiRequest,
) -> Result<Reply, ApiError> {
    let show_deleted = parse_bool(request, "showDeleted")?.unwrap_or(false);
    parse_bool(request, "alwaysIncludeEmail")?;
    parse_int(request, "maxAttendees")?;
    check_zone(request)?;
    let (time_min, time_max) = parse_window(request)?;
    let original_start = parse_time(request, "originalStart")?;
    let max_results = parse_max_results(request)?;
    let fingerprint = fingerprint(request);
    if let Some(token) = request.param("pageToken") {
        return next_page(
            state,
            calendar,
            Kind::Instances,
            &fingerprint,
            token,
            max_results,
        );
    }
    let cal = &state.calendars[calendar];
    let master = cal.events.get(series_id).ok_or_else(ApiError::not_found)?;
    if master.resource["status"] == "cancelled" {
        return Err(ApiError::deleted());
    }
    let tz = cal.time_zone;
    let items: Vec<Value> =
        events::series_instances(cal, series_id, time_max, state.knobs.max_instances)?
            .into_iter()
            .filter(|i| show_deleted || i["status"] != "cancelled")
            .filter(|i| {
                events::span(i, tz).is_some_and(|(start, end)| {
                    time_min.is_none_or(|min| end >= min) && time_max.is_none_or(|max| start < max)
                })
            })
            .filter(|i| original_start.is_none_or(|o| original_instant(i, tz) == Some(o)))
            .collect();
    Ok(serve_page(
        state,
        calendar,
        Kind::Instances,
        fingerprint,
        items,
        None,
        max_results,
    ))
}

/// Everything a full listing shows, in a stable order (creation), or as `orderBy` says.
fn full_items(cal: &Calendar, query: &ListQuery, limit: usize) -> Vec<Value> {
    // updatedMin: "entries deleted since this time will always be included regardless of showDeleted".
    let show_deleted = query.show_deleted.unwrap_or(false) || query.updated_min.is_some();
    let tz = cal.time_zone;
    let mut out = Vec::new();
    for stored in by_creation(cal) {
        let event = &stored.resource;
        let cancelled = event["status"] == "cancelled";
        if let Some(master_id) = event["recurringEventId"].as_str() {
            // Exceptions appear on their own only with singleEvents=false; cancelled ones of a
            // live series even without showDeleted (reference, `showDeleted`).
            let master_live = cal
                .events
                .get(master_id)
                .is_some_and(|m| m.resource["status"] != "cancelled");
            if query.single_events || !(master_live || show_deleted) {
                continue;
            }
            if query.in_window(event, tz) && query.keeps(event) {
                out.push(if cancelled && !show_deleted {
                    minimal(event)
                } else {
                    event.clone()
                });
            }
        } else if let Some(series) = Series::of(event, tz) {
            if query.single_events {
                let instances =
                    events::series_instances(cal, &series_id(event), query.time_max, limit)
                        .unwrap_or_default();
                out.extend(instances.into_iter().filter(|i| {
                    (show_deleted || i["status"] != "cancelled")
                        && query.in_window(i, tz)
                        && query.keeps(i)
                }));
            } else if (!cancelled || show_deleted)
                && series_meets_window(&series, query, tz, limit)
                && query.keeps(event)
            {
                out.push(event.clone());
            }
        } else if (!cancelled || show_deleted) && query.in_window(event, tz) && query.keeps(event) {
            out.push(event.clone());
        }
    }
    match query.order_by.as_deref() {
        Some("startTime") => out.sort_by_key(|e| events::span(e, tz).map(|(s, _)| s)),
        Some("updated") => out.sort_by_key(updated),
        _ => {}
    }
    out
}

/// Everything changed since `seq`, in change order, whatever the window of the first list.
/// Deleted events come as minimal `cancelled` items unless the list used `showDeleted=true`.
fn changed_items(cal: &Calendar, seq: u64, params: &SyncParams, limit: usize) -> Vec<Value> {
    let tz = cal.time_zone;
    let mut changed: Vec<&Stored> = cal.events.values().filter(|s| s.changed > seq).collect();
    changed.sort_by_key(|s| s.changed);
    let mut out: Vec<Value> = Vec::new();
    let mut position: HashMap<String, usize> = HashMap::new();
    let mut push = |item: Value| {
        let id = item["id"].as_str().unwrap_or("").to_string();
        match position.get(&id) {
            Some(&at) => out[at] = item,
            None => {
                position.insert(id, out.len());
                out.push(item);
            }
        }
    };
    for stored in changed {
        let event = &stored.resource;
        let is_master = event["recurringEventId"].is_null() && Series::of(event, tz).is_some();
        if is_master && params.single_events {
            for instance in
                events::series_instances(cal, &series_id(event), None, limit).unwrap_or_default()
            {
                push(as_changed(instance, params));
            }
        } else {
            push(as_changed(event.clone(), params));
        }
    }
    out.retain(|e| {
        params.event_types.is_empty()
            || e["status"] == "cancelled"
            || params
                .event_types
                .iter()
                .any(|t| e["eventType"].as_str().unwrap_or("default") == t)
    });
    out
}

fn as_changed(event: Value, params: &SyncParams) -> Value {
    if event["status"] == "cancelled" && !params.show_deleted {
        minimal(&event)
    } else {
        event
    }
}

/// A deleted event as incremental sync shows it: only what Google guarantees (`id`; for an
/// instance also `recurringEventId` and `originalStartTime`).
fn minimal(event: &Value) -> Value {
    let mut item = json!({
        "kind": "calendar#event",
        "etag": event["etag"],
        "id": event["id"],
        "status": "cancelled",
    });
    if event["recurringEventId"].is_string() {
        item["recurringEventId"] = event["recurringEventId"].clone();
        item["originalStartTime"] = event["originalStartTime"].clone();
    }
    item
}

/// Does any instance of the series meet the window (a master is listed if one does)?
fn series_meets_window(series: &Series, query: &ListQuery, tz: Tz, limit: usize) -> bool {
    series
        .expand(query.time_max, limit)
        .into_iter()
        .any(|local| query.in_window(&series.render(local), tz))
}

fn serve_page(
    state: &mut State,
    calendar: &str,
    kind: Kind,
    fingerprint: String,
    mut items: Vec<Value>,
    sync_token: Option<String>,
    max_results: usize,
) -> Reply {
    let size = state
        .page_plan
        .pop_front()
        .map_or(max_results, |s| s.min(max_results));
    let rest = items.split_off(size.min(items.len()));
    let mut body = envelope(&state.calendars[calendar], items);
    if rest.is_empty() {
        if let Some(token) = sync_token {
            body["nextSyncToken"] = json!(token);
        }
    } else {
        let token = opaque_token(state, "Cg");
        state.page_cursors.insert(
            token.clone(),
            PageCursor {
                calendar: calendar.to_string(),
                kind,
                fingerprint,
                remaining: rest,
                sync_token,
            },
        );
        body["nextPageToken"] = json!(token);
    }
    Reply::json(200, body)
}

fn next_page(
    state: &mut State,
    calendar: &str,
    kind: Kind,
    fingerprint: &str,
    token: &str,
    max_results: usize,
) -> Result<Reply, ApiError> {
    let cursor = state
        .page_cursors
        .get(token)
        .filter(|c| c.calendar == calendar && c.kind == kind)
        .ok_or_else(|| {
            ApiError::invalid("Invalid page token value.").at("parameter", "pageToken")
        })?;
    if cursor.fingerprint != fingerprint {
        let text =
            "fake: a pageToken must come with the parameters of the request that returned it";
        return Err(ApiError::invalid(text).at("parameter", "pageToken"));
    }
    let (items, sync_token) = (cursor.remaining.clone(), cursor.sync_token.clone());
    Ok(serve_page(
        state,
        calendar,
        kind,
        fingerprint.to_string(),
        items,
        sync_token,
        max_results,
    ))
}

/// The `calendar#events` envelope around a page of items.
fn envelope(cal: &Calendar, items: Vec<Value>) -> Value {
    let role = match cal.access {
        Access::Owner => "owner",
        Access::Writer => "writer",
        _ => "reader",
    };
    let last_update = cal
        .events
        .values()
        .filter_map(|s| s.resource["updated"].as_str())
        .max()
        .map(str::to_string);
    json!({
        "kind": "calendar#events",
        "etag": format!("\"p{}\"", cal.events.values().map(|s| s.changed).max().unwrap_or(0)),
        "summary": cal.summary,
        "description": "",
        "updated": last_update.unwrap_or_else(Clock::now),
        "timeZone": cal.time_zone.name(),
        "accessRole": role,
        "defaultReminders": [],
        "items": items,
    })
}

fn new_sync_token(state: &mut State, calendar: &str, params: SyncParams) -> String {
    let token = opaque_token(state, "CP");
    let seq = state.clock.change;
    state.sync_tokens.insert(
        token.clone(),
        SyncCursor {
            calendar: calendar.to_string(),
            seq,
            params,
            valid: true,
        },
    );
    token
}

/// An opaque token in Google's style (base64 with `+`, `/`, `=`).
fn opaque_token(state: &mut State, prefix: &str) -> String {
    let n = state.clock.next();
    let mut bytes = vec![0xfb, 0xef, 0xbe];
    bytes.extend_from_slice(&n.to_be_bytes());
    format!("{prefix}{}", STANDARD.encode(bytes))
}

fn check_sync_restrictions(request: &ApiRequest) -> Result<(), ApiError> {
    let forbidden = FORBIDDEN_WITH_SYNC
        .iter()
        .find(|name| request.param(name).is_some());
    let show_deleted_false = request.param("showDeleted") == Some("false");
    if let Some(name) = forbidden
        .copied()
        .or(show_deleted_false.then_some("showDeleted"))
    {
        let text = "Sync token cannot be used with other request restrictions.";
        return Err(
            ApiError::new(400, "calendar", "syncTokenWithRequestRestrictions", text)
                .at("parameter", name),
        );
    }
    Ok(())
}

/// The request's parameters that must stay the same from page to page.
fn fingerprint(request: &ApiRequest) -> String {
    let mut pairs: Vec<String> = request
        .query
        .iter()
        .filter(|(n, _)| !NOT_IN_FINGERPRINT.contains(&n.as_str()))
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    pairs.sort();
    pairs.join("&")
}

fn by_creation(cal: &Calendar) -> Vec<&Stored> {
    let mut stored: Vec<&Stored> = cal.events.values().collect();
    stored.sort_by_key(|s| s.created);
    stored
}

fn series_id(event: &Value) -> String {
    event["id"].as_str().unwrap_or("").to_string()
}

fn updated(event: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(event["updated"].as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn original_instant(instance: &Value, tz: Tz) -> Option<DateTime<Utc>> {
    let original =
        json!({ "start": instance["originalStartTime"], "end": instance["originalStartTime"] });
    events::span(&original, tz).map(|(s, _)| s)
}

/// `maxResults`: default 250, at least 1, clamped to 2500 ("can never be larger than 2500").
fn parse_max_results(request: &ApiRequest) -> Result<usize, ApiError> {
    Ok(parse_int(request, "maxResults")?.map_or(250, |n| n.min(2500)))
}

/// A positive integer parameter (discovery: `minimum: 1`).
fn parse_int(request: &ApiRequest, name: &str) -> Result<Option<usize>, ApiError> {
    match request.param(name) {
        None => Ok(None),
        Some(text) => match text.parse::<i64>() {
            Ok(n) if n >= 1 => Ok(Some(n as usize)),
            _ => {
                let message = format!(
                    "Invalid value '{text}'. Values must be within the range: [1, 2147483647]"
                );
                Err(ApiError::invalid(message).at("parameter", name))
            }
        },
    }
}

/// RFC 3339 with a mandatory offset.
fn parse_time(request: &ApiRequest, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    match request.param(name) {
        None => Ok(None),
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| {
                ApiError::new(400, "global", "badRequest", "Bad Request").at("parameter", name)
            }),
    }
}

/// `timeMin` and `timeMax`, each optional.
type Window = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// `timeMin` and `timeMax`; an empty range is `timeRangeEmpty` (Google's error guide example).
fn parse_window(request: &ApiRequest) -> Result<Window, ApiError> {
    let (min, max) = (
        parse_time(request, "timeMin")?,
        parse_time(request, "timeMax")?,
    );
    if let (Some(min), Some(max)) = (min, max)
        && max <= min
    {
        return Err(ApiError::time_range_empty("timeMax"));
    }
    Ok((min, max))
}

fn check_zone(request: &ApiRequest) -> Result<(), ApiError> {
    match request.param("timeZone") {
        Some(zone) if zone.parse::<Tz>().is_err() => Err(ApiError::invalid(format!(
            "Invalid time zone definition: {zone}"
        ))
        .at("parameter", "timeZone")),
        _ => Ok(()),
    }
}

/// `key=value` filters (repeatable; all must match).
fn property_filters(request: &ApiRequest, name: &str) -> Result<Vec<(String, String)>, ApiError> {
    request
        .params(name)
        .into_iter()
        .map(|f| match f.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(
                ApiError::invalid(format!("Invalid extended property constraint: {f}"))
                    .at("parameter", name),
            ),
        })
        .collect()
}
