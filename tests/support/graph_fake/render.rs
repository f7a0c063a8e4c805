//! How events look in Graph's answers: defaults, written fields, computed ones, and the
//! `$select`/`$expand` shaping. Occurrences are shown from their master.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::odata::PropertyId;
use super::time::{self, Zone};
use super::{Event, EventType, Mailbox, Reply, Target, occurrence_id, zone_of};

/// A short plain-text preview of a body, as Graph's `bodyPreview`.
fn body_preview(content: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in content.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    words.join(" ").chars().take(255).collect()
}

fn ical_uid(id: &str) -> String {
    let digest = Sha256::digest(id.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02X}")).collect();
    format!("040000008200E00074C5B7101A82E00800000000{hex}")
}

/// A time as shown: in `out`, or, for all-day events, midnight of the event's own date.
fn shown_time(instant: DateTime<Utc>, all_day: bool, own: &Zone, out: &Zone) -> Value {
    if all_day {
        json!({"dateTime": time::format_wall(own.local(instant)), "timeZone": out.label})
    } else {
        time::date_time_time_zone(instant, out)
    }
}

/// Written properties that are shown as written (the rest of an event's fields are computed).
const SHOWN_AS_WRITTEN: &str = "subject body isAllDay sensitivity showAs importance isCancelled \
    categories location locations attendees organizer isOnlineMeeting onlineMeeting \
    onlineMeetingProvider isReminderOn reminderMinutesBeforeStart responseRequested \
    allowNewTimeProposals hideAttendees";

/// What differs between showing a stored event and showing an occurrence of a master.
struct Shown<'a> {
    id: String,
    event_type: &'static str,
    /// The stored event whose fields are shown (the master, for an occurrence).
    source: &'a Event,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    master: Option<&'a str>,
    original_start: Option<DateTime<Utc>>,
}

/// An event as Graph shows it, times in `out`: Graph's defaults, then the written fields.
fn render(mailbox: &Mailbox, shown: Shown, out: &Zone) -> Map<String, Value> {
    let source = shown.source;
    let props = &source.props;
    let own = zone_of(&props["start"]);
    let all_day = source.is_all_day();
    let mut fields = json!({
        "@odata.type": "#microsoft.graph.event", "@odata.etag": source.etag(),
        "id": shown.id, "changeKey": source.change_key, "iCalUId": ical_uid(&shown.id),
        "type": shown.event_type, "seriesMasterId": shown.master,
        "createdDateTime": time::format_instant(source.created),
        "lastModifiedDateTime": time::format_instant(source.modified),
        "start": shown_time(shown.start, all_day, &own, out),
        "end": shown_time(shown.end, all_day, &own, out),
        "originalStartTimeZone": own.label, "originalEndTimeZone": zone_of(&props["end"]).label,
        "subject": "", "body": {"contentType": "html", "content": ""}, "bodyPreview": "",
        "isAllDay": false, "sensitivity": "normal", "showAs": "busy", "importance": "normal",
        "isCancelled": false, "categories": [], "attendees": [], "organizer": mailbox.organizer(),
        "location": {"displayName": "", "locationType": "default", "uniqueIdType": "unknown"},
        "locations": [], "isOrganizer": true, "isOnlineMeeting": false, "onlineMeeting": null,
        "onlineMeetingProvider": "unknown", "onlineMeetingUrl": null, "isReminderOn": true,
        "reminderMinutesBeforeStart": 15, "responseRequested": true, "allowNewTimeProposals": true,
        "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"},
        "hideAttendees": false, "hasAttachments": false, "isDraft": false, "recurrence": null,
    });
    let fields = fields.as_object_mut().expect("an object");
    for name in SHOWN_AS_WRITTEN.split_whitespace() {
        if let Some(value) = props.get(name) {
            fields.insert(name.to_string(), value.clone());
        }
    }
    let preview = body_preview(fields["body"]["content"].as_str().unwrap_or(""));
    fields.insert("bodyPreview".into(), json!(preview));
    if let Some(original) = shown.original_start {
        let text = time::format_original_start(original);
        fields.insert("originalStart".into(), json!(text));
    }
    fields.clone()
}

