//! What every x86 kernel shares: key expansion (on AESKEYGENASSIST and
//! AESIMC, never on a table indexed by key bytes), loading round keys, one
//! whitened block on AES-NI (the kernels' tails), doubling a tweak, and the
//! eight- and four-register round macros that keep LLVM from serialising
//! the AES chains. `aesni` and `vaes` depend on this module, never on each
//! other.

use core::arch::x86_64::*;

use super::HwKeys;

/// Expands key1 and key2 (both 16 or both 32 bytes).
///
/// # Safety
/// The CPU must have AES-NI.
#[target_feature(enable = "aes,sse2,sse4.1")]
pub(crate) unsafe fn expand(key1: &[u8], key2: &[u8]) -> HwKeys {
    let sub_word = |w: u32| -> u32 {
        let x = _mm_set1_epi32(w as i32);
        // Dword 0 of the result is SubWord(dword 1) (all dwords are `w`).
        let y = _mm_aeskeygenassist_si128::<0>(x);
        _mm_cvtsi128_si32(y) as u32
    };
    let inv_mix = |k: [u8; 16]| -> [u8; 16] {
        let mut out = [0u8; 16];
        // SAFETY: 16-byte arrays; unaligned load and store.
        unsafe {
            let v = _mm_loadu_si128(k.as_ptr().cast());
            _mm_storeu_si128(out.as_mut_ptr().cast(), _mm_aesimc_si128(v));
        }
        out
    };
    HwKeys::expand(key1, key2, sub_word, inv_mix)
}

/// Loads the `nr + 1` round keys of `rk`.
#[inline]
#[target_feature(enable = "sse2")]
pub(super) fn load_keys<const NR: usize>(rk: &[[u8; 16]; 15]) -> [__m128i; 15] {
    let mut out = [_mm_setzero_si128(); 15];
    for (o, k) in out.iter_mut().zip(rk.iter()).take(NR + 1) {
        // SAFETY: `k` is 16 readable bytes.
        *o = unsafe { _mm_loadu_si128(k.as_ptr().cast()) };
    }
    out
}

/// Multiplies a tweak by x.
#[inline]
#[target_feature(enable = "sse2")]
pub(super) fn mul_x(t: __m128i) -> __m128i {
    // Sign of each dword; route the sign of the top of each qword to where
    // its carry lands: the low qword's top bit into bit 64, the high
    // qword's top bit (x^128) into 0x87.
    let signs = _mm_srai_epi32::<31>(t);
    let carries = _mm_and_si128(
        _mm_shuffle_epi32::<0x13>(signs),
        _mm_set_epi32(0, 1, 0, 0x87),
    );
    _mm_xor_si128(_mm_add_epi64(t, t), carries)
}

#[inline]
#[target_feature(enable = "aes")]
fn round<const DEC: bool>(x: __m128i, k: __m128i) -> __m128i {
    if DEC {
        _mm_aesdec_si128(x, k)
    } else {
        _mm_aesenc_si128(x, k)
    }
}

#[inline]
#[target_feature(enable = "aes")]
pub(super) fn last<const DEC: bool>(x: __m128i, k: __m128i) -> __m128i {
    if DEC {
        _mm_aesdeclast_si128(x, k)
    } else {
        _mm_aesenclast_si128(x, k)
    }
}

/// One block, whitened with `t`.
#[inline]
#[target_feature(enable = "aes,sse2")]
pub(super) fn one_block<const NR: usize, const DEC: bool>(
    rk: &[__m128i; 15],
    x: __m128i,
    t: __m128i,
) -> __m128i {
    let mut s = _mm_xor_si128(x, _mm_xor_si128(t, rk[0]));
    for k in &rk[1..NR] {
        s = round::<DEC>(s, *k);
    }
    last::<DEC>(s, _mm_xor_si128(rk[NR], t))
}

/// One AES round on eight registers, as one asm block: LLVM's scheduler
/// otherwise serialises some chains to save registers and the AES units
/// starve. The blocks stay in program order; everything else (loads,
/// stores, tweak updates) is scheduled freely around them.
macro_rules! round_x8 {
    ($insn:literal, $class:ident, $s:ident, $k:expr) => {
        // SAFETY: register-only AES instructions the caller's target
        // features provide; no memory, stack or flags are touched.
        unsafe {
            core::arch::asm!(
                concat!($insn, " {0}, {0}, {k}"),
                concat!($insn, " {1}, {1}, {k}"),
                concat!($insn, " {2}, {2}, {k}"),
                concat!($insn, " {3}, {3}, {k}"),
                concat!($insn, " {4}, {4}, {k}"),
                concat!($insn, " {5}, {5}, {k}"),
                concat!($insn, " {6}, {6}, {k}"),
                concat!($insn, " {7}, {7}, {k}"),
                inout($class) $s[0], inout($class) $s[1], inout($class) $s[2],
                inout($class) $s[3], inout($class) $s[4], inout($class) $s[5],
                inout($class) $s[6], inout($class) $s[7],
                k = in($class) $k,
                options(nomem, nostack, preserves_flags),
            )
        }
    };
}

/// [`round_x8`] in the two-operand SSE encoding (AES-NI without AVX).
macro_rules! round_x8_sse {
    ($insn:literal, $s:ident, $k:expr) => {
        // SAFETY: as for `round_x8`.
        unsafe {
            core::arch::asm!(
                concat!($insn, " {0}, {k}"),
                concat!($insn, " {1}, {k}"),
                concat!($insn, " {2}, {k}"),
                concat!($insn, " {3}, {k}"),
                concat!($insn, " {4}, {k}"),
                concat!($insn, " {5}, {k}"),
                concat!($insn, " {6}, {k}"),
                concat!($insn, " {7}, {k}"),
                inout(xmm_reg) $s[0], inout(xmm_reg) $s[1], inout(xmm_reg) $s[2],
                inout(xmm_reg) $s[3], inout(xmm_reg) $s[4], inout(xmm_reg) $s[5],
                inout(xmm_reg) $s[6], inout(xmm_reg) $s[7],
                k = in(xmm_reg) $k,
                options(nomem, nostack, preserves_flags),
            )
        }
    };
}

/// One AES round on four registers; see [`round_x8`].
macro_rules! round_x4 {
    ($insn:literal, $class:ident, $s:ident, $k:expr) => {
        // SAFETY: as for `round_x8`.
        unsafe {
            core::arch::asm!(
                concat!($insn, " {0}, {0}, {k}"),
                concat!($insn, " {1}, {1}, {k}"),
                concat!($insn, " {2}, {2}, {k}"),
                concat!($insn, " {3}, {3}, {k}"),
                inout($class) $s[0], inout($class) $s[1], inout($class) $s[2],
                inout($class) $s[3],
                k = in($class) $k,
                options(nomem, nostack, preserves_flags),
            )
        }
    };
}

pub(super) use {round_x4, round_x8, round_x8_sse};
