//! Disk space reserved past the end of the log, so the flush after an append is cheaper.
//!
//! An append that reaches new blocks makes the file system allocate them, and the `fdatasync`
//! that makes the record durable then also writes the allocation's metadata (block bitmaps,
//! extents) and waits for it: on ext4 measured here ~140 µs of CPU and ~350 µs of wall time per
//! flush, against ~115 µs and ~290 µs when the blocks were reserved beforehand (`docs/benchmarks.md`,
//! session 11). So the writer reserves [`STEP`] bytes at a time ahead of the end with
//! `fallocate(FALLOC_FL_KEEP_SIZE)`: the blocks are allocated but the file's size does not change,
//! so readers, `audit verify` and log shippers still see exactly the lines written — nothing is
//! padded. Reservation is an optimisation only: where the file system refuses it (no `fallocate`,
//! a full disk), appends go on as before.

use std::fs::File;

/// Bytes reserved at a time (a few thousand records).
pub(crate) const STEP: u64 = 4 << 20;

/// How far ahead of the log's end blocks are reserved.
#[derive(Debug, Default)]
pub(crate) struct Reservation {
    /// The file offset up to which blocks are reserved (0: none known).
    end: u64,
    /// The file system refused once: do not ask again for this file.
    refused: bool,
}

impl Reservation {
    /// Before writing `need` bytes at `len`: reserve the next [`STEP`] (or more, for a larger
    /// batch) if the write would pass the reserved end.
    pub(crate) fn ahead(&mut self, file: &File, len: u64, need: u64) {
        if self.refused || len.saturating_add(need) <= self.end {
            return;
        }
        let size = STEP.max(need);
        match keep_size_fallocate(file, len, size) {
            Ok(()) => self.end = len + size,
            Err(e) => {
                self.refused = true;
                tracing::debug!(error = %e, "audit log: the file system refused to reserve space; appends allocate as they go");
            }
        }
    }

    /// The file was cut to `len` (a truncation frees the blocks past it) or replaced.
    pub(crate) fn reset(&mut self, len: u64, replaced: bool) {
        self.end = self.end.min(len);
        if replaced {
            *self = Reservation::default();
        }
    }
}

#[cfg(target_os = "linux")]
fn keep_size_fallocate(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    rustix::fs::fallocate(file, rustix::fs::FallocateFlags::KEEP_SIZE, offset, len).map_err(std::io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn keep_size_fallocate(_: &File, _: u64, _: u64) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

#[cfg(all(test, target_os = "linux"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn reserves_blocks_without_changing_the_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut f = std::fs::OpenOptions::new().append(true).create(true).open(&path).unwrap();
        let mut r = Reservation::default();
        r.ahead(&f, 0, 10);
        f.write_all(b"0123456789").unwrap();
        let meta = f.metadata().unwrap();
        assert_eq!(meta.len(), 10, "the visible size is what was written");
        if r.refused {
            return; // this file system cannot reserve (nothing to check)
        }
        assert!(meta.blocks() * 512 >= STEP, "blocks reserved ahead: {} bytes", meta.blocks() * 512);
        assert_eq!(std::fs::read(&path).unwrap(), b"0123456789");
        // Within the reservation no new request; past it, the next one starts at the end.
        r.ahead(&f, 10, 100);
        assert_eq!(r.end, STEP);
        r.ahead(&f, STEP - 10, 100);
        assert_eq!(r.end, STEP - 10 + STEP);
        // A batch larger than a step reserves all of it.
        r.ahead(&f, 2 * STEP, 3 * STEP);
        assert_eq!(r.end, 5 * STEP);
        r.reset(10, false);
        assert_eq!(r.end, 10);
        f.set_len(10).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"0123456789");
    }
}
