//! The `vaes256` and `vaes512` backends: VAES + VPCLMULQDQ on 256-bit
//! (AVX2) and 512-bit (AVX-512) registers.
//!
//! Each register holds 2 (or 4) consecutive blocks and their tweaks; 16
//! blocks are in flight per iteration (8 YMM or 4 ZMM registers). The tweak
//! registers of the next iteration are the current ones times x^16, each
//! computed on its own with a carry-less multiply for the reduction. Round
//! keys are broadcast once per call; pre-whitening is one three-way XOR with
//! round key 0 and post-whitening is folded into the last round key.
//! Leftover blocks go two (four) at a time, then one at a time on AES-NI.
//!
//! Runs of whole sectors that are a multiple of 256 bytes go through one
//! fused loop per run (`sectors256`, `sectors512`): keys broadcast once,
//! each sector's first tweak registers computed from its own encrypted
//! tweak, no tweak step after a sector's last chunk. The sector tweaks
//! themselves are encrypted sixteen at a time, two (four) per register.

use core::arch::x86_64::*;

use super::super::Dir;
use super::HwKeys;
use super::x86_aes::{load_keys, mul_x, one_block, round_x4, round_x8};

/// Multiplies each 128-bit lane by x^K (0 < K < 57, R = 64 - K).
#[inline]
#[target_feature(enable = "avx2,vpclmulqdq")]
fn mul_xk256<const K: i32, const R: i32>(t: __m256i) -> __m256i {
    let shifted = _mm256_slli_epi64::<K>(t);
    let carry = _mm256_srli_epi64::<R>(t);
    let into_high = _mm256_slli_si256::<8>(carry);
    let reduced = _mm256_clmulepi64_epi128::<0x01>(carry, _mm256_set_epi64x(0, 0x87, 0, 0x87));
    _mm256_xor_si256(_mm256_xor_si256(shifted, into_high), reduced)
}

#[inline]
#[target_feature(enable = "avx2,vaes")]
fn round256<const DEC: bool>(x: __m256i, k: __m256i) -> __m256i {
    if DEC {
        _mm256_aesdec_epi128(x, k)
    } else {
        _mm256_aesenc_epi128(x, k)
    }
}

#[inline]
#[target_feature(enable = "avx2,vaes")]
fn last256<const DEC: bool>(x: __m256i, k: __m256i) -> __m256i {
    if DEC {
        _mm256_aesdeclast_epi128(x, k)
    } else {
        _mm256_aesenclast_epi128(x, k)
    }
}

/// Multiplies each 128-bit lane by x^16: a two-byte shift, the 16 bits
/// shifted out reduced with one carry-less multiply by 0x87 (4 operations,
/// none on a shift-and-carry chain).
#[inline]
#[target_feature(enable = "avx2,vpclmulqdq")]
fn mul_x16_256(t: __m256i) -> __m256i {
    let out = _mm256_bsrli_epi128::<14>(t);
    let reduced = _mm256_clmulepi64_epi128::<0x00>(out, _mm256_set_epi64x(0, 0x87, 0, 0x87));
    _mm256_xor_si256(_mm256_bslli_epi128::<2>(t), reduced)
}

/// The eight tweak registers of a fresh run: blocks 0 and 1 in register 0
/// and register j = register 0 times x^(2j), each computed from register 0
/// on its own so that no chain of doublings delays the first round.
#[inline]
#[target_feature(enable = "avx2,vpclmulqdq,aes,pclmulqdq,sse4.1")]
fn first_tweaks256(t0: __m128i) -> [__m256i; 8] {
    let p = _mm256_set_m128i(mul_x(t0), t0);
    [
        p,
        mul_xk256::<2, 62>(p),
        mul_xk256::<4, 60>(p),
        mul_xk256::<6, 58>(p),
        mul_xk256::<8, 56>(p),
        mul_xk256::<10, 54>(p),
        mul_xk256::<12, 52>(p),
        mul_xk256::<14, 50>(p),
    ]
}

