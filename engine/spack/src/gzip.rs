//! Deterministic gzip on several cores, as a series of gzip members.
//!
//! The input is cut into fixed-size blocks and each block becomes one complete gzip member
//! (header, raw deflate by libdeflate, CRC-32, length). RFC 1952 allows any number of members
//! in a file and every reader forge or Spack uses takes them in turn (Python's `gzip`, which
//! Spack's `tarfile.open` uses; GNU gzip; flate2's `MultiGzDecoder`), as for BGZF files. The
//! members are written in input order, so the output depends only on the input bytes, the
//! level and the block size — never on the number of threads or their timing. Memory is
//! bounded by the number of blocks in flight.
//!
//! Why libdeflate in independent blocks rather than zlib streams primed with the previous
//! block (pigz): measured on a 58 MB Slurm prefix tar, libdeflate level 6 in 1 MiB blocks is
//! 4.5 % smaller than `gzip -6` (what Spack writes) and 2.3× faster per core than zlib-rs at
//! level 6, whose output was 1.8 % larger than Spack's. Without a dictionary the blocks lose
//! 0.2 % against one libdeflate stream.
//!
//! Each member's header carries no name and no time (mtime 0), `XFL` 0 and OS 255, as
//! Python's `gzip` module writes it for Spack.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use libdeflater::{CompressionLvl, Compressor};

/// Input bytes per gzip member.
pub const BLOCK_SIZE: usize = 1024 * 1024;
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// How to compress.
#[derive(Debug, Clone, Copy)]
pub struct GzipOptions {
    /// Compression level, 0–9 (Spack uses 6).
    pub level: u32,
    /// Compressing threads; 1 compresses on the caller's thread. The output is the same for
    /// every value.
    pub threads: usize,
}

impl Default for GzipOptions {
    fn default() -> Self {
        Self {
            level: 6,
            threads: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

/// A block to compress, with the buffer its member is written into. Both buffers go back to
/// the writer with the result and are reused for later blocks: fresh megabyte buffers made the
/// kernel clear pages for a tenth of the export's time.
struct Job {
    seq: u64,
    data: Vec<u8>,
    out: Vec<u8>,
}

struct Done {
    seq: u64,
    result: io::Result<()>,
    data: Vec<u8>,
    out: Vec<u8>,
}

struct Pool {
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
}

/// A `Write` that gzips into `inner`; call [`ParallelGzip::finish`] to end the stream.
pub struct ParallelGzip<W: Write> {
    inner: Option<W>,
    level: u32,
    buf: Vec<u8>,
    next_seq: u64,
    next_write: u64,
    /// Finished members waiting for the ones before them.
    pending: BTreeMap<u64, Vec<u8>>,
    /// Buffers back from the workers, for the next blocks and members.
    spare: Vec<Vec<u8>>,
    max_in_flight: u64,
    /// The compressor and scratch space of the caller's thread when there is no pool.
    local: Option<(Compressor, Vec<u8>)>,
    pool: Option<Pool>,
    total_in: u64,
}

impl<W: Write> std::fmt::Debug for ParallelGzip<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParallelGzip")
            .field("level", &self.level)
            .field("total_in", &self.total_in)
            .finish_non_exhaustive()
    }
}

fn compressor(level: u32) -> io::Result<Compressor> {
    let lvl = CompressionLvl::new(level as i32)
        .map_err(|e| io::Error::other(format!("gzip level {level}: {e:?}")))?;
    Ok(Compressor::new(lvl))
}

/// Writes `data` as one whole gzip member into `out` (cleared first). libdeflate keeps no
/// state between calls, so a reused compressor gives the same bytes as a fresh one; `scratch`
/// is its output space, kept between calls.
fn compress_member(
    c: &mut Compressor,
    scratch: &mut Vec<u8>,
    data: &[u8],
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let bound = c.deflate_compress_bound(data.len());
    if scratch.len() < bound {
        scratch.resize(bound, 0);
    }
    let n = c
        .deflate_compress(data, &mut scratch[..bound])
        .map_err(|e| io::Error::other(format!("deflate: {e:?}")))?;
    out.clear();
    out.extend_from_slice(&HEADER);
    out.extend_from_slice(&scratch[..n]);
    out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    // ISIZE is the length modulo 2^32 (RFC 1952); a block is far smaller.
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    Ok(())
}

fn worker(level: u32, jobs: Arc<Mutex<Receiver<Job>>>, done: SyncSender<Done>) {
    let mut c = compressor(level);
    let mut scratch = Vec::new();
    loop {
        let mut job = {
            let Ok(rx) = jobs.lock() else { return };
            match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            }
        };
        let result = match &mut c {
            Ok(c) => compress_member(c, &mut scratch, &job.data, &mut job.out),
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        };
        let back = Done {
            seq: job.seq,
            result,
            data: job.data,
            out: job.out,
        };
        if done.send(back).is_err() {
            return;
        }
    }
}

