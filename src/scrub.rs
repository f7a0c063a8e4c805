//! Cutting meeting join information out of published text.
//!
//! A public join link lets strangers into a meeting, so DESIGN.md rule 4 and "Trust nothing a
//! remote says" say join links never travel, in any field that does (title, location,
//! description, categories), nor the join blocks Outlook and Google wrap around them (with
//! their meeting ids, passcodes and dial-in numbers), whatever the language of their heading.
//!
//! A URL is a join link when its host is a meeting service's (Teams in every cloud, Zoom and
//! ZoomGov, Meet, Webex, Jitsi, GoTo, BlueJeans, Whereby, Chime, Skype, Live Meeting, Lync),
//! when its query carries a meeting secret (`pw`, `pwd`, `passcode`, `password`, `pin`), or
//! when it is a Safe Links wrapper (`*.safelinks.protection.outlook.com/?url=…`) around one.
//! Pure text in, text out; text that is not a join link stays exactly as written.

use regex::Regex;
use std::sync::LazyLock;

/// Any URL with a scheme (or `www.`), optionally in Outlook's angle brackets, with the list
/// separator and blanks that may precede it (cut with it from a location or title).
static ANY_URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)(?P<sep>\s*[;,]?\s*)<?(?P<url>\b(?:https?://|www\.)[^\s<>"]+)>?"#)
        .expect("the URL pattern compiles")
});

/// Join links written without a scheme (`meet.google.com/abc-defg-hij`, `zoom.us/j/123`).
static BARE_JOIN_URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)
        (?P<sep>\s*[;,]?\s*)
        \b(?:[a-z0-9-]+\.)*
        (?:teams\.microsoft\.com|teams\.live\.com|teams\.cloud\.microsoft|teams\.microsoft\.us
           |meet\.google\.com|zoom\.us|zoomgov\.com|webex\.com|meet\.jit\.si|jitsi\.net
           |gotomeet\.me|gotomeeting\.com|bluejeans\.com|whereby\.com|chime\.aws
           |join\.skype\.com|livemeeting\.com|meet\.lync\.com)
        (?:[/?\#][^\s<>]*)",
    )
    .expect("the bare join URL pattern compiles")
});

/// Hosts (and their subdomains) whose URLs are meeting rooms.
const JOIN_HOSTS: &[&str] = &[
    "teams.microsoft.com",
    "teams.live.com",
    "teams.cloud.microsoft",
    "teams.microsoft.us",
    "zoom.us",
    "zoomgov.com",
    "meet.google.com",
    "webex.com",
    "meet.jit.si",
    "jitsi.net",
    "gotomeet.me",
    "gotomeeting.com",
    "meet.goto.com",
    "bluejeans.com",
    "whereby.com",
    "chime.aws",
    "join.skype.com",
    "meet.skype.com",
    "livemeeting.com",
    "meet.lync.com",
];

/// Query parameters that carry a meeting secret.
const SECRET_PARAMS: &[&str] = &["pw", "pwd", "passcode", "password", "pin"];

/// Outlook puts a Teams (or Zoom/Webex add-in) block between two lines of underscores.
static OUTLOOK_BLOCK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?s)_{20,}[^\n]*\r?\n.*?_{20,}[^\n]*(?:\r?\n|$)")
        .expect("the Outlook block pattern compiles")
});

/// Google Calendar wraps its Meet block in `-::~:~::~:…::-` lines.
static GOOGLE_BLOCK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?s)-::~[:~]*::-.*?-::~[:~]*::-[^\n]*(?:\r?\n|$)")
        .expect("the Google block pattern compiles")
});

/// Meeting products named in a block's heading, in any language (product names are not
/// translated): an Outlook block naming one is a join block.
static MEETING_WORDS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:microsoft teams|teams|zoom|webex|google meet|jitsi|gotomeeting|goto meeting|bluejeans|whereby|chime|skype|lync|live meeting)\b")
        .expect("the meeting words pattern compiles")
});