/// Sixteen blocks at `src`/`dst` with the tweaks in `tw`, which advance by
/// sixteen blocks if `ADVANCE` (not after a sector's last chunk).
///
/// # Safety
/// The CPU must have the features below; `src` valid for 256 reads, `dst`
/// for 256 writes, the same or disjoint.
#[inline]
#[target_feature(enable = "avx2,vaes,vpclmulqdq")]
unsafe fn chunk256<const NR: usize, const DEC: bool, const ADVANCE: bool>(
    rk: &[__m256i; 15],
    tw: &mut [__m256i; 8],
    src: *const u8,
    dst: *mut u8,
) {
    let mut s = [_mm256_setzero_si256(); 8];
    for j in 0..8 {
        // SAFETY: blocks `2j`, `2j + 1` lie inside the source.
        let x = unsafe { _mm256_loadu_si256(src.add(32 * j).cast()) };
        s[j] = _mm256_xor_si256(x, _mm256_xor_si256(tw[j], rk[0]));
    }
    for k in &rk[1..NR] {
        if DEC {
            round_x8!("vaesdec", ymm_reg, s, *k);
        } else {
            round_x8!("vaesenc", ymm_reg, s, *k);
        }
    }
    for j in 0..8 {
        let out = last256::<DEC>(s[j], _mm256_xor_si256(rk[NR], tw[j]));
        // SAFETY: inside the destination; the source was read above.
        unsafe { _mm256_storeu_si256(dst.add(32 * j).cast(), out) };
        if ADVANCE {
            tw[j] = mul_x16_256(tw[j]);
        }
    }
}

/// Round keys broadcast to both lanes.
#[inline]
#[target_feature(enable = "avx2,aes,sse4.1")]
fn broadcast_keys<const NR: usize>(rk1: &[__m128i; 15]) -> [__m256i; 15] {
    let mut rk = [_mm256_setzero_si256(); 15];
    for (w, k) in rk.iter_mut().zip(rk1.iter()).take(NR + 1) {
        *w = _mm256_broadcastsi128_si256(*k);
    }
    rk
}

/// XTS over `n` blocks with 256-bit VAES; see `Engine::blocks`.
///
/// # Safety
/// The CPU must have AVX2, VAES, VPCLMULQDQ and AES-NI; `src` valid for
/// `16 * n` reads, `dst` for `16 * n` writes, the two the same or disjoint.
#[target_feature(enable = "avx2,vaes,vpclmulqdq,aes,pclmulqdq,sse4.1")]
pub(crate) unsafe fn blocks256(
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
            (14, Dir::Encrypt) => kernel256::<14, false>(&k.ek1, t, src, dst, n),
            (14, Dir::Decrypt) => kernel256::<14, true>(&k.dk1, t, src, dst, n),
            (_, Dir::Encrypt) => kernel256::<10, false>(&k.ek1, t, src, dst, n),
            (_, Dir::Decrypt) => kernel256::<10, true>(&k.dk1, t, src, dst, n),
        }
    }
}

