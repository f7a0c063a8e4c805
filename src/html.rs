//! HTML event bodies (Outlook's, and Google's rich-text descriptions) as plain text, for the
//! published `description`.
//!
//! Only text travels: tags go, block elements and `<br>` become line breaks, entities are
//! decoded, and a link keeps its address beside its text (`Register here <https://…>`) so that
//! `scrub` can judge it — a Teams or Zoom join link hidden behind "Click here to join" is cut
//! by the same rule as a bare one. `<script>`, `<style>` and `<head>` contents and comments
//! are dropped. Pure, linear in the input, never panics: the input is whatever a remote sent.

/// Elements whose start or end is a line break in text.
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "br",
    "li",
    "tr",
    "table",
    "ul",
    "ol",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "blockquote",
    "pre",
    "section",
    "article",
    "header",
    "footer",
];

/// Elements whose content is not text.
const SKIPPED: &[&str] = &["script", "style", "head", "title", "xml"];

/// The plain text of an HTML fragment or document.
pub fn to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    let mut skipping: Option<String> = None;
    let mut link: Option<(String, usize)> = None;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |end| &after[end + 3..]);
            continue;
        }
        if rest.starts_with('<')
            && let Some(end) = rest.find('>')
        {
            let tag = &rest[1..end];
            rest = &rest[end + 1..];
            let (closing, name, attrs) = parse_tag(tag);
            if let Some(skipped) = &skipping {
                if closing && name == *skipped {
                    skipping = None;
                }
                continue;
            }
            if !closing && SKIPPED.contains(&name.as_str()) && !tag.ends_with('/') {
                skipping = Some(name);
                continue;
            }
            if name == "br" {
                trim_end_spaces(&mut out);
                out.push('\n');
            } else if BLOCKS.contains(&name.as_str()) {
                line_break(&mut out);
            }
            if name == "a" {
                if closing {
                    if let Some((href, start)) = link.take() {
                        let text = out.get(start..).unwrap_or("").trim().to_string();
                        if !href.is_empty() && text != href {
                            out.push_str(&format!(" <{href}>"));
                        }
                    }
                } else {
                    link = Some((attribute(attrs, "href").unwrap_or_default(), out.len()));
                }
            }
            continue;
        }
        let next = rest
            .char_indices()
            .skip(1)
            .find(|&(_, c)| c == '<')
            .map_or(rest.len(), |(i, _)| i);
        if skipping.is_none() {
            push_text(&mut out, &decode_entities(&rest[..next]));
        }
        rest = &rest[next..];
    }
    tidy(&out)
}

/// `(closing, lower-case name, attributes)` of a tag's inside.
fn parse_tag(tag: &str) -> (bool, String, &str) {
    let tag = tag.trim();
    let (closing, tag) = match tag.strip_prefix('/') {
        Some(t) => (true, t.trim_start()),
        None => (false, tag),
    };
    let name_end = tag
        .find(|c: char| c.is_whitespace() || c == '/')
        .unwrap_or(tag.len());
    (
        closing,
        tag[..name_end].to_ascii_lowercase(),
        &tag[name_end..],
    )
}

/// The value of an attribute (`name="v"`, `name='v'` or `name=v`), entities decoded.
fn attribute(attrs: &str, name: &str) -> Option<String> {
    let lower = attrs.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find(name) {
        let at = from + pos;
        from = at + name.len();
        let before_ok = at == 0 || lower.as_bytes()[at - 1].is_ascii_whitespace();
        let after = attrs[from..].trim_start();
        if !before_ok || !after.starts_with('=') {
            continue;
        }
        let value = after[1..].trim_start();
        let raw = match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or(""),
            _ => value.split(char::is_whitespace).next().unwrap_or(""),
        };
        return Some(decode_entities(raw).trim().to_string());
    }
    None
}

/// Text as HTML renders it: runs of whitespace are one space.
fn push_text(out: &mut String, text: &str) {
    for (i, word) in text
        .split(|c: char| c.is_whitespace() && c != '\u{a0}')
        .enumerate()
    {
        if i > 0 && !out.ends_with([' ', '\n']) && !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&word.replace('\u{a0}', " "));
    }
}

