//! Spreading a long run of sectors over threads (`std` only).
//!
//! XTS sectors are independent, so a run splits at sector boundaries into
//! one contiguous slice per thread, each starting at its own sector number.
//! Threads are scoped: nothing outlives the call, no allocation beyond the
//! threads themselves.

use std::thread;
use std::vec::Vec;

use super::{Error, Xts};

/// Below this many bytes per thread, spawning costs more than it saves.
pub const MIN_BYTES_PER_THREAD: usize = 256 * 1024;

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
        let by_size = buf.len() / MIN_BYTES_PER_THREAD;
        let threads = threads.min(count).min(by_size.max(1)).max(1);
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
        let per = count.div_ceil(threads) * sector_size;
        thread::scope(|s| {
            let mut handles = Vec::with_capacity(threads);
            let mut first = first_sector;
            let mut rest = buf;
            while !rest.is_empty() {
                let take = per.min(rest.len());
                let (part, tail) = rest.split_at_mut(take);
                rest = tail;
                let start = first;
                // The whole run was checked to end at or before 2^64 - 1.
                first = first.wrapping_add((take / sector_size) as u64);
                if rest.is_empty() {
                    // The calling thread takes the last share.
                    handles.push(None);
                    run(start, part)?;
                } else {
                    handles.push(Some(s.spawn(move || run(start, part))));
                }
            }
            for h in handles.into_iter().flatten() {
                // The engine does not panic; if it ever did, keep the panic.
                h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
            }
            Ok(())
        })
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
}
