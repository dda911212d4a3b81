//! Volume lifecycle through the ABI (`envol_volume_*`): create, open,
//! attach, detach, close, rewrap, retire, info; and the harness's record of
//! each volume's state, checked after every call.

use std::ffi::{c_char, c_int};
use std::mem::size_of;
use std::ptr::{null, null_mut};

use envol::header::{self, Header, SLOT_SIZE};
use envol_ffi::{
    ENVOL_MAX_KEY_ID, ENVOL_VOLUME_SIZE, envol_backend, envol_status, envol_volume,
    envol_volume_params,
};

use super::args::{DevArg, IdArg, KmsArg, ParamsArg, Role, S, VolArg};
use super::buffers::{Buf, Hold};
use super::kms::Svc;
use super::leases::LeaseRec;
use super::ops::Op;
use super::values::{c_params, rust_params};
use super::{N_VOL, OK, State, VolBox, push_pool, st};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum VState {
    Empty,
    Detached,
    Attached,
}

#[derive(Clone, Debug)]
pub(super) struct VolRec {
    pub(super) state: VState,
    pub(super) disk: usize,
    pub(super) svc: Svc,
    pub(super) params: Option<envol_volume_params>,
    /// The data key while attached, when the harness knows it.
    pub(super) dek: Option<Vec<u8>>,
    /// The key the header MAC is under, when known.
    pub(super) header_dek: Option<Vec<u8>>,
    /// The lease `envol_volume_set_lease` set (kept across detach/attach).
    pub(super) lease: Option<LeaseRec>,
    /// Attached, but the key was wiped by a lost lease.
    pub(super) wiped: bool,
}

/// A refused argument of create/open (a NULL, misaligned or incomplete
/// table, a bad string, unknown cipher, parameters out of range): these
/// are checked before the volume's state, in no documented order.
fn table_error(s: envol_status) -> bool {
    matches!(
        s,
        envol_status::ENVOL_ERR_NULL_POINTER
            | envol_status::ENVOL_ERR_ALIGNMENT
            | envol_status::ENVOL_ERR_INVALID_ARGUMENT
            | envol_status::ENVOL_ERR_VOLUME_PARAMS
            | envol_status::ENVOL_ERR_KEY_ID
    )
}

/// A failed create/open left the volume struct as it was — except that a
/// never-zeroed struct (`VolScribble`; the contract asks for a zeroed one)
/// may get its garbage gate reset to zero (state word and in-flight count,
/// the struct's first 16 bytes) when the call takes and lets go of it.
fn unchanged_vol(before: &[u8], after: &[u8]) -> bool {
    const GATE: usize = 16;
    const _: () = assert!(size_of::<envol::gate::Gate>() == GATE);
    before == after || (after[..GATE] == [0; GATE] && before[GATE..] == after[GATE..])
}

