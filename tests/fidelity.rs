//! iCalendar fidelity on the real binary, one defect per test (issues 12 and 17): each feed
//! is a minimal reproduction of what a real calendar did, the time is pinned with
//! CALSYNC_NOW, and what calsync published is read back with the independent `icalendar`
//! crate. The whole corpus is `tests/realworld_corpus.rs`; these say which rule broke.

mod support;

use support::cli::Cli;
use support::ics::{self, Component};

const NOW: &str = "2026-11-29T12:00:00Z";

/// A pair `p` from `feed.ics` to `public.ics`, time pinned.
fn cli(feed: &str) -> Cli {
    let mut cli = Cli::new();
    cli.write("feed.ics", feed.replace("\r\n", "\n").replace('\n', "\r\n"));
    cli.write(
        "calsync.toml",
        "state = \"calsync.db\"\n\n[[pair]]\nname = \"p\"\n[pair.source]\nkind = \"ics\"\n\
         path = \"feed.ics\"\n[pair.target]\nkind = \"ics\"\npath = \"public.ics\"\n",
    );
    cli.env("CALSYNC_NOW", NOW);
    cli
}

/// Syncs (exit 0 expected) and reads the target back independently.
fn sync(cli: &Cli) -> (support::cli::Run, ics::Calendar) {
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let cal = ics::parse(&cli.read("public.ics"));
    (run, cal)
}

fn calendar(body: &str) -> String {
    format!("BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//Test//EN\n{body}END:VCALENDAR\n")
}

fn vevent(lines: &str) -> String {
    format!("BEGIN:VEVENT\n{}\nEND:VEVENT\n", lines.trim())
}

fn titles(cal: &ics::Calendar) -> Vec<String> {
    let mut t = cal.summaries();
    t.sort();
    t
}

// ---- 17.1 / 12.3: one event held twice --------------------------------------------------

#[test]
fn a_uid_held_twice_publishes_only_when_every_copy_is_public() {
    // A feed that appends versions: the later copy (higher SEQUENCE) turned private, or
    // cancelled; the first copy must not be published, and validate agrees.
    for later in ["CLASS:PRIVATE", "STATUS:CANCELLED", "CLASS:CONFIDENTIAL"] {
        let feed = calendar(&format!(
            "{}{}",
            vevent(
                "UID:dup-1\nSEQUENCE:0\nDTSTAMP:20261101T000000Z\nDTSTART:20261210T100000Z\nSUMMARY:Staff meeting\nCLASS:PUBLIC"
            ),
            vevent(&format!(
                "UID:dup-1\nSEQUENCE:1\nDTSTAMP:20261102T000000Z\nDTSTART:20261210T100000Z\nSUMMARY:Disciplinary hearing J. Doe\n{later}"
            )),
        ));
        let cli = cli(&feed);
        let (run, cal) = sync(&cli);
        assert!(cal.events().is_empty(), "{later}: {:?}", titles(&cal));
        assert!(!run.all_output().contains("Disciplinary"), "{later}");
        assert!(!run.all_output().contains("duplicate UID"), "{later}");
        let validate = cli.run(&["validate", "--format", "json"]);
        assert_eq!(
            validate.code, 0,
            "{later}: {}{}",
            validate.stdout, validate.stderr
        );
    }

    // The same the other way round: a private first copy, a public later one.
    let feed = calendar(&format!(
        "{}{}",
        vevent(
            "UID:dup-2\nSEQUENCE:0\nDTSTART:20261210T100000Z\nSUMMARY:Private first\nCLASS:PRIVATE"
        ),
        vevent(
            "UID:dup-2\nSEQUENCE:1\nDTSTART:20261210T100000Z\nSUMMARY:Public later\nCLASS:PUBLIC"
        ),
    ));
    let (_, cal) = sync(&cli(&feed));
    assert!(cal.events().is_empty(), "{:?}", titles(&cal));
}