/// # Safety
/// As for [`blocks256`].
#[target_feature(enable = "avx2,vaes,vpclmulqdq,aes,pclmulqdq,sse4.1")]
unsafe fn kernel256<const NR: usize, const DEC: bool>(
    keys: &[[u8; 16]; 15],
    t: &mut [u8; 16],
    src: *const u8,
    dst: *mut u8,
    n: usize,
) {
    let rk1 = load_keys::<NR>(keys);
    let rk = broadcast_keys::<NR>(&rk1);
    // SAFETY: `t` is 16 readable bytes.
    let t0 = unsafe { _mm_loadu_si128(t.as_ptr().cast()) };
    let mut tw = first_tweaks256(t0);
    let mut i = 0;
    while n - i >= 16 {
        // SAFETY: blocks `i .. i + 16` lie inside source and destination.
        unsafe { chunk256::<NR, DEC, true>(&rk, &mut tw, src.add(16 * i), dst.add(16 * i)) };
        i += 16;
    }
    let mut pair = tw[0];
    while n - i >= 2 {
        // SAFETY: blocks `i`, `i + 1` lie inside source and destination.
        unsafe {
            let x = _mm256_loadu_si256(src.add(16 * i).cast());
            let mut s = _mm256_xor_si256(x, _mm256_xor_si256(pair, rk[0]));
            for k in &rk[1..NR] {
                s = round256::<DEC>(s, *k);
            }
            let out = last256::<DEC>(s, _mm256_xor_si256(rk[NR], pair));
            _mm256_storeu_si256(dst.add(16 * i).cast(), out);
        }
        pair = mul_xk256::<2, 62>(pair);
        i += 2;
    }
    let mut cur = _mm256_castsi256_si128(pair);
    if i < n {
        // SAFETY: block `i < n` lies inside source and destination.
        unsafe {
            let x = _mm_loadu_si128(src.add(16 * i).cast());
            _mm_storeu_si128(dst.add(16 * i).cast(), one_block::<NR, DEC>(&rk1, x, cur));
        }
        cur = mul_x(cur);
    }
    // SAFETY: `t` is 16 writable bytes.
    unsafe { _mm_storeu_si128(t.as_mut_ptr().cast(), cur) };
}

/// XTS over a run of whole sectors with 256-bit VAES, `tweaks[s]` being the
/// encrypted tweak of sector `s` and every sector `blocks` blocks long (a
/// non-zero multiple of 16). One flat loop over 16-block chunks: the keys
/// are broadcast once, and a sector's first tweaks depend only on its own
/// encrypted tweak, so they are computed while the previous sector's last
/// chunk is still in the AES units.
///
/// # Safety
/// As for [`blocks256`], with `tweaks.len() * blocks` blocks at `src` and
/// `dst`.
#[target_feature(enable = "avx2,vaes,vpclmulqdq,aes,pclmulqdq,sse4.1")]
pub(crate) unsafe fn sectors256(
    k: &HwKeys,
    dir: Dir,
    tweaks: &[[u8; 16]],
    src: *const u8,
    dst: *mut u8,
    blocks: usize,
) {
    // SAFETY: forwarded contract.
    unsafe {
        match (k.rounds, dir) {
            (14, Dir::Encrypt) => ksectors256::<14, false>(&k.ek1, tweaks, src, dst, blocks),
            (14, Dir::Decrypt) => ksectors256::<14, true>(&k.dk1, tweaks, src, dst, blocks),
            (_, Dir::Encrypt) => ksectors256::<10, false>(&k.ek1, tweaks, src, dst, blocks),
            (_, Dir::Decrypt) => ksectors256::<10, true>(&k.dk1, tweaks, src, dst, blocks),
        }
    }
}

/// # Safety
/// As for [`sectors256`].
#[target_feature(enable = "avx2,vaes,vpclmulqdq,aes,pclmulqdq,sse4.1")]
unsafe fn ksectors256<const NR: usize, const DEC: bool>(
    keys: &[[u8; 16]; 15],
    tweaks: &[[u8; 16]],
    src: *const u8,
    dst: *mut u8,
    blocks: usize,
) {
    debug_assert!(blocks > 0 && blocks.is_multiple_of(16));
    let rk = broadcast_keys::<NR>(&load_keys::<NR>(keys));
    let mut off = 0usize;
    for t in tweaks {
        // SAFETY: `t` is 16 readable bytes.
        let mut tw = first_tweaks256(unsafe { _mm_loadu_si128(t.as_ptr().cast()) });
        for _ in 1..blocks / 16 {
            // SAFETY: the chunk lies inside the run the caller vouched for.
            unsafe { chunk256::<NR, DEC, true>(&rk, &mut tw, src.add(off), dst.add(off)) };
            off += 256;
        }
        // The sector's last chunk: its tweaks are not needed afterwards.
        // SAFETY: as above.
        unsafe { chunk256::<NR, DEC, false>(&rk, &mut tw, src.add(off), dst.add(off)) };
        off += 256;
    }
}

