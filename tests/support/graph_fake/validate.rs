//! What a written event body must look like: the documented property names, types and enum
//! values, `dateTimeTimeZone` slots and extended property ids, checked as Graph reads a payload.

use serde_json::{Map, Value};

use super::odata::PropertyId;
use super::render::{EVENT_PROPERTIES, listed};
use super::time::{self, Zone};
use super::{Reply, instant_of};

/// Who is writing event properties: a client (create or update, strict) or a test seeding the
/// mailbox as a person in Outlook would (read-only fields and odd enum values allowed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Writer {
    Create,
    Update,
    Seed,
}

const WRITABLE: &str = "allowNewTimeProposals attendees body categories end hideAttendees importance isAllDay \
    isOnlineMeeting isReminderOn location locations onlineMeetingProvider \
    originalEndTimeZone originalStartTimeZone recurrence reminderMinutesBeforeStart \
    responseRequested sensitivity showAs singleValueExtendedProperties start subject \
    transactionId";
/// Read-only properties a person in Outlook (or an organizer's action) can still produce.
const SEEDABLE: &str = "isCancelled organizer onlineMeeting";
const NOT_IN_FAKE: &str = "attachments extensions multiValueExtendedProperties instances calendar";

pub(super) fn bad_request(code: &str, message: String) -> Reply {
    Reply::error(400, code, &message)
}

fn one_of(name: &str, value: &Value, allowed: &[&str], writer: Writer) -> Result<(), Reply> {
    match value.as_str() {
        Some(_) if writer == Writer::Seed => Ok(()),
        Some(text) if allowed.contains(&text) => Ok(()),
        _ => Err(bad_request(
            "RequestBodyRead",
            format!("Cannot convert the literal '{value}' to the expected type of '{name}'."),
        )),
    }
}

fn check_time_slot(name: &str, value: &Value) -> Result<(), Reply> {
    let Some(slot) = value.as_object() else {
        return Err(bad_request(
            "RequestBodyRead",
            format!("'{name}' must be a dateTimeTimeZone object."),
        ));
    };
    if let Some(extra) = slot
        .keys()
        .find(|k| !["dateTime", "timeZone", "@odata.type"].contains(&k.as_str()))
    {
        return Err(bad_request(
            "RequestBodyRead",
            format!(
                "The property '{extra}' does not exist on type 'microsoft.graph.dateTimeTimeZone'."
            ),
        ));
    }
    let date_time = slot.get("dateTime").and_then(Value::as_str);
    if date_time.and_then(time::parse_wall).is_none() {
        return Err(bad_request(
            "ErrorInvalidRequest",
            format!(
                "'{name}.dateTime' must be a date and time without offset, e.g. 2026-05-01T10:00:00.0000000 (got {date_time:?})."
            ),
        ));
    }
    match slot.get("timeZone").and_then(Value::as_str) {
        Some(zone) if Zone::named(zone).is_some() => Ok(()),
        zone => Err(bad_request(
            "TimeZoneNotSupportedException",
            format!(
                "A valid TimeZone value must be specified. The following TimeZone value is not supported: '{}'.",
                zone.unwrap_or("")
            ),
        )),
    }
}

fn check_extended(value: &Value) -> Result<(), Reply> {
    let items = value.as_array().ok_or_else(|| {
        bad_request(
            "RequestBodyRead",
            "singleValueExtendedProperties must be an array.".into(),
        )
    })?;
    for item in items {
        let id = item["id"].as_str().unwrap_or("");
        if PropertyId::parse(id).is_none() {
            return Err(bad_request(
                "ErrorInvalidProperty",
                format!("The extended property id '{id}' is not of a supported format."),
            ));
        }
        if !item["value"].is_string() {
            return Err(bad_request(
                "RequestBodyRead",
                "An extended property value must be a string.".into(),
            ));
        }
    }
    Ok(())
}

