//! Content lines: unfolding on bytes, decoding, and cutting a calendar into its top-level
//! components, before any value is interpreted.
//!
//! This layer is ours rather than calcard's for three reasons: a fold may split a multi-byte
//! character, so unfolding must happen before UTF-8 decoding (calcard takes `&str`); a feed
//! cut short must be an error, and calcard's lenient parser happily returns whatever it read;
//! and the raw text of a component is needed for the key of a VEVENT without UID and for the
//! privacy marking exactly as the source spelled it.

use super::IcalError;

/// Removes line folds (CRLF or bare LF followed by one space or tab) and decodes the result as
/// UTF-8, replacing invalid sequences. A leading byte-order mark is dropped.
pub(super) fn unfold(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let fold_len = match (b, bytes.get(i + 1), bytes.get(i + 2)) {
            (b'\r', Some(b'\n'), Some(b' ' | b'\t')) => 3,
            (b'\n', Some(b' ' | b'\t'), _) => 2,
            _ => 0,
        };
        if fold_len > 0 {
            i += fold_len;
        } else {
            out.push(b);
            i += 1;
        }
    }
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// One component directly inside a VCALENDAR (a VEVENT, a VTIMEZONE, …), with its nested
/// components, as unfolded lines.
#[derive(Debug)]
pub(super) struct Block<'a> {
    /// The component name, upper-cased (`VEVENT`).
    pub kind: String,
    /// Every line from `BEGIN:` to `END:`, line ends removed.
    pub lines: Vec<&'a str>,
}

/// One property of a component as written: its parameters (names upper-cased, values without
/// their quotes, a list value as written) and its raw value (not unescaped, not trimmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RawProperty<'a> {
    pub params: Vec<(String, &'a str)>,
    pub value: &'a str,
    /// A parameter that is not `NAME=value` (an empty one, as in `DTSTART;;VALUE=…`).
    pub malformed: bool,
}

impl RawProperty<'_> {
    /// The value of a parameter, when given once (`None` also when given twice).
    pub fn param(&self, name: &str) -> Option<&str> {
        let mut found = self.params.iter().filter(|(n, _)| n == name);
        match (found.next(), found.next()) {
            (Some((_, v)), None) => Some(v),
            _ => None,
        }
    }
}

/// Splits `NAME;P=v;Q="w":value`. With `value_last`, the value starts after the last colon
/// outside quotes (date and time values never hold one, while Outlook writes TZIDs like
/// `(UTC+01:00) Amsterdam` unquoted); otherwise after the first.
pub(super) fn raw_property(line: &str, value_last: bool) -> Option<(&str, RawProperty<'_>)> {
    let name_end = line.find([';', ':'])?;
    let name = line[..name_end].trim();
    let mut quoted = false;
    let mut colon = None;
    for (i, c) in line[name_end..].char_indices() {
        match c {
            '"' => quoted = !quoted,
            ':' if !quoted => {
                colon = Some(name_end + i);
                if !value_last {
                    break;
                }
            }
            _ => {}
        }
    }
    let colon = colon?;
    let mut params = Vec::new();
    let mut malformed = false;
    let section = &line[name_end..colon];
    let mut start = 0;
    let mut quoted = false;
    let bytes = section.as_bytes();
    let mut pieces = Vec::new();
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b';' if !quoted => {
                pieces.push(&section[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    pieces.push(&section[start..]);
    // The first piece is what precedes the first ';' (nothing).
    for piece in pieces.into_iter().skip(1) {
        match piece.split_once('=') {
            Some((n, v)) if !n.trim().is_empty() => {
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|x| x.strip_suffix('"'))
                    .unwrap_or(v);
                params.push((n.trim().to_ascii_uppercase(), v));
            }
            _ => malformed = true,
        }
    }
    Some((
        name,
        RawProperty {
            params,
            value: &line[colon + 1..],
            malformed,
        },
    ))
}

impl Block<'_> {
    /// The block as text with CRLF line ends: what calcard parses and what the key of a
    /// VEVENT without UID is hashed from (so CRLF versus LF does not change the key).
    pub fn text(&self) -> String {
        let mut s = String::with_capacity(self.lines.iter().map(|l| l.len() + 2).sum());
        for line in &self.lines {
            s.push_str(line);
            s.push_str("\r\n");
        }
        s
    }

    /// The properties called `name` on the component itself (not on nested components), with
    /// their parameters; `value_last` as in [`raw_property`].
    pub fn props(&self, name: &str, value_last: bool) -> Vec<RawProperty<'_>> {
        let mut depth = 0usize;
        let mut out = Vec::new();
        for line in &self.lines {
            match begin_or_end(line) {
                Some((true, _)) => depth += 1,
                Some((false, _)) => depth = depth.saturating_sub(1),
                None if depth == 1 && names(line, name) => {
                    if let Some((prop, raw)) = raw_property(line, value_last)
                        && prop.eq_ignore_ascii_case(name)
                    {
                        out.push(raw);
                    }
                }
                None => {}
            }
        }
        out
    }

    /// The values of the properties called `name` on the component itself (not on nested
    /// components such as VALARM), exactly as written (no unescaping, no trimming).
    pub fn raw_values(&self, name: &str) -> Vec<&str> {
        let mut depth = 0usize;
        let mut out = Vec::new();
        for line in &self.lines {
            match begin_or_end(line) {
                Some((true, _)) => depth += 1,
                Some((false, _)) => depth = depth.saturating_sub(1),
                None if depth == 1 && names(line, name) => {
                    if let Some((prop, value)) = split_property(line)
                        && prop.eq_ignore_ascii_case(name)
                    {
                        out.push(value);
                    }
                }
                None => {}
            }
        }
        out
    }
}