impl<W: Write> ParallelGzip<W> {
    /// Starts a gzip stream and spawns the workers; nothing is written before the first block.
    pub fn new(inner: W, opts: GzipOptions) -> io::Result<Self> {
        let level = opts.level.min(9);
        let threads = opts.threads.max(1);
        let (local, pool) = if threads == 1 {
            (Some((compressor(level)?, Vec::new())), None)
        } else {
            // Fails here, not in a worker, on a level libdeflate refuses.
            compressor(level)?;
            let (jtx, jrx) = sync_channel::<Job>(threads * 2);
            let (dtx, drx) = sync_channel::<Done>(threads * 4);
            let jrx = Arc::new(Mutex::new(jrx));
            let mut workers = Vec::with_capacity(threads);
            for i in 0..threads {
                let jrx = Arc::clone(&jrx);
                let dtx = dtx.clone();
                workers.push(
                    std::thread::Builder::new()
                        .name(format!("forge-gzip-{i}"))
                        .spawn(move || worker(level, jrx, dtx))?,
                );
            }
            (
                None,
                Some(Pool {
                    jobs: Some(jtx),
                    done: drx,
                    workers,
                }),
            )
        };
        Ok(Self {
            inner: Some(inner),
            level,
            buf: Vec::with_capacity(BLOCK_SIZE),
            next_seq: 0,
            next_write: 0,
            pending: BTreeMap::new(),
            spare: Vec::new(),
            max_in_flight: (threads as u64) * 3,
            local,
            pool,
            total_in: 0,
        })
    }