/// Encrypts each tweak in place with key2, sixteen at a time in eight
/// 256-bit registers (a run of 512-byte sectors spends one AES round in
/// sixteen on its tweaks; two per register halves that).
///
/// # Safety
/// The CPU must have AVX2, VAES and AES-NI.
#[target_feature(enable = "avx2,vaes,aes,sse4.1")]
pub(crate) unsafe fn encrypt_tweaks256(k: &HwKeys, tweaks: &mut [[u8; 16]]) {
    if k.rounds == 14 {
        tweaks256::<14>(k, tweaks)
    } else {
        tweaks256::<10>(k, tweaks)
    }
}

#[target_feature(enable = "avx2,vaes,aes,sse4.1")]
fn tweaks256<const NR: usize>(k: &HwKeys, tweaks: &mut [[u8; 16]]) {
    let rk1 = load_keys::<NR>(&k.ek2);
    let rk = broadcast_keys::<NR>(&rk1);
    let mut chunks = tweaks.chunks_exact_mut(16);
    for chunk in &mut chunks {
        let p = chunk.as_mut_ptr().cast::<u8>();
        let mut s = [_mm256_setzero_si256(); 8];
        for (j, s) in s.iter_mut().enumerate() {
            // SAFETY: tweaks `2j`, `2j + 1` of the chunk: 32 readable bytes.
            *s = _mm256_xor_si256(unsafe { _mm256_loadu_si256(p.add(32 * j).cast()) }, rk[0]);
        }
        for k in &rk[1..NR] {
            round_x8!("vaesenc", ymm_reg, s, *k);
        }
        for (j, s) in s.iter().enumerate() {
            let out = _mm256_aesenclast_epi128(*s, rk[NR]);
            // SAFETY: as above, writable.
            unsafe { _mm256_storeu_si256(p.add(32 * j).cast(), out) };
        }
    }
    for t in chunks.into_remainder() {
        // SAFETY: `t` is 16 readable and writable bytes.
        unsafe {
            let s = _mm_loadu_si128(t.as_ptr().cast());
            let s = one_block::<NR, false>(&rk1, s, _mm_setzero_si128());
            _mm_storeu_si128(t.as_mut_ptr().cast(), s);
        }
    }
}

/// Multiplies each 128-bit lane by x^K (0 < K < 57, R = 64 - K).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,vpclmulqdq")]
fn mul_xk512<const K: u32, const R: u32>(t: __m512i) -> __m512i {
    let shifted = _mm512_slli_epi64::<K>(t);
    let carry = _mm512_srli_epi64::<R>(t);
    let into_high = _mm512_bslli_epi128::<8>(carry);
    let reduced = _mm512_clmulepi64_epi128::<0x01>(carry, _mm512_set1_epi64(0x87));
    _mm512_ternarylogic_epi32::<0x96>(shifted, into_high, reduced)
}

/// Multiplies each 128-bit lane by x^16: a two-byte shift, the 16 bits
/// shifted out reduced with one carry-less multiply by 0x87. Byte shifts
/// and the multiply run beside the AES unit on Intel cores (64-bit shifts
/// of ZMM registers would share its port).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,vpclmulqdq")]
fn mul_x16_512(t: __m512i) -> __m512i {
    let out = _mm512_bsrli_epi128::<14>(t);
    let reduced = _mm512_clmulepi64_epi128::<0x00>(out, _mm512_set1_epi64(0x87));
    _mm512_xor_si512(_mm512_bslli_epi128::<2>(t), reduced)
}