#[test]
fn of_public_copies_the_highest_sequence_then_latest_dtstamp_then_last_wins() {
    let cases = [
        // (copies as (sequence, dtstamp, title), the title published)
        (
            vec![
                (2, "20261101T000000Z", "Seq two"),
                (1, "20261105T000000Z", "Seq one"),
            ],
            "Seq two",
        ),
        (
            vec![
                (1, "20261101T000000Z", "Older"),
                (1, "20261105T000000Z", "Newer"),
            ],
            "Newer",
        ),
        (
            vec![
                (1, "20261105T000000Z", "First"),
                (1, "20261105T000000Z", "Last"),
            ],
            "Last",
        ),
    ];
    for (copies, want) in cases {
        let body: String = copies
            .iter()
            .map(|(seq, stamp, title)| {
                vevent(&format!(
                    "UID:dup\nSEQUENCE:{seq}\nDTSTAMP:{stamp}\nDTSTART:20261210T100000Z\nSUMMARY:{title}"
                ))
            })
            .collect();
        let (_, cal) = sync(&cli(&calendar(&body)));
        assert_eq!(titles(&cal), vec![want.to_string()]);
    }
}

#[test]
fn one_instance_overridden_twice_is_withheld_unless_every_copy_is_public() {
    let master =
        vevent("UID:s\nDTSTART:20261203T100000Z\nRRULE:FREQ=WEEKLY;COUNT=3\nSUMMARY:Choir");
    let copy = |seq: u32, class: &str, title: &str| {
        vevent(&format!(
            "UID:s\nRECURRENCE-ID:20261210T100000Z\nSEQUENCE:{seq}\nDTSTART:20261210T110000Z\nSUMMARY:{title}\nCLASS:{class}"
        ))
    };
    let feed = calendar(&format!(
        "{master}{}{}",
        copy(1, "PUBLIC", "Choir moved"),
        copy(2, "PRIVATE", "Choir board: M. Weber")
    ));
    let (run, cal) = sync(&cli(&feed));
    let master = &cal.masters()[0];
    assert_eq!(master.get("EXDATE"), Some("20261210T100000Z"));
    assert_eq!(cal.events().len(), 1);
    assert!(!run.all_output().contains("Weber"));
}

// ---- 17.2: zones only the feed defines ---------------------------------------------------

const KHAL_ZONE: &str = "BEGIN:VTIMEZONE\nTZID:Western/Central Europe\nBEGIN:STANDARD\nDTSTART:19701025T030000\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\nTZNAME:CET\nTZOFFSETFROM:+0200\nTZOFFSETTO:+0100\nEND:STANDARD\nBEGIN:DAYLIGHT\nDTSTART:19700329T020000\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\nTZNAME:CEST\nTZOFFSETFROM:+0100\nTZOFFSETTO:+0200\nEND:DAYLIGHT\nX-KHAL-NOTE:not published\nEND:VTIMEZONE\n";

#[test]
fn a_zone_the_feed_defines_is_used_and_copied_under_its_tzid() {
    let feed = calendar(&format!(
        "{KHAL_ZONE}{}",
        vevent(
            "UID:k\nDTSTART;TZID=\"Western/Central Europe\":20270301T160000\nDTEND;TZID=\"Western/Central Europe\":20270301T163000\nRRULE:FREQ=WEEKLY;COUNT=6\nSUMMARY:Seminar"
        )
    ));
    let cli = cli(&feed);
    let (_, cal) = sync(&cli);
    let zones: Vec<&Component> = cal
        .components
        .iter()
        .filter(|c| c.name == "VTIMEZONE")
        .collect();
    assert_eq!(zones.len(), 1);
    assert_eq!(zones[0].get("TZID"), Some("Western/Central Europe"));
    let text = cli.read("public.ics");
    assert!(!text.contains("X-KHAL-NOTE"));
    let e = &cal.masters()[0];
    assert_eq!(e.param("DTSTART", "TZID"), Some("Western/Central Europe"));
    assert_eq!(e.get("DTSTART"), Some("20270301T160000"));
    // Unchanged on a second run: the definition hashes stably.
    let first = std::fs::read(cli.path("public.ics")).unwrap();
    let again = cli.run(&["sync", "--full"]);
    assert_eq!(
        again.event("sync.finished").num("updated"),
        0,
        "{}",
        again.stdout
    );
    assert_eq!(std::fs::read(cli.path("public.ics")).unwrap(), first);
    assert_eq!(cli.run(&["validate"]).code, 0);
}