    fn spare_buffer(&mut self) -> Vec<u8> {
        let mut b = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BLOCK_SIZE));
        b.clear();
        b
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        let next = if last {
            Vec::new()
        } else {
            self.spare_buffer()
        };
        let data = std::mem::replace(&mut self.buf, next);
        let mut out = self.spare_buffer();
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some((c, scratch)) = &mut self.local {
            compress_member(c, scratch, &data, &mut out)?;
            self.spare.push(data);
            self.pending.insert(seq, out);
            return self.write_ready();
        }
        while self.next_seq - self.next_write > self.max_in_flight {
            self.wait_one()?;
        }
        let pool = self.pool.as_ref().expect("pool without local compressor");
        pool.jobs
            .as_ref()
            .expect("jobs channel open until finish")
            .send(Job { seq, data, out })
            .map_err(|_| io::Error::other("gzip worker stopped"))?;
        // Take whatever has already come back, without waiting.
        let ready: Vec<Done> = pool.done.try_iter().collect();
        for d in ready {
            self.accept(d)?;
        }
        self.write_ready()
    }

    fn accept(&mut self, d: Done) -> io::Result<()> {
        d.result?;
        self.spare.push(d.data);
        self.pending.insert(d.seq, d.out);
        Ok(())
    }

    fn wait_one(&mut self) -> io::Result<()> {
        let d = self
            .pool
            .as_ref()
            .expect("pool")
            .done
            .recv()
            .map_err(|_| io::Error::other("gzip worker stopped"))?;
        self.accept(d)?;
        self.write_ready()
    }

    fn write_ready(&mut self) -> io::Result<()> {
        while let Some(out) = self.pending.remove(&self.next_write) {
            self.out().write_all(&out)?;
            self.spare.push(out);
            self.next_write += 1;
        }
        Ok(())
    }

    /// Ends the stream (the last member, which is the only one for an input of at most one
    /// block, empty input included) and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        if let Some(pool) = &mut self.pool {
            pool.jobs = None;
        }
        while self.next_write < self.next_seq {
            self.wait_one()?;
        }
        if let Some(pool) = self.pool.take() {
            for w in pool.workers {
                w.join()
                    .map_err(|_| io::Error::other("gzip worker panicked"))?;
            }
        }
        let mut inner = self.inner.take().expect("inner writer until finish");
        inner.flush()?;
        Ok(inner)
    }

    fn out(&mut self) -> &mut W {
        self.inner.as_mut().expect("inner writer until finish")
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let n = data.len();
        while !data.is_empty() {
            if self.buf.len() == BLOCK_SIZE {
                // Only now is it known that this full block is not the last one.
                self.submit(false)?;
            }
            let take = (BLOCK_SIZE - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        self.total_in += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out().flush()
    }
}

impl<W: Write> Drop for ParallelGzip<W> {
    fn drop(&mut self) {
        // An unfinished stream (error path): close the queue so the workers end.
        if let Some(mut pool) = self.pool.take() {
            pool.jobs = None;
            drop(pool.done);
            for w in pool.workers {
                let _ = w.join();
            }
        }
    }
}

/// Gzips a small buffer in one go (spec blobs, build logs).
pub fn gzip_bytes(data: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let mut g = ParallelGzip::new(Vec::new(), GzipOptions { level, threads: 1 })?;
    g.write_all(data)?;
    g.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample(len: usize) -> Vec<u8> {
        // Compressible but not trivial: text-like lines with a counter.
        let mut v = Vec::with_capacity(len);
        let mut i = 0u64;
        while v.len() < len {
            v.extend_from_slice(format!("line {i} of the sample {}\n", i * 7919 % 1013).as_bytes());
            i += 1;
        }
        v.truncate(len);
        v
    }

    fn gz(data: &[u8], threads: usize, chunk: usize) -> Vec<u8> {
        let mut g = ParallelGzip::new(Vec::new(), GzipOptions { level: 6, threads }).unwrap();
        for c in data.chunks(chunk.max(1)) {
            g.write_all(c).unwrap();
        }
        g.finish().unwrap()
    }

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn round_trips_and_is_identical_for_any_thread_count() {
        for len in [
            0,
            1,
            BLOCK_SIZE - 1,
            BLOCK_SIZE,
            BLOCK_SIZE + 1,
            5 * BLOCK_SIZE + 17,
        ] {
            let data = sample(len);
            let one = gz(&data, 1, 4096);
            assert_eq!(gunzip(&one), data, "len {len}");
            for threads in [2, 3, 8] {
                assert_eq!(gz(&data, threads, 1000), one, "len {len} threads {threads}");
            }
        }
    }

    #[test]
    fn repetitive_data_over_many_blocks_is_thread_independent() {
        let data: Vec<u8> = (0..3_000_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let one = gz(&data, 1, 65536);
        assert_eq!(gunzip(&one), data);
        assert_eq!(gz(&data, 2, 65536), one);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        #[test]
        fn any_input_round_trips_identically_on_any_threads(
            seed in proptest::prelude::any::<u64>(),
            len in 0usize..(3 * BLOCK_SIZE),
            threads in 1usize..5,
            chunk in 1usize..70_000,
        ) {
            // Half random bytes, half runs: both compressible and incompressible blocks.
            let mut x = seed | 1;
            let data: Vec<u8> = (0..len)
                .map(|i| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if (i / 4096) % 2 == 0 { x as u8 } else { (i / 97) as u8 }
                })
                .collect();
            let one = gz(&data, 1, len.max(1));
            proptest::prop_assert_eq!(gunzip(&one), data.clone());
            proptest::prop_assert_eq!(gz(&data, threads, chunk), one);
        }
    }

    #[test]
    fn header_has_no_name_and_no_time() {
        let out = gz(b"x", 1, 1);
        assert_eq!(&out[..10], &HEADER);
        // The trailer holds the CRC-32 and the length of the input.
        let n = out.len();
        assert_eq!(&out[n - 4..], &1u32.to_le_bytes());
        assert_eq!(
            u32::from_le_bytes(out[n - 8..n - 4].try_into().unwrap()),
            crc32fast::hash(b"x")
        );
        // Empty input is one member too, as `gzip` writes it.
        let empty = gz(b"", 1, 1);
        assert_eq!(&empty[..10], &HEADER);
        assert_eq!(gunzip(&empty), b"");
    }

    /// Splits a stream at member boundaries by decoding one member at a time.
    fn members(mut data: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let mut d = flate2::bufread::GzDecoder::new(data);
            let mut m = Vec::new();
            d.read_to_end(&mut m).unwrap();
            data = d.into_inner();
            out.push(m);
        }
        out
    }

    #[test]
    fn every_block_is_one_member_with_the_same_header() {
        let data = sample(2 * BLOCK_SIZE + 5);
        let out = gz(&data, 2, 100_000);
        let m = members(&out);
        let lens: Vec<usize> = m.iter().map(Vec::len).collect();
        assert_eq!(lens, [BLOCK_SIZE, BLOCK_SIZE, 5]);
        assert_eq!(m.concat(), data);
        assert_eq!(&out[..10], &HEADER);
    }

    #[test]
    fn pythons_gzip_reads_every_member() {
        // Spack extracts with Python's `tarfile`, which reads gzip through the `gzip` module.
        let data = sample(3 * BLOCK_SIZE / 2);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.gz");
        fs_err::write(&f, gz(&data, 2, 65536)).unwrap();
        let py = std::process::Command::new("python3")
            .arg("-c")
            .arg("import gzip, hashlib, sys; d = gzip.open(sys.argv[1]).read(); print(len(d), hashlib.sha256(d).hexdigest())")
            .arg(&f)
            .output()
            .expect("python3 runs");
        assert!(
            py.status.success(),
            "{}",
            String::from_utf8_lossy(&py.stderr)
        );
        let want = format!("{} {}\n", data.len(), {
            use sha2::Digest;
            hex(&sha2::Sha256::digest(&data))
        });
        assert_eq!(String::from_utf8_lossy(&py.stdout), want);
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn smaller_than_a_single_zlib_stream_at_the_same_level() {
        // Spack's tarballs are one zlib stream at level 6; forge's must be no larger.
        let data = sample(4 << 20);
        let ours = gz(&data, 2, 65536).len();
        let mut single = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        single.write_all(&data).unwrap();
        let single = single.finish().unwrap().len();
        assert!(ours <= single, "{ours} vs {single}");
    }
}
