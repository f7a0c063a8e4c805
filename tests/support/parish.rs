//! The parish calendar both the .ics and the CalDAV tests publish: public events of every
//! shape (a series with a private and a moved occurrence, all-day, zoned, UTC) and everything
//! that must never be published, with the checks of what the published side must hold.

use super::ics::{Component, feed, timed, ymd};

/// Titles that must never leave the source.
pub const PRIVATE_TITLES: &[&str] = &[
    "Salary review with J. Doe",
    "Disciplinary hearing M. Roe",
    "Staff gossip about X",
    "Therapy appointment Q. Public",
    "Counselling session K. Miller",
    "Staff meeting (internal)",
];

/// What the parish publishes: master titles, sorted.
pub const PUBLISHED: &[&str] = &[
    "Choir rehearsal",
    "Open day",
    "Parish council",
    "Summer fete",
];

/// Source items withheld as not public (private, confidential, unknown class, lower-case
/// private).
pub const WITHHELD_NOT_PUBLIC: u64 = 4;

/// The VEVENT bodies of the parish calendar, dated around today.
pub fn events() -> Vec<String> {
    let series_start = ymd(7);
    let private_occurrence = ymd(14);
    let moved_occurrence = ymd(21);
    vec![
        timed(
            "council@intranet.parish.example",
            "Parish council",
            10,
            "CLASS:PUBLIC\nLOCATION:Parish hall\nDESCRIPTION:Agenda: budget.\\nJoin Zoom Meeting\\nhttps://us02web.zoom.us/j/8123?pwd=x\n\
             ORGANIZER;CN=Office:mailto:office@parish.example\nATTENDEE;CN=Anna:mailto:anna@parish.example\n\
             X-MICROSOFT-CDO-BUSYSTATUS:BUSY\nBEGIN:VALARM\nACTION:DISPLAY\nDESCRIPTION:Reminder\nTRIGGER:-PT15M\nEND:VALARM",
        ),
        format!(
            "UID:openday@intranet.parish.example\nDTSTAMP:20260101T000000Z\nDTSTART:{d}T090000Z\nDTEND:{d}T150000Z\nSUMMARY:Open day\nCATEGORIES:Community,Youth",
            d = ymd(20)
        ),
        format!(
            "UID:fete@intranet.parish.example\nDTSTAMP:20260101T000000Z\nDTSTART;VALUE=DATE:{}\nDTEND;VALUE=DATE:{}\nSUMMARY:Summer fete\nCLASS:PUBLIC",
            ymd(30),
            ymd(32)
        ),
        timed(
            "salary@intranet",
            PRIVATE_TITLES[0],
            5,
            "CLASS:PRIVATE\nDESCRIPTION:Raise for J. Doe",
        ),
        timed(
            "hearing@intranet",
            PRIVATE_TITLES[1],
            6,
            "CLASS:CONFIDENTIAL",
        ),
        timed("gossip@intranet", PRIVATE_TITLES[2], 8, "CLASS:X-STAFF"),
        timed("therapy@intranet", PRIVATE_TITLES[3], 9, "class:private"),
        timed(
            "staff@intranet",
            PRIVATE_TITLES[5],
            11,
            "CATEGORIES:Staff only",
        ),
        timed(
            "concert@intranet",
            "Cancelled concert",
            12,
            "STATUS:CANCELLED",
        ),
        timed("jubilee@intranet", "Jubilee far ahead", 500, ""),
        timed("harvest@intranet", "Harvest festival long ago", -60, ""),
        format!(
            "UID:choir@intranet.parish.example\nDTSTAMP:20260101T000000Z\nDTSTART;TZID=Europe/Berlin:{series_start}T180000\n\
             DTEND;TZID=Europe/Berlin:{series_start}T193000\nRRULE:FREQ=WEEKLY;COUNT=6\nSUMMARY:Choir rehearsal\nCLASS:PUBLIC"
        ),
        format!(
            "UID:choir@intranet.parish.example\nDTSTAMP:20260101T000000Z\nRECURRENCE-ID;TZID=Europe/Berlin:{private_occurrence}T180000\n\
             DTSTART;TZID=Europe/Berlin:{private_occurrence}T180000\nDTEND;TZID=Europe/Berlin:{private_occurrence}T193000\n\
             SUMMARY:{}\nCLASS:PRIVATE",
            PRIVATE_TITLES[4]
        ),
        format!(
            "UID:choir@intranet.parish.example\nDTSTAMP:20260101T000000Z\nRECURRENCE-ID;TZID=Europe/Berlin:{moved_occurrence}T180000\n\
             DTSTART;TZID=Europe/Berlin:{moved_occurrence}T190000\nDTEND;TZID=Europe/Berlin:{moved_occurrence}T203000\n\
             SUMMARY:Choir rehearsal (moved)"
        ),
    ]
}

