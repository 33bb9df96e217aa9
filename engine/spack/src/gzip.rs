//! Deterministic gzip on several cores, in the manner of pigz.
//!
//! The input is cut into fixed-size blocks. Each block is deflated on its own (raw deflate,
//! primed with the last 32 KiB of the previous block as dictionary so the ratio stays close to
//! single-stream gzip) and ended with a sync flush, which byte-aligns it; the last block ends the
//! stream. The compressed blocks are written in input order and their CRC-32s combined, so the
//! output depends only on the input bytes, the level and the block size — never on the number of
//! threads or their timing. Memory is bounded by the number of blocks in flight.
//!
//! The gzip header carries no name and no time (mtime 0), `XFL` 0 and OS 255, as Python's
//! `gzip` module writes it for Spack.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, FlushCompress, Status};

/// Input bytes per block (pigz's default).
pub const BLOCK_SIZE: usize = 128 * 1024;
const WINDOW: usize = 32 * 1024;
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// How to compress.
#[derive(Debug, Clone, Copy)]
pub struct GzipOptions {
    /// zlib level, 0–9 (Spack uses 6).
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

struct Job {
    seq: u64,
    data: Arc<Vec<u8>>,
    dict: Option<Arc<Vec<u8>>>,
    last: bool,
}

struct Done {
    seq: u64,
    out: io::Result<Vec<u8>>,
    crc: crc32fast::Hasher,
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
    prev: Option<Arc<Vec<u8>>>,
    next_seq: u64,
    next_write: u64,
    pending: BTreeMap<u64, (Vec<u8>, crc32fast::Hasher)>,
    max_in_flight: u64,
    pool: Option<Pool>,
    crc: crc32fast::Hasher,
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

/// Deflates one block with a fresh stream. (A reused stream, even after `reset`, gave output
/// that depended on the blocks it had compressed before with the zlib-rs backend, which would
/// make the result depend on which worker got which block.)
fn compress_block(level: u32, job: &Job) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(Compression::new(level), false);
    if let Some(d) = &job.dict {
        c.set_dictionary(&d[d.len().saturating_sub(WINDOW)..])
            .map_err(io::Error::other)?;
    }
    let data = &job.data[..];
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    let flush = if job.last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let start = c.total_in();
    loop {
        let consumed = (c.total_in() - start) as usize;
        let status = c
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = (c.total_in() - start) as usize == data.len();
        let done = match status {
            Status::StreamEnd => true,
            // A sync flush is complete once it returns with output space to spare.
            _ => !job.last && all_in && out.len() < out.capacity(),
        };
        if done {
            return Ok(out);
        }
        out.reserve(out.capacity().max(4096));
    }
}

fn worker(level: u32, jobs: Arc<Mutex<Receiver<Job>>>, done: SyncSender<Done>) {
    loop {
        let job = {
            let Ok(rx) = jobs.lock() else { return };
            match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            }
        };
        let mut crc = crc32fast::Hasher::new();
        crc.update(&job.data);
        let out = compress_block(level, &job);
        if done
            .send(Done {
                seq: job.seq,
                out,
                crc,
            })
            .is_err()
        {
            return;
        }
    }
}

impl<W: Write> ParallelGzip<W> {
    /// Starts a gzip stream: writes the header and spawns the workers.
    pub fn new(mut inner: W, opts: GzipOptions) -> io::Result<Self> {
        inner.write_all(&HEADER)?;
        let level = opts.level.min(9);
        let threads = opts.threads.max(1);
        let pool = if threads == 1 {
            None
        } else {
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
            Some(Pool {
                jobs: Some(jtx),
                done: drx,
                workers,
            })
        };
        Ok(Self {
            inner: Some(inner),
            level,
            buf: Vec::with_capacity(BLOCK_SIZE),
            prev: None,
            next_seq: 0,
            next_write: 0,
            pending: BTreeMap::new(),
            max_in_flight: (threads as u64) * 3,
            pool,
            crc: crc32fast::Hasher::new(),
            total_in: 0,
        })
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        let data = Arc::new(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(if last { 0 } else { BLOCK_SIZE }),
        ));
        let job = Job {
            seq: self.next_seq,
            data: Arc::clone(&data),
            dict: self.prev.take(),
            last,
        };
        self.prev = Some(data);
        self.next_seq += 1;
        if self.pool.is_none() {
            let out = compress_block(self.level, &job)?;
            let mut crc = crc32fast::Hasher::new();
            crc.update(&job.data);
            self.pending.insert(job.seq, (out, crc));
            return self.write_ready();
        }
        while self.next_seq - self.next_write > self.max_in_flight {
            self.wait_one()?;
        }
        let pool = self.pool.as_ref().expect("pool without local compressor");
        pool.jobs
            .as_ref()
            .expect("jobs channel open until finish")
            .send(job)
            .map_err(|_| io::Error::other("gzip worker stopped"))?;
        // Write whatever has already come back, without waiting.
        let ready: Vec<Done> = pool.done.try_iter().collect();
        for d in ready {
            self.accept(d)?;
        }
        self.write_ready()
    }

    fn accept(&mut self, d: Done) -> io::Result<()> {
        self.pending.insert(d.seq, (d.out?, d.crc));
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
        while let Some((out, crc)) = self.pending.remove(&self.next_write) {
            self.out().write_all(&out)?;
            self.crc.combine(&crc);
            self.next_write += 1;
        }
        Ok(())
    }

    /// Ends the stream (last block, CRC-32, length) and returns the inner writer.
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
        let crc = self.crc.clone().finalize();
        let total = self.total_in as u32;
        let mut inner = self.inner.take().expect("inner writer until finish");
        inner.write_all(&crc.to_le_bytes())?;
        inner.write_all(&total.to_le_bytes())?;
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
        flate2::read::GzDecoder::new(data)
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
    }

    #[test]
    fn ratio_stays_close_to_a_single_stream() {
        let data = sample(2 << 20);
        let ours = gz(&data, 2, 65536).len();
        let mut single = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        single.write_all(&data).unwrap();
        let single = single.finish().unwrap().len();
        assert!(ours as f64 <= single as f64 * 1.02, "{ours} vs {single}");
    }
}
