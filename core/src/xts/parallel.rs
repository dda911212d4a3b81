//! Spreading a long run of sectors over threads (`std` only).
//!
//! XTS sectors are independent, so a run splits at sector boundaries into
//! one contiguous slice per thread, each starting at its own sector number.
//!
//! Two helpers:
//! - [`Xts::encrypt_sectors_parallel`] spawns scoped threads for the call:
//!   no state, no dependency, but creating and joining a thread costs tens
//!   of microseconds (45–60 µs measured on the development VM), as much as
//!   encrypting half a megabyte, so it only splits runs of megabytes.
//! - [`XtsPool`] (feature `pool`) keeps its worker threads between calls:
//!   handing a share to a parked worker costs about 5 µs, so runs from a few
//!   hundred kilobytes up scale. This is the one to keep in a long-lived
//!   process such as a hypervisor's I/O path.

use std::thread;
use std::vec::Vec;

use super::{Error, Xts};

/// Below this many bytes per thread, [`Xts::encrypt_sectors_parallel`]
/// does not spawn: creating a thread costs about as much as encrypting this.
pub const MIN_BYTES_PER_THREAD: usize = 1024 * 1024;

/// Below this many bytes per share, [`XtsPool`] keeps the work on fewer
/// threads: waking a parked worker costs about as much as encrypting this.
#[cfg(feature = "pool")]
pub const MIN_BYTES_PER_PART: usize = 128 * 1024;

/// How many shares a checked run of `count` sectors in `len` bytes gets on up
/// to `threads` threads with at least `min_bytes` per share (1: no split).
fn parts(threads: usize, count: usize, len: usize, min_bytes: usize) -> usize {
    threads.min(count).min(len / min_bytes).max(1)
}

/// How a checked run of `count` sectors is cut into at most `parts` shares
/// of whole sectors: the bytes of each share but the last.
fn share_bytes(count: usize, parts: usize, sector_size: usize) -> usize {
    count.div_ceil(parts) * sector_size
}

/// Cuts `buf` into shares of `per` bytes (the last may be shorter), each with
/// its first sector number. The run was checked to end at or before sector
/// 2^64 - 1, so no sector number wraps.
fn shares(
    first_sector: u64,
    sector_size: usize,
    buf: &mut [u8],
    per: usize,
) -> impl ExactSizeIterator<Item = (u64, &mut [u8])> {
    let mut first = first_sector;
    buf.chunks_mut(per).map(move |part| {
        let start = first;
        first = first.wrapping_add((part.len() / sector_size) as u64);
        (start, part)
    })
}

impl Xts {
    /// [`Xts::encrypt_sectors`] on up to `threads` threads (at least one).
    pub fn encrypt_sectors_parallel(
        &self,
        first_sector: u64,
        sector_size: usize,
        buf: &mut [u8],
        threads: usize,
    ) -> Result<(), Error> {
        self.par(true, first_sector, sector_size, buf, threads)
    }

    /// [`Xts::decrypt_sectors`] on up to `threads` threads (at least one).
    pub fn decrypt_sectors_parallel(
        &self,
        first_sector: u64,
        sector_size: usize,
        buf: &mut [u8],
        threads: usize,
    ) -> Result<(), Error> {
        self.par(false, first_sector, sector_size, buf, threads)
    }

    fn par(
        &self,
        encrypt: bool,
        first_sector: u64,
        sector_size: usize,
        buf: &mut [u8],
        threads: usize,
    ) -> Result<(), Error> {
        let count = Self::check_sectors(first_sector, sector_size, buf.len())?;
        let threads = parts(threads, count, buf.len(), MIN_BYTES_PER_THREAD);
        let run = |first: u64, part: &mut [u8]| {
            if encrypt {
                self.encrypt_sectors(first, sector_size, part)
            } else {
                self.decrypt_sectors(first, sector_size, part)
            }
        };
        if threads == 1 {
            return run(first_sector, buf);
        }
        let per = share_bytes(count, threads, sector_size);
        let shares = shares(first_sector, sector_size, buf, per);
        let last = shares.len() - 1;
        thread::scope(|s| {
            let mut handles = Vec::with_capacity(threads);
            for (i, (start, part)) in shares.enumerate() {
                if i == last {
                    // The calling thread takes the last share.
                    run(start, part)?;
                } else {
                    handles.push(s.spawn(move || run(start, part)));
                }
            }
            for h in handles {
                // The engine does not panic; if it ever did, keep the panic.
                h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
            }
            Ok(())
        })
    }
}