/// Checks one written property.
fn check_property(name: &str, value: &Value, writer: Writer) -> Result<(), Reply> {
    let expect = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(bad_request(
                "RequestBodyRead",
                format!("'{name}' must be {what}."),
            ))
        }
    };
    match name {
        "subject" | "transactionId" | "originalStartTimeZone" | "originalEndTimeZone" => {
            expect(value.is_string(), "a string")
        }
        "isAllDay"
        | "isOnlineMeeting"
        | "isReminderOn"
        | "responseRequested"
        | "allowNewTimeProposals"
        | "hideAttendees"
        | "isCancelled" => expect(value.is_boolean(), "true or false"),
        "reminderMinutesBeforeStart" => expect(value.is_i64(), "an integer"),
        "sensitivity" => one_of(
            name,
            value,
            &["normal", "personal", "private", "confidential"],
            writer,
        ),
        "showAs" => one_of(
            name,
            value,
            &[
                "free",
                "tentative",
                "busy",
                "oof",
                "workingElsewhere",
                "unknown",
            ],
            writer,
        ),
        "importance" => one_of(name, value, &["low", "normal", "high"], writer),
        "onlineMeetingProvider" => one_of(
            name,
            value,
            &[
                "unknown",
                "teamsForBusiness",
                "skypeForBusiness",
                "skypeForConsumer",
            ],
            writer,
        ),
        "body" => {
            let ok = value.as_object().is_some_and(|b| {
                b.keys()
                    .all(|k| ["contentType", "content"].contains(&k.as_str()))
                    && b.get("content").is_none_or(Value::is_string)
                    && b.get("contentType")
                        .is_none_or(|t| matches!(t.as_str(), Some("text" | "html")))
            });
            expect(ok, "an itemBody {contentType: text|html, content}")
        }
        "start" | "end" => check_time_slot(name, value),
        "categories" => expect(
            value
                .as_array()
                .is_some_and(|a| a.iter().all(Value::is_string)),
            "an array of strings",
        ),
        "location" | "organizer" | "onlineMeeting" => expect(value.is_object(), "an object"),
        "locations" | "attendees" => expect(
            value
                .as_array()
                .is_some_and(|a| a.iter().all(Value::is_object)),
            "an array of objects",
        ),
        "recurrence" if value.is_null() => Ok(()),
        "recurrence" => time::parse_recurrence(value).map(|_| ()).map_err(|why| {
            bad_request("ErrorInvalidRequest", format!("Invalid recurrence: {why}."))
        }),
        "singleValueExtendedProperties" => check_extended(value),
        _ => Ok(()),
    }
}

/// Checks a written body property by property, as Graph reads a request payload.
pub(super) fn check_fields(body: &Map<String, Value>, writer: Writer) -> Result<(), Reply> {
    for (name, value) in body {
        if name == "@odata.type" {
            if !matches!(
                value.as_str(),
                Some("#microsoft.graph.event" | "microsoft.graph.event")
            ) {
                return Err(bad_request(
                    "RequestBodyRead",
                    format!("Unexpected @odata.type {value}."),
                ));
            }
            continue;
        }
        let seedable = writer == Writer::Seed && listed(SEEDABLE, name.as_str());
        if listed(NOT_IN_FAKE, name.as_str()) {
            return Err(Reply::error(
                501,
                "NotImplementedInFake",
                &format!("graph fake: writing '{name}' is not implemented"),
            ));
        }
        if !listed(WRITABLE, name.as_str()) && !seedable {
            let (code, message) = if listed(EVENT_PROPERTIES, name.as_str()) {
                (
                    "ErrorInvalidPropertySet",
                    format!("The property '{name}' is read-only and cannot be set."),
                )
            } else {
                (
                    "RequestBodyRead",
                    format!(
                        "The property '{name}' does not exist on type 'Microsoft.OutlookServices.Event'. Make sure to only use property names that are defined by the type or mark the type as open type."
                    ),
                )
            };
            return Err(bad_request(code, message));
        }
        check_property(name, value, writer)?;
    }
    if writer == Writer::Update && body.contains_key("transactionId") {
        return Err(bad_request(
            "ErrorInvalidPropertyUpdate",
            "The property 'transactionId' cannot be changed once the event exists.".into(),
        ));
    }
    Ok(())
}

/// Checks an event as a whole after a create or a merged update.
pub(super) fn check_event(props: &Map<String, Value>) -> Result<(), Reply> {
    let (Some(start), Some(end)) = (props.get("start"), props.get("end")) else {
        return Err(bad_request(
            "ErrorInvalidRequest",
            "An event needs a start and an end.".into(),
        ));
    };
    let (start_at, end_at) = (instant_of(start), instant_of(end));
    if end_at < start_at {
        return Err(bad_request(
            "ErrorInvalidRequest",
            "The end of an event cannot be before its start.".into(),
        ));
    }
    if props.get("isAllDay") == Some(&Value::Bool(true)) {
        let midnight = |slot: &Value| {
            time::parse_wall(slot["dateTime"].as_str().unwrap_or(""))
                .is_some_and(|t| t.time() == chrono::NaiveTime::MIN)
        };
        let same_zone = start["timeZone"] == end["timeZone"];
        if !midnight(start) || !midnight(end) || !same_zone || end_at <= start_at {
            return Err(bad_request(
                "ErrorPropertyValidationFailure",
                "An all-day event must start and end at midnight of the same time zone, ending after it starts.".into(),
            ));
        }
    }
    Ok(())
}