/// Ends the current line, unless it is empty already (blocks do not stack blank lines;
/// `<br>` does).
fn line_break(out: &mut String) {
    trim_end_spaces(out);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

fn trim_end_spaces(out: &mut String) {
    while out.ends_with(' ') {
        out.pop();
    }
}

/// Lines trimmed, at most one empty line in a row, no empty lines at either end.
fn tidy(text: &str) -> String {
    let mut lines: Vec<&str> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() && lines.last().is_none_or(|l| l.is_empty()) {
            continue;
        }
        lines.push(line);
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines.join("\n")
}

/// Decodes `&amp;`-style and numeric character references; an unknown or broken one stays
/// as written.
pub fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest[1..]
            .find(';')
            .filter(|&end| end <= 10)
            .and_then(|end| entity(&rest[1..1 + end]).map(|c| (c, end + 2)));
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code).filter(|c| *c != '\0');
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "euro" => '€',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "auml" => 'ä',
        "ouml" => 'ö',
        "uuml" => 'ü',
        "Auml" => 'Ä',
        "Ouml" => 'Ö',
        "Uuml" => 'Ü',
        "szlig" => 'ß',
        "eacute" => 'é',
        "egrave" => 'è',
        "agrave" => 'à',
        "ccedil" => 'ç',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outlook_body_becomes_its_text() {
        let html = "<html><head><meta charset=\"utf-8\"><style>p{margin:0}</style></head>\
                    <body><div>Agenda:&nbsp;budget &amp; roof</div><div><br></div>\
                    <p>Bring <b>cake</b>.</p><!-- a comment --><ul><li>one</li><li>two</li></ul></body></html>";
        assert_eq!(
            to_text(html),
            "Agenda: budget & roof\n\nBring cake.\none\ntwo"
        );
    }

    #[test]
    fn links_keep_their_address_so_join_links_can_be_judged() {
        let html = r#"<p>Register <a href="https://parish.example/register?a=1&amp;b=2">here</a>.</p>
<p><a href="https://teams.microsoft.com/l/meetup-join/19%3ameeting">Click here to join the meeting</a></p>
<p><a href='https://parish.example/'>https://parish.example/</a></p>"#;
        let text = to_text(html);
        assert!(
            text.contains("Register here <https://parish.example/register?a=1&b=2>."),
            "{text}"
        );
        assert!(text.contains("<https://teams.microsoft.com/l/meetup-join/19%3ameeting>"));
        assert!(text.ends_with("https://parish.example/"), "{text}");
        let scrubbed = crate::scrub::scrub_text(&text).unwrap();
        assert!(!scrubbed.contains("teams.microsoft.com"), "{scrubbed}");
        assert!(scrubbed.contains("parish.example/register"), "{scrubbed}");
    }

    #[test]
    fn entities_are_decoded_and_broken_ones_left_alone() {
        assert_eq!(
            decode_entities("a &lt;b&gt; &#233;&#xE9; &unknown; & &#0; &#xZZ;"),
            "a <b> éé &unknown; & &#0; &#xZZ;"
        );
    }

    #[test]
    fn hostile_input_does_not_panic() {
        for html in [
            "<",
            "<a",
            "<a href=",
            "<a href=\"",
            "</",
            "<!--",
            "&",
            "&#",
            "&#x;",
            "<script>never closed",
            "<<<>>>",
            "<a href='x'>unclosed",
            "é<br/>ü",
            "\u{0}<p>\u{0}</p>",
        ] {
            let _ = to_text(html);
        }
        assert_eq!(to_text("<script>alert(1)</script>after"), "after");
        // Every string over a small alphabet of the characters that matter, up to length 6.
        let alphabet = [
            '<', '>', '/', 'a', 'p', '&', ';', '#', ' ', '=', '"', 'é', '-', '!',
        ];
        let mut stack = vec![String::new()];
        while let Some(s) = stack.pop() {
            let _ = to_text(&s);
            if s.chars().count() < 5 {
                for c in alphabet {
                    stack.push(format!("{s}{c}"));
                }
            }
        }
        assert_eq!(to_text("a<br/>b<BR>c"), "a\nb\nc");
    }
}
