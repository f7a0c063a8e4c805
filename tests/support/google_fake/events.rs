//! Event resources: Google's validation of the fields the fake implements, the server-managed
//! fields, the writes (insert, update, patch, delete), and the instances of a series.
//!
//! A stored event is the resource exactly as `events.get` returns it. Instances of a series that
//! nobody touched are not stored: they are rendered from the master on demand ("virtual"). A
//! write to one (PUT, PATCH, DELETE by its instance id) stores it as an exception, which carries
//! `recurringEventId` and `originalStartTime` and from then on stands in for that instance.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::errors::{ApiError, Reply};
use super::recurrence::{self, Frame, Recurrence, local_to_utc};
use super::wire::{self, ApiRequest};
use super::{Calendar, Clock, Knobs, Restore, SEED_CREATOR, State, Stored};

/// Who writes: a client through the API (validated; read-only and unknown fields dropped), or a
/// seeding helper playing the human (fields kept as given).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Api {
        /// `conferenceDataVersion=1`: only then does Google read `conferenceData`.
        conference_data: bool,
        /// Acting for a user (domain-wide delegation) rather than as the service account.
        delegated: bool,
    },
    Seed,
}

impl Mode {
    /// Checks the write parameters Google validates and reads `conferenceDataVersion`.
    pub fn api(request: &ApiRequest, delegated: bool) -> Result<Mode, ApiError> {
        if let Some(value) = request.param("sendUpdates")
            && !["all", "externalOnly", "none"].contains(&value)
        {
            let text = format!(
                "Invalid value '{value}'. Values must match one of: all, externalOnly, none"
            );
            return Err(ApiError::invalid(text).at("parameter", "sendUpdates"));
        }
        for name in ["sendNotifications", "supportsAttachments"] {
            parse_bool(request, name)?;
        }
        let conference_data = match request.param("conferenceDataVersion") {
            None | Some("0") => false,
            Some("1") => true,
            Some(value) => {
                let text =
                    format!("Invalid value '{value}'. Values must be within the range: [0, 1]");
                return Err(ApiError::invalid(text).at("parameter", "conferenceDataVersion"));
            }
        };
        Ok(Mode::Api {
            conference_data,
            delegated,
        })
    }
}

/// A boolean query parameter: absent, `true` or `false`.
pub fn parse_bool(request: &ApiRequest, name: &str) -> Result<Option<bool>, ApiError> {
    match request.param(name) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(value) => {
            let text = format!(
                "Invalid value '{value}'. Values must match the following regular expression: 'true|false'"
            );
            Err(ApiError::invalid(text).at("parameter", name))
        }
    }
}

/// Event fields a client may write (the discovery document's non-read-only fields; `id` and
/// `iCalUID` only on insert, handled apart).
const WRITABLE: &[&str] = &[
    "anyoneCanAddSelf",
    "attachments",
    "attendees",
    "attendeesOmitted",
    "birthdayProperties",
    "colorId",
    "conferenceData",
    "description",
    "end",
    "endTimeUnspecified",
    "eventType",
    "extendedProperties",
    "focusTimeProperties",
    "gadget",
    "guestsCanInviteOthers",
    "guestsCanModify",
    "guestsCanSeeOtherGuests",
    "location",
    "outOfOfficeProperties",
    "recurrence",
    "reminders",
    "sequence",
    "source",
    "start",
    "status",
    "summary",
    "transparency",
    "visibility",
    "workingLocationProperties",
];

/// Fields a PUT cannot remove: server-managed, immutable, or (`status`, `eventType`) kept when
/// omitted so that only an explicit `status: confirmed` restores a cancelled event.
const KEPT_ON_PUT: &[&str] = &[
    "kind",
    "etag",
    "id",
    "htmlLink",
    "created",
    "updated",
    "creator",
    "organizer",
    "iCalUID",
    "recurringEventId",
    "originalStartTime",
    "hangoutLink",
    "sequence",
    "status",
    "eventType",
];