/// The parish calendar as one feed.
pub fn parish_feed() -> String {
    feed(&events())
}

/// The parish calendar as CalDAV resources (name, text): one per UID, master and overrides
/// together.
pub fn resources() -> Vec<(String, String)> {
    let mut by_uid: Vec<(String, Vec<String>)> = Vec::new();
    for e in events() {
        let uid = e
            .lines()
            .find_map(|l| l.trim().strip_prefix("UID:"))
            .expect("every fixture event has a UID")
            .to_string();
        match by_uid.iter_mut().find(|(u, _)| *u == uid) {
            Some((_, list)) => list.push(e),
            None => by_uid.push((uid, vec![e])),
        }
    }
    by_uid
        .into_iter()
        .map(|(uid, list)| {
            (
                format!("{}.ics", uid.split('@').next().unwrap_or("event")),
                feed(&list),
            )
        })
        .collect()
}

/// Checks published events (from a file or resources) hold exactly the parish's public
/// events, faithfully: every master, the moved occurrence in its series, the private
/// occurrence cut out, everything `CLASS:PUBLIC`, nothing that never travels, no source UID.
pub fn assert_published(events: &[&Component]) {
    let mut masters: Vec<&str> = events
        .iter()
        .filter(|e| e.get("RECURRENCE-ID").is_none())
        .map(|e| e.summary())
        .collect();
    masters.sort();
    assert_eq!(masters, PUBLISHED);
    let overrides: Vec<&str> = events
        .iter()
        .filter(|e| e.get("RECURRENCE-ID").is_some())
        .map(|e| e.summary())
        .collect();
    assert_eq!(overrides, ["Choir rehearsal (moved)"]);
    for e in events {
        assert_eq!(e.get("CLASS"), Some("PUBLIC"), "{}", e.summary());
        for banned in ["ATTENDEE", "ORGANIZER", "X-MICROSOFT-CDO-BUSYSTATUS"] {
            assert!(
                e.get(banned).is_none(),
                "{banned} travelled with {}",
                e.summary()
            );
        }
        assert!(
            e.children.is_empty(),
            "a VALARM travelled with {}",
            e.summary()
        );
        let uid = e.get("UID").expect("a UID");
        assert!(!uid.contains("intranet"), "the source UID travelled: {uid}");
    }
    let find = |title: &str| {
        events
            .iter()
            .find(|e| e.summary() == title && e.get("RECURRENCE-ID").is_none())
            .unwrap_or_else(|| panic!("{title} is not published"))
    };
    let council = find("Parish council");
    assert_eq!(council.get("DESCRIPTION"), Some("Agenda: budget."));
    assert_eq!(council.get("LOCATION"), Some("Parish hall"));
    assert_eq!(council.param("DTSTART", "TZID"), Some("Europe/Berlin"));
    let fete = find("Summer fete");
    assert_eq!(fete.param("DTSTART", "VALUE"), Some("DATE"));
    assert_eq!(fete.get("DTEND"), Some(ymd(32).as_str()));
    let choir = find("Choir rehearsal");
    assert_eq!(choir.get("RRULE"), Some("FREQ=WEEKLY;COUNT=6"));
    let exdates = choir.all("EXDATE").join(",");
    assert!(
        exdates.contains(&format!("{}T180000", ymd(14))),
        "the private occurrence is not excluded: {exdates:?}"
    );
    let moved = events
        .iter()
        .find(|e| e.summary() == "Choir rehearsal (moved)")
        .expect("the moved occurrence");
    assert_eq!(
        moved.get("UID"),
        choir.get("UID"),
        "the override left its series"
    );
}

/// Nothing private in any of these texts (published files, calsync's output).
pub fn assert_nothing_private(texts: &[&str]) {
    for text in texts {
        for title in PRIVATE_TITLES {
            assert!(!text.contains(title), "{title} leaked");
        }
        for leak in ["zoom.us", "anna@parish.example", "Raise for J. Doe"] {
            assert!(!text.contains(leak), "{leak} leaked");
        }
    }
}