#[test]
fn tzids_map_to_iana_when_they_name_a_zone() {
    let cases = [
        ("Europe/lisbon", "Europe/Lisbon"),
        (
            "/freeassociation.sourceforge.net/Europe/Berlin",
            "Europe/Berlin",
        ),
        ("/mozilla.org/20050126_1/Europe/Paris", "Europe/Paris"),
        ("(UTC-03:00) Brasília", "America/Sao_Paulo"),
        ("W. Europe Standard Time", "Europe/Berlin"),
    ];
    for (tzid, iana) in cases {
        let feed = calendar(&vevent(&format!(
            "UID:z\nDTSTART;TZID=\"{tzid}\":20261210T100000\nSUMMARY:Zoned"
        )));
        let (run, cal) = sync(&cli(&feed));
        let events = cal.events();
        assert_eq!(events.len(), 1, "{tzid}: {}", run.stdout);
        assert_eq!(events[0].param("DTSTART", "TZID"), Some(iana), "{tzid}");
    }
}

#[test]
fn a_zone_neither_mappable_nor_defined_withholds_its_events() {
    let feed = calendar(&vevent(
        "UID:nowhere\nDTSTART;TZID=\"Western/Central Europe\":20261210T100000\nSUMMARY:Somewhere",
    ));
    let (run, cal) = sync(&cli(&feed));
    assert!(cal.events().is_empty());
    let skipped = run.event("event.skipped");
    assert_eq!(skipped.str("source_key"), Some("nowhere"));
}

// ---- 17.3: RDATE periods -----------------------------------------------------------------

#[test]
fn each_rdate_period_keeps_its_own_end() {
    let feed = calendar(&vevent(
        "UID:p\nDTSTART:20261210T100000Z\nDTEND:20261210T110000Z\nRDATE;VALUE=PERIOD:20261217T100000Z/20261217T133000Z,20261224T100000Z/PT5H30M\nSUMMARY:Open day",
    ));
    let (_, cal) = sync(&cli(&feed));
    let e = &cal.masters()[0];
    assert_eq!(e.param("RDATE", "VALUE"), Some("PERIOD"));
    assert_eq!(
        e.get("RDATE"),
        Some("20261217T100000Z/20261217T133000Z,20261224T100000Z/20261224T153000Z")
    );
}

// ---- 17.4: X-WR-TIMEZONE -----------------------------------------------------------------

#[test]
fn floating_times_are_read_in_the_x_wr_timezone() {
    let feed = format!(
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//Google Inc//Google Calendar//EN\nX-WR-TIMEZONE:Europe/Berlin\n{}END:VCALENDAR\n",
        vevent("UID:g\nDTSTART:20261210T100000\nDTEND:20261210T110000\nSUMMARY:Floating")
    );
    let (_, cal) = sync(&cli(&feed));
    let e = &cal.masters()[0];
    assert_eq!(e.param("DTSTART", "TZID"), Some("Europe/Berlin"));
    assert_eq!(e.get("DTSTART"), Some("20261210T100000"));
}

// ---- 17.5: RANGE=THISANDFUTURE -------------------------------------------------------------

