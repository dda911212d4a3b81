//! The XTS engine through the ABI (`envol_xts_*`), against the core `Xts`;
//! and `Misc`: status and backend names, version, struct sizes.

use std::ffi::CStr;
use std::ptr::{null, null_mut};

use envol::xts::{Backend, Xts};
use envol_ffi::{
    ENVOL_VOLUME_SIZE, ENVOL_XTS_SIZE, envol_backend, envol_backend_arg, envol_status,
    envol_status_arg, envol_xts,
};

use super::args::{CtxArg, KeyArg, Layout, Role, XtsKind, XtsLen, XtsSize};
use super::buffers::{Hold, canary, wild};
use super::kms::Svc;
use super::ops::Op;
use super::values::backend_of;
use super::{IO_ARENA, MAX_BUF, N_CTX, OK, State, st};

/// What an XTS context holds, as far as the harness knows.
#[derive(Clone, Debug)]
pub(super) enum XState {
    /// Zero bytes, or garbage that is not a live state word.
    Dead,
    Live {
        key: Option<Vec<u8>>,
        backend: Backend,
    },
}

impl State {
    /// Runs an XTS engine op (or `Misc`).
    pub(super) fn run_engine(&mut self, op: &Op) {
        let mut hold = Hold::default();
        match op {
            Op::Misc { status, backend } => self.misc(*status, *backend),
            Op::XtsInit {
                ctx,
                key,
                backend,
                misalign,
            } => self.xts_init(*ctx, key, *backend, *misalign, &mut hold),
            Op::XtsData {
                ctx,
                decrypt,
                kind,
                layout,
                len,
                fill,
            } => self.xts_data(*ctx, *decrypt, *kind, *layout, *len, *fill),
            Op::XtsWipe { ctx } => {
                let (p, i) = self.xts_ptr(*ctx);
                let before = self.xts.0.to_vec();
                // SAFETY: NULL, misaligned (ignored) or our context.
                unsafe { envol_ffi::envol_xts_wipe(p) };
                if Self::xts_aligned(*ctx) {
                    let r = i * ENVOL_XTS_SIZE..(i + 1) * ENVOL_XTS_SIZE;
                    assert!(self.xts.0[r].iter().all(|&b| b == 0), "wipe left bytes");
                    self.xst[i] = XState::Dead;
                } else {
                    assert_eq!(self.xts.0.to_vec(), before, "ignored wipe wrote");
                }
            }
            Op::XtsBackend { ctx } => {
                let (p, i) = self.xts_ptr(*ctx);
                // SAFETY: NULL, misaligned or our context.
                let b = unsafe { envol_ffi::envol_xts_backend(p) };
                match (&self.xst[i], Self::xts_aligned(*ctx)) {
                    (XState::Live { backend, .. }, true) => {
                        assert_eq!(b, envol_backend::from(*backend));
                    }
                    _ => assert_eq!(b, envol_backend::ENVOL_BACKEND_AUTO),
                }
            }
            Op::XtsScribble { ctx, bytes } => {
                let i = usize::from(*ctx) % N_CTX;
                if matches!(self.xst[i], XState::Dead) && !bytes.is_empty() {
                    let r = &mut self.xts.0[i * ENVOL_XTS_SIZE..(i + 1) * ENVOL_XTS_SIZE];
                    for (j, b) in r.iter_mut().enumerate() {
                        *b = bytes[j % bytes.len()];
                    }
                    // Never the live state word (a context C never wrote
                    // could hold it by chance only, and then nothing can tell).
                    if r[..8] == *b"envolXTS" {
                        r[0] ^= 1;
                    }
                }
            }
            Op::XtsInitFromBlob {
                ctx,
                kms,
                principal,
                blob,
                enc,
            } => {
                let (cp, i) = self.xts_ptr(*ctx);
                let (t, svc) = self.kms_table(*kms, &mut hold);
                let (p, _) = hold.s(principal, Role::Principal);
                let (bp, bl, _, known) = self.blob(blob, &mut hold);
                let (ep, en, _) = hold.ctx(enc, &self.params);
                let before = self.xts.0.to_vec();
                // SAFETY: as above; the table's callbacks keep its contract.
                let s =
                    st(unsafe { envol_ffi::envol_xts_init_from_blob(cp, t, p, bp, bl, ep, en) });
                if s == OK {
                    assert!(Self::xts_aligned(*ctx));
                    let key = match svc {
                        Svc::Fake => self.fake().last_dec.clone(),
                        _ => known,
                    };
                    self.xst[i] = XState::Live {
                        key,
                        backend: Backend::detect(),
                    };
                } else {
                    assert_eq!(self.xts.0.to_vec(), before, "context changed on {s:?}");
                }
            }
            _ => unreachable!("not an engine op: {op:?}"),
        }
        drop(hold);
    }

