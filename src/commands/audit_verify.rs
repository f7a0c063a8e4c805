//! `calsync audit-verify`: recomputes the audit log's HMAC chain and names the first entry
//! that does not verify — a changed, inserted, deleted or reordered entry breaks the chain
//! there. With `--expect-head SEQ:MAC` (the head a run logged, kept elsewhere, e.g. by
//! journald) it also catches truncation and a rewritten chain: the chain must still hold that
//! entry with that MAC. Reads only; creates nothing.

use super::report::{self, Table};
use crate::cli::{AuditVerifyArgs, GlobalArgs};
use crate::error::Error;
use crate::exit;
use crate::store::{AuditKey, ChainCheck, ChainHead, Store, StoreError};

/// Runs `audit-verify`; 0 intact, 1 broken.
///
/// # Errors
/// A bad `--expect-head` (64), config (78), an unusable state file or audit key (78).
pub fn run(global: &GlobalArgs, args: &AuditVerifyArgs) -> Result<i32, Error> {
    let expected = args
        .expect_head
        .as_deref()
        .map(|h| {
            h.parse::<ChainHead>()
                .map_err(|e| Error::Usage(format!("--expect-head: {e}")))
        })
        .transpose()?;
    let (settings, _) = report::load(global)?;
    let store = match Store::open_existing(&settings.state) {
        Ok(store) => Some(store),
        // The whole file is gone: with a head seen before, that is the chain truncated to
        // nothing; without one there is nothing to verify.
        Err(StoreError::Missing { .. }) if expected.is_some() => None,
        Err(e) => return Err(e.into()),
    };
    let (check, mac_at_expected, key_path) = match &store {
        Some(store) => {
            let entries = store.audit_entries()?;
            let key = AuditKey::load_existing(settings.audit_key_file.as_deref(), &settings.state)
                .map_err(Error::AuditKey)?;
            let check = match &key {
                Some(key) => store.verify_audit(key)?,
                None if entries.is_empty() => ChainCheck {
                    entries: 0,
                    head: None,
                    first_bad: None,
                },
                None => {
                    return Err(Error::AuditKey(format!(
                        "the audit chain has {} entries but there is no audit key at {}; set audit_key_file",
                        entries.len(),
                        AuditKey::default_path(&settings.state).display()
                    )));
                }
            };
            let mac = expected.as_ref().and_then(|h| {
                entries
                    .iter()
                    .find(|e| e.seq == h.seq)
                    .map(|e| e.mac.clone())
            });
            (check, mac, key.map(|k| k.path))
        }
        None => (
            ChainCheck {
                entries: 0,
                head: None,
                first_bad: None,
            },
            None,
            None,
        ),
    };
    let first_bad = verdict(&check, expected.as_ref(), mac_at_expected.as_deref());
    if let Some(head) = &check.head {
        log::info!(event = "audit.head", seq = head.seq, mac = head.mac.as_str(),
                   head = head.to_string().as_str(); "audit chain head");
    }
    match &first_bad {
        Some((seq, reason)) => {
            log::error!(event = "audit.broken", seq = *seq; "audit chain broken at entry {seq}: {reason}")
        }
        None => log::info!(event = "audit.intact", entries = check.entries; "audit chain intact"),
    }

    let status = if first_bad.is_some() {
        "broken"
    } else {
        "intact"
    };
    let document = serde_json::json!({
        "status": status,
        "entries": check.entries,
        "head": check.head.as_ref().map(ToString::to_string),
        "expected_head": expected.as_ref().map(ToString::to_string),
        "first_bad": first_bad.as_ref().map(|(seq, reason)| serde_json::json!({"seq": seq, "reason": reason})),
        "state": settings.state.display().to_string(),
        "key": key_path.as_ref().map(|p| p.display().to_string()),
    });
    report::print(report::wants_json(args.format), &document, || {
        let mut t = Table::new(&["AUDIT CHAIN", "VALUE"]);
        t.row(vec!["status".into(), status.into()]);
        t.row(vec!["entries".into(), check.entries.to_string()]);
        t.row(vec![
            "head".into(),
            check
                .head
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_else(|| "(empty)".into()),
        ]);
        if let Some(h) = &expected {
            t.row(vec!["expected head".into(), h.to_string()]);
        }
        if let Some((seq, reason)) = &first_bad {
            t.row(vec!["first bad entry".into(), seq.to_string()]);
            t.row(vec!["why".into(), reason.clone()]);
        }
        t.render()
    });
    Ok(if first_bad.is_some() {
        exit::FAILED
    } else {
        exit::OK
    })
}

/// The first bad entry: the chain's own first break, or else where it fails the expected
/// head (`mac_at_expected` is the MAC the chain holds at the expected sequence number, if it
/// reaches it).
pub fn verdict(
    check: &ChainCheck,
    expected: Option<&ChainHead>,
    mac_at_expected: Option<&str>,
) -> Option<(i64, String)> {
    if let Some(bad) = &check.first_bad {
        return Some(bad.clone());
    }
    let expected = expected?;
    let last = check.head.as_ref().map_or(0, |h| h.seq);
    match mac_at_expected {
        None => Some((
            last + 1,
            format!(
                "the chain ends at entry {last} but entry {} was seen before: entries {}..={} are missing (truncated)",
                expected.seq,
                last + 1,
                expected.seq
            ),
        )),
        Some(mac) if !mac.eq_ignore_ascii_case(&expected.mac) => Some((
            expected.seq,
            format!(
                "entry {} is not the one seen before (another MAC): the chain was rewritten",
                expected.seq
            ),
        )),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(seq: i64, c: char) -> ChainHead {
        ChainHead {
            seq,
            mac: c.to_string().repeat(64),
        }
    }

    fn check(last: Option<ChainHead>, first_bad: Option<(i64, String)>) -> ChainCheck {
        ChainCheck {
            entries: last.as_ref().map_or(0, |h| h.seq as u64),
            head: last,
            first_bad,
        }
    }

    #[test]
    fn the_expected_head_catches_truncation_and_rewriting() {
        let intact = check(Some(head(5, 'a')), None);
        assert_eq!(verdict(&intact, None, None), None);
        // Seen 5 and the chain still holds it: intact (later entries may follow).
        assert_eq!(
            verdict(&intact, Some(&head(5, 'a')), Some(&"a".repeat(64))),
            None
        );
        // Seen 7, chain ends at 5: truncated, 6 is the first missing entry.
        let (seq, why) = verdict(&intact, Some(&head(7, 'b')), None).unwrap();
        assert_eq!(seq, 6);
        assert!(why.contains("truncated"), "{why}");
        // Emptied completely.
        assert_eq!(
            verdict(&check(None, None), Some(&head(3, 'b')), None)
                .unwrap()
                .0,
            1
        );
        // Seen 4 with another MAC: the chain was rebuilt under the same key.
        let (seq, why) = verdict(&intact, Some(&head(4, 'b')), Some(&"c".repeat(64))).unwrap();
        assert_eq!(seq, 4);
        assert!(why.contains("rewritten"), "{why}");
        // A break inside the chain is named first.
        let broken = check(Some(head(5, 'a')), Some((2, "edited".into())));
        assert_eq!(verdict(&broken, Some(&head(9, 'a')), None).unwrap().0, 2);
    }
}