/// Whether a content line may be a property called `name`: it starts with the name (in any
/// letter case) followed by `;`, `:` or a blank. A cheap test before the full parse — every
/// lookup walks the component's lines, and a feed of 100,000 events has millions of them.
fn names(line: &str, name: &str) -> bool {
    line.len() > name.len()
        && line.as_bytes()[..name.len()].eq_ignore_ascii_case(name.as_bytes())
        && matches!(line.as_bytes()[name.len()], b';' | b':' | b' ' | b'\t')
}

/// Where a calendar's top-level components lie in its bytes, found without unfolding or
/// keeping the whole text: what [`components`] finds, as byte ranges, so a feed of 100,000
/// events can be read a page at a time. Each range holds whole physical lines (folds inside
/// it), so unfolding it alone gives the lines [`components`] would.
#[derive(Debug, Default)]
pub(super) struct Scan {
    /// `(kind, byte range)` of each component directly inside a VCALENDAR, in order.
    pub spans: Vec<(String, std::ops::Range<usize>)>,
    /// For each VEVENT span (same order as they appear among `spans`): the text of its first
    /// `UID` property on the VEVENT itself (raw value, not unescaped), if any.
    pub uids: Vec<Option<String>>,
    /// Lines directly inside a VCALENDAR (X-WR-TIMEZONE, METHOD, …), unfolded, in order.
    pub properties: Vec<String>,
}

