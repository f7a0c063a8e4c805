//! `GraphFake`: an in-process, stateful Microsoft Graph v1.0 calendar API (and the identity
//! platform's token endpoint) on a [`TestServer`], written from Microsoft's documentation
//! (API-NOTES.md §1, §6) so that calsync's Graph client can be tested offline.
//!
//! A test plays the human in Outlook through the seeding helpers (mailboxes, calendars, events,
//! series, exceptions) and the app registration through the constructor; calsync talks HTTP.
//!
//! # Implemented
//! - `POST /{tenant}/oauth2/v2.0/token`: client credentials with a secret (in the form, or as
//!   HTTP Basic client authentication) or a certificate assertion (PS256 or RS256 with
//!   `x5t#S256`, verified with the registered certificate's public key).
//! - `GET /users/{user}/calendars`, `/calendars/{id}`, `/calendar` (default); `{user}` is a UPN
//!   or an id, case-insensitive, URL-encoded or not. `$top`, `$skip`, `$filter=name eq '…'`.
//! - `GET …/calendars/{id}/calendarView/delta` and `/users/{user}/calendarView/delta`: rounds of
//!   `@odata.nextLink` (`$skiptoken`) pages ending in an `@odata.deltaLink` (`$deltatoken`).
//! - `GET/PATCH/DELETE /users/{user}/events/{id}`, `GET …/events/{id}/instances`,
//!   `GET` and `POST` on `/users/{user}/events`, `/calendar/events`, `/calendars/{id}/events`
//!   (`$filter` on a single-value extended property, `$expand` of one, `$select`, `$top`, `$skip`).
//! - `POST /$batch` with `dependsOn`.
//! - Series: masters with a `recurrence` (every documented pattern and range type, and
//!   `recurrenceTimeZone`) expand into occurrences whose ids derive from master and original
//!   start, so they stay stable across rounds; a PATCH of an occurrence makes an exception with
//!   the same id; a DELETE of one leaves a deleted occurrence.
//!
//! # Observation
//! Every HTTP request is recorded ([`GraphFake::requests`]). [`GraphFake::count`] counts by
//! [`Kind`], batch items included (each also as [`Kind::BatchItem`]); [`GraphFake::count_direct`]
//! counts HTTP requests only. [`GraphFake::stored_events`] returns a calendar's events as stored,
//! extended properties included, so a test sees exactly what a client created.
//!
//! # Strict, as Graph is
//! - Every Graph call needs a live bearer token (401 `InvalidAuthenticationToken`); `/me` is
//!   refused for app-only tokens; a denied mailbox answers 403 `ErrorAccessDenied`.
//! - Token requests: tenant, `grant_type`, `client_id`, `scope`, secret or assertion, each with
//!   its AADSTS error. Assertions: `alg`, `typ`, thumbprint, signature, `aud` = the URL actually
//!   called, `iss` = `sub` = client id, `jti`, `nbf`/`iat` not ahead by more than 5 minutes, `exp`
//!   in the future and at most [`GraphFake::set_max_assertion_lifetime`] after `nbf`.
//! - Delta: the first call needs both window bounds; `$select/$filter/$orderby/$expand` (and
//!   any other option) are 400; links must be followed verbatim.
//! - Event bodies: unknown properties are 400 `RequestBodyRead`; `start`/`end` need a `dateTime`
//!   without offset and a known `timeZone`; enums (`sensitivity`, `showAs`, …) are checked;
//!   extended property ids must have a documented form; `If-Match` with a stale etag is 412;
//!   POST/PATCH need `Content-Type: application/json` (415 otherwise).
//! - `$batch`: more than 20 requests, duplicate ids (case-insensitive), a malformed item or a
//!   `dependsOn` naming no item (or a cycle) fail the whole batch with 400; a body without a
//!   `Content-Type` item header fails that item with 400; a failed dependency is 424.
//! - At most [`GraphFake::set_mailbox_concurrency`] (4) requests in flight per mailbox; the next
//!   is 429 `ApplicationThrottled`. A batch holds one slot per mailbox its items touch.
//!
//! # Knobs (documented-but-unverified behaviour, API-NOTES "(unverified)")
//! - masters in delta ([`GraphFake::set_masters_in_delta`], default off), replays across pages
//!   ([`GraphFake::set_delta_replays`]), empty pages with a next link
//!   ([`GraphFake::set_empty_delta_pages`]), default page size ([`GraphFake::set_page_size`]);
//! - expiry of sync state in four shapes ([`Expiry`], [`GraphFake::expire_sync_state`]);
//! - the status of a duplicate `transactionId` POST ([`GraphFake::set_duplicate_create_status`],
//!   default 201 with the first event);
//! - faults: the next N matching requests answered 429/503 ([`GraphFake::fail_next`]), the next N
//!   write items of batches answered 429 ([`GraphFake::throttle_batch_writes`]);
//! - token lifetime, expiry and revocation; a fixed latency per request (slept without any
//!   lock); a gate ([`GraphFake::hold`]) that keeps requests in flight until released.
//!
//! # Decided where the documentation is silent
//! - Page size and time zone are read from the `Prefer` header of each call (the docs send it on
//!   every page); without it the default page size and UTC apply. An unknown zone is UTC.
//! - Delta occurrences are sparse in every round, not only later ones. Full items in delta
//!   never carry extended properties.
//! - A token link combined with `startDateTime`/`endDateTime`, two tokens, or a token the fake
//!   never issued (or issued for another calendar) is 400 `ErrorInvalidUrlQuery`; only the
//!   expiry knob produces the documented expiry answers.
//! - Changing a master's `start`, `end` or `recurrence` drops its exceptions and deleted
//!   occurrences (as Outlook does when a series is re-timed); exceptions otherwise keep their own
//!   fields. Deleting an occurrence does not change the master's `changeKey`.
//! - `/instances` leaves out deleted occurrences; exceptions show with their own fields.
//! - All-day events span midnight to midnight of their own zone and are shown at midnight with
//!   the requested zone's name.
//! - Writing a read-only property (`id`, `isCancelled`, `organizer`, …) is 400; `transactionId`
//!   cannot be changed by PATCH. Syntax the fake lacks is 501 `NotImplementedInFake`.
//! - Injected faults ([`GraphFake::fail_next`]) apply to HTTP requests before authentication,
//!   not to batch items; batch items have their own knob.
//! - An assertion with only `x5t` (SHA-1, older pages) is refused: the current page asks for
//!   `x5t#S256`. `nbf` and `exp` are required; `iat` is checked when present.
//! - Error codes Graph does not document for a case are chosen to be recognisable: 412
//!   `ErrorIrreconcilableConflict`, 400 `ErrorInvalidPropertySet` (read-only property), and the
//!   AADSTS numbers in `auth.rs`.

mod auth;
mod batch;
mod delta;
mod odata;
mod render;
mod time;
mod validate;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::http::{Headers, Request, Response, TestServer, lock};
use auth::{App, Certificate, Tokens};
use odata::{Prefer, PropertyId, Query, TagFilter};
use render::{render_occurrence, render_stored, render_target, shape, stored_json};
use time::{Series, Zone};
use validate::{Writer, bad_request, check_event, check_fields};

/// The tenant in the token URL (`/{tenant}/oauth2/v2.0/token`).
pub const TENANT: &str = "contoso.onmicrosoft.com";
/// The registered application's client id.
pub const CLIENT_ID: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
/// The registered client secret.
pub const CLIENT_SECRET: &str = "graph-fake-secret~0123456789";
/// The certificate registered by default (its key is `tests/fixtures/graph-client-key.pem`).
pub const CERTIFICATE_PEM: &str = include_str!("../fixtures/graph-client-cert.pem");

/// How long a request waits at a closed gate before going on anyway.
const GATE_LIMIT: Duration = Duration::from_secs(10);

