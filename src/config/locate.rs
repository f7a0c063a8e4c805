//! Where in the file a key is: the key path (`pair 'parish'.recurrence`) and line of a byte
//! offset, from the parser's spans. Errors that serde reports about a value (an unknown
//! enum value, a wrong type) then name the key they are about, not the value.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The line (1-based) of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The key path of the deepest key whose key or value holds `offset`, with the line of that
/// key; `None` when the text does not parse or no key holds it.
pub fn key_at(text: &str, offset: usize) -> Option<(String, usize)> {
    let doc = DeTable::parse(text).ok()?;
    let mut best = None;
    search(doc.get_ref(), "", offset, &mut best);
    best.map(|(path, at)| (path, line_of(text, at)))
}

/// The line of a key path as [`key_at`] writes it (`pair 'parish'.source.kind`,
/// `net.retries`); `None` when it is not written in the file.
pub fn line_of_key(text: &str, path: &str) -> Option<usize> {
    let doc = DeTable::parse(text).ok()?;
    let mut found = None;
    find(doc.get_ref(), "", path, &mut found);
    found.map(|at| line_of(text, at))
}

fn joined(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// How an element of an array of tables is named: `pair 'parish'` by its `name`, else
/// `pair[0]`.
fn element(prefix: &str, index: usize, value: &DeValue<'_>) -> String {
    match value {
        DeValue::Table(t) => match t
            .iter()
            .find(|(k, _)| k.get_ref() == "name")
            .map(|(_, v)| v.get_ref())
        {
            Some(DeValue::String(name)) => format!("{prefix} '{name}'"),
            _ => format!("{prefix}[{index}]"),
        },
        _ => prefix.to_string(),
    }
}

fn search(table: &DeTable<'_>, prefix: &str, offset: usize, best: &mut Option<(String, usize)>) {
    for (key, value) in table {
        let path = joined(prefix, key.get_ref());
        let holds = |s: std::ops::Range<usize>| s.contains(&offset) || s.start == offset;
        if holds(key.span()) || holds(value.span()) {
            *best = Some((path.clone(), key.span().start));
        }
        descend(value, &path, offset, best);
    }
}

fn descend(
    value: &Spanned<DeValue<'_>>,
    path: &str,
    offset: usize,
    best: &mut Option<(String, usize)>,
) {
    match value.get_ref() {
        DeValue::Table(t) => search(t, path, offset, best),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if matches!(item.get_ref(), DeValue::Table(_)) {
                    let named = element(path, i, item.get_ref());
                    descend(item, &named, offset, best);
                }
            }
        }
        _ => {}
    }
}

fn find(table: &DeTable<'_>, prefix: &str, wanted: &str, found: &mut Option<usize>) {
    for (key, value) in table {
        let path = joined(prefix, key.get_ref());
        if path == wanted {
            *found = Some(key.span().start);
            return;
        }
        match value.get_ref() {
            DeValue::Table(t) => find(t, &path, wanted, found),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let DeValue::Table(t) = item.get_ref() {
                        // By its name, or by its index (before the name is known to be good).
                        find(t, &element(&path, i, item.get_ref()), wanted, found);
                        if found.is_none() {
                            find(t, &format!("{path}[{i}]"), wanted, found);
                        }
                    }
                }
            }
            _ => {}
        }
        if found.is_some() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[net]\nretries = 3\n\n[[pair]]\nname = \"parish\"\nrecurrence = \"explode\"\nfields = [\n  \"title\",\n  \"attendees\",\n]\n[pair.source]\nkind = \"exchange\"\n\n[[pair]]\nrecurrence = \"x\"\n";

    #[test]
    fn an_offset_is_named_by_its_key_and_line() {
        let at = |needle: &str| TEXT.find(needle).unwrap();
        assert_eq!(key_at(TEXT, at("3")), Some(("net.retries".into(), 2)));
        assert_eq!(
            key_at(TEXT, at("\"explode\"")),
            Some(("pair 'parish'.recurrence".into(), 6))
        );
        assert_eq!(
            key_at(TEXT, at("\"attendees\"")),
            Some(("pair 'parish'.fields".into(), 7))
        );
        assert_eq!(
            key_at(TEXT, at("\"exchange\"")),
            Some(("pair 'parish'.source.kind".into(), 12))
        );
        assert_eq!(
            key_at(TEXT, at("\"x\"")),
            Some(("pair[1].recurrence".into(), 15))
        );
    }

    #[test]
    fn a_key_path_is_found_by_its_line() {
        assert_eq!(line_of_key(TEXT, "pair 'parish'.source.kind"), Some(12));
        assert_eq!(line_of_key(TEXT, "net.retries"), Some(2));
        assert_eq!(line_of_key(TEXT, "pair[1].recurrence"), Some(15));
        assert_eq!(line_of_key(TEXT, "pair[0].name"), Some(5));
        assert_eq!(line_of_key(TEXT, "pair 'parish'.past_days"), None);
    }
}