/// A pool of worker threads that encrypts and decrypts long runs of
/// sectors in parallel, kept between calls.
///
/// A pool of `threads` has `threads - 1` workers; the calling thread takes
/// one share of every run itself and returns when all shares are done. One
/// pool serves any number of [`Xts`] keys and may be shared between threads
/// (calls from several threads queue for the same workers). Results are
/// byte-identical to [`Xts::encrypt_sectors`] and [`Xts::decrypt_sectors`]
/// on the whole run, and a refused run is refused before any thread starts,
/// with the buffer untouched.
///
/// ```
/// use envol::xts::{Xts, XtsPool};
///
/// let key: Vec<u8> = (1..=64).collect(); // from the key service, in practice
/// let xts = Xts::new(&key)?;
/// let pool = XtsPool::new(2)?;
/// let mut run = vec![0u8; 1 << 20];
/// pool.encrypt_sectors(&xts, 1000, 4096, &mut run)?;
/// let mut serial = vec![0u8; 1 << 20];
/// xts.encrypt_sectors(1000, 4096, &mut serial)?;
/// assert!(run == serial);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "pool")]
pub struct XtsPool {
    workers: rayon::ThreadPool,
    threads: usize,
}

#[cfg(feature = "pool")]
impl core::fmt::Debug for XtsPool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("XtsPool")
            .field("threads", &self.threads)
            .finish()
    }
}