impl State {
    /// Runs a volume lifecycle op.
    pub(super) fn run_volumes(&mut self, op: &Op) {
        let mut hold = Hold::default();
        match op {
            Op::VolScribble { vol, bytes } => {
                let i = usize::from(*vol) % N_VOL;
                if self.vrec[i].state == VState::Empty && !bytes.is_empty() {
                    let base = self.vol_base(i);
                    // SAFETY: our box, holding no live volume.
                    let r = unsafe { std::slice::from_raw_parts_mut(base, ENVOL_VOLUME_SIZE) };
                    for (j, b) in r.iter_mut().enumerate().step_by(61) {
                        *b = bytes[j % bytes.len()];
                    }
                    for (j, b) in bytes.iter().take(64).enumerate() {
                        r[j] = *b;
                    }
                    // Never a live volume's state word (or a held gate's):
                    // scribbled memory must read as an empty struct.
                    let word = usize::from_le_bytes(r[..8].try_into().expect("8 bytes"));
                    if [0x564F_4C44, 0x564F_4C41, 0x4255_5359].contains(&word) {
                        r[0] ^= 1;
                    }
                }
            }
            Op::VolCreate {
                vol,
                dev,
                kms,
                principal,
                key_id,
                params,
            } => self.vol_create_or_overwrite(
                *vol, *dev, *kms, principal, key_id, params, false, &mut hold,
            ),
            Op::VolOpen { vol, dev, kms } => {
                let (vp, i) = self.vol_ptr(*vol);
                let (dp, disk) = self.dev_table(*dev, &mut hold);
                let (kp, svc) = self.kms_table(*kms, &mut hold);
                let before = self.vol_bytes(i);
                // SAFETY: every pointer NULL or valid as documented; tables
                // keep their contracts while the volume lives (disks and the
                // fake live as long as the harness; volumes on a local handle
                // close before it frees).
                let s = st(unsafe { envol_ffi::envol_volume_open(vp, dp, kp) });
                if s == OK {
                    assert!(Self::vol_ok_ptr(*vol));
                    assert_eq!(self.vrec[i].state, VState::Empty);
                    self.vrec[i] = VolRec {
                        state: VState::Detached,
                        disk,
                        svc,
                        params: None,
                        dek: None,
                        header_dek: None,
                        lease: None,
                        wiped: false,
                    };
                } else {
                    assert!(
                        unchanged_vol(&before, &self.vol_bytes(i)),
                        "volume changed on {s:?}"
                    );
                    // The tables are checked before the volume's state.
                    if Self::vol_ok_ptr(*vol) && !table_error(s) {
                        match self.vrec[i].state {
                            VState::Detached => {
                                assert_eq!(s, envol_status::ENVOL_ERR_VOLUME_DETACHED)
                            }
                            VState::Attached => {
                                assert_eq!(s, envol_status::ENVOL_ERR_VOLUME_ATTACHED)
                            }
                            VState::Empty => {}
                        }
                    }
                }
                self.check_vol(i);
            }
            Op::VolAttach { vol, principal } => {
                let (vp, i) = self.vol_ptr(*vol);
                let (p, _) = hold.s(principal, Role::Principal);
                if self.vrec[i].svc == Svc::Fake {
                    self.fake().last_dec = None;
                }
                // SAFETY: as above.
                let s = st(unsafe { envol_ffi::envol_volume_attach(vp, p) });
                if s == OK {
                    assert!(Self::vol_ok_ptr(*vol));
                    assert_eq!(self.vrec[i].state, VState::Detached);
                    self.vrec[i].state = VState::Attached;
                    self.vrec[i].wiped = false;
                    let key = if self.vrec[i].svc == Svc::Fake {
                        self.fake().last_dec.clone()
                    } else {
                        None
                    };
                    if let (Some(k), Some(h)) = (&key, &self.vrec[i].header_dek) {
                        assert_eq!(k, h, "attached with a key the header is not under");
                    }
                    if key.is_some() {
                        self.vrec[i].header_dek.clone_from(&key);
                    }
                    self.vrec[i].dek = key;
                } else if Self::vol_ok_ptr(*vol) {
                    self.expect_state_error(i, s, VState::Detached);
                }
                self.check_vol(i);
            }
            Op::VolDetach { vol } => {
                let (vp, i) = self.vol_ptr(*vol);
                // SAFETY: as above.
                let s = st(unsafe { envol_ffi::envol_volume_detach(vp) });
                if s == OK {
                    assert_eq!(self.vrec[i].state, VState::Attached);
                    self.vrec[i].state = VState::Detached;
                    self.vrec[i].dek = None;
                    self.vrec[i].wiped = false;
                } else if s == envol_status::ENVOL_ERR_IO {
                    // The flush failed: still attached, nothing lost.
                    assert_eq!(self.vrec[i].state, VState::Attached);
                } else if Self::vol_ok_ptr(*vol) {
                    self.expect_state_error(i, s, VState::Attached);
                }
                self.check_vol(i);
            }
            Op::VolClose { vol } => {
                let (vp, i) = self.vol_ptr(*vol);
                let before = self.vol_bytes(i);
                // SAFETY: NULL, misaligned (ignored) or our volume.
                unsafe { envol_ffi::envol_volume_close(vp) };
                if Self::vol_ok_ptr(*vol) {
                    assert!(
                        self.vol_bytes(i).iter().all(|&b| b == 0),
                        "close left bytes"
                    );
                    self.vrec[i].state = VState::Empty;
                    self.vrec[i].svc = Svc::None;
                    self.vrec[i].dek = None;
                    self.vrec[i].params = None;
                    self.vrec[i].lease = None;
                    self.vrec[i].wiped = false;
                } else {
                    assert_eq!(self.vol_bytes(i), before, "ignored close wrote");
                }
                self.check_vol(i);
            }
            Op::VolFlush { vol } => {
                let (vp, i) = self.vol_ptr(*vol);
                // SAFETY: as above.
                let s = st(unsafe { envol_ffi::envol_volume_flush(vp) });
                if s == OK {
                    assert_ne!(self.vrec[i].state, VState::Empty);
                }
                self.check_vol(i);
            }
            Op::VolRewrap {
                vol,
                principal,
                key_id,
            } => {
                let (vp, i) = self.vol_ptr(*vol);
                let (p, _) = hold.s(principal, Role::Principal);
                let (id, _) = hold.s(key_id, Role::KeyId);
                // SAFETY: as above.
                let s = st(unsafe { envol_ffi::envol_volume_rewrap(vp, p, id) });
                if s == OK {
                    assert_eq!(self.vrec[i].state, VState::Attached);
                } else if Self::vol_ok_ptr(*vol) {
                    self.expect_state_error(i, s, VState::Attached);
                }
                // Attached or not, it stays as it was.
                self.check_vol(i);
            }
            Op::VolRetire { vol } => {
                let (vp, i) = self.vol_ptr(*vol);
                // SAFETY: as above.
                let s = st(unsafe { envol_ffi::envol_volume_retire(vp, c"op".as_ptr()) });
                if s == OK {
                    assert_eq!(self.vrec[i].state, VState::Attached);
                    self.vrec[i].state = VState::Detached;
                    self.vrec[i].dek = None;
                    self.vrec[i].wiped = false;
                    // Attaching is refused from now on.
                    let p = hold.s(&S::Pool(0), Role::Principal).0;
                    // SAFETY: our volume.
                    let s2 = st(unsafe { envol_ffi::envol_volume_attach(vp, p) });
                    // (A table without decrypt is refused before the header
                    // is looked at.)
                    assert!(
                        s2 == envol_status::ENVOL_ERR_VOLUME_RETIRED
                            || s2 == envol_status::ENVOL_ERR_NULL_POINTER,
                        "retired volume: attach gave {s2:?}"
                    );
                } else if Self::vol_ok_ptr(*vol) {
                    self.expect_state_error(i, s, VState::Attached);
                }
                self.check_vol(i);
            }
            Op::VolInfo {
                vol,
                nulls,
                misalign,
                into_vol,
            } => {
                let (vp, i) = self.vol_ptr(*vol);
                let m = usize::from(misalign % 8);
                let mut p = Buf::new(size_of::<envol_volume_params>(), 8, m, nulls & 1 != 0);
                let mut seq = Buf::new(8, 8, m, nulls & 2 != 0);
                let mut id = Buf::new(ENVOL_MAX_KEY_ID + 1, 1, m, nulls & 4 != 0);
                let mut att = Buf::new(4, 4, m, nulls & 8 != 0);
                let mut outs = (
                    p.cast::<envol_volume_params>(),
                    seq.cast::<u64>(),
                    id.cast::<c_char>(),
                    att.cast::<c_int>(),
                );
                let vol_before = self.vol_bytes(i);
                if let Some(o) = into_vol {
                    // Inside the volume box (the outputs are written
                    // unaligned, and at most 65 bytes long).
                    let base = self.vol_base(i);
                    let at = usize::from(*o) % ENVOL_VOLUME_SIZE;
                    let q = base.wrapping_add(at);
                    match o % 4 {
                        0 => outs.0 = q.cast(),
                        1 => outs.1 = q.cast(),
                        2 => outs.2 = q.cast(),
                        _ => outs.3 = q.cast(),
                    }
                }
                // SAFETY: as above (the library writes these unaligned).
                let s =
                    st(unsafe { envol_ffi::envol_volume_info(vp, outs.0, outs.1, outs.2, outs.3) });
                if into_vol.is_some() {
                    assert_ne!(s, OK, "wrote volume info into the volume");
                    assert_eq!(self.vol_bytes(i), vol_before, "volume changed on {s:?}");
                }
                if s == OK {
                    assert!(p.slack_intact() && seq.slack_intact() && att.slack_intact());
                    assert!(id.slack_intact());
                } else {
                    assert!(p.intact() && seq.intact() && id.intact() && att.intact());
                }
                self.check_vol(i);
            }
            Op::VolBackend { vol } => {
                let (vp, i) = self.vol_ptr(*vol);
                // SAFETY: NULL, misaligned or our volume.
                let b = unsafe { envol_ffi::envol_volume_backend(vp) };
                if !Self::vol_ok_ptr(*vol) || self.vrec[i].state != VState::Attached {
                    assert_eq!(b, envol_backend::ENVOL_BACKEND_AUTO);
                }
            }
            Op::VolOpenExpect { vol, dev, kms, id } => {
                self.vol_open_expect(*vol, *dev, *kms, *id, &mut hold)
            }
            Op::VolOverwrite {
                vol,
                dev,
                kms,
                principal,
                key_id,
                params,
            } => self.vol_create_or_overwrite(
                *vol, *dev, *kms, principal, key_id, params, true, &mut hold,
            ),
            _ => unreachable!("not a volume lifecycle op: {op:?}"),
        }
        drop(hold);
    }

