//! Shared pieces of the benchmarks: the implementations under comparison
//! behind one interface, and the AES "ceiling" kernels — loops of nothing
//! but independent AES rounds over an L1-resident buffer, the most the AES
//! units of one core can do at a given vector width.
#![allow(
    missing_docs,
    clippy::undocumented_unsafe_blocks,
    clippy::large_enum_variant,
    clippy::cast_possible_truncation
)]

use envol::xts::{Backend, Xts};

/// Something that encrypts and decrypts runs of plain64 sectors.
pub trait Impl {
    fn name(&self) -> String;
    fn encrypt(&mut self, first: u64, sector: usize, buf: &mut [u8]);
    fn decrypt(&mut self, first: u64, sector: usize, buf: &mut [u8]);
}

/// envol on one backend.
pub struct Envol(pub Xts);

impl Impl for Envol {
    fn name(&self) -> String {
        format!("envol-{}", self.0.backend())
    }
    fn encrypt(&mut self, first: u64, sector: usize, buf: &mut [u8]) {
        self.0.encrypt_sectors(first, sector, buf).unwrap()
    }
    fn decrypt(&mut self, first: u64, sector: usize, buf: &mut [u8]) {
        self.0.decrypt_sectors(first, sector, buf).unwrap()
    }
}

/// Every envol backend this CPU has.
pub fn envol_backends(key: &[u8]) -> Vec<Envol> {
    Backend::ALL
        .into_iter()
        .filter(|b| b.is_available())
        .map(|b| Envol(Xts::with_backend(key, b).unwrap()))
        .collect()
}

/// The RustCrypto `xts-mode` crate over `aes` (its own backend choice).
pub enum XtsMode {
    A128(xts_mode::Xts128<aes::Aes128>),
    A256(xts_mode::Xts128<aes::Aes256>),
}

impl XtsMode {
    pub fn new(key: &[u8]) -> Self {
        use aes::cipher::KeyInit;
        let h = key.len() / 2;
        if h == 16 {
            XtsMode::A128(xts_mode::Xts128::new(
                aes::Aes128::new_from_slice(&key[..h]).unwrap(),
                aes::Aes128::new_from_slice(&key[h..]).unwrap(),
            ))
        } else {
            XtsMode::A256(xts_mode::Xts128::new(
                aes::Aes256::new_from_slice(&key[..h]).unwrap(),
                aes::Aes256::new_from_slice(&key[h..]).unwrap(),
            ))
        }
    }
}

impl Impl for XtsMode {
    fn name(&self) -> String {
        "xts-mode".into()
    }
    fn encrypt(&mut self, first: u64, sector: usize, buf: &mut [u8]) {
        let t = xts_mode::get_tweak_default;
        match self {
            XtsMode::A128(x) => x.encrypt_area(buf, sector, first.into(), t),
            XtsMode::A256(x) => x.encrypt_area(buf, sector, first.into(), t),
        }
    }
    fn decrypt(&mut self, first: u64, sector: usize, buf: &mut [u8]) {
        let t = xts_mode::get_tweak_default;
        match self {
            XtsMode::A128(x) => x.decrypt_area(buf, sector, first.into(), t),
            XtsMode::A256(x) => x.decrypt_area(buf, sector, first.into(), t),
        }
    }
}

#[cfg(feature = "openssl")]
pub mod ossl {
    //! OpenSSL's EVP AES-XTS the way a C program drives it: one context,
    //! a new IV (the sector number) per data unit, one update per unit.
    use openssl::cipher::Cipher;
    use openssl::cipher_ctx::CipherCtx;

    pub struct OpenSsl {
        enc: CipherCtx,
        dec: CipherCtx,
        label: &'static str,
    }

