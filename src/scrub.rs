//! Cutting meeting join information out of published text.
//!
//! A public join link lets strangers into a meeting, so DESIGN.md rule 4 says links to Teams,
//! Meet, Zoom and Webex never travel, nor the join blocks Outlook and Google wrap around them
//! (with their meeting ids, passcodes and dial-in numbers). Pure text in, text out.

use regex::Regex;
use std::sync::LazyLock;

/// Hosts whose URLs are meeting join links.
static MEETING_URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)
        <?\b(?:https?://)?
        (?:[a-z0-9-]+\.)*
        (?:teams\.microsoft\.com|teams\.live\.com|meet\.google\.com|zoom\.us|zoomgov\.com
           |webex\.com|gotomeet\.me|gotomeeting\.com|meet\.lync\.com|dialin\.teams\.microsoft\.com
           |aka\.ms/JoinTeamsMeeting)
        (?:[/?\#][^\s<>]*)?>?",
    )
    .expect("the meeting URL pattern compiles")
});

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
    out = MEETING_URL.replace_all(&out, "").into_owned();
    out = JOIN_LINE.replace_all(&out, "").into_owned();
    tidy(&out)
}

/// A location loses meeting links but keeps its words ("Microsoft Teams Meeting" is harmless).
pub fn scrub_location(text: &str) -> Option<String> {
    let out = MEETING_URL.replace_all(text, "");
    let out = out.trim().trim_matches(|c| c == ';' || c == ',').trim();
    (!out.is_empty()).then(|| out.to_string())
}

fn is_meeting_block(block: &str) -> bool {
    let lower = block.to_lowercase();
    MEETING_URL.is_match(block)
        || lower.contains("microsoft teams")
        || lower.contains("zoom meeting")
        || lower.contains("webex")
        || lower.contains("join the meeting")
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
    }
}