/// A stored event as Graph shows it, times in `out`.
pub(super) fn render_stored(mailbox: &Mailbox, event: &Event, out: &Zone) -> Map<String, Value> {
    let shown = Shown {
        id: event.id.clone(),
        event_type: event.event_type.name(),
        source: event,
        start: event.start(),
        end: event.end(),
        master: event.master.as_deref(),
        original_start: event.original_start,
    };
    let mut fields = render(mailbox, shown, out);
    if let (EventType::Master, Some(recurrence)) = (event.event_type, event.props.get("recurrence"))
    {
        fields.insert("recurrence".into(), time::normalized_recurrence(recurrence));
    }
    if let Some(transaction) = event.props.get("transactionId") {
        fields.insert("transactionId".into(), transaction.clone());
    }
    fields
}

/// The occurrence of `master` starting at `start`, in full, times in `out`.
pub(super) fn render_occurrence(
    mailbox: &Mailbox,
    master: &Event,
    start: DateTime<Utc>,
    out: &Zone,
) -> Map<String, Value> {
    let shown = Shown {
        id: occurrence_id(&master.id, start),
        event_type: "occurrence",
        source: master,
        start,
        end: start + (master.end() - master.start()),
        master: Some(&master.id),
        original_start: Some(start),
    };
    render(mailbox, shown, out)
}

/// What a target shows in full.
pub(super) fn render_target(mailbox: &Mailbox, target: &Target, out: &Zone) -> Map<String, Value> {
    match target {
        Target::Stored(id) => render_stored(mailbox, &mailbox.events[id], out),
        Target::Occurrence { master, start } => {
            render_occurrence(mailbox, &mailbox.events[master], *start, out)
        }
    }
}

/// Whether a whitespace-separated list names `name`.
pub(super) fn listed(list: &str, name: &str) -> bool {
    list.split_whitespace().any(|n| n == name)
}

/// The event properties `$select` may name.
pub(super) const EVENT_PROPERTIES: &str = "allowNewTimeProposals attendees body bodyPreview categories changeKey createdDateTime \
    end hasAttachments hideAttendees iCalUId id importance isAllDay isCancelled isDraft \
    isOnlineMeeting isOrganizer isReminderOn lastModifiedDateTime location locations \
    onlineMeeting onlineMeetingProvider onlineMeetingUrl organizer originalEndTimeZone \
    originalStart originalStartTimeZone recurrence reminderMinutesBeforeStart \
    responseRequested responseStatus sensitivity seriesMasterId showAs start subject \
    transactionId type webLink";

/// Applies `$expand` (extended properties matching an id) and `$select` to a rendered event.
pub(super) fn shape(
    mut fields: Map<String, Value>,
    extended: &[(String, String)],
    expand: Option<&PropertyId>,
    select: Option<&str>,
) -> Result<Map<String, Value>, Reply> {
    if let Some(wanted) = expand {
        let matching: Vec<Value> = extended
            .iter()
            .filter(|(id, _)| PropertyId::parse(id).as_ref() == Some(wanted))
            .map(|(id, value)| json!({"id": id, "value": value}))
            .collect();
        if !matching.is_empty() {
            fields.insert("singleValueExtendedProperties".into(), json!(matching));
        }
    }
    let Some(select) = select else {
        return Ok(fields);
    };
    let mut keep: Vec<&str> = vec![
        "id",
        "@odata.etag",
        "@odata.type",
        "singleValueExtendedProperties",
    ];
    for name in select.split(',').map(str::trim) {
        if !listed(EVENT_PROPERTIES, name) {
            return Err(Reply::error(
                400,
                "RequestBroker--ParseUri",
                &format!(
                    "Could not find a property named '{name}' on type 'microsoft.graph.event'."
                ),
            ));
        }
        keep.push(name);
    }
    fields.retain(|name, _| keep.contains(&name.as_str()));
    Ok(fields)
}

/// A stored event for inspection: rendered in UTC with every extended property.
pub(super) fn stored_json(mailbox: &Mailbox, event: &Event) -> Value {
    let mut fields = render_stored(mailbox, event, &Zone::utc());
    let extended: Vec<Value> = event
        .extended
        .iter()
        .map(|(id, value)| json!({"id": id, "value": value}))
        .collect();
    fields.insert("singleValueExtendedProperties".into(), json!(extended));
    fields.insert("calendarId".into(), json!(event.calendar));
    Value::Object(fields)
}