/// What a request (or batch item) was, for [`GraphFake::count`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Token,
    ListCalendars,
    GetCalendar,
    Delta,
    EventGet,
    /// `GET …/events` without `$filter`.
    EventList,
    /// `GET …/events?$filter=singleValueExtendedProperties/Any(…)`: a lookup by tag.
    TagQuery,
    Instances,
    EventCreate,
    EventUpdate,
    EventDelete,
    /// The `$batch` envelope.
    Batch,
    /// One item inside a batch (also counted under its own kind).
    BatchItem,
    Other,
}

/// How expired sync state answers ([`GraphFake::expire_sync_state`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// 410 `syncStateNotFound`.
    SyncStateNotFound,
    /// 410 `resyncRequired`.
    ResyncRequired,
    /// 410 with a `Location` header naming a fresh initial round of the same window (code
    /// `syncStateInvalid`, a choice: only the header says "start over").
    GoneWithLocation,
    /// 400 `syncStateNotFound`.
    BadRequest,
}

/// An answer [`GraphFake::fail_next`] gives instead of serving a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 429 `TooManyRequests` with `Retry-After: retry_after`.
    Throttle { retry_after: u64 },
    /// 503 `serviceNotAvailable` with `Retry-After: retry_after`.
    Unavailable { retry_after: u64 },
}

/// The media type of Graph's JSON answers, parameters included, as Graph sends it: a client
/// must read the media type, not compare the whole header.
const GRAPH_JSON: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

/// A handler's answer before it becomes an HTTP response or a batch item.
#[derive(Clone, Debug)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Option<Value>,
    content_type: &'static str,
}

impl Reply {
    fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Some(body),
            content_type: GRAPH_JSON,
        }
    }

    fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: None,
            content_type: GRAPH_JSON,
        }
    }

    /// Graph's error body: `{"error":{"code","message","innerError"}}`.
    fn error(status: u16, code: &str, message: &str) -> Reply {
        let date = Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string();
        let id = format!("{:032x}", Utc::now().timestamp_nanos_opt().unwrap_or(0));
        Reply::json(
            status,
            json!({"error": {
                "code": code,
                "message": message,
                "innerError": {"date": date, "request-id": id, "client-request-id": id},
            }}),
        )
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    fn throttled(code: &str, message: &str, retry_after: u64) -> Reply {
        let mut reply = Reply::error(429, code, message);
        if let Some(inner) = reply
            .body
            .as_mut()
            .and_then(|b| b["error"]["innerError"].as_object_mut())
        {
            inner.insert("code".into(), json!("429"));
        }
        reply.header("Retry-After", retry_after.to_string())
    }

    fn to_response(&self) -> Response {
        let mut response = Response::new(self.status);
        for (name, value) in &self.headers {
            response = response.header(name, value.clone());
        }
        match &self.body {
            Some(body) => response
                .header("Content-Type", self.content_type)
                .body(body.to_string()),
            None => response,
        }
    }
}

/// Decodes `%XX` escapes (and `+` as a space in query strings and forms); `None` when an escape
/// is malformed or the result is not UTF-8.
fn percent_decode(text: &str, plus_is_space: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Which calendar a path names.
#[derive(Clone, Debug)]
enum CalRef {
    Default,
    Id(String),
}

/// What a request path asks for.
#[derive(Clone, Debug)]
enum Route {
    Token {
        tenant: String,
    },
    Batch,
    Calendars {
        user: String,
    },
    Calendar {
        user: String,
        calendar: CalRef,
    },
    Delta {
        user: String,
        calendar: CalRef,
    },
    Events {
        user: String,
        calendar: Option<CalRef>,
    },
    Event {
        user: String,
        id: String,
    },
    Instances {
        user: String,
        id: String,
    },
    Me,
    Unknown {
        segment: String,
    },
    NotGraph,
}

impl Route {
    /// Reads a path (no query). Segment names compare case-insensitively; the user, calendar
    /// and event ids are percent-decoded and kept as sent.
    fn parse(path: &str) -> Route {
        let segments: Vec<String> = path
            .split('/')
            .skip(1)
            .map(|s| percent_decode(s, false).unwrap_or_else(|| s.to_string()))
            .collect();
        let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
        let words: Vec<&str> = lower.iter().map(String::as_str).collect();
        if let [_, "oauth2", "v2.0", "token"] = words.as_slice() {
            return Route::Token {
                tenant: segments[0].clone(),
            };
        }
        let ["v1.0", rest @ ..] = words.as_slice() else {
            return Route::NotGraph;
        };
        let arg = |i: usize| segments[i + 1].clone();
        let user = || arg(1);
        match rest {
            ["$batch"] => Route::Batch,
            ["me", ..] => Route::Me,
            ["users", _, "calendars"] => Route::Calendars { user: user() },
            ["users", _, "calendar"] => Route::Calendar {
                user: user(),
                calendar: CalRef::Default,
            },
            ["users", _, "calendars", _] => Route::Calendar {
                user: user(),
                calendar: CalRef::Id(arg(3)),
            },
            ["users", _, "calendarview", "delta"]
            | ["users", _, "calendar", "calendarview", "delta"] => Route::Delta {
                user: user(),
                calendar: CalRef::Default,
            },
            ["users", _, "calendars", _, "calendarview", "delta"] => Route::Delta {
                user: user(),
                calendar: CalRef::Id(arg(3)),
            },
            ["users", _, "events"] => Route::Events {
                user: user(),
                calendar: None,
            },
            ["users", _, "calendar", "events"] => Route::Events {
                user: user(),
                calendar: Some(CalRef::Default),
            },
            ["users", _, "calendars", _, "events"] => Route::Events {
                user: user(),
                calendar: Some(CalRef::Id(arg(3))),
            },
            ["users", _, "events", _] => Route::Event {
                user: user(),
                id: arg(3),
            },
            ["users", _, "events", _, "instances"] => Route::Instances {
                user: user(),
                id: arg(3),
            },
            _ => Route::Unknown {
                segment: segments.last().cloned().unwrap_or_default(),
            },
        }
    }

    fn kind(&self, method: &str, query: Option<&str>) -> Kind {
        let filtered = || Query::parse(query).is_ok_and(|q| q.has("filter"));
        match (self, method) {
            (Route::Token { .. }, _) => Kind::Token,
            (Route::Batch, _) => Kind::Batch,
            (Route::Calendars { .. }, _) => Kind::ListCalendars,
            (Route::Calendar { .. }, _) => Kind::GetCalendar,
            (Route::Delta { .. }, _) => Kind::Delta,
            (Route::Events { .. }, "POST") => Kind::EventCreate,
            (Route::Events { .. }, _) if filtered() => Kind::TagQuery,
            (Route::Events { .. }, _) => Kind::EventList,
            (Route::Event { .. }, "PATCH") => Kind::EventUpdate,
            (Route::Event { .. }, "DELETE") => Kind::EventDelete,
            (Route::Event { .. }, _) => Kind::EventGet,
            (Route::Instances { .. }, _) => Kind::Instances,
            _ => Kind::Other,
        }
    }

    fn user(&self) -> Option<&str> {
        match self {
            Route::Calendars { user }
            | Route::Calendar { user, .. }
            | Route::Delta { user, .. }
            | Route::Events { user, .. }
            | Route::Event { user, .. }
            | Route::Instances { user, .. } => Some(user),
            _ => None,
        }
    }
}

/// One Graph call as a handler sees it, direct or inside a batch.
struct Call<'a> {
    method: &'a str,
    /// The request path without query, `/v1.0/…`.
    path: String,
    query: Query,
    headers: &'a Headers,
    body: &'a [u8],
    /// `http://127.0.0.1:PORT`, for links.
    base: &'a str,
}

