//! x86_64 CPU feature detection with CPUID and XGETBV, no OS needed.
//!
//! Not `cpufeatures`: it ties VAES to the AVX-512 register state, so it would
//! miss VAES on AVX2-only CPUs (AMD Zen 3, Intel Alder Lake).

use core::arch::x86_64::{__cpuid, __cpuid_count, _xgetbv};
use core::sync::atomic::{AtomicU8, Ordering};

/// What the XTS kernels may use on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Features {
    /// AES-NI, PCLMULQDQ, SSE4.1, SSSE3.
    pub aesni: bool,
    /// The above plus AVX2, VAES, VPCLMULQDQ with the OS saving YMM state.
    pub vaes256: bool,
    /// The above plus AVX-512F/BW/VL with the OS saving ZMM state.
    pub vaes512: bool,
    /// 512-bit vectors run without lowering the clock on this CPU.
    pub prefer_512: bool,
}

const KNOWN: u8 = 1 << 7;
static CACHE: AtomicU8 = AtomicU8::new(0);

/// The features of this CPU, probed on first use and cached.
pub(crate) fn features() -> Features {
    let mut bits = CACHE.load(Ordering::Relaxed);
    if bits & KNOWN == 0 {
        bits = encode(probe()) | KNOWN;
        // Racing probes compute the same value; any order is fine.
        CACHE.store(bits, Ordering::Relaxed);
    }
    decode(bits)
}

fn encode(f: Features) -> u8 {
    u8::from(f.aesni)
        | u8::from(f.vaes256) << 1
        | u8::from(f.vaes512) << 2
        | u8::from(f.prefer_512) << 3
}

fn decode(b: u8) -> Features {
    Features {
        aesni: b & 1 != 0,
        vaes256: b & 2 != 0,
        vaes512: b & 4 != 0,
        prefer_512: b & 8 != 0,
    }
}

fn bit(reg: u32, n: u32) -> bool {
    reg & (1 << n) != 0
}

fn probe() -> Features {
    // CPUID is always present on x86_64.
    let leaf0 = __cpuid(0);
    let max_leaf = leaf0.eax;
    let leaf1 = __cpuid(1);
    let aesni = bit(leaf1.ecx, 25) && bit(leaf1.ecx, 1) && bit(leaf1.ecx, 19) && bit(leaf1.ecx, 9);
    let osxsave = bit(leaf1.ecx, 27);
    let avx = bit(leaf1.ecx, 28);
    let (ebx7, ecx7, edx7) = if max_leaf >= 7 {
        let l = __cpuid_count(7, 0);
        (l.ebx, l.ecx, l.edx)
    } else {
        (0, 0, 0)
    };
    let xcr0 = if osxsave {
        // SAFETY: OSXSAVE says XGETBV is enabled by the OS.
        unsafe { _xgetbv(0) }
    } else {
        0
    };
    let ymm_os = xcr0 & 0b110 == 0b110;
    let zmm_os = xcr0 & 0b1110_0110 == 0b1110_0110;
    let vaes = bit(ecx7, 9) && bit(ecx7, 10);
    let avx2 = bit(ebx7, 5);
    let avx512 = bit(ebx7, 16) && bit(ebx7, 30) && bit(ebx7, 31);
    let vaes256 = aesni && avx && avx2 && vaes && ymm_os;
    let vaes512 = vaes256 && avx512 && zmm_os;
    Features {
        aesni,
        vaes256,
        vaes512,
        prefer_512: vaes512 && !downclocks_512(&leaf0, leaf1.eax, bit(edx7, 23)),
    }
}

/// Intel cores whose 512-bit units lower the clock enough that 256-bit
/// vectors win overall (the list Linux keys `X86_FEATURE_PREFER_YMM` on:
/// Skylake-SP through Tiger Lake and Rocket Lake). AMD Zen 4 and later and
/// Intel Sapphire Rapids and later run 512-bit AES at full clock.
///
/// `fp16` is AVX512-FP16 (CPUID.(7,0):EDX bit 23), which no core on the
/// list has and every Golden Cove or later core with AVX-512 has. A
/// hypervisor may report a listed model number (the KVM guest envol's
/// `vaes512` figures come from, with AVX512-FP16 and AMX, reports Rocket
/// Lake's 0xa7), but it would not advertise AVX512-FP16 on a listed core,
/// which could not run it; so the feature outranks the model.
fn downclocks_512(leaf0: &core::arch::x86_64::CpuidResult, eax1: u32, fp16: bool) -> bool {
    let intel = leaf0.ebx == 0x756e_6547 && leaf0.edx == 0x4965_6e69 && leaf0.ecx == 0x6c65_746e;
    if !intel || fp16 {
        return false;
    }
    let family = (eax1 >> 8) & 0xf;
    let model = ((eax1 >> 4) & 0xf) | ((eax1 >> 12) & 0xf0);
    family == 6
        && matches!(
            model,
            0x55 // Skylake-SP, Cascade Lake, Cooper Lake
            | 0x6a | 0x6c // Ice Lake-SP, -D
            | 0x7d | 0x7e // Ice Lake client
            | 0x8c | 0x8d // Tiger Lake
            | 0xa7 // Rocket Lake
        )
}
