//! One XTS kernel per instruction set, picked once at key setup.
//!
//! `soft` drives the constant-time fixsliced AES of the RustCrypto `aes`
//! crate; `aesni`, `vaes256`, `vaes512` (x86_64) and `armv8` (AArch64) are
//! envol's own kernels on `core::arch` intrinsics, key expansion included.
//! Every SIMD function is `#[target_feature]` and reached only through an
//! [`Engine`] variant that [`Engine::new`] builds after checking
//! [`Backend::is_available`].

mod soft;

#[cfg(target_arch = "x86_64")]
mod aesni;
#[cfg(target_arch = "x86_64")]
mod vaes;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_aes;

#[cfg(target_arch = "aarch64")]
mod armv8;

use core::fmt;

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use zeroize::Zeroize;

use super::{Dir, KeySize};

/// An XTS kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Backend {
    /// Portable constant-time AES (the `aes` crate's fixsliced code).
    Soft = 1,
    /// AES-NI + PCLMULQDQ, 128-bit registers, 8 blocks interleaved.
    Aesni = 2,
    /// AVX2 + VAES + VPCLMULQDQ, 256-bit registers.
    Vaes256 = 3,
    /// AVX-512F/BW/VL + VAES + VPCLMULQDQ, 512-bit registers.
    Vaes512 = 4,
    /// ARMv8 Cryptography Extensions: AES + PMULL.
    Armv8 = 5,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Backend {
    /// Every backend, best last.
    pub const ALL: [Backend; 5] = [
        Backend::Soft,
        Backend::Armv8,
        Backend::Aesni,
        Backend::Vaes256,
        Backend::Vaes512,
    ];

    /// Short stable name: "soft", "aesni", "vaes256", "vaes512", "armv8".
    pub const fn name(self) -> &'static str {
        match self {
            Backend::Soft => "soft",
            Backend::Aesni => "aesni",
            Backend::Vaes256 => "vaes256",
            Backend::Vaes512 => "vaes512",
            Backend::Armv8 => "armv8",
        }
    }

    /// The backend with this name, if any.
    pub fn from_name(name: &str) -> Option<Backend> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }

    /// Whether this CPU (and build) can run the backend, and the backend
    /// passed its power-on self-test.
    ///
    /// The CPU is probed and each hardware backend is checked against `soft`
    /// once per process (a few microseconds); later calls read cached
    /// answers. A backend whose self-test fails is never offered, so a
    /// kernel bug on a CPU we could not test on falls back to a slower
    /// backend instead of writing wrong ciphertext.
    pub fn is_available(self) -> bool {
        self.cpu_supports() && (self == Backend::Soft || self_test::passed(self))
    }

    /// Whether the CPU and build have what the backend needs, without its
    /// self-test. A backend for which this holds but [`Backend::is_available`]
    /// does not has failed its self-test: a bug to report.
    pub fn cpu_supports(self) -> bool {
        match self {
            Backend::Soft => true,
            #[cfg(target_arch = "x86_64")]
            Backend::Aesni => x86::features().aesni,
            #[cfg(target_arch = "x86_64")]
            Backend::Vaes256 => x86::features().vaes256,
            #[cfg(target_arch = "x86_64")]
            Backend::Vaes512 => x86::features().vaes512,
            #[cfg(target_arch = "aarch64")]
            Backend::Armv8 => armv8::available(),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The backend [`Xts::new`](super::Xts::new) picks: the best available one.
    ///
    /// On x86_64 that is `vaes512` where 512-bit vectors run at full clock,
    /// else `vaes256`, else `aesni`; on AArch64 `armv8`; else `soft`.
    pub fn detect() -> Backend {
        #[cfg(target_arch = "x86_64")]
        {
            let f = x86::features();
            if f.prefer_512 && Backend::Vaes512.is_available() {
                return Backend::Vaes512;
            }
            for b in [Backend::Vaes256, Backend::Aesni, Backend::Vaes512] {
                if b.is_available() {
                    return b;
                }
            }
        }
        #[cfg(target_arch = "aarch64")]
        if Backend::Armv8.is_available() {
            return Backend::Armv8;
        }
        Backend::Soft
    }
}

mod self_test {
    //! Power-on self-test: each hardware backend must produce the same bytes
    //! as `soft` on inputs that reach every path of its kernel (the 16-block
    //! main loop, the 2- and 4-block tails, single blocks, ciphertext
    //! stealing, batched sector tweaks and their partial last group, the
    //! fused multi-sector kernels of `vaes256` and `vaes512` at one and at
    //! several chunks per sector), in both directions and key sizes.

    use core::sync::atomic::{AtomicU8, Ordering};

    use super::{Backend, Engine};
    use crate::xts::Dir;

    const TESTED: u8 = 1;
    const PASSED: u8 = 2;
    static STATE: [AtomicU8; 6] = [const { AtomicU8::new(0) }; 6];

    pub(super) fn passed(b: Backend) -> bool {
        let slot = &STATE[b as usize];
        let s = slot.load(Ordering::Relaxed);
        if s & TESTED != 0 {
            return s & PASSED != 0;
        }
        let ok = run(b);
        slot.store(TESTED | if ok { PASSED } else { 0 }, Ordering::Relaxed);
        ok
    }

    fn run(b: Backend) -> bool {
        const LEN: usize = 16 * 41; // 41 blocks: 16 + 16 + 4 + 4 + 1 on every kernel shape
        let mut ok = true;
        for klen in [16usize, 32] {
            let mut key1 = [0u8; 32];
            let mut key2 = [0u8; 32];
            for ((a, b), i) in key1.iter_mut().zip(key2.iter_mut()).zip(0u8..) {
                *a = i.wrapping_mul(29).wrapping_add(3);
                *b = i.wrapping_mul(71).wrapping_add(101);
            }
            let hw = Engine::new(b, &key1[..klen], &key2[..klen]);
            let soft = Engine::new(Backend::Soft, &key1[..klen], &key2[..klen]);
            let mut data = [0u8; LEN];
            for (d, i) in data.iter_mut().zip((0u8..=255).cycle()) {
                *d = i.wrapping_mul(7) ^ 0x5c;
            }
            for dir in [Dir::Encrypt, Dir::Decrypt] {
                for n in [41usize, 33, 18, 7, 1] {
                    let mut t1 = [0x42u8; 16];
                    t1[15] = 0x80; // a carry out of the top bit on the first doubling
                    let mut t2 = t1;
                    let mut a = data;
                    let mut c = data;
                    // SAFETY: `a` and `c` hold `LEN >= 16 * n` bytes; in place.
                    unsafe {
                        hw.blocks(dir, &mut t1, a.as_ptr(), a.as_mut_ptr(), n);
                        soft.blocks(dir, &mut t2, c.as_ptr(), c.as_mut_ptr(), n);
                    }
                    ok &= a == c && t1 == t2;
                }
            }
            // Fused multi-sector runs: 3 sectors of 32 blocks (512 bytes:
            // one 16-block chunk with a tweak step, one without) and one of
            // 64 blocks (1 KiB: four chunks, three steps), tweaks with their
            // top bits set so every first-tweak reduction is taken.
            let mut run = [0u8; 16 * 96];
            for (d, i) in run.iter_mut().zip((0u8..=255).cycle()) {
                *d = i.wrapping_mul(13) ^ 0xa3;
            }
            for dir in [Dir::Encrypt, Dir::Decrypt] {
                for (blocks, count) in [(32usize, 3usize), (64, 1)] {
                    let mut tw1 = [[0xffu8; 16], [0x80u8; 16], [0x3cu8; 16]];
                    tw1[0][0] = 0x7e;
                    let mut tw2 = tw1;
                    let mut a = run;
                    let mut c = run;
                    // SAFETY: both buffers hold `count * blocks <= 96`
                    // blocks; in place.
                    unsafe {
                        hw.sectors(dir, &mut tw1[..count], a.as_ptr(), a.as_mut_ptr(), blocks);
                        soft.sectors(dir, &mut tw2[..count], c.as_ptr(), c.as_mut_ptr(), blocks);
                    }
                    ok &= a == c;
                }
            }
            // Batched tweak encryption: a full group of 16 and a partial
            // one (19), and a partial group alone (6).
            for n in [19usize, 6] {
                let mut t1 = [[0u8; 16]; 19];
                for (t, i) in t1.iter_mut().zip(0u8..) {
                    t[0] = i;
                    t[8] = 0xff;
                }
                let mut t2 = t1;
                hw.encrypt_tweaks(&mut t1[..n]);
                soft.encrypt_tweaks(&mut t2[..n]);
                ok &= t1 == t2;
            }
        }
        ok
    }
}

/// Multiplies a tweak by x in GF(2^128) (IEEE 1619 little-endian convention),
/// without branches on its value.
pub(crate) fn mul_x(t: &[u8; 16]) -> [u8; 16] {
    double(u128::from_le_bytes(*t)).to_le_bytes()
}

/// [`mul_x`] on the tweak as a little-endian integer.
#[inline(always)]
pub(crate) fn double(v: u128) -> u128 {
    (v << 1) ^ ((v >> 127).wrapping_neg() & 0x87)
}

/// Expanded AES round keys for the hardware kernels: key1 for encryption,
/// key1 in the equivalent-inverse form for decryption, key2 for tweaks.
#[derive(Clone)]
#[repr(C, align(64))]
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) struct HwKeys {
    /// 10 (AES-128) or 14 (AES-256).
    pub rounds: usize,
    pub ek1: [[u8; 16]; 15],
    pub dk1: [[u8; 16]; 15],
    pub ek2: [[u8; 16]; 15],
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
impl Drop for HwKeys {
    fn drop(&mut self) {
        self.ek1.zeroize();
        self.dk1.zeroize();
        self.ek2.zeroize();
    }
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
impl HwKeys {
    /// Expands key1 and key2 (both 16 or both 32 bytes) with SubWord and
    /// InvMixColumns supplied by the backend's AES instructions.
    pub(crate) fn expand(
        key1: &[u8],
        key2: &[u8],
        sub_word: impl Fn(u32) -> u32,
        inv_mix: impl Fn([u8; 16]) -> [u8; 16],
    ) -> HwKeys {
        let rounds = if key1.len() == 16 { 10 } else { 14 };
        let mut keys = HwKeys {
            rounds,
            ek1: [[0; 16]; 15],
            dk1: [[0; 16]; 15],
            ek2: [[0; 16]; 15],
        };
        expand_key(key1, &mut keys.ek1, &sub_word);
        expand_key(key2, &mut keys.ek2, &sub_word);
        // Equivalent inverse cipher: reversed order, InvMixColumns on the
        // middle keys (the same form serves AESDEC and AESD/AESIMC).
        keys.dk1[0] = keys.ek1[rounds];
        keys.dk1[rounds] = keys.ek1[0];
        for r in 1..rounds {
            keys.dk1[r] = inv_mix(keys.ek1[rounds - r]);
        }
        keys
    }

    pub(crate) fn size(&self) -> KeySize {
        if self.rounds == 14 {
            KeySize::Aes256
        } else {
            KeySize::Aes128
        }
    }
}

/// FIPS-197 key expansion with SubWord supplied by the caller (an AES
/// instruction: never a table indexed by key bytes). Writes `nr + 1` round
/// keys where `nr` is 10 for a 16-byte key and 14 for a 32-byte key.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn expand_key(key: &[u8], out: &mut [[u8; 16]; 15], sub_word: impl Fn(u32) -> u32) {
    const RCON: [u32; 10] = [0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1b, 0x36];
    let nk = key.len() / 4;
    let total = 4 * (nk + 7);
    let mut w = [0u32; 60];
    for (i, chunk) in key.chunks_exact(4).enumerate() {
        w[i] = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    for i in nk..total {
        let mut temp = w[i - 1];
        if i % nk == 0 {
            // RotWord on a little-endian word is a right rotation by 8.
            temp = sub_word(temp.rotate_right(8)) ^ RCON[i / nk - 1];
        } else if nk > 6 && i % nk == 4 {
            temp = sub_word(temp);
        }
        w[i] = w[i - nk] ^ temp;
    }
    for (r, rk) in out.iter_mut().enumerate().take(total / 4) {
        for c in 0..4 {
            rk[4 * c..4 * c + 4].copy_from_slice(&w[4 * r + c].to_le_bytes());
        }
    }
    w.zeroize();
}

/// The key material of one [`Xts`](super::Xts), laid out for its backend.
///
/// Variants differ in size; boxing would need a heap, and the C ABI's
/// context has room for the largest anyway.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Engine {
    Soft(soft::SoftKeys),
    #[cfg(target_arch = "x86_64")]
    Aesni(HwKeys),
    #[cfg(target_arch = "x86_64")]
    Vaes256(HwKeys),
    #[cfg(target_arch = "x86_64")]
    Vaes512(HwKeys),
    #[cfg(target_arch = "aarch64")]
    Armv8(HwKeys),
}

impl Engine {
    /// Expands key1 and key2 (equal lengths, 16 or 32 bytes) for `backend`,
    /// which the caller has checked is available.
    pub(crate) fn new(backend: Backend, key1: &[u8], key2: &[u8]) -> Engine {
        match backend {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the caller checked `backend.is_available()`, so the CPU
            // has AES-NI (every VAES backend requires it too).
            Backend::Aesni => Engine::Aesni(unsafe { x86_aes::expand(key1, key2) }),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Backend::Vaes256 => Engine::Vaes256(unsafe { x86_aes::expand(key1, key2) }),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Backend::Vaes512 => Engine::Vaes512(unsafe { x86_aes::expand(key1, key2) }),
            #[cfg(target_arch = "aarch64")]
            // SAFETY: the caller checked that AES and PMULL are present.
            Backend::Armv8 => Engine::Armv8(unsafe { armv8::expand(key1, key2) }),
            _ => Engine::Soft(soft::SoftKeys::new(key1, key2)),
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Engine::Soft(_) => Backend::Soft,
            #[cfg(target_arch = "x86_64")]
            Engine::Aesni(_) => Backend::Aesni,
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes256(_) => Backend::Vaes256,
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes512(_) => Backend::Vaes512,
            #[cfg(target_arch = "aarch64")]
            Engine::Armv8(_) => Backend::Armv8,
        }
    }

    pub(crate) fn key_size(&self) -> KeySize {
        match self {
            Engine::Soft(k) => k.size(),
            #[cfg(target_arch = "x86_64")]
            Engine::Aesni(k) | Engine::Vaes256(k) | Engine::Vaes512(k) => k.size(),
            #[cfg(target_arch = "aarch64")]
            Engine::Armv8(k) => k.size(),
        }
    }

    /// Encrypts each tweak in place with key2 (all at once where the kernel can).
    pub(crate) fn encrypt_tweaks(&self, tweaks: &mut [[u8; 16]]) {
        match self {
            Engine::Soft(k) => k.encrypt_tweaks(tweaks),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the variant exists only if AES-NI was detected.
            Engine::Aesni(k) => unsafe { aesni::encrypt_tweaks(k, tweaks) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the variant exists only if VAES and AVX2 were detected.
            Engine::Vaes256(k) => unsafe { vaes::encrypt_tweaks256(k, tweaks) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the variant exists only if VAES and AVX-512F/BW were
            // detected.
            Engine::Vaes512(k) => unsafe { vaes::encrypt_tweaks512(k, tweaks) },
            #[cfg(target_arch = "aarch64")]
            // SAFETY: the variant exists only if AES was detected.
            Engine::Armv8(k) => unsafe { armv8::encrypt_tweaks(k, tweaks) },
        }
    }

    /// XTS over `n` whole blocks from `src` to `dst`. `t` holds the encrypted
    /// tweak of the first block and is advanced past the last one.
    ///
    /// # Safety
    /// `src` must be valid for `16 * n` reads and `dst` for `16 * n` writes;
    /// the two ranges are the same or disjoint.
    pub(crate) unsafe fn blocks(
        &self,
        dir: Dir,
        t: &mut [u8; 16],
        src: *const u8,
        dst: *mut u8,
        n: usize,
    ) {
        if n == 0 {
            return;
        }
        // Each variant exists only after its CPU features were detected
        // (`Engine::new`); the pointer contract is forwarded from the caller.
        match self {
            // SAFETY: see above.
            Engine::Soft(k) => unsafe { k.blocks(dir, t, src, dst, n) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: see above.
            Engine::Aesni(k) => unsafe { aesni::blocks(k, dir, t, src, dst, n) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: see above.
            Engine::Vaes256(k) => unsafe { vaes::blocks256(k, dir, t, src, dst, n) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: see above.
            Engine::Vaes512(k) => unsafe { vaes::blocks512(k, dir, t, src, dst, n) },
            #[cfg(target_arch = "aarch64")]
            // SAFETY: see above.
            Engine::Armv8(k) => unsafe { armv8::blocks(k, dir, t, src, dst, n) },
        }
    }

    /// XTS over a run of whole sectors of `blocks` blocks each, `tweaks[s]`
    /// holding sector `s`'s encrypted tweak (clobbered). Kernels with a
    /// fused multi-sector path take the whole run in one call.
    ///
    /// # Safety
    /// `src` must be valid for `16 * blocks * tweaks.len()` reads and `dst`
    /// for as many writes; the two ranges are the same or disjoint.
    pub(crate) unsafe fn sectors(
        &self,
        dir: Dir,
        tweaks: &mut [[u8; 16]],
        src: *const u8,
        dst: *mut u8,
        blocks: usize,
    ) {
        #[cfg(target_arch = "x86_64")]
        if blocks > 0 && blocks.is_multiple_of(16) {
            match self {
                Engine::Vaes256(k) => {
                    // SAFETY: the variant exists only after VAES/AVX2/VPCLMULQDQ
                    // were detected; the pointer contract is the caller's.
                    unsafe { vaes::sectors256(k, dir, tweaks, src, dst, blocks) };
                    return;
                }
                Engine::Vaes512(k) => {
                    // SAFETY: the variant exists only after AVX-512F/BW/VL,
                    // VAES and VPCLMULQDQ were detected; the pointer contract
                    // is the caller's.
                    unsafe { vaes::sectors512(k, dir, tweaks, src, dst, blocks) };
                    return;
                }
                _ => {}
            }
        }
        let bytes = 16 * blocks;
        for (i, t) in tweaks.iter_mut().enumerate() {
            // SAFETY: sector `i` lies inside the run the caller vouched for.
            unsafe { self.blocks(dir, t, src.add(i * bytes), dst.add(i * bytes), blocks) };
        }
    }

    /// XTS over one block held in `buf`; `t` advances by one block.
    pub(crate) fn block(&self, dir: Dir, t: &mut [u8; 16], buf: &mut [u8; 16]) {
        let p = buf.as_mut_ptr();
        // SAFETY: `buf` is one block, valid for reads and writes, in place.
        unsafe { self.blocks(dir, t, p, p, 1) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mul_x_matches_bitwise_definition() {
        // x^128 = x^7 + x^2 + x + 1: the top bit folds into 0x87.
        let mut t = [0u8; 16];
        t[15] = 0x80;
        let mut expect = [0u8; 16];
        expect[0] = 0x87;
        assert_eq!(mul_x(&t), expect);
        // A carry between bytes.
        let mut t = [0u8; 16];
        t[0] = 0x80;
        let mut expect = [0u8; 16];
        expect[1] = 0x01;
        assert_eq!(mul_x(&t), expect);
    }

    #[test]
    fn names_round_trip() {
        for b in Backend::ALL {
            assert_eq!(Backend::from_name(b.name()), Some(b));
        }
        assert_eq!(Backend::from_name("nope"), None);
        assert!(Backend::Soft.is_available());
        assert!(Backend::detect().is_available());
    }
}
