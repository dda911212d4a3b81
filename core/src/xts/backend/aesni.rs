//! The `aesni` backend: AES-NI + PCLMULQDQ on 128-bit registers.
//!
//! Eight blocks are in flight per iteration so the AES units' latency is
//! hidden; the eight tweaks of the next iteration are the current ones times
//! x^8, computed independently with a carry-less multiply for the reduction,
//! so tweak work never sits on the AES dependency chain. Pre-whitening is
//! folded into round key 0 and post-whitening into the last round key.

use core::arch::x86_64::*;

use super::super::Dir;
use super::HwKeys;
use super::x86_aes::{last, load_keys, mul_x, one_block, round_x8_sse};

/// Multiplies each 128-bit lane by x^K, 0 < K < 57, with the reduction done
/// by a carry-less multiply (independent of the AES port on most cores).
#[inline]
#[target_feature(enable = "sse2,pclmulqdq")]
pub(super) fn mul_xk<const K: i32, const R: i32>(t: __m128i) -> __m128i {
    // R must be 64 - K (a const expression over generics is not stable).
    let shifted = _mm_slli_epi64::<K>(t);
    let carry = _mm_srli_epi64::<R>(t);
    let into_high = _mm_slli_si128::<8>(carry);
    let reduced = _mm_clmulepi64_si128::<0x01>(carry, _mm_set_epi64x(0, 0x87));
    _mm_xor_si128(_mm_xor_si128(shifted, into_high), reduced)
}

/// Multiplies by x^8: a one-byte shift, the byte shifted out reduced with
/// one carry-less multiply by 0x87 (4 operations).
#[inline]
#[target_feature(enable = "sse2,pclmulqdq")]
pub(super) fn mul_x8(t: __m128i) -> __m128i {
    let out = _mm_srli_si128::<15>(t);
    let reduced = _mm_clmulepi64_si128::<0x00>(out, _mm_set_epi64x(0, 0x87));
    _mm_xor_si128(_mm_slli_si128::<1>(t), reduced)
}

/// Encrypts each tweak in place with key2, eight at a time.
///
/// # Safety
/// The CPU must have AES-NI.
#[target_feature(enable = "aes,sse2,sse4.1")]
pub(crate) unsafe fn encrypt_tweaks(k: &HwKeys, tweaks: &mut [[u8; 16]]) {
    if k.rounds == 14 {
        tweaks_nr::<14>(k, tweaks)
    } else {
        tweaks_nr::<10>(k, tweaks)
    }
}

#[target_feature(enable = "aes,sse2")]
fn tweaks_nr<const NR: usize>(k: &HwKeys, tweaks: &mut [[u8; 16]]) {
    let rk = load_keys::<NR>(&k.ek2);
    let mut chunks = tweaks.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut s = [_mm_setzero_si128(); 8];
        for (s, t) in s.iter_mut().zip(chunk.iter()) {
            // SAFETY: `t` is 16 readable bytes.
            *s = _mm_xor_si128(unsafe { _mm_loadu_si128(t.as_ptr().cast()) }, rk[0]);
        }
        for k in &rk[1..NR] {
            for s in s.iter_mut() {
                *s = _mm_aesenc_si128(*s, *k);
            }
        }
        for (s, t) in s.iter().zip(chunk.iter_mut()) {
            // SAFETY: `t` is 16 writable bytes.
            unsafe { _mm_storeu_si128(t.as_mut_ptr().cast(), _mm_aesenclast_si128(*s, rk[NR])) };
        }
    }
    for t in chunks.into_remainder() {
        // SAFETY: `t` is 16 readable and writable bytes.
        unsafe {
            let s = _mm_loadu_si128(t.as_ptr().cast());
            let s = one_block::<NR, false>(&rk, s, _mm_setzero_si128());
            _mm_storeu_si128(t.as_mut_ptr().cast(), s);
        }
    }
}

/// XTS over `n` blocks; see `Engine::blocks`.
///
/// # Safety
/// The CPU must have AES-NI and PCLMULQDQ; `src` valid for `16 * n` reads,
/// `dst` for `16 * n` writes, the two the same or disjoint.
#[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
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

/// # Safety
/// As for [`blocks`].
#[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
unsafe fn kernel<const NR: usize, const DEC: bool>(
    keys: &[[u8; 16]; 15],
    t: &mut [u8; 16],
    src: *const u8,
    dst: *mut u8,
    n: usize,
) {
    let rk = load_keys::<NR>(keys);
    // SAFETY: `t` is 16 readable bytes.
    let t0 = unsafe { _mm_loadu_si128(t.as_ptr().cast()) };
    // Each first tweak from `t0` on its own: no chain of doublings before
    // the first round.
    let mut tw = [
        t0,
        mul_x(t0),
        mul_xk::<2, 62>(t0),
        mul_xk::<3, 61>(t0),
        mul_xk::<4, 60>(t0),
        mul_xk::<5, 59>(t0),
        mul_xk::<6, 58>(t0),
        mul_xk::<7, 57>(t0),
    ];
    let mut i = 0;
    while n - i >= 8 {
        let mut s = [_mm_setzero_si128(); 8];
        for j in 0..8 {
            // SAFETY: block `i + j < n` lies inside the source.
            let x = unsafe { _mm_loadu_si128(src.add(16 * (i + j)).cast()) };
            s[j] = _mm_xor_si128(x, _mm_xor_si128(tw[j], rk[0]));
        }
        for k in &rk[1..NR] {
            if DEC {
                round_x8_sse!("aesdec", s, *k);
            } else {
                round_x8_sse!("aesenc", s, *k);
            }
        }
        for j in 0..8 {
            let out = last::<DEC>(s[j], _mm_xor_si128(rk[NR], tw[j]));
            // SAFETY: block `i + j < n` lies inside the destination; its
            // source was read above.
            unsafe { _mm_storeu_si128(dst.add(16 * (i + j)).cast(), out) };
            tw[j] = mul_x8(tw[j]);
        }
        i += 8;
    }
    let mut cur = tw[0];
    while i < n {
        // SAFETY: block `i < n` lies inside source and destination.
        unsafe {
            let x = _mm_loadu_si128(src.add(16 * i).cast());
            _mm_storeu_si128(dst.add(16 * i).cast(), one_block::<NR, DEC>(&rk, x, cur));
        }
        cur = mul_x(cur);
        i += 1;
    }
    // SAFETY: `t` is 16 writable bytes.
    unsafe { _mm_storeu_si128(t.as_mut_ptr().cast(), cur) };
}