impl Call<'_> {
    fn prefer(&self) -> Prefer {
        Prefer::parse(self.headers.get_all("Prefer"))
    }

    /// The zone answers are shown in: `Prefer: outlook.timezone`, UTC when absent or unknown.
    fn zone(&self) -> Zone {
        self.prefer()
            .time_zone
            .and_then(|name| Zone::named(&name))
            .unwrap_or_else(Zone::utc)
    }

    /// A reply with `Preference-Applied` for the zone asked for, as Graph adds it.
    fn zoned(&self, reply: Reply) -> Reply {
        match self.prefer().time_zone {
            Some(name) if Zone::named(&name).is_some() => {
                reply.header("Preference-Applied", format!("outlook.timezone=\"{name}\""))
            }
            _ => reply,
        }
    }

    fn url(&self, query: &str) -> String {
        format!("{}{}?{query}", self.base, self.path)
    }

    /// The body as a JSON object, after checking `Content-Type`.
    fn json_body(&self) -> Result<Map<String, Value>, Reply> {
        let is_json = self.headers.get("Content-Type").is_some_and(|c| {
            c.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
        if !is_json {
            return Err(Reply::error(
                415,
                "UnsupportedMediaType",
                "A supported MIME type could not be found that matches the content type of the request (application/json is required).",
            ));
        }
        match serde_json::from_slice(self.body) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(Reply::error(
                400,
                "BadRequest",
                "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
            )),
        }
    }
}

/// Tunable behaviour; see the module doc.
struct Knobs {
    page_size: usize,
    list_page_size: usize,
    masters_in_delta: bool,
    delta_replays: bool,
    empty_delta_pages: usize,
    duplicate_create_status: u16,
    seed: u64,
}

/// A calendar folder of a mailbox.
struct Calendar {
    id: String,
    name: String,
    change_key: String,
}

/// The kinds of stored event; occurrences are computed from their master.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EventType {
    Single,
    Master,
    Exception,
}

impl EventType {
    fn name(self) -> &'static str {
        match self {
            EventType::Single => "singleInstance",
            EventType::Master => "seriesMaster",
            EventType::Exception => "exception",
        }
    }
}

/// A stored event: a single instance, a series master or an exception.
#[derive(Clone, Debug)]
struct Event {
    id: String,
    calendar: String,
    event_type: EventType,
    master: Option<String>,
    original_start: Option<DateTime<Utc>>,
    /// The written properties, as written (start/end in the zone the writer chose).
    props: Map<String, Value>,
    /// Single-value extended properties: (id as written, value).
    extended: Vec<(String, String)>,
    /// Masters only: original starts of deleted occurrences.
    removed_occurrences: BTreeSet<DateTime<Utc>>,
    change_key: String,
    created: DateTime<Utc>,
    modified: DateTime<Utc>,
    /// Creation order, for stable listings.
    order: u64,
}

/// The zone of a stored `dateTimeTimeZone` (validated on write).
fn zone_of(slot: &Value) -> Zone {
    slot["timeZone"]
        .as_str()
        .and_then(Zone::named)
        .unwrap_or_else(Zone::utc)
}

/// The instant a stored `dateTimeTimeZone` stands for.
fn instant_of(slot: &Value) -> DateTime<Utc> {
    let wall = slot["dateTime"]
        .as_str()
        .and_then(time::parse_wall)
        .expect("stored times were validated");
    zone_of(slot).to_utc(wall)
}

impl Event {
    fn start(&self) -> DateTime<Utc> {
        instant_of(&self.props["start"])
    }

    fn end(&self) -> DateTime<Utc> {
        instant_of(&self.props["end"])
    }

    fn is_all_day(&self) -> bool {
        self.props.get("isAllDay") == Some(&Value::Bool(true))
    }

    fn etag(&self) -> String {
        format!("W/\"{}\"", self.change_key)
    }

    /// The series of a master.
    fn series(&self) -> Option<Series> {
        let (pattern, range) = time::parse_recurrence(self.props.get("recurrence")?).ok()?;
        let zone = range
            .zone
            .clone()
            .unwrap_or_else(|| zone_of(&self.props["start"]));
        let start = self.start();
        Some(Series {
            pattern,
            range,
            time_of_day: zone.local(start).time(),
            zone,
            duration: self.end() - start,
        })
    }
}

/// A mailbox: its calendars, events and what Graph remembers per mailbox.
struct Mailbox {
    id: String,
    upn: String,
    display_name: String,
    denied: bool,
    /// The first one is the default calendar.
    calendars: Vec<Calendar>,
    events: HashMap<String, Event>,
    transactions: HashMap<String, String>,
    /// (sequence number, event or occurrence id) of every write, for delta's out-of-window
    /// removals.
    log: Vec<(u64, String)>,
}

/// What an event id names.
#[derive(Clone, Debug, PartialEq)]
enum Target {
    Stored(String),
    Occurrence {
        master: String,
        start: DateTime<Utc>,
    },
}

const OCCURRENCE_PREFIX: &str = "AAMkOcc";

/// The stable id of the occurrence of `master` that starts at `start` (its original start).
fn occurrence_id(master: &str, start: DateTime<Utc>) -> String {
    let inner = format!("{master}|{}", start.timestamp());
    format!("{OCCURRENCE_PREFIX}{}=", URL_SAFE_NO_PAD.encode(inner))
}

fn parse_occurrence_id(id: &str) -> Option<(String, DateTime<Utc>)> {
    let inner = id.strip_prefix(OCCURRENCE_PREFIX)?.strip_suffix('=')?;
    let inner = String::from_utf8(URL_SAFE_NO_PAD.decode(inner).ok()?).ok()?;
    let (master, seconds) = inner.rsplit_once('|')?;
    Some((
        master.to_string(),
        DateTime::from_timestamp(seconds.parse().ok()?, 0)?,
    ))
}

impl Mailbox {
    /// Resolves an event id to a stored event or a live occurrence.
    fn find(&self, id: &str) -> Option<Target> {
        if self.events.contains_key(id) {
            return Some(Target::Stored(id.to_string()));
        }
        let (master, start) = parse_occurrence_id(id)?;
        let series = self.events.get(&master)?.series()?;
        let removed = self.events[&master].removed_occurrences.contains(&start);
        (!removed && series.has_occurrence_at(start))
            .then_some(Target::Occurrence { master, start })
    }

    fn found(&self, id: &str) -> Result<Target, Reply> {
        self.find(id).ok_or_else(|| {
            Reply::error(
                404,
                "ErrorItemNotFound",
                "The specified object was not found in the store.",
            )
        })
    }

    /// The etag of what a target shows (an occurrence shows its master's).
    fn etag(&self, target: &Target) -> String {
        match target {
            Target::Stored(id) => self.events[id].etag(),
            Target::Occurrence { master, .. } => self.events[master].etag(),
        }
    }

    fn extended(&self, target: &Target) -> &[(String, String)] {
        match target {
            Target::Stored(id) => &self.events[id].extended,
            Target::Occurrence { master, .. } => &self.events[master].extended,
        }
    }

    fn organizer(&self) -> Value {
        json!({"emailAddress": {"name": self.display_name, "address": self.upn}})
    }
}

/// Per-mailbox count of requests in flight, capped.
struct Slots {
    in_flight: Mutex<HashMap<String, usize>>,
    limit: AtomicUsize,
}

/// The slots a request holds; released on drop.
struct SlotGuard<'a> {
    slots: &'a Slots,
    held: Vec<String>,
    refused: HashSet<String>,
}

impl Slots {
    fn acquire(&self, mailboxes: Vec<String>) -> SlotGuard<'_> {
        let limit = self.limit.load(Ordering::SeqCst);
        let mut in_flight = lock(&self.in_flight);
        let mut guard = SlotGuard {
            slots: self,
            held: Vec::new(),
            refused: HashSet::new(),
        };
        for mailbox in mailboxes {
            let count = in_flight.entry(mailbox.clone()).or_default();
            if *count >= limit {
                guard.refused.insert(mailbox);
            } else {
                *count += 1;
                guard.held.push(mailbox);
            }
        }
        guard
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        let mut in_flight = lock(&self.slots.in_flight);
        for mailbox in &self.held {
            if let Some(count) = in_flight.get_mut(mailbox) {
                *count -= 1;
            }
        }
    }
}

fn concurrency_refusal() -> Reply {
    Reply::throttled(
        "ApplicationThrottled",
        "Application is over its MailboxConcurrency limit.",
        1,
    )
}