    pub(super) fn vol_base(&mut self, i: usize) -> *mut u8 {
        while self.vols.len() <= i {
            // SAFETY: all-zero bytes are a valid `VolBox` (and an empty volume).
            self.vols
                .push(unsafe { Box::<VolBox>::new_zeroed().assume_init() });
        }
        self.vols[i].0.as_mut_ptr()
    }

    pub(super) fn vol_ptr(&mut self, v: VolArg) -> (*mut envol_volume, usize) {
        let i = usize::from(v.idx) % N_VOL;
        let base = self.vol_base(i);
        if v.null {
            return (null_mut(), i);
        }
        // SAFETY: inside the box (64 bytes of room).
        (unsafe { base.add(usize::from(v.misalign % 64)) }.cast(), i)
    }

    pub(super) fn vol_ok_ptr(v: VolArg) -> bool {
        !v.null && v.misalign.is_multiple_of(64)
    }

    /// Closes every volume whose table calls local handle `i`.
    pub(super) fn close_users_of(&mut self, i: usize) {
        for v in 0..N_VOL {
            if self.vrec[v].svc == Svc::Local(i) && self.vrec[v].state != VState::Empty {
                let base = self.vol_base(v);
                // SAFETY: our aligned volume struct.
                unsafe { envol_ffi::envol_volume_close(base.cast()) };
                self.vrec[v].state = VState::Empty;
                self.vrec[v].svc = Svc::None;
                self.vrec[v].lease = None;
                self.vrec[v].wiped = false;
            }
        }
    }