/// The four tweak registers of a fresh run from the encrypted tweak `t0`:
/// lane `l` of register `j` holds `t0 * x^(4j + l)`.
///
/// Every register comes from `t0` alone, in three carry-less multiplies:
/// with `c = 4j + l < 16`, `t0 * x^c = lo * x^c + (hi * x^c) * x^64`,
/// where the bits of `hi * x^c` at x^64 and above wrap round to x^0 times
/// 0x87. No chain of doublings, no 64-bit shift (whose ZMM form shares
/// the AES port on Intel), so a sector's first round waits only for its
/// own encrypted tweak.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,vpclmulqdq")]
fn first_tweaks512(t0: __m128i) -> [__m512i; 4] {
    let t = _mm512_broadcast_i32x4(t0);
    let poly = _mm512_set1_epi64(0x87);
    let mut tw = [_mm512_setzero_si512(); 4];
    for (tw, c) in tw.iter_mut().zip((0u32..).step_by(4)) {
        // x^(c + l) in the low qword of lane l.
        let pow = _mm512_set_epi64(0, 1 << (c + 3), 0, 1 << (c + 2), 0, 1 << (c + 1), 0, 1 << c);
        let lo = _mm512_clmulepi64_epi128::<0x00>(t, pow);
        let hi = _mm512_clmulepi64_epi128::<0x01>(t, pow);
        let wrapped = _mm512_clmulepi64_epi128::<0x01>(hi, poly);
        *tw = _mm512_ternarylogic_epi32::<0x96>(lo, _mm512_bslli_epi128::<8>(hi), wrapped);
    }
    tw
}

#[inline]
#[target_feature(enable = "avx512f,vaes")]
fn round512<const DEC: bool>(x: __m512i, k: __m512i) -> __m512i {
    if DEC {
        _mm512_aesdec_epi128(x, k)
    } else {
        _mm512_aesenc_epi128(x, k)
    }
}

#[inline]
#[target_feature(enable = "avx512f,vaes")]
fn last512<const DEC: bool>(x: __m512i, k: __m512i) -> __m512i {
    if DEC {
        _mm512_aesdeclast_epi128(x, k)
    } else {
        _mm512_aesenclast_epi128(x, k)
    }
}

/// Round keys broadcast to all four lanes.
#[inline]
#[target_feature(enable = "avx512f")]
fn broadcast_keys512<const NR: usize>(rk1: &[__m128i; 15]) -> [__m512i; 15] {
    let mut rk = [_mm512_setzero_si512(); 15];
    for (w, k) in rk.iter_mut().zip(rk1.iter()).take(NR + 1) {
        *w = _mm512_broadcast_i32x4(*k);
    }
    rk
}

/// Sixteen blocks at `src`/`dst` in four ZMM registers with the tweaks in
/// `tw`, which advance by sixteen blocks if `ADVANCE` (not after a
/// sector's last chunk). Pre-whitening is one three-way XOR (block, tweak,
/// round key 0); post-whitening is folded into the last round key.
///
/// # Safety
/// The CPU must have the features below; `src` valid for 256 reads, `dst`
/// for 256 writes, the same or disjoint.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,vaes,vpclmulqdq")]
unsafe fn chunk512<const NR: usize, const DEC: bool, const ADVANCE: bool>(
    rk: &[__m512i; 15],
    tw: &mut [__m512i; 4],
    src: *const u8,
    dst: *mut u8,
) {
    let mut s = [_mm512_setzero_si512(); 4];
    for j in 0..4 {
        // SAFETY: blocks `4j .. 4j + 4` lie inside the source.
        let x = unsafe { _mm512_loadu_si512(src.add(64 * j).cast()) };
        s[j] = _mm512_ternarylogic_epi32::<0x96>(x, tw[j], rk[0]);
    }
    for k in &rk[1..NR] {
        if DEC {
            round_x4!("vaesdec", zmm_reg, s, *k);
        } else {
            round_x4!("vaesenc", zmm_reg, s, *k);
        }
    }
    for j in 0..4 {
        let out = last512::<DEC>(s[j], _mm512_xor_si512(rk[NR], tw[j]));
        // SAFETY: inside the destination; the source was read above.
        unsafe { _mm512_storeu_si512(dst.add(64 * j).cast(), out) };
        if ADVANCE {
            tw[j] = mul_x16_512(tw[j]);
        }
    }
}

