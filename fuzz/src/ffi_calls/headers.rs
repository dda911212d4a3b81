//! Header calls (`envol_header_*`): check, parse, context, unwrap, build,
//! against the core parser.

use std::ffi::{CStr, c_int};
use std::mem::size_of;
use std::ptr::null;

use envol::envelope::MAX_BLOB;
use envol::header::{self, Header, SLOT_SIZE, VolumeState};
use envol::xts::Backend;
use envol_ffi::{ENVOL_HEADER_CONTEXT_PAIRS, envol_kv, envol_status, envol_volume_params};

use super::args::{BlobArg, Cap, KeyArg, OutArg, ParamsArg, Role, SlotArg};
use super::buffers::{Buf, Hold, out_buf};
use super::engine::XState;
use super::kms::Svc;
use super::ops::Op;
use super::values::{c_params, rust_params};
use super::{OK, PoolBlob, State, push_pool, st};

impl State {
    /// Runs a header op.
    pub(super) fn run_headers(&mut self, op: &Op) {
        let mut hold = Hold::default();
        match op {
            Op::HeaderCheck { slot } => {
                let sl = self.slot(slot);
                let p = sl.as_ref().map_or(null(), |v| v.as_ptr());
                // SAFETY: NULL or 4096 readable bytes.
                let s = st(unsafe { envol_ffi::envol_header_check(p) });
                match &sl {
                    Some(v) => assert_eq!(s == OK, Header::parse(v).is_ok()),
                    None => assert_eq!(s, envol_status::ENVOL_ERR_NULL_POINTER),
                }
            }
            Op::HeaderParse {
                a,
                b,
                blob,
                nulls,
                misalign,
                overlap,
            } => self.header_parse(a, b, *blob, *nulls, *misalign, *overlap),
            Op::HeaderContext {
                params,
                strings,
                nulls,
                overlap,
            } => self.header_context(params, *strings, *nulls, *overlap, &mut hold),
            Op::HeaderUnwrap {
                ctx,
                kms,
                principal,
                a,
                b,
            } => {
                let (cp, i) = self.xts_ptr(*ctx);
                let (t, svc) = self.kms_table(*kms, &mut hold);
                let (p, _) = hold.s(principal, Role::Principal);
                let sa = self.slot(a);
                let sb = self.slot(b);
                let before = self.xts.0.to_vec();
                // SAFETY: as above; slots NULL or 4096 readable bytes.
                let s = st(unsafe {
                    envol_ffi::envol_header_unwrap(
                        cp,
                        t,
                        p,
                        sa.as_ref().map_or(null(), |v| v.as_ptr()),
                        sb.as_ref().map_or(null(), |v| v.as_ptr()),
                    )
                });
                if s == OK {
                    assert!(Self::xts_aligned(*ctx));
                    let (sa, sb) = (sa.expect("slot a"), sb.expect("slot b"));
                    let pick = header::pick(&sa, &sb).expect("unwrapped header parses");
                    assert_eq!(pick.header.state, VolumeState::Active);
                    let key = match svc {
                        Svc::Fake => self.fake().last_dec.clone(),
                        _ => None,
                    };
                    if let Some(k) = &key {
                        assert!(pick.header.verify_mac(k).is_ok(), "MAC not under the key");
                        assert_eq!(k.len(), pick.header.params.suite.key_size().key_len());
                    }
                    self.xst[i] = XState::Live {
                        key,
                        backend: Backend::detect(),
                    };
                } else {
                    assert_eq!(self.xts.0.to_vec(), before, "context changed on {s:?}");
                }
            }
            Op::HeaderBuild {
                params,
                blob,
                sequence,
                dek,
                out,
                overlap,
            } => self.header_build(params, blob, *sequence, dek, *out, *overlap, &mut hold),
            Op::HeaderUnwrapExpect {
                ctx,
                kms,
                principal,
                a,
                b,
                id,
                slot_null,
            } => {
                let (cp, i) = self.xts_ptr(*ctx);
                let (t, svc) = self.kms_table(*kms, &mut hold);
                let (p, _) = hold.s(principal, Role::Principal);
                let sa = self.slot(a);
                let sb = self.slot(b);
                let want = self.id_arg(*id);
                let idp = want.map_or(null(), |w| hold.keep(w.to_vec()).cast_const());
                let mut vs = Buf::typed::<c_int>(*slot_null);
                let before = self.xts.0.to_vec();
                if svc == Svc::Fake {
                    self.fake().last_dec = None;
                }
                // SAFETY: as for `HeaderUnwrap`; the id NULL or 16 bytes.
                let s = st(unsafe {
                    envol_ffi::envol_header_unwrap_expect(
                        cp,
                        t,
                        p,
                        sa.as_ref().map_or(null(), |v| v.as_ptr()),
                        sb.as_ref().map_or(null(), |v| v.as_ptr()),
                        idp,
                        vs.cast(),
                    )
                });
                let id_of = |v: &Option<Vec<u8>>| {
                    v.as_ref()
                        .and_then(|v| Header::parse(v).ok().map(|h| h.params.volume_id))
                };
                let ids = [id_of(&sa), id_of(&sb)];
                if let Some(w) = want
                    && !ids.contains(&Some(w))
                {
                    assert_ne!(s, OK, "unwrapped a header of another volume");
                }
                if s == OK {
                    assert!(Self::xts_aligned(*ctx));
                    let slot: c_int = if *slot_null { 0 } else { vs.read() };
                    assert!(slot == 0 || slot == 1, "verified slot {slot}");
                    assert!(vs.slack_intact());
                    let v = if slot == 0 { &sa } else { &sb };
                    let h = Header::parse(v.as_ref().expect("verified slot given"))
                        .expect("the verified copy parses");
                    assert_eq!(h.state, VolumeState::Active);
                    if let Some(w) = want {
                        assert_eq!(h.params.volume_id, w, "verified a copy of another volume");
                    }
                    let key = match svc {
                        Svc::Fake => self.fake().last_dec.clone(),
                        _ => None,
                    };
                    if let Some(k) = &key {
                        assert!(h.verify_mac(k).is_ok(), "MAC not under the key");
                    }
                    self.xst[i] = XState::Live {
                        key,
                        backend: Backend::detect(),
                    };
                } else {
                    assert_eq!(self.xts.0.to_vec(), before, "context changed on {s:?}");
                    assert!(vs.intact(), "verified slot written on {s:?}");
                }
            }
            _ => unreachable!("not a header op: {op:?}"),
        }
        drop(hold);
    }