    /// The volume's state word agrees with the harness's record.
    pub(super) fn check_vol(&mut self, i: usize) {
        let base = self.vol_base(i);
        let mut p = Buf::typed::<envol_volume_params>(false);
        let mut seq = Buf::typed::<u64>(false);
        let mut id = Buf::new(ENVOL_MAX_KEY_ID + 1, 1, 0, false);
        let mut att = Buf::typed::<c_int>(false);
        // SAFETY: our volume and writable outputs.
        let s = st(unsafe {
            envol_ffi::envol_volume_info(base.cast(), p.cast(), seq.cast(), id.cast(), att.cast())
        });
        let rec = &mut self.vrec[i];
        match rec.state {
            VState::Empty => {
                assert_eq!(s, envol_status::ENVOL_ERR_NOT_INITIALIZED);
                assert!(p.intact() && seq.intact() && id.intact() && att.intact());
            }
            VState::Detached | VState::Attached => {
                assert_eq!(s, OK);
                let attached: c_int = att.read();
                assert_eq!(attached, c_int::from(rec.state == VState::Attached));
                let params: envol_volume_params = p.read();
                assert!(
                    rust_params(&params).is_some(),
                    "a live volume has valid parameters"
                );
                if let Some(known) = rec.params {
                    assert_eq!(known, params);
                }
                rec.params = Some(params);
                let idb = id.bytes();
                let nul = idb
                    .iter()
                    .position(|&b| b == 0)
                    .expect("key id NUL-terminated");
                assert!(std::str::from_utf8(&idb[..nul]).is_ok());
                assert!(id.intact_after(nul + 1));
            }
        }
        // SAFETY: our volume.
        let b = unsafe { envol_ffi::envol_volume_backend(base.cast()) };
        if rec.state != VState::Attached {
            assert_eq!(b, envol_backend::ENVOL_BACKEND_AUTO);
        } else if b == envol_backend::ENVOL_BACKEND_AUTO {
            // Only a lease can take an attached volume's key away.
            assert!(
                rec.lease.is_some() || rec.wiped,
                "attached volume without a key"
            );
            rec.wiped = true;
        } else {
            assert!(!rec.wiped, "a wiped key came back");
        }
    }