    impl OpenSsl {
        pub fn new(key: &[u8], label: &'static str) -> Self {
            let cipher = if key.len() == 32 {
                Cipher::aes_128_xts()
            } else {
                Cipher::aes_256_xts()
            };
            let iv = [0u8; 16];
            let mut enc = CipherCtx::new().unwrap();
            enc.encrypt_init(Some(cipher), Some(key), Some(&iv))
                .unwrap();
            let mut dec = CipherCtx::new().unwrap();
            dec.decrypt_init(Some(cipher), Some(key), Some(&iv))
                .unwrap();
            OpenSsl { enc, dec, label }
        }

        fn run(&mut self, enc: bool, first: u64, sector: usize, buf: &mut [u8]) {
            // In place, as envol runs here: XTS has no padding, so EVP writes
            // exactly the bytes it reads (a side buffer and a copy would
            // cost OpenSSL about a tenth at 4 KiB).
            for (i, chunk) in buf.chunks_mut(sector).enumerate() {
                let iv = (u128::from(first) + i as u128).to_le_bytes();
                let ctx = if enc { &mut self.enc } else { &mut self.dec };
                if enc {
                    ctx.encrypt_init(None, None, Some(&iv)).unwrap();
                } else {
                    ctx.decrypt_init(None, None, Some(&iv)).unwrap();
                }
                let len = chunk.len();
                let n = ctx.cipher_update_inplace(chunk, len).unwrap();
                assert_eq!(n, len);
            }
        }
    }

    impl super::Impl for OpenSsl {
        fn name(&self) -> String {
            self.label.into()
        }
        fn encrypt(&mut self, first: u64, sector: usize, buf: &mut [u8]) {
            self.run(true, first, sector, buf)
        }
        fn decrypt(&mut self, first: u64, sector: usize, buf: &mut [u8]) {
            self.run(false, first, sector, buf)
        }
    }

    /// OpenSSL's version string.
    pub fn version() -> &'static str {
        openssl::version::version()
    }
}

/// The ceiling: independent AES rounds (ECB-shaped, no tweaks) over a
/// buffer, at a given width. `rounds` is 10 (AES-128) or 14 (AES-256).
pub mod ceiling {
    #[cfg(target_arch = "x86_64")]
    use core::arch::x86_64::*;

    /// The widest kernel this CPU has, and its name.
    pub fn widest() -> (&'static str, fn(&mut [u8], usize)) {
        #[cfg(target_arch = "x86_64")]
        {
            use envol::xts::Backend;
            if Backend::Vaes512.is_available() {
                return ("vaes512", |b, r| unsafe { vaes512(b, r) });
            }
            if Backend::Vaes256.is_available() {
                return ("vaes256", |b, r| unsafe { vaes256(b, r) });
            }
            if Backend::Aesni.is_available() {
                return ("aesni", |b, r| unsafe { aesni(b, r) });
            }
        }
        #[cfg(target_arch = "aarch64")]
        if envol::xts::Backend::Armv8.is_available() {
            return ("armv8", |b, r| unsafe { armv8(b, r) });
        }
        ("none", |_, _| {})
    }

    /// 8 independent 128-bit blocks per iteration; `buf.len() % 128 == 0`.
    ///
    /// # Safety
    /// AES-NI must be present.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "aes,sse2")]
    pub unsafe fn aesni(buf: &mut [u8], rounds: usize) {
        let k = _mm_set1_epi32(0x1234_5678);
        for c in buf.chunks_exact_mut(128) {
            let p = c.as_mut_ptr().cast::<__m128i>();
            let mut s = [_mm_setzero_si128(); 8];
            for (j, s) in s.iter_mut().enumerate() {
                *s = _mm_xor_si128(unsafe { _mm_loadu_si128(p.add(j)) }, k);
            }
            for _ in 1..rounds {
                for s in s.iter_mut() {
                    *s = _mm_aesenc_si128(*s, k);
                }
            }
            for (j, s) in s.iter().enumerate() {
                unsafe { _mm_storeu_si128(p.add(j), _mm_aesenclast_si128(*s, k)) };
            }
        }
    }