    pub(super) fn xts_ptr(&mut self, c: CtxArg) -> (*mut envol_xts, usize) {
        let i = usize::from(c.idx) % N_CTX;
        if c.null {
            return (null_mut(), i);
        }
        let off = i * ENVOL_XTS_SIZE + usize::from(c.misalign % 64);
        // SAFETY: inside the arena (64 bytes of room past the last context).
        (unsafe { self.xts.0.as_mut_ptr().add(off) }.cast(), i)
    }

    pub(super) fn xts_aligned(c: CtxArg) -> bool {
        !c.null && c.misalign.is_multiple_of(64)
    }

    fn misc(&mut self, status: u32, backend: u32) {
        // SAFETY: returns a static NUL-terminated string.
        let name =
            unsafe { CStr::from_ptr(envol_ffi::envol_status_name(envol_status_arg(status))) };
        let name = name.to_str().expect("ASCII name");
        if status <= 43 {
            assert!(name.starts_with("ENVOL_") && name != "ENVOL_ERR_UNKNOWN");
        } else {
            assert_eq!(name, "ENVOL_ERR_UNKNOWN");
        }
        // SAFETY: as above.
        let v = unsafe { CStr::from_ptr(envol_ffi::envol_version()) };
        assert!(v.to_bytes().first().is_some_and(u8::is_ascii_digit));
        let b = envol_backend_arg(backend);
        // SAFETY: as above.
        let bname = unsafe { CStr::from_ptr(envol_ffi::envol_backend_name(b)) }
            .to_str()
            .expect("ASCII name")
            .to_owned();
        let avail = envol_ffi::envol_backend_available(b);
        match backend {
            0 => assert!(avail == 1 && bname == "auto"),
            1..=5 => {
                let core = backend_of(backend).expect("known backend");
                assert_eq!(avail == 1, core.is_available());
                assert_eq!(bname, core.to_string());
            }
            _ => assert!(avail == 0 && bname == "unknown"),
        }
        let d = envol_ffi::envol_backend_detect();
        assert_eq!(d, envol_backend::from(Backend::detect()));
        assert_eq!(
            envol_ffi::envol_backend_available(envol_backend_arg(d as u32)),
            1
        );
        assert_eq!(envol_ffi::envol_xts_size(), ENVOL_XTS_SIZE);
        assert_eq!(envol_ffi::envol_volume_size(), ENVOL_VOLUME_SIZE);
    }

    fn xts_init(
        &mut self,
        ctx: CtxArg,
        key: &KeyArg,
        backend: Option<u32>,
        misalign: u8,
        hold: &mut Hold,
    ) {
        let (cp, i) = self.xts_ptr(ctx);
        let (kp, kl, kb) = self.key(key, hold, misalign);
        let before = self.xts.0.to_vec();
        // SAFETY: every pointer NULL or valid as documented.
        let s = st(unsafe {
            match backend {
                None => envol_ffi::envol_xts_init(cp, kp, kl),
                Some(b) => envol_ffi::envol_xts_init_with_backend(cp, kp, kl, envol_backend_arg(b)),
            }
        });
        let want = match backend {
            None | Some(0) => Some(Backend::detect()),
            Some(b) => backend_of(b),
        };
        // What the core says about the same key and backend.
        let core = match (&kb, want) {
            (Some(k), Some(b)) => Some(Xts::with_backend(k, b).is_ok()),
            _ => None,
        };
        if s == OK {
            assert!(Self::xts_aligned(ctx) && core == Some(true));
            self.xst[i] = XState::Live {
                key: kb,
                backend: want.expect("known backend"),
            };
        } else {
            assert_eq!(self.xts.0.to_vec(), before, "context changed on {s:?}");
            if Self::xts_aligned(ctx) && core == Some(true) {
                panic!("the core accepts what the ABI refused ({s:?})");
            }
        }
    }

