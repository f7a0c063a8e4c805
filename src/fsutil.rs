//! Replacing files atomically: a temp file in the same folder, fsync, rename, fsync of the
//! folder. A reader (a web server serving the published .ics, node_exporter reading the
//! metrics file) sees the old file or the new one, never half of either; a crash leaves at
//! most a stray `.NAME.<12 hex>.tmp` beside it, which the next write of that file removes.
//!
//! A symlink is written through: the file it points to is replaced in its own folder, and
//! the link stays a link. [`real_path`] names the file a path really means, so that two
//! spellings of one file (a symlink, `./`, a relative path) are seen as one.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A file being written beside its final place; `commit` puts it there, dropping it without
/// committing removes it.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
}

impl AtomicFile {
    /// Starts writing the replacement of `path` (of the file it points to, when it is a
    /// symlink). It gets the mode of the file it replaces, or `new_mode` when there is none.
    /// Temp files a killed earlier write of the same file left behind are removed first.
    ///
    /// # Errors
    /// The folder cannot be written.
    pub fn create(path: &Path, new_mode: u32) -> io::Result<AtomicFile> {
        let path = &follow_links(path)?;
        remove_stale_temps(path);
        let dir = folder_of(path);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into());
        let mode = std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(new_mode);
        let mut suffix = [0u8; 6];
        getrandom::fill(&mut suffix).map_err(|e| io::Error::other(e.to_string()))?;
        let tmp = dir.join(format!(
            ".{name}.{}.tmp",
            suffix
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have narrowed the mode on creation.
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp,
            file: Some(file),
        })
    }

    /// Syncs the new content and renames it over the old file.
    ///
    /// # Errors
    /// Any I/O failure; the old file is then untouched.
    pub fn commit(mut self) -> io::Result<()> {
        let file = self
            .file
            .take()
            .expect("an uncommitted AtomicFile has its file");
        file.sync_all()?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path)?;
        File::open(folder_of(&self.path))?.sync_all()
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.as_mut().expect("open").write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("open").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// The temp file name of a write of `name`: `.NAME.` and 12 hex digits and `.tmp`.
fn is_temp_of(candidate: &str, name: &str) -> bool {
    candidate
        .strip_prefix('.')
        .and_then(|c| c.strip_prefix(name))
        .and_then(|c| c.strip_prefix('.'))
        .and_then(|c| c.strip_suffix(".tmp"))
        .is_some_and(|hex| {
            hex.len() == 12
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// Removes the temp files an earlier write of `path` left behind when it was killed between
/// creating and renaming them. Only names of exactly that pattern are touched; a failure to
/// remove one is logged and harmless.
fn remove_stale_temps(path: &Path) {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(folder_of(path)) else {
        return;
    };
    for entry in entries.flatten() {
        let candidate = entry.file_name();
        if !is_temp_of(&candidate.to_string_lossy(), &name) {
            continue;
        }
        let stale = entry.path();
        match std::fs::remove_file(&stale) {
            Ok(()) => {
                log::info!(event = "temp.removed", path = stale.display().to_string().as_str();
                                 "removed a temp file an interrupted earlier write left behind")
            }
            Err(e) => {
                log::warn!(event = "temp.not_removed", path = stale.display().to_string().as_str();
                                 "cannot remove a temp file an earlier write left behind: {e}")
            }
        }
    }
}

/// Follows `path` through symlinks (also to a file that does not exist yet), to the path a
/// write must replace so that the links stay links.
///
/// # Errors
/// A link that cannot be read, or a loop (more than 40 links).
pub fn follow_links(path: &Path) -> io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&p)?;
                p = if target.is_absolute() {
                    target
                } else {
                    folder_of(&p).join(target)
                };
            }
            _ => return Ok(p),
        }
    }
    Err(io::Error::other(format!(
        "{}: too many levels of symbolic links",
        path.display()
    )))
}