/// A point in time of an event: a date (all-day) or an instant, with its `timeZone` if named.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum When {
    Day(NaiveDate),
    At(DateTime<Utc>),
}

#[derive(Clone, Copy, Debug)]
struct Point {
    when: When,
    tz: Option<Tz>,
}

// ---------------------------------------------------------------------------------------------
// Reads

/// `events.get`: a stored event (cancelled too) or a virtual instance; 304 on `If-None-Match`.
pub fn get(
    state: &State,
    calendar: &str,
    id: &str,
    if_none_match: Option<&str>,
) -> Result<Reply, ApiError> {
    let cal = &state.calendars[calendar];
    let resource = current(cal, id).ok_or_else(ApiError::not_found)?;
    if if_none_match.is_some_and(|tag| resource["etag"] == tag) {
        return Ok(Reply::empty(304));
    }
    Ok(Reply::json(200, resource))
}

/// The event or instance `id` names: stored, or rendered from its series.
fn current(cal: &Calendar, id: &str) -> Option<Value> {
    match cal.events.get(id) {
        Some(stored) => Some(stored.resource.clone()),
        None => virtual_instance(cal, id),
    }
}

// ---------------------------------------------------------------------------------------------
// Writes

/// `events.insert` (and seeding): validates, fills the server fields, stores.
pub fn insert(
    state: &mut State,
    calendar: &str,
    body: Value,
    mode: Mode,
    actor: &str,
) -> Result<Value, ApiError> {
    let State {
        calendars,
        clock,
        knobs,
        ..
    } = state;
    let cal = calendars
        .get_mut(calendar)
        .expect("the calendar was resolved");
    let Value::Object(mut body) = body else {
        return Err(ApiError::parse_error());
    };
    check_attendees(&body, mode)?;
    let id = take_string(&mut body, "id")?;
    let ical_uid = take_string(&mut body, "iCalUID")?;
    if let Some(id) = &id
        && mode != Mode::Seed
        && !valid_id(id)
    {
        return Err(ApiError::invalid("Invalid resource id value.").at("parameter", "id"));
    }
    if mode != Mode::Seed && id.is_some() && ical_uid.is_some() && knobs.reject_id_with_ical_uid {
        let text = "fake: send either id or iCalUID, not both (docs: only one should be supplied)";
        return Err(ApiError::invalid(text).at("parameter", "iCalUID"));
    }
    let mut resource = writable(body, mode);
    validate(&resource, cal.time_zone, mode, knobs)?;
    normalize(&mut resource, cal.time_zone);
    let taken = id.as_ref().is_some_and(|id| cal.events.contains_key(id))
        || ical_uid.as_ref().is_some_and(|uid| {
            cal.events
                .values()
                .any(|s| s.resource["iCalUID"] == uid.as_str())
        });
    if taken {
        return Err(ApiError::duplicate());
    }
    let id = id.unwrap_or_else(|| generated_id(clock));
    let fields = resource.as_object_mut().expect("an object");
    let now = Clock::now();
    fields.insert("kind".into(), json!("calendar#event"));
    fields.insert("etag".into(), json!(clock.next_etag()));
    fields.insert("id".into(), json!(id));
    fields.entry("status").or_insert(json!("confirmed"));
    fields.insert("htmlLink".into(), json!(html_link(&id, &cal.id)));
    fields.insert("created".into(), json!(now));
    fields.insert("updated".into(), json!(now));
    let creator = if mode == Mode::Seed {
        SEED_CREATOR
    } else {
        actor
    };
    fields
        .entry("creator")
        .or_insert(json!({ "email": creator }));
    fields
        .entry("organizer")
        .or_insert(json!({ "email": cal.id, "displayName": cal.summary, "self": true }));
    fields.insert(
        "iCalUID".into(),
        json!(ical_uid.unwrap_or_else(|| format!("{id}@google.com"))),
    );
    fields.entry("sequence").or_insert(json!(0));
    fields
        .entry("reminders")
        .or_insert(json!({ "useDefault": true }));
    fields.entry("eventType").or_insert(json!("default"));
    let change = clock.next_change();
    cal.events.insert(
        id,
        Stored {
            resource: resource.clone(),
            created: change,
            changed: change,
        },
    );
    Ok(resource)
}

