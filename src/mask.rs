//! Masking for logs: e-mail addresses become `j***@example.com`, wherever they appear (a Graph
//! mailbox sits in every URL path). Tokens and secrets are never handed to the logger at all.

use regex::Regex;
use std::sync::LazyLock;

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)([a-z0-9._%+-])[a-z0-9._%+-]*(@|%40)([a-z0-9.-]+\.[a-z]{2,})")
        .expect("the e-mail pattern compiles")
});

/// Masks every e-mail address in `text` (also percent-encoded ones, `%40`).
pub fn mask_emails(text: &str) -> String {
    EMAIL.replace_all(text, "$1***$2$3").into_owned()
}

/// A URL fit for a log line: e-mail addresses masked, query strings (tokens, sync cursors)
/// replaced by `?…`.
pub fn mask_url(url: &str) -> String {
    let base = match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_string(),
    };
    mask_emails(&base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_masked_everywhere() {
        let cases = [
            ("office@example.org", "o***@example.org"),
            (
                "mail j.doe@school.example.com now",
                "mail j***@school.example.com now",
            ),
            (
                "https://graph.microsoft.com/v1.0/users/office%40example.org/calendars",
                "https://graph.microsoft.com/v1.0/users/o***%40example.org/calendars",
            ),
            ("no address here", "no address here"),
        ];
        for (input, want) in cases {
            assert_eq!(mask_emails(input), want);
        }
        assert_eq!(
            mask_url("https://x.example/users/a.b@example.org/delta?$deltatoken=SECRET"),
            "https://x.example/users/a***@example.org/delta?…"
        );
    }
}