    fn header_parse(
        &mut self,
        a: &SlotArg,
        b: &SlotArg,
        blob: OutArg,
        nulls: u8,
        misalign: u8,
        overlap: Option<u16>,
    ) {
        let mut sa = self.slot(a);
        let sb = self.slot(b);
        let m = usize::from(misalign % 8);
        let mut p = Buf::new(size_of::<envol_volume_params>(), 8, m, nulls & 1 != 0);
        let mut seq = Buf::new(8, 8, m, nulls & 2 != 0);
        let (mut bo, mut cap) = out_buf(blob, MAX_BLOB);
        let mut bl = Buf::new(8, 8, m, nulls & 4 != 0);
        let mut rep = Buf::new(4, 4, m, nulls & 8 != 0);
        let before_a = sa.clone();
        let mut bp = bo.ptr();
        if let (Some(o), Some(s)) = (overlap, sa.as_mut()) {
            let o = usize::from(o) % SLOT_SIZE;
            // SAFETY: inside slot A.
            bp = unsafe { s.as_mut_ptr().add(o) };
            cap = cap.min(SLOT_SIZE - o);
        }
        // SAFETY: slots NULL or 4096 readable bytes; outputs NULL or valid.
        let s = st(unsafe {
            envol_ffi::envol_header_parse(
                sa.as_ref().map_or(null(), |v| v.as_ptr()),
                sb.as_ref().map_or(null(), |v| v.as_ptr()),
                p.cast(),
                seq.cast(),
                bp,
                cap,
                bl.cast(),
                rep.cast(),
            )
        });
        assert_eq!(sa, before_a, "slot A changed");
        let core = match (&sa, &sb) {
            (Some(x), Some(y)) => header::pick(x, y).ok().map(|pk| {
                (
                    c_params(&pk.header.params),
                    pk.header.sequence,
                    pk.header.blob.to_vec(),
                    if pk.other_needs_repair {
                        1 - pk.slot as c_int
                    } else {
                        -1
                    },
                )
            }),
            _ => None,
        };
        if s == OK {
            let (cpar, cseq, cblob, crep) = core.expect("the core parses what the ABI parsed");
            assert_eq!(p.read::<envol_volume_params>(), cpar);
            assert_eq!(seq.read::<u64>(), cseq);
            let n: usize = bl.read();
            assert_eq!(n, cblob.len());
            assert_eq!(rep.read::<c_int>(), crep);
            assert!(overlap.is_none());
            assert_eq!(&bo.bytes()[..n], &cblob[..]);
            assert!(bo.intact_after(n));
            push_pool(&mut self.params, cpar);
            push_pool(
                &mut self.blobs,
                PoolBlob {
                    bytes: cblob,
                    dek: None,
                },
            );
        } else {
            assert!(p.intact() && seq.intact() && bo.intact() && bl.intact() && rep.intact());
            if nulls & 15 == 0
                && !matches!(blob.cap, Cap::Wild(_))
                && overlap.is_none()
                && !blob.null
                && let Some((_, _, cblob, _)) = &core
            {
                assert!(cblob.len() > cap, "refused a header the core picks: {s:?}");
            }
        }
    }

