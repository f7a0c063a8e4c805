//! Where a feed's bytes come from: an HTTP body already in memory, or a file read range by
//! range, so that reading a 90 MB feed does not mean holding 90 MB (DESIGN.md, Cost).
//!
//! [`super::read_feed`] reads a feed twice in parts: once from start to end to find where its
//! components lie (`lines::scan`), then each group of events when its page is read.

use std::borrow::Cow;
use std::io::{self, BufRead};
use std::ops::Range;

/// A feed's bytes, streamed whole or read by range.
pub trait FeedBytes {
    /// The feed from its first byte.
    ///
    /// # Errors
    /// Reading failed.
    fn reader(&self) -> io::Result<Box<dyn BufRead + '_>>;

    /// The bytes in `range` (found by an earlier pass of [`FeedBytes::reader`]).
    ///
    /// # Errors
    /// Reading failed, or the feed is shorter than it was (it changed while it was read).
    fn range(&self, range: Range<usize>) -> io::Result<Cow<'_, [u8]>>;
}

impl FeedBytes for &[u8] {
    fn reader(&self) -> io::Result<Box<dyn BufRead + '_>> {
        Ok(Box::new(*self))
    }

    fn range(&self, range: Range<usize>) -> io::Result<Cow<'_, [u8]>> {
        self.get(range).map(Cow::Borrowed).ok_or_else(shorter)
    }
}

/// An open feed file. Reads go through the one open file, so a feed replaced by a rename
/// while it is read is still read as the file that was opened; one rewritten in place is the
/// caller's to notice (its size or modification time changed).
pub struct FeedFile<'f>(pub &'f std::fs::File);

impl FeedBytes for FeedFile<'_> {
    fn reader(&self) -> io::Result<Box<dyn BufRead + '_>> {
        use std::io::Seek;
        let mut file = self.0;
        file.seek(io::SeekFrom::Start(0))?;
        Ok(Box::new(io::BufReader::with_capacity(1 << 16, file)))
    }

    fn range(&self, range: Range<usize>) -> io::Result<Cow<'_, [u8]>> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; range.len()];
        self.0
            .read_exact_at(&mut buf, range.start as u64)
            .map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    shorter()
                } else {
                    e
                }
            })?;
        Ok(Cow::Owned(buf))
    }
}

fn shorter() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the feed became shorter while it was read",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn a_file_reads_as_its_bytes_do() {
        let bytes = b"BEGIN:VCALENDAR\r\nX:1\r\nEND:VCALENDAR\r\n";
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        let from_file = FeedFile(&file);
        for _ in 0..2 {
            // The reader starts at the first byte every time, wherever the file was left.
            let mut whole = Vec::new();
            from_file.reader().unwrap().read_to_end(&mut whole).unwrap();
            assert_eq!(whole, bytes);
        }
        assert_eq!(*from_file.range(17..20).unwrap(), bytes[17..20]);
        assert_eq!(*(&bytes[..]).range(17..20).unwrap(), bytes[17..20]);
        for past in [30..60, 60..61] {
            let e = from_file.range(past.clone()).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
            assert_eq!(
                (&bytes[..]).range(past).unwrap_err().kind(),
                io::ErrorKind::UnexpectedEof
            );
        }
    }
}