#[test]
fn a_thisandfuture_override_splits_the_series_instead_of_losing_it() {
    let feed = calendar(&format!(
        "{}{}",
        vevent(
            "UID:t\nDTSTART:20261201T120000Z\nDTEND:20261201T140000Z\nRRULE:FREQ=DAILY;INTERVAL=2;COUNT=10\nSUMMARY:Original"
        ),
        vevent(
            "UID:t\nRECURRENCE-ID;RANGE=THISANDFUTURE:20261209T120000Z\nDTSTART:20261209T090000Z\nDTEND:20261209T160000Z\nSUMMARY:Moved"
        ),
    ));
    let (_, cal) = sync(&cli(&feed));
    let mut parts: Vec<(String, String, String)> = cal
        .masters()
        .iter()
        .map(|e| {
            (
                e.summary().to_string(),
                e.get("DTSTART").unwrap_or("").to_string(),
                e.get("RRULE").unwrap_or("").to_string(),
            )
        })
        .collect();
    parts.sort();
    assert_eq!(
        parts,
        vec![
            (
                "Moved".to_string(),
                "20261209T090000Z".to_string(),
                "FREQ=DAILY;UNTIL=20261219T090000Z;INTERVAL=2".to_string()
            ),
            (
                "Original".to_string(),
                "20261201T120000Z".to_string(),
                "FREQ=DAILY;UNTIL=20261207T120000Z;INTERVAL=2".to_string()
            ),
        ]
    );
    // A private THISANDFUTURE override withholds its part, not the earlier one.
    let private = calendar(&format!(
        "{}{}",
        vevent("UID:t\nDTSTART:20261201T120000Z\nRRULE:FREQ=DAILY;COUNT=10\nSUMMARY:Original"),
        vevent(
            "UID:t\nRECURRENCE-ID;RANGE=THISANDFUTURE:20261205T120000Z\nDTSTART:20261205T120000Z\nSUMMARY:Counselling\nCLASS:PRIVATE"
        ),
    ));
    let (run, cal) = sync(&cli(&private));
    assert_eq!(titles(&cal), vec!["Original".to_string()]);
    assert_eq!(
        cal.masters()[0].get("RRULE"),
        Some("FREQ=DAILY;UNTIL=20261204T120000Z")
    );
    assert!(!run.all_output().contains("Counselling"));
}

// ---- 17.6: rules read exactly ---------------------------------------------------------------

#[test]
fn broken_rules_withhold_empty_rules_are_none_and_exrule_applies() {
    let broken = [
        "RRULE:FREQ=DAILY;UNTL=20270101",
        "RRULE:FREQ=WEEKLY;UNTIL=20270331;COUNT=-1;BYDAY=MO",
        "RRULE:FREQ=DAILY;COUNT=0",
    ];
    for rule in broken {
        let feed = calendar(&vevent(&format!(
            "UID:r\nDTSTART:20261201T100000Z\n{rule}\nSUMMARY:Ruled"
        )));
        let (run, cal) = sync(&cli(&feed));
        assert!(cal.events().is_empty(), "{rule}");
        assert_eq!(
            run.event("event.skipped").str("reason"),
            Some("invalid recurrence rule")
        );
    }
    // An empty RRULE is no rule: a single event.
    let feed = calendar(&vevent(
        "UID:h\nDTSTART;VALUE=DATE:20261225\nRRULE:\nSUMMARY:Christmas Day",
    ));
    let (_, cal) = sync(&cli(&feed));
    assert_eq!(titles(&cal), vec!["Christmas Day".to_string()]);
    assert_eq!(cal.masters()[0].get("RRULE"), None);
    // EXRULE: its occurrences removed, as EXDATEs.
    let feed = calendar(&vevent(
        "UID:f\nDTSTART:20261106T100000Z\nRRULE:FREQ=WEEKLY;BYDAY=FR;COUNT=4\nEXRULE:FREQ=MONTHLY;BYDAY=FR;BYMONTHDAY=13\nSUMMARY:Fridays",
    ));
    let (_, cal) = sync(&cli(&feed));
    let e = &cal.masters()[0];
    assert_eq!(e.get("EXRULE"), None);
    // 13 November 2026 is a Friday.
    assert_eq!(e.get("EXDATE"), Some("20261113T100000Z"));
}

// ---- 17.8: smaller -----------------------------------------------------------------------------

#[test]
fn a_malformed_end_withholds_the_event_instead_of_floating_it() {
    let feed = calendar(&vevent(
        "UID:m\nDTSTART:19970901T130000Z\nDTEND:19970901T1300Z\nSUMMARY:Bastille",
    ));
    let mut cli = cli(&feed);
    cli.env("CALSYNC_NOW", "1997-08-01T00:00:00Z");
    let (run, cal) = sync(&cli);
    assert!(cal.events().is_empty());
    assert_eq!(
        run.event("event.skipped").str("reason"),
        Some("invalid DTEND")
    );
}