    fn xts_data(
        &mut self,
        ctx: CtxArg,
        decrypt: bool,
        kind: XtsKind,
        layout: Layout,
        len: XtsLen,
        fill: u8,
    ) {
        let (cp, i) = self.xts_ptr(ctx);
        for (j, b) in self.io.iter_mut().enumerate() {
            *b = fill ^ canary(j);
        }
        let (sector_size, unit) = match kind {
            XtsKind::Sectors { size, .. } => (
                match size {
                    XtsSize::S512 => 512,
                    XtsSize::S4096 => 4096,
                    XtsSize::Blocks(n) => 16 * (usize::from(n) + 1),
                    XtsSize::Raw(r) => r as usize,
                },
                false,
            ),
            XtsKind::Unit { .. } => (0, true),
        };
        let mut wild_len = false;
        let mut n = match len {
            XtsLen::Auto(k) => {
                if unit {
                    [512, 16, 17, 31, 4096, 4111, 65536][usize::from(k) % 7]
                } else {
                    sector_size.saturating_mul(usize::from(k % 8) + 1)
                }
            }
            XtsLen::Bytes(b) => b as usize,
            XtsLen::Wild(m) => {
                wild_len = true;
                wild(m)
            }
        };
        if !wild_len {
            n = n.min(MAX_BUF);
        }
        let room = IO_ARENA - MAX_BUF - 64;
        let (a, b, null_in, null_out) = match layout {
            Layout::Disjoint { a, b } => (
                usize::from(a) % room,
                MAX_BUF + 64 + usize::from(b) % 64,
                false,
                false,
            ),
            Layout::InPlace { a } => (usize::from(a) % room, usize::from(a) % room, false, false),
            Layout::Overlap { a, d } => {
                let a = usize::from(a) % room;
                let d = if wild_len || n == 0 {
                    0
                } else {
                    usize::from(d) % n
                };
                (a, (a + d).min(IO_ARENA - MAX_BUF), false, false)
            }
            Layout::NullIn => (0, MAX_BUF + 64, true, false),
            Layout::NullOut => (0, MAX_BUF + 64, false, true),
            Layout::InCtx { .. } => (0, MAX_BUF + 64, false, false),
        };
        let base = self.io.as_mut_ptr();
        // SAFETY: both offsets leave at least `MAX_BUF` bytes in the arena.
        let (mut ip, mut op) = unsafe {
            (
                if null_in {
                    null()
                } else {
                    base.add(a).cast_const()
                },
                if null_out { null_mut() } else { base.add(b) },
            )
        };
        // A buffer inside the context: the key schedule it is running on.
        let mut in_ctx = false;
        if let Layout::InCtx { off, which } = layout {
            let at = i * ENVOL_XTS_SIZE + usize::from(off) % ENVOL_XTS_SIZE;
            if !wild_len {
                n = n.min(self.xts.0.len() - at);
            }
            // SAFETY: inside the context arena.
            let p = unsafe { self.xts.0.as_mut_ptr().add(at) };
            if which & 1 != 0 {
                ip = p.cast_const();
            }
            if which & 2 != 0 || which & 3 == 0 {
                op = p;
            }
            in_ctx = n > 0 && !wild_len;
        }
        let ctx_before = self.xts.0.to_vec();
        let before = self.io.clone();
        let call = |ip: *const u8, op: *mut u8, dec: bool| -> envol_status {
            // SAFETY: `ip`/`op` NULL or valid for `n` bytes inside the arena
            // (or `n` is past the address space and refused unread).
            st(unsafe {
                match (kind, dec) {
                    (XtsKind::Sectors { first, .. }, false) => {
                        envol_ffi::envol_xts_encrypt_sectors(cp, first, sector_size, ip, op, n)
                    }
                    (XtsKind::Sectors { first, .. }, true) => {
                        envol_ffi::envol_xts_decrypt_sectors(cp, first, sector_size, ip, op, n)
                    }
                    (XtsKind::Unit { tweak, null_tweak }, d) => {
                        let t = if null_tweak { null() } else { tweak.as_ptr() };
                        if d {
                            envol_ffi::envol_xts_decrypt_unit(cp, t, ip, op, n)
                        } else {
                            envol_ffi::envol_xts_encrypt_unit(cp, t, ip, op, n)
                        }
                    }
                }
            })
        };
        let s = call(ip, op, decrypt);
        if in_ctx {
            assert_ne!(s, OK, "ran with a buffer inside the context");
            assert_eq!(self.xts.0.to_vec(), ctx_before, "context changed on {s:?}");
            assert!(self.io == before, "buffer changed on {s:?}");
            return;
        }
        let partial = a != b && !wild_len && n != 0 && a < b + n && b < a + n;
        let live = match &self.xst[i] {
            XState::Live { key, .. } if Self::xts_aligned(ctx) => Some(key.clone()),
            _ => None,
        };
        let null_tweak = matches!(
            kind,
            XtsKind::Unit {
                null_tweak: true,
                ..
            }
        );
        let core_ok = match kind {
            XtsKind::Sectors { first, .. } => Xts::check_sectors(first, sector_size, n).is_ok(),
            XtsKind::Unit { .. } => Xts::check_unit(n).is_ok(),
        };
        let valid = live.is_some()
            && !null_in
            && !null_out
            && !null_tweak
            && !wild_len
            && !partial
            && core_ok;
        if s != OK {
            assert!(!valid, "valid call refused: {s:?}");
            assert!(self.io == before, "buffer changed on {s:?}");
            if live.is_none() && !null_tweak && !ctx.null && ctx.misalign.is_multiple_of(64) {
                assert_eq!(s, envol_status::ENVOL_ERR_NOT_INITIALIZED);
            }
            return;
        }
        assert!(valid, "invalid call accepted");
        let input = before[a..a + n].to_vec();
        let output = self.io[b..b + n].to_vec();
        // Nothing outside the output changed.
        for (j, (x, y)) in self.io.iter().zip(&before).enumerate() {
            if !(b..b + n).contains(&j) {
                assert_eq!(x, y, "byte {j} outside the output changed");
            }
        }
        // The core, on the portable backend, agrees.
        if let Some(Some(key)) = &live {
            let x = Xts::with_backend(key, Backend::Soft).expect("live key is valid");
            let mut expect = input.clone();
            match (kind, decrypt) {
                (XtsKind::Sectors { first, .. }, false) => {
                    x.encrypt_sectors(first, sector_size, &mut expect)
                }
                (XtsKind::Sectors { first, .. }, true) => {
                    x.decrypt_sectors(first, sector_size, &mut expect)
                }
                (XtsKind::Unit { tweak, .. }, false) => x.encrypt_unit(&tweak, &mut expect),
                (XtsKind::Unit { tweak, .. }, true) => x.decrypt_unit(&tweak, &mut expect),
            }
            .expect("core accepts");
            assert_eq!(output, expect, "ABI XTS differs from core XTS");
        }
        // The inverse call, in place, gives the input back.
        let mut back = output;
        let s2 = call(back.as_ptr(), back.as_mut_ptr(), !decrypt);
        assert_eq!(s2, OK);
        assert_eq!(back, input, "decrypt(encrypt(x)) != x");
    }
}