/// A gate requests wait at while a test holds it ([`GraphFake::hold`]).
#[derive(Default)]
struct Gate {
    state: Mutex<(bool, usize)>,
    changed: Condvar,
}

impl Gate {
    /// Waits (bounded) while the gate is closed.
    fn pass(&self) {
        let mut state = lock(&self.state);
        if !state.0 {
            return;
        }
        state.1 += 1;
        self.changed.notify_all();
        let deadline = Instant::now() + GATE_LIMIT;
        while state.0 && Instant::now() < deadline {
            state = self
                .changed
                .wait_timeout(state, deadline - Instant::now())
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        state.1 -= 1;
        self.changed.notify_all();
    }
}

/// Keeps requests waiting inside the fake (after their mailbox slot is taken) until dropped.
pub struct Hold<'a> {
    gate: &'a Gate,
}

impl Hold<'_> {
    /// Waits until `n` requests wait at the gate; false when `timeout` passed first.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = lock(&self.gate.state);
        while state.1 < n {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self
                .gate
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        lock(&self.gate.state).0 = false;
        self.gate.changed.notify_all();
    }
}

/// Everything behind the lock.
struct State {
    app: App,
    tokens: Tokens,
    knobs: Knobs,
    mailboxes: Vec<Mailbox>,
    /// Bumped by every write; change keys and the delta log use it.
    seq: u64,
    faults: Vec<(Fault, usize, Option<Kind>)>,
    /// (items left, Retry-After) for throttled batch write items.
    batch_throttle: (usize, u64),
    /// (all, direct HTTP) per kind.
    counts: HashMap<Kind, (usize, usize)>,
    delta: delta::Store,
    batches: u64,
}

/// The fake's shared parts: state behind one lock, and what must work without it.
struct Shared {
    state: Mutex<State>,
    slots: Slots,
    latency_micros: AtomicU64,
    gate: Gate,
}

/// An in-process Microsoft Graph (calendar API and token endpoint); see the module doc.
pub struct GraphFake {
    shared: Arc<Shared>,
    server: TestServer,
}

impl State {
    fn count(&mut self, kind: Kind, direct: bool) {
        let entry = self.counts.entry(kind).or_default();
        entry.0 += 1;
        if direct {
            entry.1 += 1;
        }
    }