/// Scans a calendar as [`components`] reads its unfolded text, with the same rules and the
/// same errors (positions in the feed's own lines), streaming: what it holds is one logical
/// line and the index it builds, never the feed (a feed of 100,000 events is about 90 MB).
///
/// # Errors
/// The outer error: reading failed. The inner one: as [`components`], with the positions
/// [`IcalError::in_feed`] gives.
pub(super) fn scan(input: &mut dyn std::io::BufRead) -> std::io::Result<Result<Scan, IcalError>> {
    let bom = if input.fill_buf()?.starts_with(b"\xEF\xBB\xBF") {
        input.consume(3);
        3
    } else {
        0
    };
    let mut out = Scan::default();
    let mut stack: Vec<String> = Vec::new();
    // The open top-level component: kind, start offset.
    let mut current: Option<(String, usize)> = None;
    let mut current_uid: Option<String> = None;
    let mut seen_calendar = false;
    // The last line that is not blank: its feed line and its bytes (for the position of a
    // truncation, worked out only when there is one).
    let mut last: Option<usize> = None;
    let mut last_raw: Vec<u8> = Vec::new();
    let mut raw: Vec<u8> = Vec::new();
    let mut line_buf: Vec<u8> = Vec::new();
    let mut at = 0usize; // offset after the BOM
    let mut physical = 0usize; // the feed's lines read so far
    loop {
        // One logical line: a physical line and the lines that continue it.
        let start = at;
        raw.clear();
        let n = input.read_until(b'\n', &mut raw)?;
        if n == 0 {
            break;
        }
        at += n;
        physical += 1;
        let line_no = physical;
        while raw.last() == Some(&b'\n') && matches!(input.fill_buf()?.first(), Some(b' ' | b'\t'))
        {
            at += input.read_until(b'\n', &mut raw)?;
            physical += 1;
        }
        if raw.last() == Some(&b'\n') {
            raw.pop();
        }
        // Unfolded only when it matters: what may be BEGIN/END/UID, a calendar property, or
        // a line that might be blank.
        let first = raw.first().copied().unwrap_or(b' ');
        let depth = stack.len();
        // A line starting with anything but whitespace (ASCII, or a byte that may begin a
        // wider space) is not blank.
        let maybe_blank = raw.is_empty() || first.is_ascii_whitespace() || first >= 0x80;
        let wanted =
            matches!(first.to_ascii_uppercase(), b'B' | b'E' | b'U') || depth == 1 || maybe_blank;
        if !wanted {
            last = Some(line_no);
            std::mem::swap(&mut raw, &mut last_raw);
            continue;
        }
        line_buf.clear();
        unfold_into(&raw, &mut line_buf);
        let text = String::from_utf8_lossy(&line_buf);
        let line = text.strip_suffix('\r').unwrap_or(&text);
        if line.trim().is_empty() {
            continue;
        }
        last = Some(line_no);
        std::mem::swap(&mut raw, &mut last_raw);
        match begin_or_end(line) {
            Some((true, name)) => {
                if stack.is_empty() {
                    if name == "VCALENDAR" {
                        seen_calendar = true;
                        stack.push(name);
                    }
                    continue;
                }
                if stack.len() == 1 {
                    current = Some((name.clone(), bom + start));
                    current_uid = None;
                }
                stack.push(name);
            }
            Some((false, name)) => {
                let Some(pos) = stack.iter().rposition(|open| *open == name) else {
                    continue;
                };
                if pos + 1 != stack.len() {
                    return Ok(Err(IcalError::Unbalanced {
                        line: line_no,
                        column: 1,
                    }));
                }
                stack.pop();
                if stack.len() == 1
                    && let Some((kind, from)) = current.take()
                {
                    if kind == "VEVENT" {
                        out.uids.push(current_uid.take());
                    }
                    out.spans.push((kind, from..bom + at));
                }
            }
            None => {
                if current.is_some() {
                    if stack.len() == 2 && current_uid.is_none() && names(line, "UID") {
                        current_uid = split_property(line)
                            .filter(|(name, _)| name.eq_ignore_ascii_case("UID"))
                            .map(|_| line.to_string());
                    }
                } else if stack.len() == 1 {
                    out.properties.push(line.to_string());
                }
            }
        }
    }
    if !seen_calendar {
        return Ok(Err(IcalError::NotACalendar { line: 1, column: 1 }));
    }
    if !stack.is_empty() {
        let (line, column) = match last {
            Some(number) => {
                line_buf.clear();
                unfold_into(&last_raw, &mut line_buf);
                let text = String::from_utf8_lossy(&line_buf);
                let line = text.strip_suffix('\r').unwrap_or(&text);
                (number, line.chars().count() + 1)
            }
            None => (1, 1),
        };
        return Ok(Err(IcalError::Truncated { line, column }));
    }
    Ok(Ok(out))
}

/// Appends a logical line's bytes without its folds (as [`unfold`] removes them: a line end
/// and the one space or tab after it).
fn unfold_into(raw: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < raw.len() {
        match (raw[i], raw.get(i + 1), raw.get(i + 2)) {
            (b'\r', Some(b'\n'), Some(b' ' | b'\t')) => i += 3,
            (b'\n', Some(b' ' | b'\t'), _) => i += 2,
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
}

/// `Some((true, NAME))` for a `BEGIN:NAME` line, `Some((false, NAME))` for `END:NAME`.
fn begin_or_end(line: &str) -> Option<(bool, String)> {
    if !(names(line, "BEGIN") || names(line, "END")) {
        return None;
    }
    let (prop, value) = split_property(line)?;
    let begin = if prop.eq_ignore_ascii_case("BEGIN") {
        true
    } else if prop.eq_ignore_ascii_case("END") {
        false
    } else {
        return None;
    };
    Some((begin, value.trim().to_ascii_uppercase()))
}

/// Splits a content line into its property name and its raw value (the text after the first
/// colon that is not inside a quoted parameter value).
pub(super) fn split_property(line: &str) -> Option<(&str, &str)> {
    let name_end = line.find([';', ':'])?;
    let name = line[..name_end].trim();
    let mut in_quotes = false;
    for (i, c) in line[name_end..].char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ':' if !in_quotes => return Some((name, &line[name_end + i + 1..])),
            _ => {}
        }
    }
    None
}