/// XTS over `n` blocks with 512-bit VAES; see `Engine::blocks`.
///
/// # Safety
/// The CPU must have AVX-512F/BW/VL, VAES, VPCLMULQDQ and AES-NI; `src`
/// valid for `16 * n` reads, `dst` for `16 * n` writes, same or disjoint.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,vaes,vpclmulqdq,aes,pclmulqdq,sse4.1")]
pub(crate) unsafe fn blocks512(
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
            (14, Dir::Encrypt) => kernel512::<14, false>(&k.ek1, t, src, dst, n),
            (14, Dir::Decrypt) => kernel512::<14, true>(&k.dk1, t, src, dst, n),
            (_, Dir::Encrypt) => kernel512::<10, false>(&k.ek1, t, src, dst, n),
            (_, Dir::Decrypt) => kernel512::<10, true>(&k.dk1, t, src, dst, n),
        }
    }
}

/// # Safety
/// As for [`blocks512`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,vaes,vpclmulqdq,aes,pclmulqdq,sse4.1")]
unsafe fn kernel512<const NR: usize, const DEC: bool>(
    keys: &[[u8; 16]; 15],
    t: &mut [u8; 16],
    src: *const u8,
    dst: *mut u8,
    n: usize,
) {
    let rk1 = load_keys::<NR>(keys);
    let rk = broadcast_keys512::<NR>(&rk1);
    // SAFETY: `t` is 16 readable bytes.
    let t0 = unsafe { _mm_loadu_si128(t.as_ptr().cast()) };
    let mut tw = first_tweaks512(t0);
    let mut i = 0;
    while n - i >= 16 {
        // SAFETY: blocks `i .. i + 16` lie inside source and destination.
        unsafe { chunk512::<NR, DEC, true>(&rk, &mut tw, src.add(16 * i), dst.add(16 * i)) };
        i += 16;
    }
    let mut quad = tw[0];
    while n - i >= 4 {
        // SAFETY: blocks `i .. i + 4` lie inside source and destination.
        unsafe {
            let x = _mm512_loadu_si512(src.add(16 * i).cast());
            let mut s = _mm512_ternarylogic_epi32::<0x96>(x, quad, rk[0]);
            for k in &rk[1..NR] {
                s = round512::<DEC>(s, *k);
            }
            let out = last512::<DEC>(s, _mm512_xor_si512(rk[NR], quad));
            _mm512_storeu_si512(dst.add(16 * i).cast(), out);
        }
        quad = mul_xk512::<4, 60>(quad);
        i += 4;
    }
    let mut cur = _mm512_castsi512_si128(quad);
    while i < n {
        // SAFETY: block `i < n` lies inside source and destination.
        unsafe {
            let x = _mm_loadu_si128(src.add(16 * i).cast());
            _mm_storeu_si128(dst.add(16 * i).cast(), one_block::<NR, DEC>(&rk1, x, cur));
        }
        cur = mul_x(cur);
        i += 1;
    }
    // SAFETY: `t` is 16 writable bytes.
    unsafe { _mm_storeu_si128(t.as_mut_ptr().cast(), cur) };
}

/// XTS over a run of whole sectors with 512-bit VAES, `tweaks[s]` being the
/// encrypted tweak of sector `s` and every sector `blocks` blocks long (a
/// non-zero multiple of 16, so every sector size that is a multiple of
/// 256 bytes). One flat loop over 16-block chunks: the keys are broadcast
/// once per run, each sector's four tweak registers come from its own
/// encrypted tweak (computed while the previous sector's last chunk is
/// still in the AES units), and no tweak step follows a sector's last
/// chunk.
///
/// # Safety
/// As for [`blocks512`], with `tweaks.len() * blocks` blocks at `src` and
/// `dst`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,vaes,vpclmulqdq,aes,pclmulqdq,sse4.1")]
pub(crate) unsafe fn sectors512(
    k: &HwKeys,
    dir: Dir,
    tweaks: &[[u8; 16]],
    src: *const u8,
    dst: *mut u8,
    blocks: usize,
) {
    // SAFETY: forwarded contract.
    unsafe {
        match (k.rounds, dir) {
            (14, Dir::Encrypt) => ksectors512::<14, false>(&k.ek1, tweaks, src, dst, blocks),
            (14, Dir::Decrypt) => ksectors512::<14, true>(&k.dk1, tweaks, src, dst, blocks),
            (_, Dir::Encrypt) => ksectors512::<10, false>(&k.ek1, tweaks, src, dst, blocks),
            (_, Dir::Decrypt) => ksectors512::<10, true>(&k.dk1, tweaks, src, dst, blocks),
        }
    }
}

