//! The flush journal: a small ring of whole blocks where a batch becomes durable, so that
//! `audit.jsonl` itself need not be flushed for every batch.
//!
//! Why: an append changes the log's size, so the `fdatasync` that makes it durable also writes
//! and waits for the inode, and on ext4 converts the reserved extent it wrote into; overwriting
//! blocks that were written before changes nothing but data. Measured on this VM's ext4, 4 KiB
//! write + `fdatasync` in a loop: ~220 µs per flush appending into blocks reserved with
//! `KEEP_SIZE` (what the log alone did), ~135 µs overwriting written blocks, with a p99 of
//! ~270 µs against ~640 µs (`docs/benchmarks.md`, session 21). Padding `audit.jsonl` itself
//! with zeros would give the same, but operators tail and ship that file; it stays exactly its
//! lines.
//!
//! So each batch is written twice: appended to `audit.jsonl` (page cache only) and written here
//! as one frame at a block-aligned offset, and the sync workers flush this file. The ring is
//! reused only over frames whose records `audit.jsonl` already holds durably: the writer flushes
//! the log before each checkpoint (so a checkpoint never signs a record the log itself might
//! lose) and before the ring would overwrite a frame written since the last such flush.
//!
//! A frame is a [`HEADER`]-byte header — magic, payload length, first and last seq — then the
//! batch's lines, zero-padded to whole [`BLOCK`]s. The file grows during its first lap and is
//! overwritten in place after. Replay needs no checksum of its own: every line carries its hash
//! and links to the one before, so [`replay`] appends, from the log's head on, only lines that
//! verify and link. Frames of earlier laps (their records are at or below the head), torn frames
//! and bytes that merely look like a header are skipped.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::chain::check_line;
use crate::log::Head;

/// The journal inside the audit directory.
pub const JOURNAL_FILE: &str = "audit.journal";
/// Size of the ring: ≥ 1,024 frames, more than a checkpoint interval's worth at the default.
pub(crate) const RING: u64 = 4 << 20;
/// Frames start on block boundaries and fill whole blocks, so a later lap overwrites whole
/// written blocks (no read, no allocation, no size change).
pub(crate) const BLOCK: u64 = 4096;
/// magic (8) | payload length u32 LE | reserved u32 | first seq u64 LE | last seq u64 LE.
pub(crate) const HEADER: usize = 32;
const MAGIC: &[u8; 8] = b"TGAUDJ01";
/// Frames remembered for [`Journal::erase_after`].
const RECENT: usize = 128;

/// Where a batch went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placed {
    /// Written as a frame: flushing the journal makes the batch durable.
    Journal,
    /// Larger than a quarter of the ring: the log itself must be flushed.
    TooLarge,
    /// Writing it would overwrite a frame whose records the log does not yet hold durably:
    /// flush the log, [`Journal::log_synced`], and write again.
    Unsynced,
}

pub(crate) struct Journal {
    path: PathBuf,
    file: File,
    size: u64,
    /// Offset of the next frame.
    pos: u64,
    /// Bytes of ring consumed since open, counting the tail skipped at a wrap: a frame written
    /// at mark `m` is overwritten once the mark passes `m + size`.
    mark: u64,
    /// The mark up to which every frame's records are durable in the log.
    synced: u64,
    frame: Vec<u8>,
    /// (offset, last seq) of the latest frames.
    recent: VecDeque<(u64, u64)>,
}

