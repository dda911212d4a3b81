//! Volume data: `envol_volume_read` / `_write` and the zero-copy
//! `envol_volume_encrypt` / `_decrypt`.

use std::ptr::{null, null_mut};

use envol::xts::{Backend, Xts};
use envol_ffi::{ENVOL_VOLUME_SIZE, envol_status};

use super::args::{IoArg, IoLen, Layout, SectorArg, VolArg};
use super::buffers::{canary, wild};
use super::ops::Op;
use super::volumes::VState;
use super::{IO_ARENA, MAX_BUF, OK, State, st};

impl State {
    /// Runs a volume data op.
    pub(super) fn run_volume_io(&mut self, op: &Op) {
        match op {
            Op::VolRead { vol, first, buf } => self.vol_io(*vol, *first, *buf, false),
            Op::VolWrite { vol, first, buf } => self.vol_io(*vol, *first, *buf, true),
            Op::VolCrypt {
                vol,
                decrypt,
                first,
                len,
                layout,
                fill,
            } => self.vol_crypt(*vol, *decrypt, *first, *len, *layout, *fill),
            _ => unreachable!("not a volume data op: {op:?}"),
        }
    }

    fn vol_crypt(
        &mut self,
        vol: VolArg,
        decrypt: bool,
        first: SectorArg,
        len: IoLen,
        layout: Layout,
        fill: u8,
    ) {
        let (vp, i) = self.vol_ptr(vol);
        let rec = self.vrec[i].clone();
        let ss = rec.params.map_or(512, |p| p.sector_size as usize);
        let first = match first {
            SectorArg::N(n) => u64::from(n),
            SectorArg::Raw(r) => r,
        };
        let mut wild_len = false;
        let mut n = match len {
            IoLen::Sectors(k) => ss * (usize::from(k % 128) + 1),
            IoLen::Bytes(b) => b as usize,
            IoLen::Wild(m) => {
                wild_len = true;
                wild(m)
            }
        };
        if !wild_len {
            n = n.min(MAX_BUF);
        }
        for (j, b) in self.io.iter_mut().enumerate() {
            *b = fill ^ canary(j);
        }
        let base = self.io.as_mut_ptr();
        let vb = self.vol_base(i);
        // Offsets into the arena (None: NULL or inside the volume).
        let (mut ino, mut outo) = (None, None);
        let (mut inside_in, mut inside_out) = (false, false);
        let at = |o: usize| base.wrapping_add(o);
        let (ip, op): (*const u8, *mut u8) = match layout {
            Layout::Disjoint { a, b } => {
                let (x, y) = (usize::from(a) % 128, MAX_BUF + 128 + usize::from(b) % 128);
                ino = Some(x);
                outo = Some(y);
                (at(x), at(y))
            }
            Layout::InPlace { a } => {
                let x = usize::from(a) % 256;
                ino = Some(x);
                outo = Some(x);
                (at(x), at(x))
            }
            Layout::Overlap { a, d } => {
                let dd = if wild_len {
                    16
                } else {
                    usize::from(d & 0x7fff) % n.max(1)
                };
                let (mut x, mut y) = (usize::from(a) % 128, usize::from(a) % 128 + dd);
                if d & 0x8000 != 0 {
                    std::mem::swap(&mut x, &mut y);
                }
                ino = Some(x);
                outo = Some(y);
                (at(x), at(y))
            }
            Layout::NullIn => {
                outo = Some(0);
                (null(), at(0))
            }
            Layout::NullOut => {
                ino = Some(0);
                (at(0), null_mut())
            }
            Layout::InCtx { off, which } => {
                let o = usize::from(off) % ENVOL_VOLUME_SIZE;
                if !wild_len {
                    n = n.min(ENVOL_VOLUME_SIZE + 64 - o);
                }
                let q = vb.wrapping_add(o);
                let mut ip = at(0).cast_const();
                let mut op = at(MAX_BUF + 128);
                ino = Some(0);
                outo = Some(MAX_BUF + 128);
                if which & 1 != 0 || which & 3 == 0 {
                    ip = q;
                    ino = None;
                    inside_in = true;
                }
                if which & 2 != 0 {
                    op = q;
                    outo = None;
                    inside_out = true;
                }
                (ip, op)
            }
        };
        let partial = !ip.is_null()
            && !op.is_null()
            && !wild_len
            && ip != op.cast_const()
            && n != 0
            && (ip as usize) < op as usize + n
            && (op as usize) < ip as usize + n;
        let before = self.io.clone();
        let vol_before = self.vol_bytes(i);
        // SAFETY: `ip`/`op` NULL or valid for `n` bytes (inside the arena or
        // the volume box), or `n` is refused before either is touched.
        let s = st(unsafe {
            if decrypt {
                envol_ffi::envol_volume_decrypt(vp, first, ip, op, n)
            } else {
                envol_ffi::envol_volume_encrypt(vp, first, ip, op, n)
            }
        });
        if inside_in || inside_out {
            assert!(s != OK || n == 0, "data through the volume struct");
        }
        if partial {
            assert_ne!(s, OK, "partially overlapping buffers accepted");
            if Self::vol_ok_ptr(vol) && rec.state == VState::Attached && !inside_in && !inside_out {
                assert_eq!(s, envol_status::ENVOL_ERR_OVERLAP);
            }
        }
        if s != OK {
            assert!(self.io == before, "output written on {s:?}");
            if s != envol_status::ENVOL_ERR_LEASE_EXPIRED {
                assert_eq!(self.vol_bytes(i), vol_before, "volume changed on {s:?}");
            }
            if Self::vol_ok_ptr(vol) && rec.state != VState::Attached {
                self.expect_state_error(i, s, VState::Attached);
            }
            if s == envol_status::ENVOL_ERR_LEASE_EXPIRED {
                assert!(rec.lease.is_some() || rec.wiped, "no lease, yet expired");
            }
            self.check_vol(i);
            return;
        }
        if Self::vol_ok_ptr(vol) && rec.state == VState::Attached && rec.wiped {
            assert_eq!(n, 0, "data call on a wiped key succeeded");
        }
        assert_eq!(rec.state, VState::Attached);
        assert!(!ip.is_null() && !op.is_null() && !wild_len && !partial);
        let p = rec.params.expect("attached volume parameters known");
        let ss = p.sector_size as usize;
        assert!(n % ss == 0);
        assert!(
            first
                .checked_add((n / ss) as u64)
                .is_some_and(|e| e <= p.volume_size / ss as u64)
        );
        if n == 0 {
            return;
        }
        let (ino, outo) = (
            ino.expect("input in the arena"),
            outo.expect("output in the arena"),
        );
        let input = before[ino..ino + n].to_vec();
        let output = self.io[outo..outo + n].to_vec();
        // Nothing written outside the output.
        for (j, (&x, &y)) in self.io.iter().zip(&before).enumerate() {
            if !(outo..outo + n).contains(&j) {
                assert_eq!(x, y, "wrote outside the output at {j}");
            }
        }
        // The engine reference, when the harness knows the key.
        if let Some(key) = &rec.dek {
            let mut want = input.clone();
            let x = Xts::with_backend(key, Backend::Soft).expect("volume key");
            if decrypt {
                x.decrypt_sectors(first, ss, &mut want)
                    .expect("core decrypts");
            } else {
                x.encrypt_sectors(first, ss, &mut want)
                    .expect("core encrypts");
            }
            assert_eq!(output, want, "differs from the XTS reference");
        }
        // The inverse call gives the input back.
        let mut back = vec![0u8; n];
        // SAFETY: our volume and two disjoint buffers of `n` bytes.
        let s2 = st(unsafe {
            if decrypt {
                envol_ffi::envol_volume_encrypt(vp, first, output.as_ptr(), back.as_mut_ptr(), n)
            } else {
                envol_ffi::envol_volume_decrypt(vp, first, output.as_ptr(), back.as_mut_ptr(), n)
            }
        });
        assert_eq!(s2, OK, "the inverse call failed");
        assert_eq!(back, input, "decrypt(encrypt(x)) != x");
        if !decrypt {
            // What `envol_volume_write` puts on the device is this ciphertext.
            // SAFETY: our volume and buffer.
            let s3 = st(unsafe { envol_ffi::envol_volume_write(vp, first, input.as_ptr(), n) });
            if s3 == OK {
                let at = p.data_offset as usize + first as usize * ss;
                let disk = self.disk(rec.disk);
                assert_eq!(
                    disk.bytes[at..at + n],
                    output[..],
                    "write differs from encrypt"
                );
            } else {
                assert_eq!(s3, envol_status::ENVOL_ERR_IO);
            }
        }
        self.check_vol(i);
    }