#[test]
fn text_round_trips_exactly_escapes_included() {
    let feed = calendar(&vevent(
        "UID:t\nDTSTART:20261210T100000Z\nSUMMARY:Like Mike \\\"MJ\\\"\nLOCATION:17 Commerce Crescent\\,Eastgate\\,\nDESCRIPTION:a\\;b\\\\c",
    ));
    let cli = cli(&feed);
    let (_, cal) = sync(&cli);
    let e = &cal.masters()[0];
    assert_eq!(e.get("LOCATION"), Some("17 Commerce Crescent,Eastgate,"));
    assert_eq!(e.get("DESCRIPTION"), Some("a;b\\c"));
    assert_eq!(e.summary(), "Like Mike \\\"MJ\\\"");
}

#[test]
fn an_unparsable_feed_is_named_by_pair_line_and_column_never_by_its_bytes() {
    let feed = "BEGIN:VCALENDAR\nVERSION:2.0\nBEGIN:VEVENT\nSUMMARY:Secret salary talk\nBEGIN:VSECRETSTUFF\nEND:VEVENT\nEND:VCALENDAR\n";
    let cli = cli(feed);
    let run = cli.run(&["sync"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let failed = run.event("pair.failed");
    assert_eq!(failed.pair.as_deref(), Some("p"));
    assert!(failed.msg.contains("line 6, column 1"), "{}", failed.msg);
    assert!(
        !run.all_output().contains("VSECRETSTUFF"),
        "{}",
        run.all_output()
    );
    assert!(!run.all_output().contains("Secret"));
}

// ---- 17.7 / 12.8: join links -------------------------------------------------------------------

/// A public event with these fields, published: (title, location, description, categories).
fn published_fields(
    title: &str,
    location: &str,
    description: &str,
    categories: &str,
) -> (String, String, String, String) {
    let esc = |s: &str| {
        s.replace('\\', "\\\\")
            .replace(',', "\\,")
            .replace(';', "\\;")
            .replace('\n', "\\n")
    };
    let feed = calendar(&vevent(&format!(
        "UID:j\nDTSTART:20261210T100000Z\nSUMMARY:{}\nLOCATION:{}\nDESCRIPTION:{}\nCATEGORIES:{}",
        esc(title),
        esc(location),
        esc(description),
        categories
    )));
    let cli = cli(&feed);
    let (_, _) = sync(&cli);
    let text = cli.read("public.ics");
    let cal = ics::parse(&text);
    let e = &cal.masters()[0];
    (
        e.summary().to_string(),
        e.get("LOCATION").unwrap_or("").to_string(),
        e.get("DESCRIPTION").unwrap_or("").to_string(),
        e.get("CATEGORIES").unwrap_or("").to_string(),
    )
}

fn assert_no_link(fields: &(String, String, String, String), leak: &str) {
    let all = format!("{}|{}|{}|{}", fields.0, fields.1, fields.2, fields.3);
    assert!(!all.contains(leak), "{leak} leaked: {all}");
}

#[test]
fn join_links_are_cut_from_every_field_that_travels() {
    let links = [
        // Safe Links wrapping a Teams link: judge the wrapped URL.
        "https://eur03.safelinks.protection.outlook.com/?url=https%3A%2F%2Fteams.microsoft.com%2Fl%2Fmeetup-join%2F19%253ameeting_x&data=05",
        "https://teams.cloud.microsoft/l/meetup-join/19%3ameeting_y",
        "https://gcc.teams.microsoft.us/l/meetup-join/19%3ameeting_z",
        "https://dod.teams.microsoft.us/l/meetup-join/19%3ameeting_w",
        "https://teams.live.com/meet/9312345678",
        "https://agency.zoomgov.com/j/1601234567?pwd=abc",
        "https://meet.jit.si/ParishCouncilSecretRoom",
        "https://team.jitsi.net/SecretRoom",
        "https://www.livemeeting.com/cc/contoso/join?id=ABC&role=attend&pw=Xy12",
        "https://intranet.example.org/meet?room=7&passcode=424242",
        "https://example.org/conf?pin=1234",
        "https://global.gotomeeting.com/join/123456789",
        "https://bluejeans.com/123456789",
        "https://whereby.com/parish-room",
        "https://chime.aws/1234567890",
        "https://join.skype.com/AbCdEfGh",
    ];
    for link in links {
        let host = link.split('/').nth(2).unwrap();
        let fields = published_fields(
            &format!("Council {link}"),
            &format!("Room 4; {link}"),
            &format!("Agenda.\n{link}\nBring a cake."),
            "Parish",
        );
        assert_no_link(&fields, host);
        assert_eq!(fields.0, "Council", "{link}");
        assert_eq!(fields.1, "Room 4", "{link}");
        assert_eq!(fields.2, "Agenda.\nBring a cake.", "{link}");
    }
    // A category that is a join link goes.
    let fields = published_fields(
        "Talk",
        "Hall",
        "Text",
        "Parish,https://meet.google.com/abc-defg-hij",
    );
    assert_no_link(&fields, "meet.google.com");
    assert_eq!(fields.3, "Parish");
    // Ordinary links stay.
    let fields = published_fields(
        "Fete",
        "https://example.org/map",
        "See https://example.org/fete?year=2026",
        "Parish",
    );
    assert_eq!(fields.1, "https://example.org/map");
    assert_eq!(fields.2, "See https://example.org/fete?year=2026");
}

#[test]
fn join_blocks_go_whatever_the_language_of_their_heading() {
    let blocks = [
        // Outlook, German.
        "Tagesordnung folgt.\n\n________________________________________________________________________________\nMicrosoft Teams-Besprechung\nNehmen Sie von Ihrem Computer oder der mobilen App teil\nBesprechungs-ID: 312 456 789 012\nKennung: aB3dEf\n________________________________________________________________________________\n",
        // Outlook, French, with a join URL wrapped by Safe Links.
        "Ordre du jour.\n\n________________________________________________________________________________\nRéunion Microsoft Teams\nRejoindre : https://eur03.safelinks.protection.outlook.com/?url=https%3A%2F%2Fteams.microsoft.com%2Fl%2Fmeetup-join%2Fx\nID de réunion : 312 456 789 012\nCode secret : aB3dEf\n________________________________________________________________________________\n",
        // Outlook, German, Zoom's add-in, its link wrapped by Safe Links.
        "Elternabend.\n\n________________________________________________________________________________\nZoom-Meeting beitreten\nhttps://eur01.safelinks.protection.outlook.com/?url=https%3A%2F%2Fus02web.zoom.us%2Fj%2F81234567890&data=05\nKenncode: 424242\n________________________________________________________________________________\n",
        // Google, Spanish.
        "Ensayo del coro.\n\n-::~:~::~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~::~:~::-\nÚnete con Google Meet: https://meet.google.com/abc-defg-hij\nÚnete por teléfono\n(ES) +34 912 34 56 78 PIN: 123456789#\n-::~:~::~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~::~:~::-\n",
    ];
    for (block, kept) in blocks.iter().zip([
        "Tagesordnung folgt.",
        "Ordre du jour.",
        "Elternabend.",
        "Ensayo del coro.",
    ]) {
        let fields = published_fields("Meeting", "Hall", block, "Parish");
        assert_eq!(fields.2, kept, "{block}");
    }
}

#[test]
fn a_live_meeting_password_and_jitsi_room_do_not_survive_an_exchange_export() {
    // Exchange 2007: Meeting ID and passcode lines were cut, the links stayed.
    let description = "Weekly sync.\nJoin online meeting\nhttps://www.livemeeting.com/cc/contoso/join?id=8K2Q&role=attend&pw=h%2Fs9%3Dq\nMeeting ID: 8K2Q\nPasscode: h/s9=q\nBackup room: https://meet.jit.si/ContosoWeeklySync\n";
    let fields = published_fields("Weekly sync", "Board room", description, "Work");
    assert_no_link(&fields, "livemeeting.com");
    assert_no_link(&fields, "meet.jit.si");
    assert_no_link(&fields, "pw=");
    assert_eq!(fields.2, "Weekly sync.\nBackup room:");
}
