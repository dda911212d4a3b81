//! The portable backend: the RustCrypto `aes` crate's fixsliced AES, driven
//! in batches so its bitsliced core works on several blocks per call.
//!
//! Everything here is constant time as long as `aes` is: tweak doubling uses
//! masks, never branches or tables on secret data. With `--cfg
//! aes_backend="soft"` the `aes` crate is software-only; without it the crate
//! may use AES instructions internally, which changes speed, never bytes.

use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use aes::{Aes128, Aes256, Block};
use zeroize::Zeroize;

use super::super::{Dir, KeySize};
use super::double;

/// Blocks handed to the `aes` crate per call.
const BATCH: usize = 32;

/// key1 and key2 as `aes` cipher instances (which zeroize themselves on drop).
#[allow(clippy::large_enum_variant)] // no heap; see `Engine`
pub(crate) enum SoftKeys {
    Aes128(Aes128, Aes128),
    Aes256(Aes256, Aes256),
}

impl SoftKeys {
    /// `key1` and `key2` are both 16 or both 32 bytes (checked by the caller).
    pub(crate) fn new(key1: &[u8], key2: &[u8]) -> SoftKeys {
        if key1.len() == 16 {
            let mut k1 = [0u8; 16];
            let mut k2 = [0u8; 16];
            k1.copy_from_slice(key1);
            k2.copy_from_slice(key2);
            let keys = SoftKeys::Aes128(Aes128::new(&k1.into()), Aes128::new(&k2.into()));
            k1.zeroize();
            k2.zeroize();
            keys
        } else {
            let mut k1 = [0u8; 32];
            let mut k2 = [0u8; 32];
            k1.copy_from_slice(key1);
            k2.copy_from_slice(key2);
            let keys = SoftKeys::Aes256(Aes256::new(&k1.into()), Aes256::new(&k2.into()));
            k1.zeroize();
            k2.zeroize();
            keys
        }
    }

    pub(crate) fn size(&self) -> KeySize {
        match self {
            SoftKeys::Aes128(..) => KeySize::Aes128,
            SoftKeys::Aes256(..) => KeySize::Aes256,
        }
    }

    pub(crate) fn encrypt_tweaks(&self, tweaks: &mut [[u8; 16]]) {
        let mut buf = [Block::default(); BATCH];
        for chunk in tweaks.chunks_mut(BATCH) {
            let blocks = &mut buf[..chunk.len()];
            for (b, t) in blocks.iter_mut().zip(chunk.iter()) {
                b.copy_from_slice(t);
            }
            match self {
                SoftKeys::Aes128(_, k2) => k2.encrypt_blocks(blocks),
                SoftKeys::Aes256(_, k2) => k2.encrypt_blocks(blocks),
            }
            for (b, t) in blocks.iter().zip(chunk.iter_mut()) {
                t.copy_from_slice(b);
            }
        }
        for b in buf.iter_mut() {
            b.as_mut_slice().zeroize();
        }
    }

    /// XTS over `n` blocks; see [`super::Engine::blocks`].
    ///
    /// # Safety
    /// `src` valid for `16 * n` reads, `dst` for `16 * n` writes, same or disjoint.
    pub(crate) unsafe fn blocks(
        &self,
        dir: Dir,
        t: &mut [u8; 16],
        src: *const u8,
        dst: *mut u8,
        n: usize,
    ) {
        let mut data = [Block::default(); BATCH];
        let mut tw = [[0u8; 16]; BATCH];
        let mut cur = u128::from_le_bytes(*t);
        let mut done = 0;
        while done < n {
            let m = (n - done).min(BATCH);
            for i in 0..m {
                tw[i] = cur.to_le_bytes();
                cur = double(cur);
                let mut blk = [0u8; 16];
                // SAFETY: block `done + i < n` lies inside the source.
                unsafe {
                    core::ptr::copy_nonoverlapping(src.add(16 * (done + i)), blk.as_mut_ptr(), 16)
                };
                for (d, (p, k)) in data[i].iter_mut().zip(blk.iter().zip(tw[i].iter())) {
                    *d = p ^ k;
                }
            }
            let blocks = &mut data[..m];
            match (self, dir) {
                (SoftKeys::Aes128(k1, _), Dir::Encrypt) => k1.encrypt_blocks(blocks),
                (SoftKeys::Aes256(k1, _), Dir::Encrypt) => k1.encrypt_blocks(blocks),
                (SoftKeys::Aes128(k1, _), Dir::Decrypt) => k1.decrypt_blocks(blocks),
                (SoftKeys::Aes256(k1, _), Dir::Decrypt) => k1.decrypt_blocks(blocks),
            }
            for i in 0..m {
                let mut blk = [0u8; 16];
                for (o, (c, k)) in blk.iter_mut().zip(data[i].iter().zip(tw[i].iter())) {
                    *o = c ^ k;
                }
                // SAFETY: block `done + i < n` lies inside the destination;
                // its source bytes were read above, so in place is fine.
                unsafe {
                    core::ptr::copy_nonoverlapping(blk.as_ptr(), dst.add(16 * (done + i)), 16)
                };
            }
            done += m;
        }
        *t = cur.to_le_bytes();
        for b in data.iter_mut() {
            b.as_mut_slice().zeroize();
        }
        tw.zeroize();
    }
}