/// Lines that carry join instructions: meeting ids, passcodes, dial-in numbers, "join via
/// Zoom". A meeting id with its passcode lets a stranger in without any link, so these lines
/// go wherever they stand, link or not.
static JOIN_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?im)^[^\n]*(?:",
        r"\bjoin\b[^\n]*\b(?:meeting|teams|zoom|webex|google meet)\b",
        r"|\bjoin (?:with google meet|by phone|on your computer|on the web)",
        r"|\bclick here to join",
        r"|\bmicrosoft teams (?:meeting|need help)",
        r"|\bmeeting (?:id|number|password|passcode)\b",
        r"|\b(?:conference|webinar) id\b",
        r"|\b(?:passcode|access code)\b",
        r"|\b(?:password|pin)\s*[:=]",
        r"|\bdial[- ]?in\b",
        r"|\bone tap mobile",
        r"|\bfind your local number",
        r"|\+?[0-9 ()-]{7,},,[0-9#*,]+",
        r")[^\n]*(?:\r?\n|$)"
    ))
    .expect("the join line pattern compiles")
});

/// Is this URL (with or without scheme) a meeting join link? Safe Links wrappers are judged by
/// the URL they wrap.
pub fn is_join_url(url: &str) -> bool {
    let rest = url
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(url)
        .trim_start_matches('/');
    let (authority, path_query) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let host = authority
        .rsplit('@')
        .next()
        .unwrap_or(authority)
        .split(':')
        .next()
        .unwrap_or("")
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let query = path_query
        .split_once('?')
        .map(|(_, q)| q.split('#').next().unwrap_or(q))
        .unwrap_or("");
    let params = || {
        query.split('&').map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k).to_ascii_lowercase(), v)
        })
    };
    if host.ends_with(".safelinks.protection.outlook.com")
        && let Some((_, wrapped)) = params().find(|(k, _)| k == "url")
    {
        return is_join_url(&percent_decode(wrapped));
    }
    let is_host = |h: &str| host == h || host.ends_with(&format!(".{h}"));
    if JOIN_HOSTS.iter().any(|h| is_host(h)) {
        return true;
    }
    if host == "aka.ms"
        && path_query
            .to_ascii_lowercase()
            .starts_with("/jointeamsmeeting")
    {
        return true;
    }
    params().any(|(k, _)| SECRET_PARAMS.contains(&k.as_str()))
}

/// `%xx` decoded (invalid sequences kept as written); `+` stays.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The text without its join links; with `separators`, a `;` or `,` before a cut link goes
/// with it (`Room 4; https://…` → `Room 4`).
fn cut_links(text: &str, separators: bool) -> String {
    let keep_sep = |sep: &str| {
        if separators {
            String::new()
        } else {
            // In running text, keep the blanks (and line break) before the link.
            sep.chars().filter(|c| c.is_whitespace()).collect()
        }
    };
    let out = ANY_URL.replace_all(text, |caps: &regex::Captures<'_>| {
        let url = caps["url"].trim_end_matches(['.', ',', ';', ')', '>']);
        if is_join_url(url) {
            let rest = &caps["url"][url.len()..];
            format!("{}{}", keep_sep(&caps["sep"]), rest.trim_start_matches('>'))
        } else {
            caps[0].to_string()
        }
    });
    BARE_JOIN_URL
        .replace_all(&out, |caps: &regex::Captures<'_>| keep_sep(&caps["sep"]))
        .into_owned()
}

/// Removes join blocks, join links and join instructions; `None` when nothing is left.
pub fn scrub_text(text: &str) -> Option<String> {
    let mut out = OUTLOOK_BLOCK
        .replace_all(text, |caps: &regex::Captures<'_>| {
            if is_meeting_block(&caps[0]) {
                String::new()
            } else {
                caps[0].to_string()
            }
        })
        .into_owned();
    out = GOOGLE_BLOCK.replace_all(&out, "").into_owned();
    // Line by line, so that a line that was only a join link goes with it.
    let mut kept = String::with_capacity(out.len());
    for line in out.split_inclusive('\n') {
        let cut = cut_links(line, false);
        if cut.trim().is_empty() && !line.trim().is_empty() {
            continue;
        }
        kept.push_str(&cut);
    }
    out = JOIN_LINE.replace_all(&kept, "").into_owned();
    tidy(&out)
}