    fn vol_open_expect(
        &mut self,
        vol: VolArg,
        dev: DevArg,
        kms: KmsArg,
        id: IdArg,
        hold: &mut Hold,
    ) {
        let (vp, i) = self.vol_ptr(vol);
        let (dp, disk) = self.dev_table(dev, hold);
        let (kp, svc) = self.kms_table(kms, hold);
        let want = self.id_arg(id);
        let idp = want.map_or(null(), |w| hold.keep(w.to_vec()).cast_const());
        let before = self.vol_bytes(i);
        let disk_before = self.disk(disk).bytes.clone();
        // SAFETY: as for `VolOpen`; the id NULL or 16 readable bytes.
        let s = st(unsafe { envol_ffi::envol_volume_open_expect(vp, dp, kp, idp) });
        // Opening writes nothing to the device (torn writes aside: none).
        assert!(
            self.disk(disk).bytes == disk_before,
            "open wrote to the device"
        );
        let ids: Vec<[u8; 16]> = [0, SLOT_SIZE]
            .iter()
            .filter_map(|&o| {
                Header::parse(&disk_before[o..o + SLOT_SIZE])
                    .ok()
                    .map(|h| h.params.volume_id)
            })
            .collect();
        if let Some(w) = want
            && !ids.contains(&w)
        {
            assert_ne!(s, OK, "opened a volume with another id");
        }
        if s == OK {
            assert!(Self::vol_ok_ptr(vol));
            assert_eq!(self.vrec[i].state, VState::Empty);
            self.vrec[i] = VolRec {
                state: VState::Detached,
                disk,
                svc,
                params: None,
                dek: None,
                header_dek: None,
                lease: None,
                wiped: false,
            };
            self.check_vol(i);
            if let (Some(w), Some(p)) = (want, self.vrec[i].params) {
                assert_eq!(p.volume_id, w, "opened a volume with another id");
            }
        } else {
            assert!(
                unchanged_vol(&before, &self.vol_bytes(i)),
                "volume changed on {s:?}"
            );
            if Self::vol_ok_ptr(vol) && self.vrec[i].state != VState::Empty && !table_error(s) {
                self.expect_state_error(i, s, VState::Empty);
            }
            self.check_vol(i);
        }
    }