    fn vol_io(&mut self, vol: VolArg, first: SectorArg, io: IoArg, write: bool) {
        let (vp, i) = self.vol_ptr(vol);
        let rec = self.vrec[i].clone();
        let ss = rec.params.map_or(512, |p| p.sector_size as usize);
        let first = match first {
            SectorArg::N(n) => u64::from(n),
            SectorArg::Raw(r) => r,
        };
        let mut wild_len = false;
        let mut n = match io.len {
            IoLen::Sectors(k) => ss * (usize::from(k % 128) + 1),
            IoLen::Bytes(b) => b as usize,
            IoLen::Wild(m) => {
                wild_len = true;
                wild(m)
            }
        };
        if !wild_len {
            n = n.min(MAX_BUF);
        }
        for (j, b) in self.io.iter_mut().enumerate() {
            *b = io.fill ^ canary(j);
        }
        let off = usize::from(io.off) % (IO_ARENA - MAX_BUF);
        let base = self.io.as_mut_ptr();
        let mut inside = false;
        let bp: *mut u8 = if io.null {
            null_mut()
        } else if let Some(o) = io.inside_vol {
            let vb = self.vol_base(i);
            let o = usize::from(o) % ENVOL_VOLUME_SIZE;
            if !wild_len {
                n = n.min(ENVOL_VOLUME_SIZE + 64 - o);
            }
            inside = true;
            // SAFETY: inside the volume box.
            unsafe { vb.add(o) }
        } else {
            // SAFETY: `off + MAX_BUF` is inside the arena.
            unsafe { base.add(off) }
        };
        let before = self.io.clone();
        let vol_before = self.vol_bytes(i);
        // SAFETY: `bp` NULL or valid for `n` bytes (or `n` is refused unread).
        let s = st(unsafe {
            if write {
                envol_ffi::envol_volume_write(vp, first, bp, n)
            } else {
                envol_ffi::envol_volume_read(vp, first, bp, n)
            }
        });
        if inside {
            // Never through a buffer inside the volume itself (an empty one
            // is a no-op).
            assert!(s != OK || n == 0);
            assert_eq!(self.vol_bytes(i), vol_before);
        }
        if !(write || s == OK || s == envol_status::ENVOL_ERR_IO) {
            assert!(self.io == before, "read buffer changed on {s:?}");
        }
        if write {
            assert!(self.io == before, "write changed the caller's data");
        }
        if Self::vol_ok_ptr(vol) && s != OK && rec.state != VState::Attached {
            self.expect_state_error(i, s, VState::Attached);
        }
        if Self::vol_ok_ptr(vol) && rec.state == VState::Attached && rec.wiped {
            assert!(s != OK || n == 0, "data call on a wiped key gave {s:?}");
        }
        if s == envol_status::ENVOL_ERR_LEASE_EXPIRED {
            assert!(rec.lease.is_some() || rec.wiped, "no lease, yet expired");
        }
        if s != OK {
            self.check_vol(i);
            return;
        }
        assert_eq!(rec.state, VState::Attached);
        assert!(!io.null && !wild_len && (!inside || n == 0));
        let p = rec.params.expect("attached volume parameters known");
        let ss = p.sector_size as usize;
        assert!(n % ss == 0);
        let sectors = (n / ss) as u64;
        assert!(
            first
                .checked_add(sectors)
                .is_some_and(|e| e <= p.volume_size / ss as u64)
        );
        if n == 0 {
            return;
        }
        let data = self.io[off..off + n].to_vec();
        // The device holds the XTS encryption of the plaintext, sector
        // numbers counted from the data area.
        if let Some(key) = &rec.dek {
            let at = p.data_offset as usize + first as usize * ss;
            let disk = self.disk(rec.disk);
            let mut raw = disk.bytes[at..at + n].to_vec();
            Xts::with_backend(key, Backend::Soft)
                .expect("volume key")
                .decrypt_sectors(first, ss, &mut raw)
                .expect("core decrypts");
            assert_eq!(raw, data, "device bytes are not the XTS of the data");
        }
        if write {
            // Reading back gives what was written.
            let mut back = vec![0u8; n];
            // SAFETY: our volume and buffer.
            let s2 = st(unsafe { envol_ffi::envol_volume_read(vp, first, back.as_mut_ptr(), n) });
            if s2 == OK {
                assert_eq!(back, data, "read-back differs from write");
            } else {
                assert_eq!(s2, envol_status::ENVOL_ERR_IO);
            }
        }
    }
}
