//! Files that others read while calsync rewrites them (a published .ics, the metrics file).
//!
//! A reader must see the old file or the new one, never half of either: a web server serving
//! the calendar, node_exporter scraping the metrics. So a file is replaced by writing a temp
//! file in the same folder (same filesystem, so the rename is atomic), fsync, rename over the
//! old one, and fsync of the folder so the rename itself survives a power loss.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Replaces `path` with `bytes` atomically. An existing file keeps its permissions; a new one
/// gets `new_mode` (e.g. 0o644 for a file meant to be served).
///
/// # Errors
/// The I/O error of the first step that failed; the temp file is then removed and the old
/// file is left as it was.
pub fn replace_file(path: &Path, bytes: &[u8], new_mode: u32) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "calsync".into());
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(new_mode);
    let mut suffix = [0u8; 6];
    // A clash is only possible between two writers of the same file, which the run lock
    // prevents; the random suffix just keeps a crashed run's leftover out of the way.
    let _ = getrandom::fill(&mut suffix);
    // Leading dot: node_exporter's textfile collector reads only `*.prom`, web servers
    // usually hide dot files, so the half-written temp file is never picked up.
    let tmp = dir.join(format!(
        ".{file_name}.{}.tmp",
        suffix
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        // The umask may have narrowed the mode given at creation.
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_replaced_file_keeps_its_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("public.ics");
        replace_file(&path, b"one", 0o644).unwrap();
        assert_eq!(mode_of(&path), 0o644);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        replace_file(&path, b"two", 0o644).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(mode_of(&path), 0o640);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_replace_leaves_the_old_file_and_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        // A folder where the file should be: the rename fails after the temp file was written.
        let path = dir.path().join("calsync.prom");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("keep"), b"x").unwrap();
        assert!(replace_file(&path, b"new", 0o644).is_err());
        assert!(path.join("keep").exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