/// `events.update` (`merge` false: PUT, omitted fields dropped) and `events.patch` (`merge`
/// true: fields merged, `null` deletes). Writing an instance stores it as an exception.
pub fn update(
    state: &mut State,
    calendar: &str,
    id: &str,
    body: Value,
    merge: bool,
    if_match: Option<&str>,
    mode: Mode,
) -> Result<Value, ApiError> {
    let State {
        calendars,
        clock,
        knobs,
        ..
    } = state;
    let cal = calendars
        .get_mut(calendar)
        .expect("the calendar was resolved");
    let old = current(cal, id).ok_or_else(ApiError::not_found)?;
    check_if_match(&old, if_match)?;
    let Value::Object(body) = body else {
        return Err(ApiError::parse_error());
    };
    check_attendees(&body, mode)?;
    let sent_sequence = body.get("sequence").and_then(Value::as_i64);
    let changes = writable_with_nulls(body, mode);
    let mut next = if merge {
        merged(&old, changes)
    } else {
        replaced(&old, changes, mode)
    };
    let restoring = old["status"] == "cancelled" && next["status"] != "cancelled";
    if restoring && mode != Mode::Seed && knobs.restore == Restore::Forbidden {
        return Err(ApiError::forbidden());
    }
    validate(&next, cal.time_zone, mode, knobs)?;
    normalize(&mut next, cal.time_zone);
    let sequence = next_sequence(&old, &next, sent_sequence)?;
    let fields = next.as_object_mut().expect("an object");
    fields.insert("sequence".into(), json!(sequence));
    fields.insert("etag".into(), json!(clock.next_etag()));
    fields.insert("updated".into(), json!(Clock::now()));
    store(cal, clock, id, next.clone());
    if next["status"] == "cancelled" {
        cancel_exceptions(cal, clock, id);
    }
    Ok(next)
}

/// `events.delete`: the event (or instance) becomes `cancelled`; a second delete is 410.
pub fn delete(
    state: &mut State,
    calendar: &str,
    id: &str,
    if_match: Option<&str>,
) -> Result<(), ApiError> {
    let State {
        calendars, clock, ..
    } = state;
    let cal = calendars
        .get_mut(calendar)
        .expect("the calendar was resolved");
    let mut event = current(cal, id).ok_or_else(ApiError::not_found)?;
    check_if_match(&event, if_match)?;
    if event["status"] == "cancelled" {
        return Err(ApiError::deleted());
    }
    let fields = event.as_object_mut().expect("an object");
    fields.insert("status".into(), json!("cancelled"));
    fields.insert("etag".into(), json!(clock.next_etag()));
    fields.insert("updated".into(), json!(Clock::now()));
    store(cal, clock, id, event);
    cancel_exceptions(cal, clock, id);
    Ok(())
}

/// Deleting a series deletes its instances: its live exceptions become cancelled too, so a
/// client syncing exceptions (singleEvents=false) learns that each one is gone.
fn cancel_exceptions(cal: &mut Calendar, clock: &mut Clock, series_id: &str) {
    let live: Vec<String> = cal
        .events
        .iter()
        .filter(|(_, s)| {
            s.resource["recurringEventId"] == series_id && s.resource["status"] != "cancelled"
        })
        .map(|(id, _)| id.clone())
        .collect();
    for id in live {
        let mut exception = cal.events[&id].resource.clone();
        exception["status"] = json!("cancelled");
        exception["etag"] = json!(clock.next_etag());
        exception["updated"] = json!(Clock::now());
        store(cal, clock, &id, exception);
    }
}

/// Stores a new version of an event or exception at a new position of the change sequence.
fn store(cal: &mut Calendar, clock: &mut Clock, id: &str, resource: Value) {
    let change = clock.next_change();
    let created = cal.events.get(id).map_or(change, |s| s.created);
    cal.events.insert(
        id.to_string(),
        Stored {
            resource,
            created,
            changed: change,
        },
    );
}

