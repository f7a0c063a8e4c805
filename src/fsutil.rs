//! Replacing files atomically: a temp file in the same folder, fsync, rename, fsync of the
//! folder. A reader (a web server serving the published .ics, node_exporter reading the
//! metrics file) sees the old file or the new one, never half of either; a crash leaves at
//! most a stray `.NAME.*.tmp` beside it.

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
    /// Starts writing the replacement of `path`. It gets the mode of the file it replaces,
    /// or `new_mode` when there is none.
    ///
    /// # Errors
    /// The folder cannot be written.
    pub fn create(path: &Path, new_mode: u32) -> io::Result<AtomicFile> {
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
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Some(hex(&hasher.finalize())))
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
