//! The `armv8` backend: ARMv8 Cryptography Extensions (AES + PMULL).
//!
//! Round keys live in registers; every AESE is paired with the AESMC that
//! follows it (cores fuse the pair); eight blocks are interleaved to hide the
//! AES latency; the next eight tweaks are doubled from the last one while
//! the AES work of the current eight is in flight. Whitening is folded into
//! the first and last round keys (AESE XORs its key first, so AESE(x ^ t, k)
//! = AESE(x, k ^ t)).
//!
//! Available when the OS reports AES and PMULL (Linux, Android, Apple), or,
//! on bare metal, when the build enables the `aes` target feature.

use core::arch::aarch64::*;

use super::super::Dir;
use super::HwKeys;

cpufeatures::new!(aes_pmull, "aes");

/// Whether AES and PMULL can be used.
pub(crate) fn available() -> bool {
    aes_pmull::get()
}

/// Expands key1 and key2 (both 16 or both 32 bytes).
///
/// # Safety
/// The CPU must have the AES extension.
#[target_feature(enable = "aes,neon")]
pub(crate) unsafe fn expand(key1: &[u8], key2: &[u8]) -> HwKeys {
    let sub_word = |w: u32| -> u32 {
        // With the word in all four columns ShiftRows is the identity, so
        // AESE with a zero key is SubBytes on the word.
        let x = vreinterpretq_u8_u32(vdupq_n_u32(w));
        vgetq_lane_u32::<0>(vreinterpretq_u32_u8(vaeseq_u8(x, vdupq_n_u8(0))))
    };
    let inv_mix = |k: [u8; 16]| -> [u8; 16] {
        let mut out = [0u8; 16];
        // SAFETY: 16-byte arrays; NEON loads and stores need no alignment.
        unsafe { vst1q_u8(out.as_mut_ptr(), vaesimcq_u8(vld1q_u8(k.as_ptr()))) };
        out
    };
    HwKeys::expand(key1, key2, sub_word, inv_mix)
}

#[inline]
#[target_feature(enable = "neon")]
fn load_keys<const NR: usize>(rk: &[[u8; 16]; 15]) -> [uint8x16_t; 15] {
    let mut out = [vdupq_n_u8(0); 15];
    for (o, k) in out.iter_mut().zip(rk.iter()).take(NR + 1) {
        // SAFETY: `k` is 16 readable bytes.
        *o = unsafe { vld1q_u8(k.as_ptr()) };
    }
    out
}

/// Multiplies a tweak by x, branch-free.
#[inline]
#[target_feature(enable = "neon")]
fn mul_x(t: uint8x16_t) -> uint8x16_t {
    let v = vreinterpretq_u64_u8(t);
    let signs = vshrq_n_s64::<63>(vreinterpretq_s64_u64(v));
    // Lane 0 takes the high lane's sign (x^128 -> 0x87), lane 1 the low's (carry).
    let swapped = vreinterpretq_u64_s64(vextq_s64::<1>(signs, signs));
    let consts = vcombine_u64(vcreate_u64(0x87), vcreate_u64(1));
    vreinterpretq_u8_u64(veorq_u64(vshlq_n_u64::<1>(v), vandq_u64(swapped, consts)))
}

/// One block; `k0` and `kl` are the first and last round keys already
/// XORed with the tweak.
#[inline]
#[target_feature(enable = "aes,neon")]
fn crypt<const NR: usize, const DEC: bool>(
    rk: &[uint8x16_t; 15],
    x: uint8x16_t,
    k0: uint8x16_t,
    kl: uint8x16_t,
) -> uint8x16_t {
    let mut s = x;
    if DEC {
        s = vaesimcq_u8(vaesdq_u8(s, k0));
        for k in &rk[1..NR - 1] {
            s = vaesimcq_u8(vaesdq_u8(s, *k));
        }
        veorq_u8(vaesdq_u8(s, rk[NR - 1]), kl)
    } else {
        s = vaesmcq_u8(vaeseq_u8(s, k0));
        for k in &rk[1..NR - 1] {
            s = vaesmcq_u8(vaeseq_u8(s, *k));
        }
        veorq_u8(vaeseq_u8(s, rk[NR - 1]), kl)
    }
}

/// Encrypts each tweak in place with key2.
///
/// # Safety
/// The CPU must have the AES extension.
#[target_feature(enable = "aes,neon")]
pub(crate) unsafe fn encrypt_tweaks(k: &HwKeys, tweaks: &mut [[u8; 16]]) {
    if k.rounds == 14 {
        tweaks_nr::<14>(k, tweaks)
    } else {
        tweaks_nr::<10>(k, tweaks)
    }
}