/// What a calendar holds: its components. (Its own properties, such as X-WR-TIMEZONE, are
/// read by [`scan`].)
#[derive(Debug)]
pub(super) struct Calendar<'a> {
    pub blocks: Vec<Block<'a>>,
}

/// Cuts unfolded calendar text into the components found directly inside its VCALENDAR(s).
///
/// # Errors
/// [`IcalError::NotACalendar`] when there is no `BEGIN:VCALENDAR`; [`IcalError::Truncated`]
/// when a VCALENDAR is not closed (a feed cut short must never read as a shorter calendar);
/// [`IcalError::Unbalanced`] when components are closed out of order. Positions are logical
/// (unfolded) lines, 1-based; [`physical_position`] turns them into the feed's own lines.
pub(super) fn components(text: &str) -> Result<Calendar<'_>, IcalError> {
    let mut blocks = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let mut current: Option<Block<'_>> = None;
    let mut seen_calendar = false;
    let mut last = (1, 1);

    for (number, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            continue;
        }
        last = (number + 1, line.chars().count() + 1);
        match begin_or_end(line) {
            Some((true, name)) => {
                if stack.is_empty() {
                    // Anything outside a VCALENDAR is noise; only a VCALENDAR opens one.
                    if name == "VCALENDAR" {
                        seen_calendar = true;
                        stack.push(name);
                    }
                    continue;
                }
                if stack.len() == 1 {
                    current = Some(Block {
                        kind: name.clone(),
                        lines: Vec::new(),
                    });
                }
                if let Some(block) = current.as_mut() {
                    block.lines.push(line);
                }
                stack.push(name);
            }
            Some((false, name)) => {
                let Some(pos) = stack.iter().rposition(|open| *open == name) else {
                    // A stray END for a component that is not open: ignored.
                    continue;
                };
                if pos + 1 != stack.len() {
                    return Err(IcalError::Unbalanced {
                        line: number + 1,
                        column: 1,
                    });
                }
                stack.pop();
                if let Some(block) = current.as_mut() {
                    block.lines.push(line);
                }
                if stack.len() == 1
                    && let Some(block) = current.take()
                {
                    blocks.push(block);
                }
            }
            None => {
                if let Some(block) = current.as_mut() {
                    block.lines.push(line);
                }
            }
        }
    }

    if !seen_calendar {
        return Err(IcalError::NotACalendar { line: 1, column: 1 });
    }
    if !stack.is_empty() {
        return Err(IcalError::Truncated {
            line: last.0,
            column: last.1,
        });
    }
    Ok(Calendar { blocks })
}