/// "Service accounts need to use domain-wide delegation of authority to populate the attendee
/// list" (Event.attendees): without it Google refuses attendees with 403.
fn check_attendees(body: &Map<String, Value>, mode: Mode) -> Result<(), ApiError> {
    let inviting = body
        .get("attendees")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if inviting
        && matches!(
            mode,
            Mode::Api {
                delegated: false,
                ..
            }
        )
    {
        let text =
            "Service accounts cannot invite attendees without Domain-Wide Delegation of Authority.";
        return Err(ApiError::new(
            403,
            "calendar",
            "forbiddenForServiceAccounts",
            text,
        ));
    }
    Ok(())
}

fn check_if_match(event: &Value, if_match: Option<&str>) -> Result<(), ApiError> {
    match if_match {
        Some(tag) if tag != "*" && event["etag"] != tag => Err(ApiError::condition_not_met()),
        _ => Ok(()),
    }
}

/// Google refuses a `sequence` below the stored one; a change of time, recurrence or status
/// bumps it (iCalendar's "significant" changes; Google's exact rule is unverified).
fn next_sequence(old: &Value, next: &Value, sent: Option<i64>) -> Result<i64, ApiError> {
    let current = old["sequence"].as_i64().unwrap_or(0);
    if sent.is_some_and(|s| s < current) {
        let text = "Invalid sequence value. The specified sequence number is below the current sequence number of the resource.";
        return Err(ApiError::invalid(text).at("parameter", "sequence"));
    }
    let significant = ["start", "end", "recurrence", "status"]
        .iter()
        .any(|k| old[k] != next[k]);
    Ok(sent
        .unwrap_or(current)
        .max(current + i64::from(significant)))
}

/// The body's fields a write may set (all of them when seeding), nulls dropped.
fn writable(body: Map<String, Value>, mode: Mode) -> Value {
    let mut picked = writable_with_nulls(body, mode);
    if let Value::Object(fields) = &mut picked {
        fields.retain(|_, v| !v.is_null());
    }
    picked
}

/// The body's fields a write may set, nulls kept (a PATCH deletes with them).
fn writable_with_nulls(mut body: Map<String, Value>, mode: Mode) -> Value {
    body.remove("id");
    match mode {
        Mode::Seed => Value::Object(body),
        Mode::Api {
            conference_data, ..
        } => {
            body.retain(|k, _| {
                WRITABLE.contains(&k.as_str()) && (conference_data || k != "conferenceData")
            });
            Value::Object(body)
        }
    }
}

/// PUT: the kept fields of the old version, everything else from the body. Conference data a
/// client could not send (no `conferenceDataVersion=1`) is kept, since Google ignores it then.
fn replaced(old: &Value, body: Value, mode: Mode) -> Value {
    let keep_conference = matches!(
        mode,
        Mode::Api {
            conference_data: false,
            ..
        }
    );
    let kept =
        |key: &str| KEPT_ON_PUT.contains(&key) || (keep_conference && key == "conferenceData");
    let mut next: Map<String, Value> = old
        .as_object()
        .expect("an object")
        .iter()
        .filter(|(k, _)| kept(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let Value::Object(body) = body else {
        unreachable!("bodies are objects")
    };
    next.extend(body.into_iter().filter(|(_, v)| !v.is_null()));
    Value::Object(next)
}

/// PATCH: a JSON merge (objects recursively, arrays replaced, `null` deletes). A `start`/`end`
/// that switches between `date` and `dateTime` drops the other form.
fn merged(old: &Value, patch: Value) -> Value {
    let mut next = old.clone();
    merge_into(&mut next, patch);
    for key in ["start", "end"] {
        let Some(point) = next.get_mut(key).and_then(Value::as_object_mut) else {
            continue;
        };
        if point.contains_key("date") && point.contains_key("dateTime") {
            // The form the old version lacked is the one the patch brought.
            let keep_date = old[key].get("date").is_none();
            point.remove(if keep_date { "dateTime" } else { "date" });
        }
    }
    next
}

fn merge_into(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(fields), Value::Object(patch)) => {
            for (k, v) in patch {
                if v.is_null() {
                    fields.remove(&k);
                } else if v.is_object() && fields.get(&k).is_some_and(Value::is_object) {
                    merge_into(fields.get_mut(&k).expect("checked"), v);
                } else {
                    fields.insert(k, v);
                }
            }
        }
        (target, patch) => *target = patch,
    }
}