/// A location or title loses join links (and the separator before one) but keeps its words
/// ("Microsoft Teams Meeting" is harmless) and its text exactly, a trailing `,` included.
pub fn scrub_location(text: &str) -> Option<String> {
    let out = cut_links(text, true);
    let cut = out.len() != text.len();
    let out = if cut { out.trim().to_string() } else { out };
    (!out.trim().is_empty()).then_some(out)
}

/// Categories lose join links; a category that was only a link goes.
pub fn scrub_categories(categories: &[String]) -> Vec<String> {
    categories
        .iter()
        .filter_map(|c| scrub_location(c))
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

/// An Outlook block is a join block when it holds a join link (wrapped or not), names a
/// meeting product, or carries a join instruction.
fn is_meeting_block(block: &str) -> bool {
    let has_join_link = ANY_URL.captures_iter(block).any(|c| is_join_url(&c["url"]))
        || BARE_JOIN_URL.is_match(block);
    has_join_link
        || MEETING_WORDS.is_match(block)
        || JOIN_LINE.is_match(block)
        || block.to_lowercase().contains("join the meeting")
}

/// Trims trailing spaces per line, collapses runs of blank lines, trims the ends.
fn tidy(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    let out = out.trim();
    (!out.is_empty()).then(|| out.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEAMS: &str = "Agenda: budget 2027.\n\n\
________________________________________________________________________________\n\
Microsoft Teams meeting\n\
Join on your computer, mobile app or room device\n\
Click here to join the meeting<https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc%40thread.v2/0?context=%7b%22Tid%22%3a%22x%22%7d>\n\
Meeting ID: 312 456 789 012\n\
Passcode: aB3dEf\n\
Download Teams<https://www.microsoft.com/microsoft-teams/download-app> | Join on the web<https://www.microsoft.com/microsoft-teams/join-a-meeting>\n\
Learn More<https://aka.ms/JoinTeamsMeeting> | Meeting options<https://teams.microsoft.com/meetingOptions/?organizerId=x>\n\
________________________________________________________________________________\n";

    const MEET: &str = "Choir practice for the Christmas concert.\n\n\
-::~:~::~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~::~:~::-\n\
Join with Google Meet: https://meet.google.com/abc-defg-hij\n\
Or dial: (DE) +49 30 123456789 PIN: 123456789#\n\
More phone numbers: https://tel.meet/abc-defg-hij?pin=123\n\n\
Learn more about Meet at: https://support.google.com/a/users/answer/9282720\n\n\
Please do not edit this section.\n\
-::~:~::~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~:~::~:~::-\n";

    const ZOOM: &str = "Parents' evening, room 104 or online.\n\
Join Zoom Meeting\n\
https://us02web.zoom.us/j/81234567890?pwd=QWERTY\n\n\
Meeting ID: 812 3456 7890\n\
Passcode: 424242\n\
One tap mobile\n\
+496938079883,,81234567890#,,,,*424242# Germany\n";

    #[test]
    fn join_blocks_and_links_are_cut_and_the_rest_stays() {
        let cases: &[(&str, &str, &str)] = &[
            ("teams", TEAMS, "Agenda: budget 2027."),
            ("meet", MEET, "Choir practice for the Christmas concert."),
            ("zoom", ZOOM, "Parents' evening, room 104 or online."),
            (
                "webex inline",
                "Lecture. Stream: https://acme.webex.com/meet/j.doe see you",
                "Lecture. Stream:  see you",
            ),
            (
                "safe links around teams",
                "Budget.\nJoin: https://eur03.safelinks.protection.outlook.com/?url=https%3A%2F%2Fteams.microsoft.com%2Fl%2Fmeetup-join%2Fx&data=05\nEnd.",
                "Budget.\nJoin:\nEnd.",
            ),
            (
                "plain",
                "Bring a cake.\nhttps://example.org/fete",
                "Bring a cake.\nhttps://example.org/fete",
            ),
        ];
        for (what, input, want) in cases {
            let got = scrub_text(input).unwrap_or_default();
            assert_eq!(got, *want, "{what}");
            for leak in [
                "teams.microsoft.com",
                "meet.google.com",
                "zoom.us",
                "webex.com",
                "Passcode",
                "PIN:",
            ] {
                assert!(!got.contains(leak), "{what}: {leak} leaked in {got:?}");
            }
        }
    }

    #[test]
    fn a_description_that_is_only_a_join_block_becomes_none() {
        assert_eq!(scrub_text(&TEAMS[TEAMS.find("____").unwrap()..]), None);
    }

    #[test]
    fn an_underscore_rule_without_a_meeting_is_kept() {
        let text = "Menu\n____________________________\nSoup\n____________________________\n";
        assert_eq!(scrub_text(text).unwrap(), text.trim());
    }

    #[test]
    fn join_urls_by_host_secret_or_wrapper() {
        let cases = [
            ("https://teams.microsoft.com/l/meetup-join/x", true),
            ("https://teams.cloud.microsoft/l/meetup-join/x", true),
            ("https://gcc.teams.microsoft.us/l/x", true),
            ("https://dod.teams.microsoft.us/l/x", true),
            ("https://teams.live.com/meet/93", true),
            ("https://agency.zoomgov.com/j/1", true),
            ("https://us02web.zoom.us/j/1", true),
            ("https://meet.jit.si/Room", true),
            ("https://team.jitsi.net/Room", true),
            ("https://www.livemeeting.com/cc/x/join?id=1", true),
            ("https://join.skype.com/AbC", true),
            ("https://aka.ms/JoinTeamsMeeting", true),
            ("https://intranet.example.org/meet?room=7&PassCode=1", true),
            ("https://example.org/x?a=1&pw=2", true),
            ("https://example.org/x?a=1&pin", true),
            (
                "https://eur03.safelinks.protection.outlook.com/?url=https%3A%2F%2Fmeet.google.com%2Fabc&data=1",
                true,
            ),
            // Not meetings: a wrapped ordinary link, look-alike hosts, a `pin` in a path.
            (
                "https://eur03.safelinks.protection.outlook.com/?url=https%3A%2F%2Fexample.org%2Fmap",
                false,
            ),
            ("https://example.org/fete?year=2026", false),
            ("https://notzoom.us.example.org/", false),
            ("https://example.org/pin/board", false),
            (
                "https://www.microsoft.com/microsoft-teams/download-app",
                false,
            ),
        ];
        for (url, want) in cases {
            assert_eq!(is_join_url(url), want, "{url}");
        }
    }

    #[test]
    fn categories_lose_links() {
        assert_eq!(
            scrub_categories(&["Parish".into(), "https://meet.google.com/abc".into()]),
            vec!["Parish".to_string()]
        );
    }

    #[test]
    fn locations_lose_links_only() {
        assert_eq!(
            scrub_location("Microsoft Teams Meeting").unwrap(),
            "Microsoft Teams Meeting"
        );
        assert_eq!(scrub_location("https://us02web.zoom.us/j/123"), None);
        assert_eq!(
            scrub_location("Room 104; https://meet.google.com/abc-defg-hij").unwrap(),
            "Room 104"
        );
        // Exactly as written otherwise: a trailing escaped comma stays.
        assert_eq!(
            scrub_location("17 Commerce Crescent,Eastgate,").unwrap(),
            "17 Commerce Crescent,Eastgate,"
        );
        assert_eq!(
            scrub_location("Hall, https://intranet.example.org/meet?passcode=1").unwrap(),
            "Hall"
        );
    }
}
