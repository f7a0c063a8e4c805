//! Derived names and content hashes. Pure: (pair, item key) in, opaque stable strings out.
//!
//! The tag, the CalDAV resource name, the Google event id and the target UID all come from
//! one SHA-256 over the pair name and the item key, so a target never carries a raw source
//! UID (which can name internal hosts), and a lost state file can be rebuilt by recomputing
//! the tags of the source's items.

use crate::model::ItemKey;
use sha2::{Digest, Sha256};

/// The 32-byte digest every derived name of an item comes from.
fn item_digest(pair: &str, item: &ItemKey) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"calsync/item/v1\0");
    h.update(pair.as_bytes());
    h.update(b"\0");
    h.update(item.0.as_bytes());
    h.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The part of every tag that names the pair: 16 hex digits. Two pairs may publish into one
/// target calendar; each owns only the events whose tags carry its prefix.
pub fn pair_tag_prefix(pair: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"calsync/pair/v1\0");
    h.update(pair.as_bytes());
    let digest: [u8; 32] = h.finalize().into();
    hex(&digest[..8])
}

/// The tag calsync puts on every target event it creates: the pair's prefix, a dot, and 64
/// hex digits derived from the pair and the item key.
pub fn item_tag(pair: &str, item: &ItemKey) -> String {
    format!(
        "{}.{}",
        pair_tag_prefix(pair),
        hex(&item_digest(pair, item))
    )
}

/// Whether a tag found in a target belongs to this pair.
pub fn is_pair_tag(pair: &str, tag: &str) -> bool {
    tag.split_once('.')
        .is_some_and(|(prefix, rest)| prefix == pair_tag_prefix(pair) && rest.len() == 64)
}

/// The UID a target event gets.
pub fn target_uid(pair: &str, item: &ItemKey) -> String {
    format!("{}@calsync", hex(&item_digest(pair, item)))
}

/// The UID of the item a tag was made for: targets that cannot store a UID of their own
/// (Graph assigns its own `iCalUId`) read it back from the tag.
pub fn target_uid_of_tag(tag: &str) -> String {
    let digest = tag.split_once('.').map_or(tag, |(_, d)| d);
    format!("{digest}@calsync")
}

/// The CalDAV resource name (without the collection path).
pub fn resource_name(pair: &str, item: &ItemKey) -> String {
    format!("calsync-{}.ics", hex(&item_digest(pair, item)))
}

/// A Google Calendar event id: lowercase base32hex (`0-9a-v`) of the digest, 52 characters.
pub fn google_event_id(pair: &str, item: &ItemKey) -> String {
    base32hex_lower(&item_digest(pair, item))
}

fn base32hex_lower(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// SHA-256 of arbitrary bytes, hex (feeds, config files).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> ItemKey {
        ItemKey(s.to_string())
    }

    #[test]
    fn derived_names_are_stable_and_opaque() {
        let uid = target_uid("parish", &key("secret-host.internal/123"));
        assert_eq!(uid, target_uid("parish", &key("secret-host.internal/123")));
        assert!(!uid.contains("secret"));
        assert_ne!(uid, target_uid("school", &key("secret-host.internal/123")));
        let tag = item_tag("p", &key("k"));
        assert_eq!(tag.len(), 16 + 1 + 64);
        assert!(is_pair_tag("p", &tag));
        assert!(!is_pair_tag("q", &tag));
        assert!(!is_pair_tag("p", "0123456789abcdef.short"));
        assert_eq!(target_uid_of_tag(&tag), target_uid("p", &key("k")));
    }

    #[test]
    fn google_ids_follow_the_documented_alphabet() {
        let id = google_event_id("parish", &key("x"));
        assert_eq!(id.len(), 52);
        assert!(id.chars().all(|c| matches!(c, '0'..='9' | 'a'..='v')));
    }

    #[test]
    fn base32hex_matches_rfc4648_vectors() {
        // RFC 4648 §10, base32hex, lowercased and without padding.
        assert_eq!(base32hex_lower(b"f"), "co");
        assert_eq!(base32hex_lower(b"fo"), "cpng");
        assert_eq!(base32hex_lower(b"foo"), "cpnmu");
        assert_eq!(base32hex_lower(b"foobar"), "cpnmuoj1e8");
    }
}