/// The feed's own line (1-based) of a logical line: folded continuation lines count as the
/// lines they are in the feed.
pub(super) fn physical_line(bytes: &[u8], logical: usize) -> usize {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut seen = 0;
    for (index, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if index > 0 && matches!(line.first(), Some(b' ' | b'\t')) {
            continue;
        }
        seen += 1;
        if seen == logical {
            return index + 1;
        }
    }
    logical
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `scan` finds what `components` finds, with the same errors: on every fixture, every
    /// calendar of the real-world corpus, and hand-made edge cases.
    #[test]
    fn scan_agrees_with_components() {
        let mut inputs: Vec<(String, Vec<u8>)> = vec![
            ("empty".into(), b"".to_vec()),
            ("bom".into(), b"\xEF\xBB\xBFBEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n".to_vec()),
            ("folded begin".into(), b"BEGIN:VCAL\r\n ENDAR\r\nBEG\n IN:VEVENT\nUID:\n x\nEND:VEVENT\nEND:VCALENDAR".to_vec()),
            ("truncated".into(), b"BEGIN:VCALENDAR\nBEGIN:VEVENT\nSUMMARY:caf\xC3\xA9\n\n".to_vec()),
            ("out of order".into(), b"BEGIN:VCALENDAR\nBEGIN:VEVENT\nBEGIN:VALARM\nEND:VEVENT\nEND:VCALENDAR\n".to_vec()),
            ("stray end".into(), b"BEGIN:VCALENDAR\nEND:VTODO\nBEGIN:VEVENT\nEND:VALARM\nUID:b\nEND:VEVENT\nX-WR-TIMEZONE:Europe/Berlin\nEND:VCALENDAR\n".to_vec()),
            ("noise".into(), b"hello\nBEGIN:VEVENT\nEND:VEVENT\n".to_vec()),
            ("two calendars".into(), b"BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:1\nEND:VEVENT\nEND:VCALENDAR\nBEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:2\nEND:VEVENT\nEND:VCALENDAR\n".to_vec()),
        ];
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for dir in [
            root.join("tests/fixtures"),
            root.join("../shared/realworld-ics/corpus"),
        ] {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "ics") {
                    inputs.push((path.display().to_string(), std::fs::read(&path).unwrap()));
                }
            }
        }
        assert!(inputs.len() > 100, "the corpus is beside the repository");
        for (name, bytes) in &inputs {
            let text = unfold(bytes);
            let want = components(&text).map_err(|e| e.in_feed(bytes));
            let got = scan(&mut &bytes[..]).unwrap();
            match (want, got) {
                (Ok(cal), Ok(scan)) => {
                    assert_eq!(cal.blocks.len(), scan.spans.len(), "{name}");
                    for (block, (kind, range)) in cal.blocks.iter().zip(&scan.spans) {
                        assert_eq!(&block.kind, kind, "{name}");
                        let again = format!(
                            "BEGIN:VCALENDAR\r\n{}\r\nEND:VCALENDAR\r\n",
                            unfold(&bytes[range.clone()])
                        );
                        let inner = components(&again).unwrap();
                        assert_eq!(inner.blocks.len(), 1, "{name}");
                        assert_eq!(inner.blocks[0].lines, block.lines, "{name}");
                    }
                }
                (Err(a), Err(b)) => assert_eq!(a, b, "{name}"),
                (a, b) => panic!(
                    "{name}: components {:?}, scan {:?}",
                    a.map(|_| ()),
                    b.map(|_| ())
                ),
            }
        }
    }

    #[test]
    fn unfolds_crlf_and_bare_lf_before_decoding() {
        // "ü" is C3 BC; the fold splits it.
        let bytes = b"SUMMARY:Gr\xC3\r\n \xBC\xC3\x9Fe\nDESCRIPTION:a\n\tb\r\n";
        assert_eq!(unfold(bytes), "SUMMARY:Grüße\nDESCRIPTION:ab\r\n");
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        assert_eq!(unfold(b"SUMMARY:a\xFFb"), "SUMMARY:a\u{FFFD}b");
    }

    #[test]
    fn property_split_respects_quoted_colons() {
        assert_eq!(
            split_property(r#"DTSTART;TZID="a:b":20260101T100000"#),
            Some(("DTSTART", "20260101T100000"))
        );
        assert_eq!(split_property("class:private"), Some(("class", "private")));
        assert_eq!(split_property("garbage"), None);
    }

    #[test]
    fn truncation_and_non_calendars_are_errors() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "BEGIN:VCALENDAR\nBEGIN:VEVENT\nEND:VEVENT\nEND:VCALENDAR\n",
                None,
            ),
            (
                "BEGIN:VCALENDAR\nBEGIN:VEVENT\nEND:VEVENT\n",
                Some("truncated"),
            ),
            (
                "BEGIN:VCALENDAR\nBEGIN:VEVENT\nSUMMARY:x",
                Some("truncated"),
            ),
            ("BEGIN:VEVENT\nEND:VEVENT\n", Some("not an iCalendar")),
            ("<html>", Some("not an iCalendar")),
            (
                "BEGIN:VCALENDAR\nBEGIN:VEVENT\nEND:VCALENDAR\n",
                Some("line 3, column 1"),
            ),
        ];
        for (text, expected) in cases {
            let got = components(text).map(|_| ()).map_err(|e| e.to_string());
            match expected {
                None => assert!(got.is_ok(), "{text:?}: {got:?}"),
                Some(want) => {
                    let err = got.expect_err(text);
                    assert!(err.contains(want), "{text:?}: {err}");
                }
            }
        }
    }

    #[test]
    fn raw_values_ignore_nested_components() {
        let text = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nclass:private\nBEGIN:VALARM\nCLASS:PUBLIC\nEND:VALARM\nEND:VEVENT\nEND:VCALENDAR\n";
        let blocks = components(text).unwrap().blocks;
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].kind, "VEVENT");
        assert_eq!(blocks[0].raw_values("CLASS"), vec!["private"]);
    }
}
