//! `--dry-run` as a wrapper, not a flag: a [`DryRun`] target reads through to the real one
//! (checking access, listing what calsync owns) but never writes. Each write it is handed is
//! logged as what would be done (`plan.action`, by item and target id) and answered as if it
//! had taken effect, so the engine runs its normal path — against a state file copied into
//! memory (`Store::snapshot`), which is thrown away at the end. Nothing on disk or in the
//! target changes; nothing needs an `if dry_run` in the engine.

use super::{Applied, OwnedEvent, ProviderError, PublishedSet, Target, Write, WriteError};

/// A target that says what it would write instead of writing.
pub struct DryRun<'a> {
    inner: Box<dyn Target + 'a>,
    pair: String,
}

impl<'a> DryRun<'a> {
    pub fn new(inner: Box<dyn Target + 'a>, pair: &str) -> DryRun<'a> {
        DryRun {
            inner,
            pair: pair.to_string(),
        }
    }
}

impl Target for DryRun<'_> {
    fn prepare(&mut self) -> Result<(), ProviderError> {
        self.inner.prepare()
    }

    fn apply(&mut self, writes: &[Write]) -> Vec<Result<Applied, WriteError>> {
        writes
            .iter()
            .map(|w| {
                let (verb, target_id) = match w {
                    Write::Create { event, .. } => ("create", format!("(new) {}", event.uid)),
                    Write::Update { target_id, .. } => ("update", target_id.clone()),
                    Write::Delete { target_id, .. } => ("delete", target_id.clone()),
                };
                log::info!(event = "plan.action", pair = self.pair.as_str(), action = verb,
                           item = w.item().0.as_str(), target_id = target_id.as_str();
                           "would {verb}");
                Ok(Applied {
                    target_id,
                    etag: None,
                })
            })
            .collect()
    }

    fn finish(&mut self, published: &dyn PublishedSet) -> Result<(), ProviderError> {
        self.inner.preview(published)
    }

    fn list_owned(&mut self) -> Result<Vec<OwnedEvent>, ProviderError> {
        self.inner.list_owned()
    }
}