    fn header_context(
        &mut self,
        params: &ParamsArg,
        strings: OutArg,
        nulls: u8,
        overlap: bool,
        hold: &mut Hold,
    ) {
        let (pp, pv) = self.params_ptr(params, hold);
        let (mut sbuf, cap) = out_buf(strings, 256);
        let mut pairs = Buf::new(
            ENVOL_HEADER_CONTEXT_PAIRS * size_of::<envol_kv>(),
            8,
            usize::from(strings.misalign % 8),
            nulls & 1 != 0,
        );
        let mut n = Buf::new(8, 8, 1, nulls & 2 != 0);
        let pairs_ptr: *mut envol_kv = if overlap && !sbuf.null && sbuf.len >= 160 {
            // Inside the strings buffer.
            sbuf.ptr().wrapping_add(sbuf.len / 2).cast()
        } else {
            pairs.cast()
        };
        // SAFETY: every pointer NULL or valid as documented.
        let s = st(unsafe {
            envol_ffi::envol_header_context(pp, pairs_ptr, sbuf.cast(), cap, n.cast())
        });
        if s != OK {
            assert!(
                sbuf.intact() && pairs.intact() && n.intact(),
                "output written on {s:?}"
            );
            return;
        }
        assert!(!overlap || sbuf.null || sbuf.len < 160);
        let params = rust_params(&pv.expect("params")).expect("accepted params are valid");
        assert_eq!(n.read::<usize>(), ENVOL_HEADER_CONTEXT_PAIRS);
        let shell = Header {
            params,
            state: VolumeState::Active,
            sequence: 0,
            blob: &[],
            mac: [0; 32],
        };
        let strs = shell.context_strings();
        let expect: Vec<(&str, &str)> = strs.context().iter().collect();
        let lo = sbuf.ptr() as usize;
        let hi = lo + cap.min(sbuf.len);
        for (j, (k, v)) in expect.iter().enumerate() {
            // SAFETY: inside `pairs`.
            let kv = unsafe {
                pairs
                    .ptr()
                    .add(j * size_of::<envol_kv>())
                    .cast::<envol_kv>()
                    .read_unaligned()
            };
            for (ptr, want) in [(kv.key, k), (kv.value, v)] {
                let a = ptr as usize;
                assert!(a >= lo && a < hi, "pair points outside the strings");
                // SAFETY: inside the strings buffer, NUL-terminated.
                let got = unsafe { CStr::from_ptr(ptr) };
                assert_eq!(got.to_str().ok(), Some(*want));
            }
        }
    }

    fn header_build(
        &mut self,
        params: &ParamsArg,
        blob: &BlobArg,
        sequence: u64,
        dek: &KeyArg,
        out: OutArg,
        overlap: u8,
        hold: &mut Hold,
    ) {
        let (pp, pv) = self.params_ptr(params, hold);
        let (mut bp, bl, bbytes, _) = self.blob(blob, hold);
        let (mut dp, dl, dbytes) = self.key(dek, hold, 3);
        // The slot output is always a whole slot (its size is fixed).
        let mut o = Buf::new(SLOT_SIZE, 16, usize::from(out.misalign % 16), out.null);
        let overlapping = !overlap.is_multiple_of(3) && !o.null;
        if overlapping {
            let inside = o.ptr().wrapping_add(SLOT_SIZE / 2);
            if overlap % 3 == 1 && !bp.is_null() && bl <= SLOT_SIZE / 2 {
                // SAFETY: `bl` bytes fit in the second half of the slot.
                unsafe { std::ptr::copy_nonoverlapping(bp, inside, bl) };
                bp = inside.cast_const();
            } else if overlap % 3 == 2 && !dp.is_null() && dl <= SLOT_SIZE / 2 {
                // SAFETY: as above.
                unsafe { std::ptr::copy_nonoverlapping(dp, inside, dl) };
                dp = inside.cast_const();
            }
        }
        let before = o.mem.clone();
        // SAFETY: every pointer NULL or valid as documented.
        let s = st(unsafe { envol_ffi::envol_header_build(pp, bp, bl, sequence, dp, dl, o.ptr()) });
        if s != OK {
            assert_eq!(o.mem, before, "slot written on {s:?}");
            return;
        }
        assert!(o.slack_intact());
        let slot = o.bytes().to_vec();
        let h = Header::parse(&slot).expect("a built header parses");
        let want = rust_params(&pv.expect("params")).expect("valid");
        assert_eq!(h.params, want);
        assert_eq!(h.sequence, sequence);
        assert_eq!(h.state, VolumeState::Active);
        assert_eq!(h.blob, &bbytes[..]);
        let key = dbytes.expect("key");
        assert!(h.verify_mac(&key).is_ok(), "built MAC does not verify");
        // SAFETY: 4096 readable bytes.
        assert_eq!(
            st(unsafe { envol_ffi::envol_header_check(slot.as_ptr()) }),
            OK
        );
        push_pool(&mut self.built, slot);
    }
}