    fn take_fault(&mut self, kind: Kind) -> Option<Reply> {
        let index = self
            .faults
            .iter()
            .position(|(_, left, only)| *left > 0 && only.is_none_or(|k| k == kind))?;
        let (fault, left, _) = &mut self.faults[index];
        *left -= 1;
        Some(match *fault {
            Fault::Throttle { retry_after } => Reply::throttled(
                "TooManyRequests",
                "Too many requests, retry later.",
                retry_after,
            ),
            Fault::Unavailable { retry_after } => Reply::error(
                503,
                "serviceNotAvailable",
                "The service is temporarily unavailable.",
            )
            .header("Retry-After", retry_after.to_string()),
        })
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn change_key(&mut self) -> String {
        let seq = self.next_seq();
        base64::engine::general_purpose::STANDARD.encode(format!("CK{seq:010}"))
    }

    fn mailbox_index(&self, user: &str) -> Option<usize> {
        self.mailboxes
            .iter()
            .position(|m| m.upn.eq_ignore_ascii_case(user) || m.id.eq_ignore_ascii_case(user))
    }

    /// The mailbox a path names: 404 when unknown, 403 when the app may not read it.
    fn mailbox(&self, user: &str) -> Result<usize, Reply> {
        let index = self.mailbox_index(user).ok_or_else(|| {
            Reply::error(
                404,
                "ErrorInvalidUser",
                &format!("The requested user '{user}' is invalid."),
            )
        })?;
        if self.mailboxes[index].denied {
            return Err(Reply::error(
                403,
                "ErrorAccessDenied",
                "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings.",
            ));
        }
        Ok(index)
    }

    /// The key a mailbox's concurrency is counted under.
    fn slot_key(&self, user: &str) -> String {
        self.mailbox_index(user)
            .map(|i| self.mailboxes[i].id.clone())
            .unwrap_or_else(|| user.to_ascii_lowercase())
    }

    fn calendar_id(&self, mailbox: usize, calendar: &CalRef) -> Result<String, Reply> {
        let calendars = &self.mailboxes[mailbox].calendars;
        match calendar {
            CalRef::Default => Ok(calendars[0].id.clone()),
            CalRef::Id(id) => calendars
                .iter()
                .find(|c| c.id == *id)
                .map(|c| c.id.clone())
                .ok_or_else(|| {
                    Reply::error(
                        404,
                        "ErrorItemNotFound",
                        "The specified object was not found in the store.",
                    )
                }),
        }
    }

    /// Serves one HTTP request (the caller holds its mailbox slots).
    fn serve(
        &mut self,
        route: &Route,
        request: &Request,
        base: &str,
        refused: &HashSet<String>,
    ) -> Reply {
        let query = match Query::parse(request.query()) {
            Ok(query) => query,
            Err(reply) => return reply,
        };
        let call = Call {
            method: &request.method,
            path: request.path_only().to_string(),
            query,
            headers: &request.headers,
            body: &request.body,
            base,
        };
        match route {
            Route::Token { tenant } if request.method == "POST" => {
                let token_url = format!("{base}{}", request.path_only());
                self.app.token(
                    tenant,
                    request,
                    &token_url,
                    &mut self.tokens,
                    self.knobs.seed,
                )
            }
            Route::Token { .. } => Reply::error(405, "MethodNotAllowed", "Use POST."),
            Route::NotGraph => Reply::error(404, "NotFound", "graph fake: not a Graph v1.0 path."),
            _ => {
                if let Err(refusal) = self.tokens.check(request.header("Authorization")) {
                    return refusal;
                }
                match route {
                    Route::Batch if request.method == "POST" => self.batch(&call, refused),
                    _ => self.graph(route, &call),
                }
            }
        }
    }

    /// Serves one authenticated Graph call (direct or a batch item).
    fn graph(&mut self, route: &Route, call: &Call) -> Reply {
        let method = call.method;
        let result = match (route, method) {
            (Route::Calendars { user }, "GET") => self.list_calendars(user, call),
            (Route::Calendar { user, calendar }, "GET") => self.get_calendar(user, calendar, call),
            (Route::Delta { user, calendar }, "GET") => self.delta(user, calendar, call),
            (Route::Events { user, calendar }, "GET") => {
                self.list_events(user, calendar.as_ref(), call)
            }
            (Route::Events { user, calendar }, "POST") => {
                self.create_event(user, calendar.as_ref(), call)
            }
            (Route::Event { user, id }, "GET") => self.get_event(user, id, call),
            (Route::Event { user, id }, "PATCH") => self.patch_event(user, id, call),
            (Route::Event { user, id }, "DELETE") => self.delete_event(user, id, call),
            (Route::Instances { user, id }, "GET") => self.instances(user, id, call),
            (Route::Me, _) => Err(Reply::error(
                400,
                "BadRequest",
                "/me request is only valid with delegated authentication flow.",
            )),
            (Route::Unknown { segment }, _) => Err(Reply::error(
                400,
                "BadRequest",
                &format!("Resource not found for the segment '{segment}'."),
            )),
            _ => Err(Reply::error(
                405,
                "Request_BadRequest",
                "Specified HTTP method is not allowed for the request target.",
            )),
        };
        result.unwrap_or_else(|refusal| refusal)
    }

    /// A page of `items` by `$top`/`$skip`, with a next link when more remain.
    fn page(&self, items: Vec<Value>, call: &Call) -> Result<Reply, Reply> {
        let (top, skip) = call.query.top_skip(self.knobs.list_page_size)?;
        let total = items.len();
        let value: Vec<Value> = items.into_iter().skip(skip).take(top).collect();
        let mut body = json!({"@odata.context": format!("{}/v1.0/$metadata#Collection", call.base), "value": value});
        if skip + top < total {
            let rest = call.query.raw_without("skip");
            let joiner = if rest.is_empty() { "" } else { "&" };
            body["@odata.nextLink"] =
                json!(call.url(&format!("{rest}{joiner}$skip={}", skip + top)));
        }
        Ok(Reply::json(200, body))
    }

    fn render_calendar(mailbox: &Mailbox, index: usize) -> Value {
        let calendar = &mailbox.calendars[index];
        json!({
            "id": calendar.id,
            "name": calendar.name,
            "color": "auto",
            "hexColor": "",
            "isDefaultCalendar": index == 0,
            "changeKey": calendar.change_key,
            "canShare": true,
            "canViewPrivateItems": true,
            "canEdit": true,
            "isRemovable": index != 0,
            "isTallyingResponses": true,
            "allowedOnlineMeetingProviders": ["teamsForBusiness"],
            "defaultOnlineMeetingProvider": "teamsForBusiness",
            "owner": {"name": mailbox.display_name, "address": mailbox.upn},
        })
    }

    fn list_calendars(&self, user: &str, call: &Call) -> Result<Reply, Reply> {
        let m = self.mailbox(user)?;
        call.query.allow_only(&["top", "skip", "filter"])?;
        let name = call
            .query
            .get("filter")
            .map(odata::parse_name_filter)
            .transpose()?;
        let mailbox = &self.mailboxes[m];
        let items = (0..mailbox.calendars.len())
            .filter(|&i| {
                name.as_ref()
                    .is_none_or(|n| n.to_lowercase() == mailbox.calendars[i].name.to_lowercase())
            })
            .map(|i| State::render_calendar(mailbox, i))
            .collect();
        self.page(items, call)
    }

    fn get_calendar(&self, user: &str, calendar: &CalRef, call: &Call) -> Result<Reply, Reply> {
        let m = self.mailbox(user)?;
        call.query.allow_only(&[])?;
        let id = self.calendar_id(m, calendar)?;
        let mailbox = &self.mailboxes[m];
        let index = mailbox
            .calendars
            .iter()
            .position(|c| c.id == id)
            .expect("resolved");
        Ok(Reply::json(200, State::render_calendar(mailbox, index)))
    }

    fn get_event(&self, user: &str, id: &str, call: &Call) -> Result<Reply, Reply> {
        let m = self.mailbox(user)?;
        call.query.allow_only(&["select", "expand"])?;
        let mailbox = &self.mailboxes[m];
        let target = mailbox.found(id)?;
        let expand = call
            .query
            .get("expand")
            .map(odata::parse_expand)
            .transpose()?;
        let fields = shape(
            render_target(mailbox, &target, &call.zone()),
            mailbox.extended(&target),
            expand.as_ref(),
            call.query.get("select"),
        )?;
        Ok(call.zoned(Reply::json(200, Value::Object(fields))))
    }

    /// Singles and series masters (never occurrences or exceptions), optionally by tag.
    fn list_events(
        &self,
        user: &str,
        calendar: Option<&CalRef>,
        call: &Call,
    ) -> Result<Reply, Reply> {
        let m = self.mailbox(user)?;
        call.query
            .allow_only(&["filter", "select", "expand", "top", "skip"])?;
        let calendar = calendar.map(|c| self.calendar_id(m, c)).transpose()?;
        let filter = call.query.get("filter").map(TagFilter::parse).transpose()?;
        let expand = call
            .query
            .get("expand")
            .map(odata::parse_expand)
            .transpose()?;
        let mailbox = &self.mailboxes[m];
        let mut events: Vec<&Event> = mailbox
            .events
            .values()
            .filter(|e| e.event_type != EventType::Exception)
            .filter(|e| calendar.as_ref().is_none_or(|c| e.calendar == *c))
            .filter(|e| filter.as_ref().is_none_or(|f| f.matches(&e.extended)))
            .collect();
        events.sort_by_key(|e| e.order);
        let zone = call.zone();
        let items = events
            .into_iter()
            .map(|e| {
                shape(
                    render_stored(mailbox, e, &zone),
                    &e.extended,
                    expand.as_ref(),
                    call.query.get("select"),
                )
                .map(Value::Object)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(call.zoned(self.page(items, call)?))
    }

    /// Occurrences and exceptions of a master within a window, in start order.
    fn instances(&self, user: &str, id: &str, call: &Call) -> Result<Reply, Reply> {
        let m = self.mailbox(user)?;
        call.query
            .allow_only(&["startdatetime", "enddatetime", "select", "top", "skip"])?;
        let (from, to) = window(&call.query)?;
        let mailbox = &self.mailboxes[m];
        let Target::Stored(id) = mailbox.found(id)? else {
            return Err(bad_request(
                "ErrorInvalidRequest",
                "An occurrence has no instances.".into(),
            ));
        };
        let master = &mailbox.events[&id];
        let zone = call.zone();
        let mut shown: Vec<(DateTime<Utc>, Map<String, Value>)> = Vec::new();
        if let Some(series) = master.series() {
            for start in series.starts_between(from, to) {
                let stored = mailbox.events.contains_key(&occurrence_id(&id, start));
                if !stored && !master.removed_occurrences.contains(&start) {
                    shown.push((start, render_occurrence(mailbox, master, start, &zone)));
                }
            }
        }
        for exception in mailbox.events.values() {
            if exception.master.as_deref() == Some(id.as_str())
                && time::overlaps(exception.start(), exception.end(), from, to)
            {
                shown.push((exception.start(), render_stored(mailbox, exception, &zone)));
            }
        }
        shown.sort_by_key(|(start, _)| *start);
        let items = shown
            .into_iter()
            .map(|(_, fields)| {
                shape(fields, &[], None, call.query.get("select")).map(Value::Object)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(call.zoned(self.page(items, call)?))
    }

    fn create_event(
        &mut self,
        user: &str,
        calendar: Option<&CalRef>,
        call: &Call,
    ) -> Result<Reply, Reply> {
        let m = self.mailbox(user)?;
        call.query.allow_only(&[])?;
        let calendar = self.calendar_id(m, calendar.unwrap_or(&CalRef::Default))?;
        let body = call.json_body()?;
        check_fields(&body, Writer::Create)?;
        check_event(&body)?;
        let zone = call.zone();
        let mailbox = &self.mailboxes[m];
        let earlier = body
            .get("transactionId")
            .and_then(Value::as_str)
            .and_then(|t| mailbox.transactions.get(t))
            .filter(|id| mailbox.events.contains_key(*id));
        if let Some(id) = earlier {
            let first = render_stored(mailbox, &mailbox.events[id], &zone);
            return Ok(call.zoned(Reply::json(
                self.knobs.duplicate_create_status,
                Value::Object(first),
            )));
        }
        let id = self.insert_event(m, calendar, body);
        let mailbox = &self.mailboxes[m];
        Ok(call.zoned(Reply::json(
            201,
            Value::Object(render_stored(mailbox, &mailbox.events[&id], &zone)),
        )))
    }

    fn check_if_match(&self, m: usize, target: &Target, call: &Call) -> Result<(), Reply> {
        match call.headers.get("If-Match") {
            Some(wanted)
                if wanted.trim() != "*" && wanted.trim() != self.mailboxes[m].etag(target) =>
            {
                Err(Reply::error(
                    412,
                    "ErrorIrreconcilableConflict",
                    "A conflict occurred: the event changed since the etag given in If-Match.",
                ))
            }
            _ => Ok(()),
        }
    }

    fn patch_event(&mut self, user: &str, id: &str, call: &Call) -> Result<Reply, Reply> {
        let m = self.mailbox(user)?;
        call.query.allow_only(&[])?;
        let target = self.mailboxes[m].found(id)?;
        self.check_if_match(m, &target, call)?;
        let body = call.json_body()?;
        check_fields(&body, Writer::Update)?;
        let id = self.apply_patch(m, &target, body)?;
        let mailbox = &self.mailboxes[m];
        let shown = render_stored(mailbox, &mailbox.events[&id], &call.zone());
        Ok(call.zoned(Reply::json(200, Value::Object(shown))))
    }

    fn delete_event(&mut self, user: &str, id: &str, call: &Call) -> Result<Reply, Reply> {
        let m = self.mailbox(user)?;
        call.query.allow_only(&[])?;
        let target = self.mailboxes[m].found(id)?;
        self.check_if_match(m, &target, call)?;
        self.remove(m, &target);
        Ok(Reply::empty(204))
    }

    /// Stores a new single event or series master from checked properties.
    fn insert_event(
        &mut self,
        m: usize,
        calendar: String,
        mut props: Map<String, Value>,
    ) -> String {
        let change_key = self.change_key();
        let seq = self.seq;
        let id = format!(
            "AAMkAGI2{}AAA=",
            URL_SAFE_NO_PAD.encode(format!("event-{seq}"))
        );
        let extended = take_extended(&mut props);
        let is_master = props.get("recurrence").is_some_and(|r| !r.is_null());
        props.remove("@odata.type");
        let now = Utc::now();
        let mailbox = &mut self.mailboxes[m];
        if let Some(transaction) = props.get("transactionId").and_then(Value::as_str) {
            mailbox
                .transactions
                .insert(transaction.to_string(), id.clone());
        }
        let event = Event {
            id: id.clone(),
            calendar,
            event_type: if is_master {
                EventType::Master
            } else {
                EventType::Single
            },
            master: None,
            original_start: None,
            props,
            extended,
            removed_occurrences: BTreeSet::new(),
            change_key,
            created: now,
            modified: now,
            order: seq,
        };
        mailbox.events.insert(id.clone(), event);
        if !is_master {
            mailbox.log.push((seq, id.clone()));
        }
        id
    }

    /// An exception for the occurrence of `master` at `start`: the master's fields at the
    /// occurrence's times, not yet stored.
    fn exception_from(&self, m: usize, master: &str, start: DateTime<Utc>) -> Event {
        let master = &self.mailboxes[m].events[master];
        let zone = zone_of(&master.props["start"]);
        let end = start + (master.end() - master.start());
        let mut props = master.props.clone();
        props.remove("recurrence");
        props.remove("transactionId");
        let slot = |at: DateTime<Utc>| json!({"dateTime": time::format_wall(zone.local(at)), "timeZone": zone.label});
        props.insert("start".into(), slot(start));
        props.insert("end".into(), slot(end));
        Event {
            id: occurrence_id(&master.id, start),
            calendar: master.calendar.clone(),
            event_type: EventType::Exception,
            master: Some(master.id.clone()),
            original_start: Some(start),
            props,
            extended: master.extended.clone(),
            removed_occurrences: BTreeSet::new(),
            change_key: String::new(),
            created: Utc::now(),
            modified: Utc::now(),
            order: master.order,
        }
    }

    /// Applies checked properties to a stored event, or turns an occurrence into an exception.
    fn apply_patch(
        &mut self,
        m: usize,
        target: &Target,
        mut patch: Map<String, Value>,
    ) -> Result<String, Reply> {
        let before = match target {
            Target::Stored(id) => self.mailboxes[m].events[id].clone(),
            Target::Occurrence { master, start } => self.exception_from(m, master, *start),
        };
        let mut after = before.clone();
        merge_extended(&mut after.extended, take_extended(&mut patch));
        patch.remove("@odata.type");
        for (name, value) in patch {
            after.props.insert(name, value);
        }
        let has_recurrence = after.props.get("recurrence").is_some_and(|r| !r.is_null());
        match (before.event_type, has_recurrence) {
            (EventType::Exception, true) => {
                return Err(bad_request(
                    "ErrorInvalidRequest",
                    "An occurrence or exception cannot have a recurrence.".into(),
                ));
            }
            (EventType::Master, false) => {
                return Err(bad_request(
                    "ErrorInvalidRequest",
                    "A series master must keep its recurrence.".into(),
                ));
            }
            (EventType::Single, true) => after.event_type = EventType::Master,
            _ => {}
        }
        after.props.retain(|_, v| !v.is_null());
        check_event(&after.props)?;
        let retimed = before.event_type == EventType::Master
            && ["start", "end", "recurrence"]
                .iter()
                .any(|k| before.props.get(*k) != after.props.get(*k));
        after.change_key = self.change_key();
        after.modified = Utc::now();
        let seq = self.seq;
        let id = after.id.clone();
        let listed = after.event_type != EventType::Master;
        let mailbox = &mut self.mailboxes[m];
        mailbox.events.insert(id.clone(), after);
        if listed {
            mailbox.log.push((seq, id.clone()));
        }
        if retimed {
            self.reset_series(m, &id);
        }
        Ok(id)
    }

    /// Drops the exceptions and deleted occurrences of a re-timed series.
    fn reset_series(&mut self, m: usize, master: &str) {
        let seq = self.seq;
        let mailbox = &mut self.mailboxes[m];
        let exceptions: Vec<String> = mailbox
            .events
            .values()
            .filter(|e| e.master.as_deref() == Some(master))
            .map(|e| e.id.clone())
            .collect();
        for id in exceptions {
            mailbox.events.remove(&id);
            mailbox.log.push((seq, id));
        }
        if let Some(event) = mailbox.events.get_mut(master) {
            event.removed_occurrences.clear();
        }
    }

    /// Deletes an event; a master takes its exceptions along, an occurrence or exception leaves
    /// a deleted occurrence on its master. Every listed id removed goes to the delta log.
    fn remove(&mut self, m: usize, target: &Target) {
        let seq = self.next_seq();
        let mailbox = &mut self.mailboxes[m];
        let (master, start) = match target {
            Target::Occurrence { master, start } => (master.clone(), *start),
            Target::Stored(id) => {
                let event = mailbox.events.remove(id).expect("found");
                match (event.event_type, event.master, event.original_start) {
                    (EventType::Master, ..) => {
                        self.drop_exceptions_of(m, id, seq);
                        return;
                    }
                    (EventType::Exception, Some(master), Some(start)) => (master, start),
                    _ => {
                        mailbox.log.push((seq, id.clone()));
                        return;
                    }
                }
            }
        };
        if let Some(event) = mailbox.events.get_mut(&master) {
            event.removed_occurrences.insert(start);
        }
        mailbox.log.push((seq, occurrence_id(&master, start)));
    }

    fn drop_exceptions_of(&mut self, m: usize, master: &str, seq: u64) {
        let mailbox = &mut self.mailboxes[m];
        mailbox.events.retain(|id, e| {
            let keep = e.master.as_deref() != Some(master);
            if !keep {
                mailbox.log.push((seq, id.clone()));
            }
            keep
        });
    }
}

/// Takes `singleValueExtendedProperties` out of written properties as (id, value) pairs.
fn take_extended(props: &mut Map<String, Value>) -> Vec<(String, String)> {
    let Some(Value::Array(items)) = props.remove("singleValueExtendedProperties") else {
        return Vec::new();
    };
    let mut pairs = Vec::new();
    merge_extended(
        &mut pairs,
        items
            .iter()
            .map(|i| {
                (
                    i["id"].as_str().unwrap_or("").to_string(),
                    i["value"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect(),
    );
    pairs
}

/// Sets each written extended property, replacing one of the same identity.
fn merge_extended(stored: &mut Vec<(String, String)>, written: Vec<(String, String)>) {
    for (id, value) in written {
        let identity = PropertyId::parse(&id);
        match stored
            .iter_mut()
            .find(|(s, _)| PropertyId::parse(s) == identity)
        {
            Some(slot) => slot.1 = value,
            None => stored.push((id, value)),
        }
    }
}

/// The `startDateTime`/`endDateTime` window of a calendar view; both are required.
fn window(query: &Query) -> Result<(DateTime<Utc>, DateTime<Utc>), Reply> {
    let (Some(start), Some(end)) = (query.get("startdatetime"), query.get("enddatetime")) else {
        return Err(Reply::error(
            400,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
        ));
    };
    let parse = |text: &str| {
        time::parse_query_instant(text).ok_or_else(|| {
            Reply::error(
                400,
                "ErrorInvalidParameter",
                &format!("The value '{text}' of parameter 'StartDateTime/EndDateTime' is invalid."),
            )
        })
    };
    let (from, to) = (parse(start)?, parse(end)?);
    if to <= from {
        return Err(Reply::error(
            400,
            "ErrorInvalidParameter",
            "The parameter 'EndDateTime' must be later than 'StartDateTime'.",
        ));
    }
    Ok((from, to))
}

impl Shared {
    /// The mailboxes a request will touch, for the concurrency cap.
    fn mailboxes_touched(&self, route: &Route, request: &Request) -> Vec<String> {
        let state = lock(&self.state);
        let users: Vec<String> = match route {
            Route::Batch => batch::item_users(&request.body),
            _ => route.user().map(str::to_string).into_iter().collect(),
        };
        let mut keys: Vec<String> = users.iter().map(|u| state.slot_key(u)).collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// The configured latency, then the gate; no lock is held while waiting.
    fn pause(&self) {
        let latency = Duration::from_micros(self.latency_micros.load(Ordering::SeqCst));
        if !latency.is_zero() {
            std::thread::sleep(latency);
        }
        self.gate.pass();
    }

    fn handle(&self, request: &Request) -> Response {
        let route = Route::parse(request.path_only());
        let kind = route.kind(&request.method, request.query());
        {
            let mut state = lock(&self.state);
            state.count(kind, true);
            if let Some(fault) = state.take_fault(kind) {
                return fault.to_response();
            }
        }
        let slots = self.slots.acquire(self.mailboxes_touched(&route, request));
        if !matches!(route, Route::Batch) && !slots.refused.is_empty() {
            return concurrency_refusal().to_response();
        }
        self.pause();
        let base = format!("http://{}", request.header("Host").unwrap_or("127.0.0.1"));
        let reply = lock(&self.state).serve(&route, request, &base, &slots.refused);
        drop(slots);
        reply.to_response()
    }
}

impl GraphFake {
    /// Starts a fake with the default app registration ([`TENANT`], [`CLIENT_ID`],
    /// [`CLIENT_SECRET`], [`CERTIFICATE_PEM`]) and no mailboxes.
    pub fn start() -> GraphFake {
        let state = State {
            app: App {
                tenant: TENANT.to_string(),
                client_id: CLIENT_ID.to_string(),
                secret: Some(CLIENT_SECRET.to_string()),
                certificate: Some(Certificate::from_pem(CERTIFICATE_PEM)),
                max_assertion_lifetime: Duration::from_secs(600),
                token_lifetime: Duration::from_secs(3599),
            },
            tokens: Tokens::default(),
            knobs: Knobs {
                page_size: 10,
                list_page_size: 10,
                masters_in_delta: false,
                delta_replays: false,
                empty_delta_pages: 0,
                duplicate_create_status: 201,
                seed: 1,
            },
            mailboxes: Vec::new(),
            seq: 0,
            faults: Vec::new(),
            batch_throttle: (0, 0),
            counts: HashMap::new(),
            delta: delta::Store::default(),
            batches: 0,
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            slots: Slots {
                in_flight: Mutex::new(HashMap::new()),
                limit: AtomicUsize::new(4),
            },
            latency_micros: AtomicU64::new(0),
            gate: Gate::default(),
        });
        let server = {
            let shared = Arc::clone(&shared);
            TestServer::start(move |request| shared.handle(request))
        };
        GraphFake { shared, server }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared.state)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The Graph base URL, `http://127.0.0.1:PORT/v1.0` (calsync's `base_url`).
    pub fn graph_url(&self) -> String {
        format!("{}/v1.0", self.server.url())
    }

    /// The token URL of [`TENANT`] (calsync's `token_url`).
    pub fn token_url(&self) -> String {
        format!("{}/{TENANT}/oauth2/v2.0/token", self.server.url())
    }

    /// The recording server underneath: every HTTP request as received.
    pub fn server(&self) -> &TestServer {
        &self.server
    }

    // --- the app registration and tokens ---

    /// Replaces (or, with `None`, removes) the registered client secret.
    pub fn set_client_secret(&self, secret: Option<&str>) {
        self.state().app.secret = secret.map(str::to_string);
    }

    /// Replaces (or removes) the registered certificate (PEM).
    pub fn set_certificate(&self, pem: Option<&str>) {
        self.state().app.certificate = pem.map(Certificate::from_pem);
    }

    /// The base64url SHA-256 thumbprint of the registered certificate (its `x5t#S256`).
    pub fn certificate_thumbprint(&self) -> Option<String> {
        self.state()
            .app
            .certificate
            .as_ref()
            .map(|c| c.thumbprint.clone())
    }

    /// The longest `exp - nbf` accepted in a client assertion (default 10 minutes).
    pub fn set_max_assertion_lifetime(&self, lifetime: Duration) {
        self.state().app.max_assertion_lifetime = lifetime;
    }

    /// The lifetime of tokens issued from now on (`expires_in`; default 3599 s).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.state().app.token_lifetime = lifetime;
    }

    /// Issues a token directly, as if the token endpoint had, for tests of Graph calls alone.
    pub fn issue_token(&self) -> String {
        let mut state = self.state();
        let (lifetime, seed) = (state.app.token_lifetime, state.knobs.seed);
        state.tokens.issue(lifetime, seed)
    }

    /// How many tokens were issued (by the endpoint or [`GraphFake::issue_token`]).
    pub fn tokens_issued(&self) -> u64 {
        self.state().tokens.issued()
    }

    /// Makes every token issued so far expired.
    pub fn expire_tokens(&self) {
        self.state().tokens.expire_all();
    }

    /// Revokes one token, or all when `None`.
    pub fn revoke_tokens(&self, token: Option<&str>) {
        let mut state = self.state();
        match token {
            Some(token) => state.tokens.revoke(token),
            None => state.tokens.revoke_all(),
        }
    }

    // --- mailboxes and calendars ---

    /// Adds a mailbox with its default calendar "Calendar"; returns the user id.
    pub fn add_mailbox(&self, upn: &str) -> String {
        let mut state = self.state();
        let n = state.mailboxes.len() as u64 + 1;
        let id = format!("{n:08x}-5f1c-4d2e-9a7b-{:012x}", n * 7919);
        let display_name = upn.split('@').next().unwrap_or(upn).to_string();
        state.mailboxes.push(Mailbox {
            id: id.clone(),
            upn: upn.to_string(),
            display_name,
            denied: false,
            calendars: Vec::new(),
            events: HashMap::new(),
            transactions: HashMap::new(),
            log: Vec::new(),
        });
        drop(state);
        self.add_calendar(upn, "Calendar");
        id
    }

    fn mailbox_of(state: &State, upn: &str) -> usize {
        state
            .mailbox_index(upn)
            .unwrap_or_else(|| panic!("graph fake: no mailbox {upn:?} was added"))
    }

    /// Adds a calendar (names need not be unique); returns its id.
    pub fn add_calendar(&self, upn: &str, name: &str) -> String {
        let mut state = self.state();
        let m = GraphFake::mailbox_of(&state, upn);
        let change_key = state.change_key();
        let id = format!(
            "AAMkCal{}=",
            URL_SAFE_NO_PAD.encode(format!("{m}/{}", state.seq))
        );
        state.mailboxes[m].calendars.push(Calendar {
            id: id.clone(),
            name: name.to_string(),
            change_key,
        });
        id
    }

    /// The id of a mailbox's default calendar.
    pub fn default_calendar(&self, upn: &str) -> String {
        let state = self.state();
        state.mailboxes[GraphFake::mailbox_of(&state, upn)].calendars[0]
            .id
            .clone()
    }

    /// Makes a mailbox unreadable for the app (an application access policy), or readable.
    pub fn deny_mailbox(&self, upn: &str, denied: bool) {
        let mut state = self.state();
        let m = GraphFake::mailbox_of(&state, upn);
        state.mailboxes[m].denied = denied;
    }

    // --- events, as a person in Outlook makes them ---

    /// Creates an event (a series master when it has a `recurrence`) in a calendar, from Graph
    /// JSON. Read-only fields such as `isCancelled` and any `sensitivity` string are allowed.
    pub fn seed_event(&self, upn: &str, calendar_id: &str, event: Value) -> String {
        let mut state = self.state();
        let m = GraphFake::mailbox_of(&state, upn);
        let calendar = state
            .calendar_id(m, &CalRef::Id(calendar_id.to_string()))
            .unwrap_or_else(|_| panic!("graph fake: no calendar {calendar_id:?} in {upn}"));
        let Value::Object(props) = event else {
            panic!("graph fake: an event is a JSON object");
        };
        check_fields(&props, Writer::Seed)
            .and_then(|()| check_event(&props))
            .unwrap_or_else(|r| panic!("graph fake: bad seeded event: {:?}", r.body));
        state.insert_event(m, calendar, props)
    }

    /// Changes an event as Outlook would; on an occurrence id this makes an exception.
    /// Returns the id of the changed event (the occurrence's id for a new exception).
    pub fn update_event(&self, upn: &str, id: &str, patch: Value) -> String {
        let mut state = self.state();
        let m = GraphFake::mailbox_of(&state, upn);
        let target = state.mailboxes[m]
            .find(id)
            .unwrap_or_else(|| panic!("graph fake: no event {id:?}"));
        let Value::Object(patch) = patch else {
            panic!("graph fake: a patch is a JSON object");
        };
        check_fields(&patch, Writer::Seed)
            .and_then(|()| state.apply_patch(m, &target, patch))
            .unwrap_or_else(|r| panic!("graph fake: bad update: {:?}", r.body))
    }

    /// Turns an occurrence into an exception with its own fields (subject, times, sensitivity…).
    pub fn make_exception(&self, upn: &str, occurrence_id: &str, patch: Value) -> String {
        assert!(
            parse_occurrence_id(occurrence_id).is_some(),
            "graph fake: {occurrence_id:?} is not an occurrence id"
        );
        self.update_event(upn, occurrence_id, patch)
    }

    /// Marks an occurrence cancelled (an exception with `isCancelled: true`), as an attendee's
    /// copy shows a cancelled meeting occurrence.
    pub fn cancel_occurrence(&self, upn: &str, occurrence_id: &str) -> String {
        self.make_exception(upn, occurrence_id, json!({"isCancelled": true}))
    }

    /// Deletes an event, a series (with its exceptions), or one occurrence.
    pub fn delete_event(&self, upn: &str, id: &str) {
        let mut state = self.state();
        let m = GraphFake::mailbox_of(&state, upn);
        let target = state.mailboxes[m]
            .find(id)
            .unwrap_or_else(|| panic!("graph fake: no event {id:?}"));
        state.remove(m, &target);
    }

    /// The occurrences and exceptions of a master in `[from, to)`, as `/instances` shows them
    /// in UTC.
    pub fn instances(&self, upn: &str, master: &str, from: &str, to: &str) -> Vec<Value> {
        let fake_call_headers = Headers::new();
        let query = Query::parse(Some(&format!(
            "startDateTime={from}&endDateTime={to}&$top=1000"
        )))
        .expect("a valid window");
        let call = Call {
            method: "GET",
            path: String::new(),
            query,
            headers: &fake_call_headers,
            body: &[],
            base: "",
        };
        let state = self.state();
        match state.instances(upn, master, &call) {
            Ok(reply) => reply.body.expect("a page")["value"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            Err(reply) => panic!("graph fake: instances failed: {:?}", reply.body),
        }
    }

    /// The stored events of a calendar (singles, masters, exceptions) in creation order, in UTC,
    /// each with all its `singleValueExtendedProperties`: what a client created, exactly.
    pub fn stored_events(&self, upn: &str, calendar_id: &str) -> Vec<Value> {
        let state = self.state();
        let mailbox = &state.mailboxes[GraphFake::mailbox_of(&state, upn)];
        let mut events: Vec<&Event> = mailbox
            .events
            .values()
            .filter(|e| e.calendar == calendar_id)
            .collect();
        events.sort_by_key(|e| (e.order, e.original_start));
        events
            .into_iter()
            .map(|e| stored_json(mailbox, e))
            .collect()
    }

    /// One stored event (as [`GraphFake::stored_events`] shows it), if it exists.
    pub fn stored_event(&self, upn: &str, id: &str) -> Option<Value> {
        let state = self.state();
        let mailbox = &state.mailboxes[GraphFake::mailbox_of(&state, upn)];
        mailbox.events.get(id).map(|e| stored_json(mailbox, e))
    }

    // --- knobs ---

    /// The delta page size when a call sends no `Prefer: odata.maxpagesize` (default 10).
    pub fn set_page_size(&self, size: usize) {
        self.state().knobs.page_size = size.max(1);
    }

    /// Lists series masters in delta rounds too (default: only occurrences and exceptions).
    pub fn set_masters_in_delta(&self, on: bool) {
        self.state().knobs.masters_in_delta = on;
    }

    /// Starts each delta page after the first with the last item of the page before.
    pub fn set_delta_replays(&self, on: bool) {
        self.state().knobs.delta_replays = on;
    }

    /// Begins every delta round with `n` empty pages that carry a next link.
    pub fn set_empty_delta_pages(&self, n: usize) {
        self.state().knobs.empty_delta_pages = n;
    }

    /// Makes every delta and skip link issued so far fail the given way; new rounds work.
    pub fn expire_sync_state(&self, how: Expiry) {
        self.state().delta.expire_all(how);
    }

    /// The status of a POST that repeats an earlier `transactionId` (default 201).
    pub fn set_duplicate_create_status(&self, status: u16) {
        self.state().knobs.duplicate_create_status = status;
    }

    /// Answers the next `n` HTTP requests of `kind` (any kind when `None`) with `fault`.
    pub fn fail_next(&self, n: usize, fault: Fault, kind: Option<Kind>) {
        self.state().faults.push((fault, n, kind));
    }

    /// Answers the next `n` write items (POST, PATCH, DELETE) inside batches with 429 and a
    /// `Retry-After: retry_after` item header; the batch itself stays 200.
    pub fn throttle_batch_writes(&self, n: usize, retry_after: u64) {
        self.state().batch_throttle = (n, retry_after);
    }

    /// The most requests in flight per mailbox (default 4, Outlook's documented limit).
    pub fn set_mailbox_concurrency(&self, limit: usize) {
        self.shared.slots.limit.store(limit, Ordering::SeqCst);
    }

    /// A fixed delay added to every request, slept without holding any lock.
    pub fn set_latency(&self, latency: Duration) {
        self.shared
            .latency_micros
            .store(latency.as_micros() as u64, Ordering::SeqCst);
    }

    /// The seed of batch response shuffling and token strings (default 1).
    pub fn set_seed(&self, seed: u64) {
        self.state().knobs.seed = seed;
    }

    /// Holds every request inside the fake (after it took its mailbox slot) until the returned
    /// guard is dropped; each waits at most 10 s.
    pub fn hold(&self) -> Hold<'_> {
        lock(&self.shared.gate.state).0 = true;
        Hold {
            gate: &self.shared.gate,
        }
    }

    // --- observation ---

    /// How many requests of `kind` arrived, batch items included (and also counted as
    /// [`Kind::BatchItem`]).
    pub fn count(&self, kind: Kind) -> usize {
        self.state().counts.get(&kind).map_or(0, |c| c.0)
    }

    /// How many HTTP requests of `kind` arrived (batch items not included).
    pub fn count_direct(&self, kind: Kind) -> usize {
        self.state().counts.get(&kind).map_or(0, |c| c.1)
    }

    /// Forgets all counts (the server's recorded requests stay).
    pub fn reset_counts(&self) {
        self.state().counts.clear();
    }

    /// Every HTTP request received, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.server.requests()
    }
}