    pub(super) fn vol_bytes(&mut self, i: usize) -> Vec<u8> {
        let base = self.vol_base(i);
        // SAFETY: our box.
        unsafe { std::slice::from_raw_parts(base, ENVOL_VOLUME_SIZE + 64) }.to_vec()
    }

    /// A call that needs state `want` failed on an aligned volume: if the
    /// volume was in another state, the status says which.
    pub(super) fn expect_state_error(&self, i: usize, s: envol_status, want: VState) {
        let got = self.vrec[i].state;
        // Arguments (strings, tables, parameters) may be refused first.
        if got != want && !table_error(s) {
            let expect = match got {
                VState::Empty => envol_status::ENVOL_ERR_NOT_INITIALIZED,
                VState::Detached => envol_status::ENVOL_ERR_VOLUME_DETACHED,
                VState::Attached => envol_status::ENVOL_ERR_VOLUME_ATTACHED,
            };
            assert_eq!(s, expect, "state {got:?}, call wants {want:?}");
        }
    }

    fn vol_create_or_overwrite(
        &mut self,
        vol: VolArg,
        dev: DevArg,
        kms: KmsArg,
        principal: &S,
        key_id: &S,
        params: &ParamsArg,
        overwrite: bool,
        hold: &mut Hold,
    ) {
        let (vp, i) = self.vol_ptr(vol);
        let (dp, disk) = self.dev_table(dev, hold);
        let (kp, svc) = self.kms_table(kms, hold);
        let (p, _) = hold.s(principal, Role::Principal);
        let (id, _) = hold.s(key_id, Role::KeyId);
        let (pp, pv) = self.params_ptr(params, hold);
        let before = self.vol_bytes(i);
        self.fake().last_gen = None;
        // SAFETY: as for `VolOpen`.
        let s = st(unsafe {
            if overwrite {
                envol_ffi::envol_volume_overwrite(vp, dp, kp, p, id, pp)
            } else {
                envol_ffi::envol_volume_create(vp, dp, kp, p, id, pp)
            }
        });
        if overwrite {
            assert_ne!(
                s,
                envol_status::ENVOL_ERR_VOLUME_EXISTS,
                "overwrite refused"
            );
        }
        if s == OK {
            assert!(Self::vol_ok_ptr(vol));
            assert_eq!(self.vrec[i].state, VState::Empty);
            let key = if svc == Svc::Fake {
                self.fake().last_gen.clone()
            } else {
                None
            };
            self.vrec[i] = VolRec {
                state: VState::Attached,
                disk,
                svc,
                params: pv,
                dek: key.clone(),
                header_dek: key,
                lease: None,
                wiped: false,
            };
            // The header on the device is the one the volume holds.
            let d = self.disk(disk);
            let (a, b) = (
                d.bytes[..SLOT_SIZE].to_vec(),
                d.bytes[SLOT_SIZE..2 * SLOT_SIZE].to_vec(),
            );
            if let Ok(pk) = header::pick(&a, &b) {
                assert_eq!(Some(c_params(&pk.header.params)), pv);
            }
            push_pool(&mut self.params, pv.expect("params"));
        } else {
            assert!(
                unchanged_vol(&before, &self.vol_bytes(i)),
                "volume changed on {s:?}"
            );
            if Self::vol_ok_ptr(vol) && self.vrec[i].state != VState::Empty && !table_error(s) {
                self.expect_state_error(i, s, VState::Empty);
            }
        }
        self.check_vol(i);
    }
}