fn take_string(body: &mut Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match body.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::parse_error()),
    }
}

/// Google's rule for client ids: base32hex lower case (a–v, 0–9), 5 to 1024 characters.
pub fn valid_id(id: &str) -> bool {
    (5..=1024).contains(&id.len()) && id.bytes().all(|b| matches!(b, b'a'..=b'v' | b'0'..=b'9'))
}

fn generated_id(clock: &mut Clock) -> String {
    let digest = Sha256::digest(clock.next().to_be_bytes());
    wire::base32hex(&digest, 26)
}

fn html_link(id: &str, calendar: &str) -> String {
    let eid = STANDARD_NO_PAD.encode(format!("{id} {calendar}"));
    format!("https://www.google.com/calendar/event?eid={eid}")
}

// ---------------------------------------------------------------------------------------------
// Validation

/// What Google checks on a written event, for the fields the fake implements.
fn validate(event: &Value, cal_tz: Tz, mode: Mode, knobs: &Knobs) -> Result<(), ApiError> {
    let fields = event.as_object().ok_or_else(ApiError::parse_error)?;
    check_types(fields)?;
    let start = parse_point(fields.get("start"), "start")?;
    let end = parse_point(fields.get("end"), "end")?;
    match (start.when, end.when) {
        (When::Day(s), When::Day(e)) if e <= s => return Err(ApiError::time_range_empty("end")),
        (When::At(s), When::At(e)) if e < s => return Err(ApiError::time_range_empty("end")),
        (When::Day(_), When::At(_)) | (When::At(_), When::Day(_)) => {
            return Err(ApiError::invalid("Invalid end time.").at("parameter", "end"));
        }
        _ => {}
    }
    check_recurrence(fields, start, cal_tz)?;
    if mode != Mode::Seed {
        check_enum(fields, "status", &["confirmed", "tentative", "cancelled"])?;
        check_enum(
            fields,
            "visibility",
            &["default", "public", "private", "confidential"],
        )?;
        check_enum(fields, "transparency", &["opaque", "transparent"])?;
        let types = [
            "default",
            "outOfOffice",
            "focusTime",
            "workingLocation",
            "birthday",
            "fromGmail",
        ];
        check_enum(fields, "eventType", &types)?;
    }
    check_extended_properties(fields, knobs.ext_prop_limits)
}

/// JSON types of the fields the fake reads.
fn check_types(fields: &Map<String, Value>) -> Result<(), ApiError> {
    let ok = |key: &str, want: fn(&Value) -> bool| {
        fields.get(key).is_none_or(|v| v.is_null() || want(v))
    };
    let strings = [
        "summary",
        "description",
        "location",
        "colorId",
        "status",
        "visibility",
        "transparency",
        "eventType",
    ];
    let arrays = ["attendees", "recurrence", "attachments"];
    let objects = [
        "start",
        "end",
        "extendedProperties",
        "reminders",
        "source",
        "conferenceData",
    ];
    let fine = strings.iter().all(|k| ok(k, Value::is_string))
        && arrays.iter().all(|k| ok(k, Value::is_array))
        && objects.iter().all(|k| ok(k, Value::is_object))
        && ok("sequence", Value::is_i64);
    if fine {
        Ok(())
    } else {
        Err(ApiError::parse_error())
    }
}