#[target_feature(enable = "aes,neon")]
fn tweaks_nr<const NR: usize>(k: &HwKeys, tweaks: &mut [[u8; 16]]) {
    let rk = load_keys::<NR>(&k.ek2);
    let mut chunks = tweaks.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let mut s = [vdupq_n_u8(0); 4];
        for (s, t) in s.iter_mut().zip(chunk.iter()) {
            // SAFETY: `t` is 16 readable bytes.
            *s = unsafe { vld1q_u8(t.as_ptr()) };
        }
        for s in s.iter_mut() {
            *s = vaesmcq_u8(vaeseq_u8(*s, rk[0]));
        }
        for k in &rk[1..NR - 1] {
            for s in s.iter_mut() {
                *s = vaesmcq_u8(vaeseq_u8(*s, *k));
            }
        }
        for (s, t) in s.iter().zip(chunk.iter_mut()) {
            let out = veorq_u8(vaeseq_u8(*s, rk[NR - 1]), rk[NR]);
            // SAFETY: `t` is 16 writable bytes.
            unsafe { vst1q_u8(t.as_mut_ptr(), out) };
        }
    }
    for t in chunks.into_remainder() {
        // SAFETY: `t` is 16 readable and writable bytes.
        unsafe {
            let s = crypt::<NR, false>(&rk, vld1q_u8(t.as_ptr()), rk[0], rk[NR]);
            vst1q_u8(t.as_mut_ptr(), s);
        }
    }
}

/// XTS over `n` blocks; see `Engine::blocks`.
///
/// # Safety
/// The CPU must have AES and PMULL; `src` valid for `16 * n` reads, `dst`
/// for `16 * n` writes, the two the same or disjoint.
#[target_feature(enable = "aes,neon")]
pub(crate) unsafe fn blocks(
    k: &HwKeys,
    dir: Dir,
    t: &mut [u8; 16],
    src: *const u8,
    dst: *mut u8,
    n: usize,
) {
    // SAFETY: forwarded contract.
    unsafe {
        match (k.rounds, dir) {
            (14, Dir::Encrypt) => kernel::<14, false>(&k.ek1, t, src, dst, n),
            (14, Dir::Decrypt) => kernel::<14, true>(&k.dk1, t, src, dst, n),
            (_, Dir::Encrypt) => kernel::<10, false>(&k.ek1, t, src, dst, n),
            (_, Dir::Decrypt) => kernel::<10, true>(&k.dk1, t, src, dst, n),
        }
    }
}

const LANES: usize = 8;

/// # Safety
/// As for [`blocks`].
#[target_feature(enable = "aes,neon")]
unsafe fn kernel<const NR: usize, const DEC: bool>(
    keys: &[[u8; 16]; 15],
    t: &mut [u8; 16],
    src: *const u8,
    dst: *mut u8,
    n: usize,
) {
    let rk = load_keys::<NR>(keys);
    // SAFETY: `t` is 16 readable bytes.
    let mut cur = unsafe { vld1q_u8(t.as_ptr()) };
    let mut i = 0;
    while n - i >= LANES {
        let mut tw = [cur; LANES];
        for j in 1..LANES {
            tw[j] = mul_x(tw[j - 1]);
        }
        cur = mul_x(tw[LANES - 1]);
        let mut s = [vdupq_n_u8(0); LANES];
        for j in 0..LANES {
            // SAFETY: block `i + j < n` lies inside the source.
            let x = unsafe { vld1q_u8(src.add(16 * (i + j))) };
            s[j] = if DEC {
                vaesimcq_u8(vaesdq_u8(x, veorq_u8(rk[0], tw[j])))
            } else {
                vaesmcq_u8(vaeseq_u8(x, veorq_u8(rk[0], tw[j])))
            };
        }
        for k in &rk[1..NR - 1] {
            for s in s.iter_mut() {
                *s = if DEC {
                    vaesimcq_u8(vaesdq_u8(*s, *k))
                } else {
                    vaesmcq_u8(vaeseq_u8(*s, *k))
                };
            }
        }
        for j in 0..LANES {
            let y = if DEC {
                vaesdq_u8(s[j], rk[NR - 1])
            } else {
                vaeseq_u8(s[j], rk[NR - 1])
            };
            let out = veorq_u8(y, veorq_u8(rk[NR], tw[j]));
            // SAFETY: inside the destination; the source was read above.
            unsafe { vst1q_u8(dst.add(16 * (i + j)), out) };
        }
        i += LANES;
    }
    while i < n {
        // SAFETY: block `i < n` lies inside source and destination.
        unsafe {
            let x = vld1q_u8(src.add(16 * i));
            let y = crypt::<NR, DEC>(&rk, x, veorq_u8(rk[0], cur), veorq_u8(rk[NR], cur));
            vst1q_u8(dst.add(16 * i), y);
        }
        cur = mul_x(cur);
        i += 1;
    }
    // SAFETY: `t` is 16 writable bytes.
    unsafe { vst1q_u8(t.as_mut_ptr(), cur) };
}
