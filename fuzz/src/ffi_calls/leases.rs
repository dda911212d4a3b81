//! Leases: `envol_volume_set_lease` on the harness clock (or the system
//! clock), moving that clock, and `envol_volume_maintain`.

use std::ffi::c_void;
use std::mem::size_of;

use envol_ffi::envol_status;

use super::args::VolArg;
use super::buffers::Buf;
use super::ops::Op;
use super::volumes::VState;
use super::{OK, State, st};

#[derive(Clone, Copy, Debug)]
pub(super) struct LeaseRec {
    duration: u64,
    grace: u64,
    /// On the harness clock (else the system clock).
    harness: bool,
}

/// Where the harness's lease clock starts.
pub(super) const CLOCK_START: u64 = 1_000_000;

unsafe extern "C" fn lease_now(user: *mut c_void) -> u64 {
    // SAFETY: `user` is the harness's clock, alive while any volume is,
    // changed only between calls.
    unsafe { *user.cast::<u64>() }
}

impl State {
    /// Runs a lease op.
    pub(super) fn run_leases(&mut self, op: &Op) {
        match op {
            Op::LeaseSet {
                vol,
                duration,
                renew,
                grace,
                system_clock,
                null,
            } => self.lease_set(*vol, *duration, *renew, *grace, *system_clock, *null),
            Op::LeaseAdvance { secs } => {
                // SAFETY: the harness's clock; no call is running.
                unsafe { *self.clock += u64::from(*secs) };
            }
            Op::VolMaintain {
                vol,
                info_null,
                misalign,
            } => self.vol_maintain(*vol, *info_null, *misalign),
            _ => unreachable!("not a lease op: {op:?}"),
        }
    }

    fn lease_set(
        &mut self,
        vol: VolArg,
        duration: u16,
        renew: u16,
        grace: u16,
        system_clock: bool,
        null: bool,
    ) {
        let (vp, i) = self.vol_ptr(vol);
        // On the system clock, leases long enough never to run out while
        // an input runs (reproducible inputs).
        let duration = if system_clock && duration != 0 {
            u64::from(duration) + 86_400
        } else {
            u64::from(duration)
        };
        let lease = envol_ffi::envol_lease {
            duration_s: duration,
            renew_before_s: u64::from(renew),
            grace_s: u64::from(grace),
            now: (!system_clock).then_some(lease_now as _),
            user: self.clock.cast(),
        };
        let lp: *const envol_ffi::envol_lease = if null { std::ptr::null() } else { &lease };
        let before = self.vol_bytes(i);
        // SAFETY: our volume (or NULL/misaligned); the lease readable, its
        // clock alive as long as the harness.
        let s = st(unsafe { envol_ffi::envol_volume_set_lease(vp, lp) });
        if s == OK {
            assert!(Self::vol_ok_ptr(vol) && !null);
            assert_ne!(self.vrec[i].state, VState::Empty);
            self.vrec[i].lease = (duration != 0).then_some(LeaseRec {
                duration,
                grace: u64::from(grace),
                harness: !system_clock,
            });
        } else {
            assert_eq!(self.vol_bytes(i), before, "volume changed on {s:?}");
            if null {
                if Self::vol_ok_ptr(vol) {
                    assert_eq!(s, envol_status::ENVOL_ERR_NULL_POINTER);
                }
            } else if Self::vol_ok_ptr(vol) {
                assert_eq!(self.vrec[i].state, VState::Empty, "set_lease gave {s:?}");
                assert_eq!(s, envol_status::ENVOL_ERR_NOT_INITIALIZED);
            }
        }
        self.check_vol(i);
    }

    fn vol_maintain(&mut self, vol: VolArg, info_null: bool, misalign: u8) {
        let (vp, i) = self.vol_ptr(vol);
        let rec = self.vrec[i].clone();
        let mut info = Buf::new(
            size_of::<envol_ffi::envol_lease_info>(),
            8,
            usize::from(misalign % 8),
            info_null,
        );
        // SAFETY: the harness's clock, read between calls.
        let now = unsafe { *self.clock };
        // SAFETY: our volume (or NULL/misaligned); the output NULL or
        // writable (written unaligned).
        let s = st(unsafe { envol_ffi::envol_volume_maintain(vp, info.cast()) });
        if s == OK {
            assert!(Self::vol_ok_ptr(vol));
            assert_eq!(rec.state, VState::Attached);
            assert!(info.slack_intact());
            if !info_null {
                let li: envol_ffi::envol_lease_info = info.read();
                assert!(li.state <= 3, "lease state {}", li.state);
                if li.state == 0 {
                    assert_eq!((li.expires_at, li.deadline), (0, 0));
                } else {
                    assert!(li.deadline >= li.expires_at);
                }
                match rec.lease {
                    None => assert_eq!(li.state, 0, "a lease nobody set"),
                    Some(l) => {
                        assert_ne!(li.state, 0, "the lease set is off");
                        if l.harness {
                            match li.state {
                                1 => assert!(now < li.expires_at),
                                2 => assert_eq!(li.expires_at, now + l.duration),
                                _ => assert!(now < li.deadline),
                            }
                            if li.state != 3 {
                                assert_eq!(li.deadline, li.expires_at + l.grace);
                            }
                        }
                    }
                }
            }
            if rec.lease.is_some() {
                assert!(!rec.wiped, "maintain of a wiped key gave OK");
            }
        } else {
            assert!(info.intact(), "lease info written on {s:?}");
            if Self::vol_ok_ptr(vol) && rec.state == VState::Attached {
                // A refusal or a lost lease: the key is gone, data calls
                // say so from now on.
                assert!(rec.lease.is_some() || rec.wiped, "no lease, yet {s:?}");
                self.vrec[i].wiped = true;
                let ss = rec.params.map_or(512, |p| p.sector_size as usize);
                let mut buf = vec![0u8; ss];
                // SAFETY: our volume and buffer.
                let r = st(unsafe { envol_ffi::envol_volume_read(vp, 0, buf.as_mut_ptr(), ss) });
                assert_eq!(r, envol_status::ENVOL_ERR_LEASE_EXPIRED, "after {s:?}");
            } else if Self::vol_ok_ptr(vol) {
                self.expect_state_error(i, s, VState::Attached);
            }
        }
        self.check_vol(i);
    }
}