impl Journal {
    /// Opens (creating if needed) the journal at `path`. Existing frames are kept until
    /// overwritten: run [`replay`] first, and their records are all at or below the head.
    pub(crate) fn open(path: &Path, size: u64) -> io::Result<Journal> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        Ok(Journal {
            path: path.to_owned(),
            file,
            size: size.max(4 * BLOCK) / BLOCK * BLOCK,
            pos: 0,
            mark: 0,
            synced: 0,
            frame: Vec::with_capacity(2 * BLOCK as usize),
            recent: VecDeque::with_capacity(RECENT),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Everything written so far is durable in the log (it was just flushed).
    pub(crate) fn log_synced(&mut self) {
        self.synced = self.mark;
    }

    /// Every frame written before `mark` is durable in the log (a background flush of it,
    /// requested at that mark, completed).
    pub(crate) fn log_synced_to(&mut self, mark: u64) {
        self.synced = self.synced.max(mark.min(self.mark));
    }

    /// The current mark: what [`Journal::log_synced_to`] is later told.
    pub(crate) fn mark(&self) -> u64 {
        self.mark
    }

    /// Bytes of ring written since the log was last known durable.
    pub(crate) fn unsynced(&self) -> u64 {
        self.mark - self.synced
    }

    /// Writes `lines` (records `first..=last`, each ending in `\n`) as one frame.
    pub(crate) fn write(&mut self, lines: &[u8], first: u64, last: u64) -> io::Result<Placed> {
        let len = (HEADER + lines.len()) as u64;
        let need = len.div_ceil(BLOCK) * BLOCK;
        if need > self.size / 4 {
            return Ok(Placed::TooLarge);
        }
        let (at, skipped) = if self.pos + need > self.size { (0, self.size - self.pos) } else { (self.pos, 0) };
        let start = self.mark + skipped;
        // The ring bytes up to `start + need` were last written at marks up to
        // `start + need - size`; those frames must be durable elsewhere.
        if (start + need).saturating_sub(self.size) > self.synced {
            return Ok(Placed::Unsynced);
        }
        self.frame.clear();
        self.frame.extend_from_slice(MAGIC);
        self.frame.extend_from_slice(&u32::try_from(lines.len()).unwrap_or(u32::MAX).to_le_bytes());
        self.frame.extend_from_slice(&[0; 4]);
        self.frame.extend_from_slice(&first.to_le_bytes());
        self.frame.extend_from_slice(&last.to_le_bytes());
        self.frame.extend_from_slice(lines);
        self.frame.resize(need as usize, 0);
        self.file.write_all_at(&self.frame, at)?;
        self.pos = at + need;
        self.mark = start + need;
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((at, last));
        Ok(Placed::Journal)
    }

    /// After a failure: blanks the headers of recent frames holding records past `durable`
    /// (never acknowledged), so a replay cannot bring them back. Best effort, like cutting the
    /// log back: a device that failed a flush may fail this one too.
    pub(crate) fn erase_after(&mut self, durable: u64) -> io::Result<()> {
        let mut erased = false;
        for &(at, last) in &self.recent {
            if last > durable {
                self.file.write_all_at(&[0; HEADER], at)?;
                erased = true;
            }
        }
        if erased {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

/// What [`replay`] appended to the log.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Replayed {
    pub records: u64,
    pub bytes: u64,
    /// The journal held frames of an earlier run (it was not missing or empty).
    pub found: bool,
}

/// Appends to `log` (at its end, whose chain ends at `head`) every journaled record that
/// continues the chain, in order, flushes the log, and returns the new head.
pub(crate) fn replay(path: &Path, log: &mut File, head: &Head) -> io::Result<(Head, Replayed)> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((head.clone(), Replayed::default())),
        Err(e) => return Err(e),
    }
    if bytes.is_empty() {
        return Ok((head.clone(), Replayed::default()));
    }
    let candidates = candidates(&bytes, head.seq);
    let mut head = head.clone();
    let mut out = Vec::new();
    let mut records = 0;
    while let Some(lines) = candidates.get(&(head.seq + 1)) {
        let Some((line, hash)) = lines.iter().find_map(|l| {
            let c = check_line(l).ok()?;
            (c.intact() && c.seq == head.seq + 1 && c.prev_hash == head.hash).then_some((l, c.hash))
        }) else {
            break;
        };
        out.extend_from_slice(line);
        out.push(b'\n');
        head = Head { seq: head.seq + 1, hash };
        records += 1;
    }
    if !out.is_empty() {
        log.write_all(&out)?;
        log.sync_data()?;
    }
    Ok((head, Replayed { records, bytes: out.len() as u64, found: true }))
}

/// Lines of every frame whose header says it holds records past `after`, by the seq the line
/// names (several per seq when frames disagree; [`replay`] takes the one that links).
fn candidates(bytes: &[u8], after: u64) -> BTreeMap<u64, Vec<&[u8]>> {
    #[derive(serde::Deserialize)]
    struct Seq {
        seq: u64,
    }
    let mut out: BTreeMap<u64, Vec<&[u8]>> = BTreeMap::new();
    let u64_at = |b: &[u8]| b.try_into().map(u64::from_le_bytes).unwrap_or(0);
    for at in (0..bytes.len()).step_by(BLOCK as usize) {
        let Some(h) = bytes.get(at..at + HEADER) else { break };
        if &h[..8] != MAGIC || u64_at(&h[24..32]) <= after {
            continue;
        }
        let len = h[8..12].try_into().map(u32::from_le_bytes).unwrap_or(u32::MAX) as usize;
        let Some(payload) = bytes.get(at + HEADER..at + HEADER + len) else { continue };
        for line in payload.split(|&b| b == b'\n') {
            if let Ok(s) = serde_json::from_slice::<Seq>(line) {
                if s.seq > after {
                    let v = out.entry(s.seq).or_default();
                    if !v.contains(&line) {
                        v.push(line);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::chain::Prepared;
    use crate::record::{Entry, Timestamp, GENESIS_HASH};

    /// `n` sealed lines of one chain from genesis.
    fn chain(n: u64) -> (Vec<Vec<u8>>, Vec<String>) {
        let mut prev = GENESIS_HASH.to_owned();
        let (mut lines, mut hashes) = (Vec::new(), Vec::new());
        for seq in 1..=n {
            let p = Prepared::new(&Entry::request(format!("req-{seq}"), Timestamp::now())).unwrap();
            let (line, hash) = p.seal(seq, &prev);
            lines.push(line);
            hashes.push(hash.clone());
            prev = hash;
        }
        (lines, hashes)
    }

    fn genesis() -> Head {
        Head { seq: 0, hash: GENESIS_HASH.to_owned() }
    }

    #[test]
    fn replay_appends_what_continues_the_chain_across_wraps_and_skips_the_rest() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(JOURNAL_FILE);
        let (lines, hashes) = chain(300);
        // A ring of 16 blocks, every frame three records (one block): several laps.
        let mut j = Journal::open(&path, 16 * BLOCK).unwrap();
        for (i, batch) in lines.chunks(3).enumerate() {
            let first = i as u64 * 3 + 1;
            let payload = batch.concat();
            let mut placed = j.write(&payload, first, first + batch.len() as u64 - 1).unwrap();
            if placed == Placed::Unsynced {
                j.log_synced();
                placed = j.write(&payload, first, first + batch.len() as u64 - 1).unwrap();
            }
            assert_eq!(placed, Placed::Journal);
        }
        assert!(std::fs::metadata(&path).unwrap().len() <= 16 * BLOCK, "the ring stays its size");

        // The ring holds the last 16 frames, records 253..=300. A log whose head is 250 cannot
        // be continued (251 and 252 were overwritten); one whose head is 252 can.
        let log_path = d.path().join("log");
        let mut log = OpenOptions::new().create(true).append(true).read(true).open(&log_path).unwrap();
        log.write_all(&lines[..252].concat()).unwrap();
        let (same, r) = replay(&path, &mut log, &Head { seq: 250, hash: hashes[249].clone() }).unwrap();
        assert_eq!((same.seq, r.records), (250, 0));
        let head = Head { seq: 252, hash: hashes[251].clone() };
        let (new, r) = replay(&path, &mut log, &head).unwrap();
        assert_eq!((new.seq, &new.hash, r.records), (300, &hashes[299], 48));
        assert_eq!(std::fs::read(&log_path).unwrap(), lines.concat(), "the log is the whole chain, in order, once");

        // A head the journal cannot continue (another chain, or records already lost before the
        // ring's oldest frame) appends nothing.
        let (same, r) = replay(&path, &mut log, &Head { seq: 252, hash: "0".repeat(64) }).unwrap();
        assert_eq!((same.seq, r.records), (252, 0));
        let (same, r) = replay(&path, &mut log, &genesis()).unwrap();
        assert_eq!((same.seq, r.records), (0, 0), "seq 1 was overwritten laps ago");
    }

    #[test]
    fn torn_tampered_and_erased_frames_are_not_replayed() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(JOURNAL_FILE);
        let (lines, hashes) = chain(6);
        let mut j = Journal::open(&path, 64 * BLOCK).unwrap();
        for (i, batch) in lines.chunks(2).enumerate() {
            let first = i as u64 * 2 + 1;
            assert_eq!(j.write(&batch.concat(), first, first + 1).unwrap(), Placed::Journal);
        }
        let log_path = d.path().join("log");
        let open = || OpenOptions::new().create(true).append(true).read(true).open(&log_path).unwrap();

        // Tamper with record 4 (second frame, second line): replay stops after 3.
        let mut bytes = std::fs::read(&path).unwrap();
        let at = BLOCK as usize + HEADER + lines[2].len();
        let pos = at + bytes[at..].windows(5).position(|w| w == b"req-4").unwrap();
        bytes[pos + 4] = b'X';
        let tampered = d.path().join("tampered");
        std::fs::write(&tampered, &bytes).unwrap();
        let (h, r) = replay(&tampered, &mut open(), &genesis()).unwrap();
        assert_eq!((h.seq, &h.hash, r.records), (3, &hashes[2], 3));

        // A frame torn mid-write (its tail never reached the disk) is cut at the tear.
        std::fs::write(&log_path, b"").unwrap();
        let mut torn = std::fs::read(&path).unwrap();
        let cut = 2 * BLOCK as usize + HEADER + lines[4].len() / 2;
        torn[cut..].fill(0);
        std::fs::write(&tampered, &torn).unwrap();
        let (h, _) = replay(&tampered, &mut open(), &genesis()).unwrap();
        assert_eq!(h.seq, 4);

        // Erasing frames past the durable seq 2 leaves only the first frame replayable.
        std::fs::write(&log_path, b"").unwrap();
        j.erase_after(2).unwrap();
        let (h, r) = replay(&path, &mut open(), &genesis()).unwrap();
        assert_eq!((h.seq, r.records), (2, 2));
        assert_eq!(std::fs::read(&log_path).unwrap(), lines[..2].concat());
    }

    #[test]
    fn a_batch_larger_than_a_quarter_ring_is_left_to_the_log() {
        let d = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&d.path().join(JOURNAL_FILE), 16 * BLOCK).unwrap();
        assert_eq!(j.write(&vec![b'x'; 4 * BLOCK as usize], 1, 1).unwrap(), Placed::TooLarge);
        assert_eq!(j.write(&vec![b'x'; 100], 1, 1).unwrap(), Placed::Journal);
    }

    #[test]
    fn the_ring_never_overwrites_a_frame_the_log_has_not_flushed() {
        let d = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&d.path().join(JOURNAL_FILE), 8 * BLOCK).unwrap();
        for seq in 1..=8 {
            assert_eq!(j.write(b"{}\n", seq, seq).unwrap(), Placed::Journal);
        }
        assert_eq!(j.write(b"{}\n", 9, 9).unwrap(), Placed::Unsynced, "the ring is full of unflushed frames");
        j.log_synced();
        for seq in 9..=16 {
            assert_eq!(j.write(b"{}\n", seq, seq).unwrap(), Placed::Journal);
        }
        assert_eq!(j.write(b"{}\n", 17, 17).unwrap(), Placed::Unsynced);
    }
}