fn check_enum(fields: &Map<String, Value>, key: &str, allowed: &[&str]) -> Result<(), ApiError> {
    match fields.get(key).and_then(Value::as_str) {
        Some(v) if !allowed.contains(&v) => {
            Err(ApiError::invalid(format!("Invalid {key} value.")).at("parameter", key))
        }
        _ => Ok(()),
    }
}

/// `start`/`end`: exactly one of `date` and `dateTime`; a `dateTime` without offset needs a
/// `timeZone`; zones are IANA names.
fn parse_point(value: Option<&Value>, which: &str) -> Result<Point, ApiError> {
    let missing = || ApiError::required(format!("Missing {which} time.")).at("parameter", which);
    let Some(fields) = value.and_then(Value::as_object) else {
        return Err(missing());
    };
    let tz = match fields.get("timeZone") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Some(name.parse::<Tz>().map_err(|_| {
            ApiError::invalid(format!("Invalid time zone definition for {which} time."))
                .at("parameter", which)
        })?),
        Some(_) => return Err(ApiError::parse_error()),
    };
    let text = |key: &str| fields.get(key).and_then(Value::as_str);
    let invalid = || ApiError::invalid(format!("Invalid {which} time.")).at("parameter", which);
    let when = match (text("date"), text("dateTime")) {
        (Some(date), None) => {
            When::Day(NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| invalid())?)
        }
        (None, Some(date_time)) => When::At(parse_date_time(date_time, tz, which)?),
        (Some(_), Some(_)) => return Err(invalid()),
        (None, None) => return Err(missing()),
    };
    Ok(Point { when, tz })
}

/// RFC 3339 with offset, or a local time read in `tz`.
fn parse_date_time(text: &str, tz: Option<Tz>, which: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .map_err(|_| ApiError::invalid(format!("Invalid {which} time.")).at("parameter", which))?;
    let tz = tz.ok_or_else(|| {
        ApiError::invalid(format!("Missing time zone definition for {which} time."))
            .at("parameter", which)
    })?;
    Ok(local_to_utc(tz, local))
}

/// A series needs a `timeZone` (timed) and lines the fake can expand exactly.
fn check_recurrence(fields: &Map<String, Value>, start: Point, cal_tz: Tz) -> Result<(), ApiError> {
    let Some(lines) = recurrence_lines(fields)? else {
        return Ok(());
    };
    if fields.contains_key("recurringEventId") {
        return Err(ApiError::invalid("Invalid recurrence rule.").at("parameter", "recurrence"));
    }
    let frame = match start.when {
        When::At(_) if start.tz.is_none() => {
            let text = "Missing time zone definition for start time.";
            return Err(ApiError::invalid(text).at("parameter", "start"));
        }
        when => frame_of(when, start.tz, cal_tz),
    };
    let rules = recurrence::parse(&lines).and_then(|r| r.check(&frame).map(|()| r));
    rules.map(|_| ()).map_err(|why| {
        let text = if why.starts_with("fake:") {
            why
        } else {
            format!("Invalid recurrence rule. ({why})")
        };
        ApiError::invalid(text).at("parameter", "recurrence")
    })
}