#[cfg(feature = "pool")]
impl XtsPool {
    /// A pool that runs each call on up to `threads` threads (the caller
    /// and `threads - 1` workers named `envol-xts-N`; 0 counts as 1).
    ///
    /// # Errors
    /// The operating system refused to create a worker thread.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let workers = rayon::ThreadPoolBuilder::new()
            .num_threads(threads - 1)
            .thread_name(|i| std::format!("envol-xts-{i}"))
            .build()
            .map_err(std::io::Error::other)?;
        Ok(Self { workers, threads })
    }

    /// The most threads one call uses, the caller's included.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// [`Xts::encrypt_sectors`] spread over the pool.
    ///
    /// # Errors
    /// As [`Xts::encrypt_sectors`]; nothing is written on error.
    pub fn encrypt_sectors(
        &self,
        xts: &Xts,
        first_sector: u64,
        sector_size: usize,
        buf: &mut [u8],
    ) -> Result<(), Error> {
        self.run(xts, true, first_sector, sector_size, None, buf)
    }

    /// [`Xts::decrypt_sectors`] spread over the pool.
    ///
    /// # Errors
    /// As [`Xts::decrypt_sectors`]; nothing is written on error.
    pub fn decrypt_sectors(
        &self,
        xts: &Xts,
        first_sector: u64,
        sector_size: usize,
        buf: &mut [u8],
    ) -> Result<(), Error> {
        self.run(xts, false, first_sector, sector_size, None, buf)
    }

    /// [`Xts::encrypt_sectors_to`] spread over the pool.
    ///
    /// # Errors
    /// As [`Xts::encrypt_sectors_to`]; nothing is written on error.
    pub fn encrypt_sectors_to(
        &self,
        xts: &Xts,
        first_sector: u64,
        sector_size: usize,
        input: &[u8],
        output: &mut [u8],
    ) -> Result<(), Error> {
        self.run(xts, true, first_sector, sector_size, Some(input), output)
    }

    /// [`Xts::decrypt_sectors_to`] spread over the pool.
    ///
    /// # Errors
    /// As [`Xts::decrypt_sectors_to`]; nothing is written on error.
    pub fn decrypt_sectors_to(
        &self,
        xts: &Xts,
        first_sector: u64,
        sector_size: usize,
        input: &[u8],
        output: &mut [u8],
    ) -> Result<(), Error> {
        self.run(xts, false, first_sector, sector_size, Some(input), output)
    }

    /// One run, in place (`input` None) or from `input` into `out`.
    fn run(
        &self,
        xts: &Xts,
        encrypt: bool,
        first_sector: u64,
        sector_size: usize,
        input: Option<&[u8]>,
        out: &mut [u8],
    ) -> Result<(), Error> {
        if input.is_some_and(|i| i.len() != out.len()) {
            return Err(Error::Length);
        }
        let count = Xts::check_sectors(first_sector, sector_size, out.len())?;
        let parts = parts(self.threads, count, out.len(), MIN_BYTES_PER_PART);
        let one = |first: u64, input: Option<&[u8]>, out: &mut [u8]| match (encrypt, input) {
            (true, None) => xts.encrypt_sectors(first, sector_size, out),
            (false, None) => xts.decrypt_sectors(first, sector_size, out),
            (true, Some(i)) => xts.encrypt_sectors_to(first, sector_size, i, out),
            (false, Some(i)) => xts.decrypt_sectors_to(first, sector_size, i, out),
        };
        if parts == 1 {
            return one(first_sector, input, out);
        }
        let per = share_bytes(count, parts, sector_size);
        let shares = shares(first_sector, sector_size, out, per);
        let last = shares.len() - 1;
        let mut inputs = input.map(|i| i.chunks(per));
        // Every share is a checked sub-run of a checked run, so none can be
        // refused; the first refusal is kept all the same.
        let refused = std::sync::Mutex::new(None);
        let keep = |r: Result<(), Error>| {
            if let Err(e) = r {
                refused.lock().map(|mut r| *r = Some(e)).ok();
            }
        };
        self.workers.in_place_scope(|s| {
            for (i, (start, part)) in shares.enumerate() {
                let from = inputs.as_mut().and_then(Iterator::next);
                if i == last {
                    keep(one(start, from, part));
                } else {
                    let (one, keep) = (&one, &keep);
                    s.spawn(move |_| keep(one(start, from, part)));
                }
            }
        });
        match refused.into_inner() {
            Ok(Some(e)) => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    #[test]
    fn parallel_equals_serial() {
        let key: std::vec::Vec<u8> = (0u8..64).collect();
        let xts = Xts::new(&key).unwrap();
        for (ss, n) in [(512usize, 4096usize), (4096, 300), (4096, 1)] {
            let data: std::vec::Vec<u8> = (0..ss * n)
                .map(|i| u8::try_from(i % 251).unwrap())
                .collect();
            let mut serial = data.clone();
            xts.encrypt_sectors(u64::MAX - n as u64 + 1, ss, &mut serial)
                .unwrap();
            for t in [1, 2, 3, 8] {
                let mut par = data.clone();
                xts.encrypt_sectors_parallel(u64::MAX - n as u64 + 1, ss, &mut par, t)
                    .unwrap();
                assert!(par == serial, "ss {ss} n {n} threads {t}");
                xts.decrypt_sectors_parallel(u64::MAX - n as u64 + 1, ss, &mut par, t)
                    .unwrap();
                assert!(par == data);
            }
        }
        let mut buf = vec![0u8; 1024];
        assert_eq!(
            xts.encrypt_sectors_parallel(u64::MAX, 512, &mut buf, 2),
            Err(Error::SectorOverflow)
        );
    }

    #[test]
    fn shares_cover_the_run_in_order() {
        for (count, parts, ss) in [
            (1usize, 2usize, 512usize),
            (7, 2, 512),
            (8, 3, 16),
            (300, 8, 4096),
        ] {
            let mut buf = vec![0u8; count * ss];
            let per = share_bytes(count, parts, ss);
            let got: Vec<(u64, usize)> = shares(u64::MAX - count as u64 + 1, ss, &mut buf, per)
                .map(|(first, part)| (first, part.len()))
                .collect();
            assert!(got.len() <= parts && !got.is_empty());
            let mut next = u64::MAX - count as u64 + 1;
            let mut total = 0;
            for (first, len) in &got {
                assert_eq!(*first, next);
                assert!(*len > 0 && len % ss == 0 && *len <= per);
                total += len;
                next = next.wrapping_add((len / ss) as u64);
            }
            assert_eq!(total, count * ss);
        }
    }

    #[cfg(feature = "pool")]
    fn patterned(len: usize) -> Vec<u8> {
        (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect()
    }

    #[cfg(feature = "pool")]
    #[test]
    fn pool_equals_serial() {
        let key: Vec<u8> = (0u8..64).collect();
        let xts = Xts::new(&key).unwrap();
        let pools: Vec<XtsPool> = [1, 2, 3, 8].map(|t| XtsPool::new(t).unwrap()).into();
        // Runs below, at and well above the size that is split.
        for (ss, n) in [
            (512usize, 4096usize),
            (4096, 300),
            (4096, 64),
            (4096, 1),
            (512, 3),
        ] {
            let data = patterned(ss * n);
            let first = u64::MAX - n as u64 + 1;
            let mut serial = data.clone();
            xts.encrypt_sectors(first, ss, &mut serial).unwrap();
            for pool in &pools {
                let mut par = data.clone();
                pool.encrypt_sectors(&xts, first, ss, &mut par).unwrap();
                assert!(par == serial, "ss {ss} n {n} threads {}", pool.threads());
                pool.decrypt_sectors(&xts, first, ss, &mut par).unwrap();
                assert!(par == data);
                let mut to = vec![0u8; data.len()];
                pool.encrypt_sectors_to(&xts, first, ss, &data, &mut to)
                    .unwrap();
                assert!(to == serial);
                let mut back = vec![0u8; data.len()];
                pool.decrypt_sectors_to(&xts, first, ss, &to, &mut back)
                    .unwrap();
                assert!(back == data);
            }
        }
        let empty: &mut [u8] = &mut [];
        assert_eq!(pools[1].encrypt_sectors(&xts, 0, 512, empty), Ok(()));
    }

    #[cfg(feature = "pool")]
    #[test]
    fn pool_refuses_like_serial_and_writes_nothing() {
        let xts = Xts::new(&patterned(32)).unwrap();
        let pool = XtsPool::new(2).unwrap();
        let data = patterned(4 << 20);
        for (first, ss, len, want) in [
            (u64::MAX - 10, 4096usize, 4 << 20, Error::SectorOverflow),
            (0, 4096, (4 << 20) - 16, Error::Length),
            (0, 4097, 4 << 20, Error::SectorSize),
            (0, 8, 4 << 20, Error::SectorSize),
        ] {
            let mut buf = data[..len].to_vec();
            assert_eq!(xts.encrypt_sectors(first, ss, &mut buf), Err(want));
            assert_eq!(pool.encrypt_sectors(&xts, first, ss, &mut buf), Err(want));
            assert_eq!(pool.decrypt_sectors(&xts, first, ss, &mut buf), Err(want));
            assert!(buf == data[..len]);
            let mut out = vec![0u8; len];
            assert_eq!(
                pool.encrypt_sectors_to(&xts, first, ss, &buf, &mut out),
                Err(want)
            );
            assert!(out.iter().all(|&b| b == 0));
        }
        let mut out = vec![0u8; 4 << 20];
        assert_eq!(
            pool.encrypt_sectors_to(&xts, 0, 4096, &data[..(4 << 20) - 4096], &mut out),
            Err(Error::Length)
        );
        assert!(out.iter().all(|&b| b == 0));
    }

    #[cfg(feature = "pool")]
    #[test]
    fn one_pool_serves_several_threads_and_keys() {
        let pool = XtsPool::new(2).unwrap();
        let data = patterned(2 << 20);
        std::thread::scope(|s| {
            for k in 0u8..4 {
                let (pool, data) = (&pool, &data);
                s.spawn(move || {
                    let key: Vec<u8> = (0u8..64).map(|b| b ^ k).collect();
                    let xts = Xts::new(&key).unwrap();
                    let mut serial = data.clone();
                    xts.encrypt_sectors(u64::from(k) << 40, 4096, &mut serial)
                        .unwrap();
                    for _ in 0..8 {
                        let mut par = data.clone();
                        pool.encrypt_sectors(&xts, u64::from(k) << 40, 4096, &mut par)
                            .unwrap();
                        assert!(par == serial);
                    }
                });
            }
        });
    }
}