/// The file `path` really names: absolute, with symlinks, `.` and `..` resolved. A file that
/// does not exist (yet) is named through its folder's real path; a path whose folder does not
/// exist either is made absolute as written.
pub fn real_path(path: &Path) -> PathBuf {
    if let Ok(real) = std::fs::canonicalize(path) {
        return real;
    }
    let followed = follow_links(path).unwrap_or_else(|_| path.to_path_buf());
    match followed.file_name() {
        Some(name) => match std::fs::canonicalize(folder_of(&followed)) {
            Ok(dir) => dir.join(name),
            Err(_) => std::path::absolute(&followed).unwrap_or(followed),
        },
        None => std::path::absolute(&followed).unwrap_or(followed),
    }
}

/// The mode of a file when its group or others may read it (a secret or a state file
/// should be its owner's alone); `None` when they may not, or it cannot be looked at.
pub fn readable_by_others(path: &Path) -> Option<u32> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o044 != 0).then_some(mode)
}

fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Replaces `path` with `bytes` atomically (new files get `new_mode`).
///
/// # Errors
/// Any I/O failure; the old file is then untouched.
pub fn replace_file(path: &Path, bytes: &[u8], new_mode: u32) -> io::Result<()> {
    let mut f = AtomicFile::create(path, new_mode)?;
    f.write_all(bytes)?;
    f.commit()
}

/// SHA-256 (hex) of a file's content, read in pieces; `None` when there is no such file.
///
/// # Errors
/// The file exists but cannot be read.
pub fn file_sha256(path: &Path) -> io::Result<Option<String>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    read_sha256(file).map(Some)
}

/// SHA-256 (hex) of everything `input` yields, read in pieces.
///
/// # Errors
/// Reading failed.
pub fn read_sha256(mut input: impl Read) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// A writer that hashes what passes through it.
pub struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    /// Flushes and returns the inner writer, the SHA-256 (hex) and the byte count.
    ///
    /// # Errors
    /// The flush failed.
    pub fn finish(mut self) -> io::Result<(W, String, u64)> {
        self.inner.flush()?;
        Ok((self.inner, hex(&self.hasher.finalize()), self.written))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_file_keeps_its_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("public.ics");
        replace_file(&path, b"one", 0o644).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        replace_file(&path, b"two", 0o644).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_uncommitted_file_leaves_the_old_one_and_no_trace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("public.ics");
        replace_file(&path, b"old", 0o644).unwrap();
        {
            let mut f = AtomicFile::create(&path, 0o644).unwrap();
            f.write_all(b"half of the new").unwrap();
        }
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_symlink_is_written_through_and_stale_temps_go() {
        let dir = tempfile::tempdir().unwrap();
        let real_dir = dir.path().join("data");
        std::fs::create_dir(&real_dir).unwrap();
        let link = dir.path().join("public.ics");
        std::os::unix::fs::symlink("data/real.ics", &link).unwrap();
        std::fs::write(real_dir.join(".real.ics.0123456789ab.tmp"), b"half").unwrap();
        std::fs::write(real_dir.join(".real.ics.notes.tmp"), b"keep").unwrap();
        replace_file(&link, b"one", 0o644).unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(real_dir.join("real.ics")).unwrap(), b"one");
        let mut left: Vec<String> = std::fs::read_dir(&real_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".real.ics.notes.tmp", "real.ics"]);
        assert_eq!(real_path(&link), real_path(&real_dir.join("real.ics")));
        assert_eq!(
            real_path(&dir.path().join("./data/../data/new.ics")),
            real_path(&real_dir).join("new.ics")
        );
    }

    #[test]
    fn hashes_agree() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        assert_eq!(file_sha256(&path).unwrap(), None);
        std::fs::write(&path, b"abc").unwrap();
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"abc").unwrap();
        let (bytes, digest, n) = w.finish().unwrap();
        assert_eq!((bytes.as_slice(), n), (&b"abc"[..], 3));
        assert_eq!(file_sha256(&path).unwrap(), Some(digest.clone()));
        assert_eq!(
            digest,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