/// The `recurrence[]` strings, `None` for a single event.
fn recurrence_lines(fields: &Map<String, Value>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(Value::Array(items)) = fields.get("recurrence") else {
        return Ok(None);
    };
    if items.is_empty() {
        return Ok(None);
    }
    items
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(ApiError::parse_error)
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn frame_of(when: When, tz: Option<Tz>, cal_tz: Tz) -> Frame {
    match when {
        When::Day(d) => Frame {
            all_day: true,
            tz: cal_tz,
            start: d.and_hms_opt(0, 0, 0).expect("midnight"),
        },
        When::At(t) => {
            let tz = tz.unwrap_or(cal_tz);
            Frame {
                all_day: false,
                tz,
                start: t.with_timezone(&tz).naive_local(),
            }
        }
    }
}

/// String maps under `private`/`shared`, within the length limits (unverified: 44/1024).
fn check_extended_properties(
    fields: &Map<String, Value>,
    limits: Option<(usize, usize)>,
) -> Result<(), ApiError> {
    let Some(properties) = fields.get("extendedProperties").and_then(Value::as_object) else {
        return Ok(());
    };
    for scope in ["private", "shared"] {
        let Some(map) = properties.get(scope) else {
            continue;
        };
        let map = map.as_object().ok_or_else(ApiError::parse_error)?;
        for (key, value) in map {
            let value = value.as_str().ok_or_else(ApiError::parse_error)?;
            if let Some((max_key, max_value)) = limits
                && (key.chars().count() > max_key || value.chars().count() > max_value)
            {
                let text = format!(
                    "fake: extended property too long (limits {max_key}/{max_value}, unverified)"
                );
                return Err(ApiError::invalid(text).at("parameter", "extendedProperties"));
            }
        }
    }
    Ok(())
}

/// What Google stores for what a client sent: defaults omitted (`visibility: default`,
/// `transparency: opaque`), times rendered in their zone, nulls gone.
fn normalize(event: &mut Value, cal_tz: Tz) {
    let fields = event.as_object_mut().expect("validated as an object");
    fields.retain(|_, v| !v.is_null());
    if fields.get("visibility").is_some_and(|v| v == "default") {
        fields.remove("visibility");
    }
    if fields.get("transparency").is_some_and(|v| v == "opaque") {
        fields.remove("transparency");
    }
    for key in ["start", "end"] {
        let Ok(point) = parse_point(fields.get(key), key) else {
            continue;
        };
        fields.insert(key.into(), point_json(point, cal_tz));
    }
}

fn point_json(point: Point, cal_tz: Tz) -> Value {
    let mut out = match point.when {
        When::Day(d) => json!({ "date": d.format("%Y-%m-%d").to_string() }),
        When::At(t) => json!({ "dateTime": render_instant(t, point.tz.unwrap_or(cal_tz)) }),
    };
    if let Some(tz) = point.tz {
        out["timeZone"] = json!(tz.name());
    }
    out
}

fn render_instant(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

// ---------------------------------------------------------------------------------------------
// Series and instances

/// A stored master, ready to expand.
pub struct Series {
    id: String,
    master: Value,
    pub frame: Frame,
    recurrence: Recurrence,
    length: Length,
}

enum Length {
    Days(i64),
    Span(Duration),
}

impl Series {
    /// `None` unless `event` is a recurring master the fake can expand.
    pub fn of(event: &Value, cal_tz: Tz) -> Option<Series> {
        let fields = event.as_object()?;
        if fields.contains_key("recurringEventId") {
            return None;
        }
        let lines = recurrence_lines(fields).ok()??;
        let (start, end) = (
            parse_point(fields.get("start"), "start").ok()?,
            parse_point(fields.get("end"), "end").ok()?,
        );
        let frame = frame_of(start.when, start.tz, cal_tz);
        let length = match (start.when, end.when) {
            (When::Day(s), When::Day(e)) => Length::Days((e - s).num_days()),
            (When::At(s), When::At(e)) => Length::Span(e - s),
            _ => return None,
        };
        Some(Series {
            id: fields.get("id")?.as_str()?.to_string(),
            master: event.clone(),
            frame,
            recurrence: recurrence::parse(&lines).ok()?,
            length,
        })
    }

    pub fn expand(&self, horizon: Option<DateTime<Utc>>, limit: usize) -> Vec<NaiveDateTime> {
        self.recurrence.expand(&self.frame, horizon, limit)
    }

    /// `{master}_{YYYYMMDDTHHMMSSZ}` for timed series, `{master}_{YYYYMMDD}` for all-day ones.
    pub fn instance_id(&self, local: NaiveDateTime) -> String {
        if self.frame.all_day {
            format!("{}_{}", self.id, local.format("%Y%m%d"))
        } else {
            format!(
                "{}_{}",
                self.id,
                self.frame.instant(local).format("%Y%m%dT%H%M%SZ")
            )
        }
    }

    /// The start and end of the instance that starts (originally) at `local`.
    fn points(&self, local: NaiveDateTime) -> (Value, Value) {
        match self.length {
            Length::Days(days) => {
                let date = local.date();
                let point = |d: NaiveDate| json!({ "date": d.format("%Y-%m-%d").to_string() });
                (point(date), point(date + Duration::days(days)))
            }
            Length::Span(span) => {
                let start = self.frame.instant(local);
                let point = |t: DateTime<Utc>| json!({ "dateTime": render_instant(t, self.frame.tz), "timeZone": self.frame.tz.name() });
                (point(start), point(start + span))
            }
        }
    }

    /// An untouched instance: the master's fields without `recurrence`, with the instance's own
    /// id, times, `recurringEventId` and `originalStartTime` (and the master's status).
    pub fn render(&self, local: NaiveDateTime) -> Value {
        let mut instance = self.master.clone();
        let fields = instance.as_object_mut().expect("an object");
        let (start, end) = self.points(local);
        fields.remove("recurrence");
        fields.insert("id".into(), json!(self.instance_id(local)));
        fields.insert("recurringEventId".into(), json!(self.id));
        fields.insert("originalStartTime".into(), start.clone());
        fields.insert("start".into(), start);
        fields.insert("end".into(), end);
        instance
    }
}

/// The instance a virtual id names, if the series really has an instance there.
fn virtual_instance(cal: &Calendar, id: &str) -> Option<Value> {
    let (master_id, stamp) = id.rsplit_once('_')?;
    let series = Series::of(&cal.events.get(master_id)?.resource, cal.time_zone)?;
    let local = if series.frame.all_day {
        NaiveDate::parse_from_str(stamp, "%Y%m%d")
            .ok()?
            .and_hms_opt(0, 0, 0)?
    } else {
        let utc = NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ")
            .ok()?
            .and_utc();
        utc.with_timezone(&series.frame.tz).naive_local()
    };
    let horizon = series.frame.instant(local) + Duration::seconds(1);
    series
        .expand(Some(horizon), usize::MAX)
        .contains(&local)
        .then(|| series.render(local))
}

/// Every instance of a stored series, exceptions in their slots (cancelled ones included),
/// up to `horizon` or `limit`.
pub fn series_instances(
    cal: &Calendar,
    series_id: &str,
    horizon: Option<DateTime<Utc>>,
    limit: usize,
) -> Result<Vec<Value>, ApiError> {
    let master = cal.events.get(series_id).ok_or_else(ApiError::not_found)?;
    let series = Series::of(&master.resource, cal.time_zone).ok_or_else(|| {
        ApiError::invalid(
            "fake: /instances of an event that is not a recurring series (unverified)",
        )
    })?;
    Ok(series
        .expand(horizon, limit)
        .into_iter()
        .map(|local| match cal.events.get(&series.instance_id(local)) {
            Some(exception) => exception.resource.clone(),
            None => series.render(local),
        })
        .collect())
}

/// The instance id for an original start given as RFC 3339 (timed) or `YYYY-MM-DD` (all-day).
pub fn instance_id_for(series_id: &str, original_start: &str) -> String {
    if let Ok(date) = NaiveDate::parse_from_str(original_start, "%Y-%m-%d") {
        return format!("{series_id}_{}", date.format("%Y%m%d"));
    }
    let t = DateTime::parse_from_rfc3339(original_start).expect("an RFC 3339 original start");
    format!(
        "{series_id}_{}",
        t.with_timezone(&Utc).format("%Y%m%dT%H%M%SZ")
    )
}

/// The UTC span of a stored event or instance; all-day dates are read in the calendar's zone.
pub fn span(event: &Value, cal_tz: Tz) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let instant = |key: &str| -> Option<DateTime<Utc>> {
        match parse_point(event.get(key), key).ok()?.when {
            When::Day(d) => Some(local_to_utc(cal_tz, d.and_hms_opt(0, 0, 0)?)),
            When::At(t) => Some(t),
        }
    };
    Some((instant("start")?, instant("end")?))
}