/// # Safety
/// As for [`sectors512`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,vaes,vpclmulqdq,aes,pclmulqdq,sse4.1")]
unsafe fn ksectors512<const NR: usize, const DEC: bool>(
    keys: &[[u8; 16]; 15],
    tweaks: &[[u8; 16]],
    src: *const u8,
    dst: *mut u8,
    blocks: usize,
) {
    debug_assert!(blocks > 0 && blocks.is_multiple_of(16));
    let rk = broadcast_keys512::<NR>(&load_keys::<NR>(keys));
    let mut off = 0usize;
    for t in tweaks {
        // SAFETY: `t` is 16 readable bytes.
        let mut tw = first_tweaks512(unsafe { _mm_loadu_si128(t.as_ptr().cast()) });
        for _ in 1..blocks / 16 {
            // SAFETY: the chunk lies inside the run the caller vouched for.
            unsafe { chunk512::<NR, DEC, true>(&rk, &mut tw, src.add(off), dst.add(off)) };
            off += 256;
        }
        // The sector's last chunk: its tweaks are not needed afterwards.
        // SAFETY: as above.
        unsafe { chunk512::<NR, DEC, false>(&rk, &mut tw, src.add(off), dst.add(off)) };
        off += 256;
    }
}

/// Encrypts each tweak in place with key2, sixteen at a time, four to a
/// ZMM register; a last group of fewer than sixteen goes through the same
/// four registers with masked loads and stores (the lanes past the end are
/// neither read nor written).
///
/// # Safety
/// The CPU must have AVX-512F/BW, VAES and AES-NI.
#[target_feature(enable = "avx512f,avx512bw,vaes,aes,sse4.1")]
pub(crate) unsafe fn encrypt_tweaks512(k: &HwKeys, tweaks: &mut [[u8; 16]]) {
    if k.rounds == 14 {
        tweaks512::<14>(k, tweaks)
    } else {
        tweaks512::<10>(k, tweaks)
    }
}

#[target_feature(enable = "avx512f,avx512bw,vaes,aes,sse4.1")]
fn tweaks512<const NR: usize>(k: &HwKeys, tweaks: &mut [[u8; 16]]) {
    let rk = broadcast_keys512::<NR>(&load_keys::<NR>(&k.ek2));
    for chunk in tweaks.chunks_mut(16) {
        let n = chunk.len();
        let p = chunk.as_mut_ptr().cast::<u8>();
        // Register `j` holds tweaks `4j ..`, `lanes[j]` of them (0..=4),
        // one 128-bit lane (two qword mask bits) each.
        let mut masks = [0u8; 4];
        let mut s = [_mm512_setzero_si512(); 4];
        for j in 0..4 {
            let lanes = n.saturating_sub(4 * j).min(4);
            if lanes == 0 {
                continue;
            }
            masks[j] = [0, 0x03, 0x0f, 0x3f, 0xff][lanes];
            // SAFETY: `lanes > 0`, so tweak `4j` is in the chunk; the mask
            // covers only tweaks `4j .. 4j + lanes`, all in the chunk, and
            // masked-off lanes are not accessed.
            let x = unsafe { _mm512_maskz_loadu_epi64(masks[j], p.add(64 * j).cast()) };
            s[j] = _mm512_xor_si512(x, rk[0]);
        }
        for k in &rk[1..NR] {
            round_x4!("vaesenc", zmm_reg, s, *k);
        }
        for j in 0..4 {
            if masks[j] == 0 {
                continue;
            }
            let out = _mm512_aesenclast_epi128(s[j], rk[NR]);
            // SAFETY: as for the load, writable.
            unsafe { _mm512_mask_storeu_epi64(p.add(64 * j).cast(), masks[j], out) };
        }
    }
}