    /// 8 independent YMM registers (16 blocks) per iteration.
    ///
    /// # Safety
    /// AVX2 and VAES must be present.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,vaes")]
    pub unsafe fn vaes256(buf: &mut [u8], rounds: usize) {
        let k = _mm256_set1_epi32(0x1234_5678);
        for c in buf.chunks_exact_mut(256) {
            let p = c.as_mut_ptr().cast::<__m256i>();
            let mut s = [_mm256_setzero_si256(); 8];
            for (j, s) in s.iter_mut().enumerate() {
                *s = _mm256_xor_si256(unsafe { _mm256_loadu_si256(p.add(j)) }, k);
            }
            for _ in 1..rounds {
                for s in s.iter_mut() {
                    *s = _mm256_aesenc_epi128(*s, k);
                }
            }
            for (j, s) in s.iter().enumerate() {
                unsafe { _mm256_storeu_si256(p.add(j), _mm256_aesenclast_epi128(*s, k)) };
            }
        }
    }

    /// 8 independent ZMM registers (32 blocks) per iteration.
    ///
    /// # Safety
    /// AVX-512F and VAES must be present.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,vaes")]
    pub unsafe fn vaes512(buf: &mut [u8], rounds: usize) {
        let k = _mm512_set1_epi32(0x1234_5678);
        for c in buf.chunks_exact_mut(512) {
            let p = c.as_mut_ptr().cast::<__m512i>();
            let mut s = [_mm512_setzero_si512(); 8];
            for (j, s) in s.iter_mut().enumerate() {
                *s = _mm512_xor_si512(unsafe { _mm512_loadu_si512(p.add(j).cast()) }, k);
            }
            for _ in 1..rounds {
                for s in s.iter_mut() {
                    *s = _mm512_aesenc_epi128(*s, k);
                }
            }
            for (j, s) in s.iter().enumerate() {
                unsafe { _mm512_storeu_si512(p.add(j).cast(), _mm512_aesenclast_epi128(*s, k)) };
            }
        }
    }

    /// 8 independent blocks per iteration, AESE/AESMC pairs.
    ///
    /// # Safety
    /// The AES extension must be present.
    #[cfg(target_arch = "aarch64")]
    #[target_feature(enable = "aes,neon")]
    pub unsafe fn armv8(buf: &mut [u8], rounds: usize) {
        use core::arch::aarch64::*;
        let k = vdupq_n_u8(0x5a);
        for c in buf.chunks_exact_mut(128) {
            let p = c.as_mut_ptr();
            let mut s = [vdupq_n_u8(0); 8];
            for (j, s) in s.iter_mut().enumerate() {
                *s = unsafe { vld1q_u8(p.add(16 * j)) };
            }
            for _ in 1..rounds {
                for s in s.iter_mut() {
                    *s = vaesmcq_u8(vaeseq_u8(*s, k));
                }
            }
            for (j, s) in s.iter().enumerate() {
                unsafe { vst1q_u8(p.add(16 * j), veorq_u8(vaeseq_u8(*s, k), k)) };
            }
        }
    }
}

/// Times `f` over `bytes` bytes: the best of `rounds` samples, each at least
/// `min_ns` long. Returns GB/s (10^9 bytes per second).
pub fn gbps(bytes: usize, rounds: usize, min_ns: u128, mut f: impl FnMut()) -> f64 {
    use std::time::Instant;
    f(); // warm up: caches, page faults, first-call detection
    let mut best = f64::MAX;
    for _ in 0..rounds {
        let mut iters = 0u64;
        let t = Instant::now();
        let elapsed = loop {
            f();
            iters += 1;
            let e = t.elapsed().as_nanos();
            if e >= min_ns {
                break e;
            }
        };
        let per = elapsed as f64 / iters as f64;
        best = best.min(per);
    }
    bytes as f64 / best
}
