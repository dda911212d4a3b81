//! The local key service through the ABI (`envol_local_kms_*`): handles,
//! keys, policies, grants, sealed stores, data keys; and the key-service
//! tables volumes and contexts are given.

use std::ffi::c_char;
use std::mem::size_of;
use std::ptr::{null, null_mut};

use envol::envelope::MAX_BLOB;
use envol_ffi::{ENVOL_GRANT_ID_SIZE, envol_kms_callbacks, envol_local_kms, envol_status};

use super::args::{
    CtxKv, DekLen, GrantArg, Key32, KmsArg, KmsSrc, LocalArg, Manage, OutArg, Role, S,
};
use super::buffers::{Buf, Hold, out_buf, wild};
use super::fake_kms::{fake_decrypt, fake_generate, fake_re_encrypt};
use super::ops::Op;
use super::values::{apply_edits, root_bytes};
use super::{MAX_BUF, N_KMS, OK, PoolBlob, State, newest, push_pool, st};

/// Which key service a volume's stored table calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Svc {
    Local(usize),
    Fake,
    None,
}

impl State {
    /// Runs a local key-service op.
    pub(super) fn run_kms(&mut self, op: &Op) {
        let mut hold = Hold::default();
        match op {
            Op::KmsNew { slot, null } => {
                let i = usize::from(*slot) % N_KMS;
                let mut out = Buf::typed::<*mut envol_local_kms>(*null);
                // SAFETY: NULL or a writable pointer slot.
                let s = st(unsafe { envol_ffi::envol_local_kms_new(out.cast()) });
                if *null {
                    assert_eq!(s, envol_status::ENVOL_ERR_NULL_POINTER);
                } else {
                    assert_eq!(s, OK);
                    self.free_local(i);
                    self.kms[i] = out.read();
                    assert!(!self.kms[i].is_null());
                }
            }
            Op::KmsFree { slot } => self.free_local(usize::from(*slot) % N_KMS),
            Op::KmsCreateKey {
                kms,
                creator,
                key_id,
                policy,
            } => {
                let k = self.local(*kms);
                let (c, _) = hold.s(creator, Role::Principal);
                let (id, _) = hold.s(key_id, Role::KeyId);
                let p = hold.policy(policy);
                // SAFETY: every pointer is NULL or valid as documented.
                let s = st(unsafe { envol_ffi::envol_local_kms_create_key(k, c, id, p) });
                if !self.local_ok(*kms) {
                    assert_ne!(s, OK);
                }
            }
            Op::KmsPutPolicy {
                kms,
                principal,
                key_id,
                policy,
            } => {
                let k = self.local(*kms);
                let (p, _) = hold.s(principal, Role::Principal);
                let (id, _) = hold.s(key_id, Role::KeyId);
                let pol = hold.policy(policy);
                // SAFETY: as above.
                let s = st(unsafe { envol_ffi::envol_local_kms_put_key_policy(k, p, id, pol) });
                if !self.local_ok(*kms) {
                    assert_ne!(s, OK);
                }
            }
            Op::KmsManage {
                kms,
                what,
                principal,
                key_id,
                out_null,
            } => self.kms_manage(*kms, *what, principal, key_id, *out_null, &mut hold),
            Op::KmsDescribe {
                kms,
                principal,
                key_id,
                nulls,
            } => {
                let k = self.local(*kms);
                let (p, _) = hold.s(principal, Role::Principal);
                let (id, _) = hold.s(key_id, Role::KeyId);
                let mut state = Buf::typed::<u32>(nulls & 1 != 0);
                let mut vers = Buf::typed::<u32>(nulls & 2 != 0);
                // SAFETY: as above; `envol_key_state` is a C enum of `int` size.
                let s = st(unsafe {
                    envol_ffi::envol_local_kms_describe_key(k, p, id, state.cast(), vers.cast())
                });
                if s == OK {
                    assert!(state.read::<u32>() <= 3);
                } else {
                    assert!(state.intact() && vers.intact());
                }
            }
            Op::KmsCreateGrant {
                kms,
                principal,
                key_id,
                grantee,
                ops,
                n_ops,
                ops_misalign,
                kind,
                constraint,
                retiring,
                out,
            } => {
                let k = self.local(*kms);
                let (p, _) = hold.s(principal, Role::Principal);
                let (id, _) = hold.s(key_id, Role::KeyId);
                let (g, _) = hold.s(grantee, Role::Principal);
                let names: Vec<*const c_char> = ops
                    .iter()
                    .take(40)
                    .map(|o| hold.s(o, Role::Action).0)
                    .collect();
                let mut n = names.len();
                if let Some(claimed) = n_ops
                    && usize::from(*claimed) > 32
                {
                    n = usize::from(*claimed);
                }
                let ops_ptr: *const *const c_char = if names.is_empty() {
                    null()
                } else if *ops_misalign {
                    let mut raw = vec![0u8; names.len() * 8 + 16];
                    let base = raw.as_mut_ptr() as usize;
                    let off = (8 - base % 8) % 8 + 3;
                    for (i, q) in names.iter().enumerate() {
                        // SAFETY: inside `raw`.
                        unsafe {
                            raw.as_mut_ptr()
                                .add(off + i * 8)
                                .cast::<*const c_char>()
                                .write_unaligned(*q)
                        };
                    }
                    let q = hold.keep(raw);
                    // SAFETY: inside the kept buffer.
                    unsafe { q.add(off) }.cast_const().cast()
                } else {
                    hold.ptrs.push(names);
                    hold.ptrs.last().map_or(null(), |v| v.as_ptr())
                };
                let (cp, cn, _) = hold.ctx(constraint, &self.params);
                let r = retiring
                    .as_ref()
                    .map_or(null(), |r| hold.s(r, Role::Principal).0);
                let (mut buf, cap) = out_buf(*out, ENVOL_GRANT_ID_SIZE);
                // SAFETY: every pointer NULL or valid as documented; `n`
                // over 32 is refused before the array is read.
                let s = st(unsafe {
                    envol_ffi::envol_local_kms_create_grant(
                        k,
                        p,
                        id,
                        g,
                        ops_ptr,
                        n,
                        *kind,
                        cp,
                        cn,
                        r,
                        buf.cast(),
                        cap,
                    )
                });
                if s == OK {
                    let b = buf.bytes();
                    let nul = b
                        .iter()
                        .position(|&c| c == 0)
                        .expect("grant id NUL-terminated");
                    assert!(nul < ENVOL_GRANT_ID_SIZE && nul > 0);
                    assert!(buf.intact_after(nul + 1));
                    let gid = b[..nul].to_vec();
                    push_pool(&mut self.grants, gid);
                } else {
                    assert!(buf.intact(), "grant id written on {s:?}");
                }
            }
            Op::KmsGrantEnd {
                kms,
                revoke,
                principal,
                key_id,
                grant,
            } => {
                let k = self.local(*kms);
                let (p, _) = hold.s(principal, Role::Principal);
                let (id, _) = hold.s(key_id, Role::KeyId);
                let g = match grant {
                    GrantArg::Pool(i) => match newest(&self.grants, *i) {
                        Some(g) => hold.c(&g.clone()),
                        None => hold.c(b"g-none"),
                    },
                    GrantArg::Str(s) => hold.s(s, Role::Principal).0,
                };
                // SAFETY: as above.
                let s = st(unsafe {
                    if *revoke {
                        envol_ffi::envol_local_kms_revoke_grant(k, p, id, g)
                    } else {
                        envol_ffi::envol_local_kms_retire_grant(k, p, id, g)
                    }
                });
                if !self.local_ok(*kms) {
                    assert_ne!(s, OK);
                }
            }
            Op::KmsCount {
                kms,
                protected,
                principal,
                key_id,
                null,
            } => {
                let k = self.local(*kms);
                let (p, _) = hold.s(principal, Role::Principal);
                let (id, _) = hold.s(key_id, Role::KeyId);
                let mut c = Buf::typed::<usize>(*null);
                // SAFETY: as above.
                let s = st(unsafe {
                    if *protected {
                        envol_ffi::envol_local_kms_protected_volume_count(k, p, id, c.cast())
                    } else {
                        envol_ffi::envol_local_kms_grant_count(k, p, id, c.cast())
                    }
                });
                if s != OK {
                    assert!(c.intact());
                } else {
                    assert!(c.read::<usize>() < 10_000);
                }
            }
            Op::KmsSeal {
                kms,
                root,
                out,
                len_null,
            } => self.kms_seal(*kms, *root, *out, *len_null, &mut hold),
            Op::KmsUnseal {
                slot,
                root,
                store,
                out_null,
            } => {
                let i = usize::from(*slot) % N_KMS;
                let r = root_bytes(*root).map_or(null(), |r| hold.keep(r.to_vec()).cast_const());
                let mut bytes = match &store.raw {
                    Some(v) => v.clone(),
                    None => self.store.clone().unwrap_or_default(),
                };
                apply_edits(&mut bytes, &store.edits);
                let n = bytes.len();
                let p = if store.null {
                    null()
                } else {
                    hold.keep(bytes).cast_const()
                };
                let len = if store.wild { wild(n % 2 == 1) } else { n };
                let mut out = Buf::typed::<*mut envol_local_kms>(*out_null);
                // SAFETY: as above.
                let s = st(unsafe { envol_ffi::envol_local_kms_unseal(r, p, len, out.cast()) });
                if s == OK {
                    assert!(!store.wild && !store.null && !r.is_null());
                    self.free_local(i);
                    self.kms[i] = out.read();
                    // A handle that opens keeps a verifying audit chain.
                    // SAFETY: the live handle.
                    assert_eq!(
                        st(unsafe { envol_ffi::envol_local_kms_audit_verify(self.kms[i]) }),
                        OK
                    );
                } else {
                    assert!(out.intact());
                }
            }
            Op::KmsGenerate {
                kms,
                principal,
                key_id,
                dek_len,
                ctx,
                dek,
                blob,
                len_null,
            } => self.kms_generate(
                *kms, principal, key_id, *dek_len, ctx, *dek, *blob, *len_null, &mut hold,
            ),
            Op::KmsDecrypt {
                kms,
                principal,
                blob,
                ctx,
                out,
                len_null,
            } => {
                let k = self.local(*kms);
                let (p, _) = hold.s(principal, Role::Principal);
                let (bp, bl, _, known) = self.blob(blob, &mut hold);
                let (cp, cn, _) = hold.ctx(ctx, &self.params);
                let (mut buf, cap) = out_buf(*out, 64);
                let mut len = Buf::typed::<usize>(*len_null);
                // SAFETY: as above.
                let s = st(unsafe {
                    envol_ffi::envol_local_kms_decrypt_data_key(
                        k,
                        p,
                        bp,
                        bl,
                        cp,
                        cn,
                        buf.cast(),
                        cap,
                        len.cast(),
                    )
                });
                if s == OK {
                    let n: usize = len.read();
                    assert!(n == 32 || n == 64);
                    assert!(buf.intact_after(n));
                    if let Some(d) = known {
                        assert_eq!(&buf.bytes()[..n], &d[..], "unwrapped a different key");
                    }
                    push_pool(&mut self.deks, buf.bytes()[..n].to_vec());
                } else {
                    assert!(buf.intact() && len.intact(), "output written on {s:?}");
                }
            }
            Op::KmsReEncrypt {
                kms,
                principal,
                blob,
                src,
                dest,
                dst,
                out,
                len_null,
            } => {
                let k = self.local(*kms);
                let (p, pname) = hold.s(principal, Role::Principal);
                let (bp, bl, _, known) = self.blob(blob, &mut hold);
                let (sp, sn, _) = hold.ctx(src, &self.params);
                let (d, _) = hold.s(dest, Role::KeyId);
                let (dp, dn, _) = hold.ctx(dst, &self.params);
                let (mut buf, cap) = out_buf(*out, MAX_BLOB);
                let mut len = Buf::typed::<usize>(*len_null);
                // SAFETY: as above.
                let s = st(unsafe {
                    envol_ffi::envol_local_kms_re_encrypt(
                        k,
                        p,
                        bp,
                        bl,
                        sp,
                        sn,
                        d,
                        dp,
                        dn,
                        buf.cast(),
                        cap,
                        len.cast(),
                    )
                });
                if s == OK {
                    let n: usize = len.read();
                    assert!(n > 0 && n <= cap.min(MAX_BLOB));
                    assert!(buf.intact_after(n));
                    let new = buf.bytes()[..n].to_vec();
                    // The new blob holds the same key: check when allowed.
                    if pname.is_some() {
                        let mut dek = Buf::new(64, 8, 0, false);
                        let mut dl = Buf::typed::<usize>(false);
                        // SAFETY: as above.
                        let s2 = st(unsafe {
                            envol_ffi::envol_local_kms_decrypt_data_key(
                                k,
                                p,
                                new.as_ptr(),
                                new.len(),
                                dp,
                                dn,
                                dek.cast(),
                                64,
                                dl.cast(),
                            )
                        });
                        if s2 == OK
                            && let Some(d) = &known
                        {
                            let n2: usize = dl.read();
                            assert_eq!(&dek.bytes()[..n2], &d[..], "re-encrypt changed the key");
                        }
                    }
                    push_pool(
                        &mut self.blobs,
                        PoolBlob {
                            bytes: new,
                            dek: known,
                        },
                    );
                } else {
                    assert!(buf.intact() && len.intact(), "output written on {s:?}");
                }
            }
            Op::KmsCallbacks { kms, null } => {
                let k = self.local(*kms);
                let mut t = Buf::typed::<envol_kms_callbacks>(*null);
                // SAFETY: as above.
                let s = st(unsafe { envol_ffi::envol_local_kms_callbacks(k, t.cast()) });
                if s == OK {
                    let table: envol_kms_callbacks = t.read();
                    assert_eq!(table.user, k.cast());
                } else {
                    assert!(t.intact());
                }
            }
            Op::KmsServicePolicy {
                kms,
                principal,
                policy,
            } => {
                let k = self.local(*kms);
                let (p, _) = hold.s(principal, Role::Principal);
                let pol = hold.policy(policy);
                // SAFETY: every pointer NULL or valid as documented.
                let s = st(unsafe { envol_ffi::envol_local_kms_set_service_policy(k, p, pol) });
                if !self.local_ok(*kms) {
                    assert_ne!(s, OK);
                }
            }
            Op::KmsForgetVolume {
                kms,
                principal,
                key_id,
                ctx,
            } => {
                let k = self.local(*kms);
                let (p, _) = hold.s(principal, Role::Principal);
                let (id, _) = hold.s(key_id, Role::KeyId);
                let (cp, cn, _) = hold.ctx(ctx, &self.params);
                let count = |k| {
                    let mut c = 0usize;
                    // SAFETY: a live handle (or NULL), strings, an output.
                    let s = st(unsafe {
                        envol_ffi::envol_local_kms_protected_volume_count(
                            k,
                            c"op".as_ptr(),
                            id,
                            &mut c,
                        )
                    });
                    (s == OK).then_some(c)
                };
                let before = count(k);
                // SAFETY: as above.
                let s = st(unsafe { envol_ffi::envol_local_kms_forget_volume(k, p, id, cp, cn) });
                if !self.local_ok(*kms) {
                    assert_ne!(s, OK);
                }
                let after = count(k);
                if let (Some(b), Some(a)) = (before, after) {
                    if s == OK {
                        assert!(a <= b, "forgetting added a protected volume");
                    } else {
                        assert_eq!(a, b, "a refused forget changed the count");
                    }
                }
            }
            _ => unreachable!("not a key-service op: {op:?}"),
        }
        drop(hold);
    }

    pub(super) fn local(&self, a: LocalArg) -> *mut envol_local_kms {
        let h = self.kms[usize::from(a.slot) % N_KMS];
        if a.null || h.is_null() {
            return null_mut();
        }
        let m = usize::from(a.misalign % 8);
        h.cast::<u8>().wrapping_add(m).cast()
    }

    pub(super) fn local_ok(&self, a: LocalArg) -> bool {
        !a.null && a.misalign.is_multiple_of(8) && !self.kms[usize::from(a.slot) % N_KMS].is_null()
    }

    /// A key-service table; the service it names.
    pub(super) fn kms_table(
        &mut self,
        a: KmsArg,
        hold: &mut Hold,
    ) -> (*const envol_kms_callbacks, Svc) {
        let mut t = envol_kms_callbacks {
            user: null_mut(),
            generate_data_key: None,
            decrypt_data_key: None,
            re_encrypt: None,
            retire_context: None,
        };
        let svc = match a.src {
            KmsSrc::Local(i) => {
                let i = usize::from(i) % N_KMS;
                let h = self.kms[i];
                if h.is_null() {
                    return (null(), Svc::None);
                }
                let mut raw = Buf::typed::<envol_kms_callbacks>(false);
                // SAFETY: a live handle and a writable, aligned table.
                let s = st(unsafe {
                    envol_ffi::envol_local_kms_callbacks(h, raw.cast::<envol_kms_callbacks>())
                });
                assert_eq!(s, OK);
                t = raw.read();
                assert!(t.user == h.cast() && t.decrypt_data_key.is_some());
                Svc::Local(i)
            }
            KmsSrc::Fake => {
                t.user = self.fake.cast();
                t.generate_data_key = Some(fake_generate);
                t.decrypt_data_key = Some(fake_decrypt);
                t.re_encrypt = Some(fake_re_encrypt);
                Svc::Fake
            }
            KmsSrc::Null => return (null(), Svc::None),
            KmsSrc::Empty => Svc::None,
        };
        if a.drop & 1 != 0 {
            t.generate_data_key = None;
        }
        if a.drop & 2 != 0 {
            t.decrypt_data_key = None;
        }
        if a.drop & 4 != 0 {
            t.re_encrypt = None;
        }
        let m = usize::from(a.misalign % 8);
        let mut raw = vec![0u8; size_of::<envol_kms_callbacks>() + 16];
        let base = raw.as_mut_ptr() as usize;
        let off = (8 - base % 8) % 8 + m;
        // SAFETY: inside `raw`.
        unsafe {
            raw.as_mut_ptr()
                .add(off)
                .cast::<envol_kms_callbacks>()
                .write_unaligned(t)
        };
        let p = hold.keep(raw);
        // SAFETY: inside the kept buffer.
        (unsafe { p.add(off) }.cast_const().cast(), svc)
    }

    /// Frees local handle `i` (its volumes closed first).
    fn free_local(&mut self, i: usize) {
        self.close_users_of(i);
        let h = std::mem::replace(&mut self.kms[i], null_mut());
        // SAFETY: NULL or a live handle from new/unseal, freed once.
        unsafe { envol_ffi::envol_local_kms_free(h) };
        // A new handle in this slot starts without a sink.
        let sink = self.sink(i);
        sink.installed = false;
        sink.fail = false;
        sink.lines.clear();
    }

    fn kms_manage(
        &mut self,
        kms: LocalArg,
        what: Manage,
        principal: &S,
        key_id: &S,
        out_null: bool,
        hold: &mut Hold,
    ) {
        let k = self.local(kms);
        let (p, _) = hold.s(principal, Role::Principal);
        let (id, _) = hold.s(key_id, Role::KeyId);
        let mut out = Buf::typed::<u64>(out_null);
        // SAFETY: every pointer NULL or valid as documented.
        let s = st(unsafe {
            match what {
                Manage::Enable => envol_ffi::envol_local_kms_enable_key(k, p, id),
                Manage::Disable => envol_ffi::envol_local_kms_disable_key(k, p, id),
                Manage::CancelDeletion => envol_ffi::envol_local_kms_cancel_key_deletion(k, p, id),
                Manage::EnableRotation(d) => {
                    envol_ffi::envol_local_kms_enable_key_rotation(k, p, id, d)
                }
                Manage::DisableRotation => {
                    envol_ffi::envol_local_kms_disable_key_rotation(k, p, id)
                }
                Manage::Rotate => envol_ffi::envol_local_kms_rotate_key(k, p, id, out.cast()),
                Manage::ScheduleDeletion { days, force } => {
                    envol_ffi::envol_local_kms_schedule_key_deletion(
                        k,
                        p,
                        id,
                        days,
                        force,
                        out.cast(),
                    )
                }
            }
        });
        if s != OK {
            assert!(out.intact(), "output written on {s:?}");
        } else {
            match what {
                Manage::Rotate => assert!(out.intact_after(4) && out.read::<u32>() >= 2),
                Manage::ScheduleDeletion { days, .. } => {
                    assert!((7..=30).contains(&days));
                    assert!(out.read::<u64>() > 0);
                }
                _ => assert!(out.intact()),
            }
        }
        if !self.local_ok(kms) {
            assert_ne!(s, OK);
        }
    }

    fn kms_seal(
        &mut self,
        kms: LocalArg,
        root: Key32,
        out: OutArg,
        len_null: bool,
        hold: &mut Hold,
    ) {
        let k = self.local(kms);
        let r = root_bytes(root);
        let rp = r.map_or(null(), |r| hold.keep(r.to_vec()).cast_const());
        let (mut buf, cap) = out_buf(out, MAX_BUF);
        let mut len = Buf::typed::<usize>(len_null);
        // SAFETY: every pointer NULL or valid as documented.
        let s = st(unsafe { envol_ffi::envol_local_kms_seal(k, rp, buf.cast(), cap, len.cast()) });
        match s {
            OK => {
                let n: usize = len.read();
                assert!(n > 0 && n <= cap);
                assert!(buf.intact_after(n));
                let bytes = buf.bytes()[..n].to_vec();
                // What seals, unseals under the same root.
                let mut h = Buf::typed::<*mut envol_local_kms>(false);
                // SAFETY: valid pointers.
                let s2 = st(unsafe {
                    envol_ffi::envol_local_kms_unseal(rp, bytes.as_ptr(), bytes.len(), h.cast())
                });
                assert_eq!(s2, OK, "own store does not unseal");
                // SAFETY: the new handle, freed once.
                unsafe { envol_ffi::envol_local_kms_free(h.read()) };
                self.store = Some(bytes);
            }
            envol_status::ENVOL_ERR_BUFFER_TOO_SMALL => {
                assert!(buf.intact());
                assert!(len.read::<usize>() > cap);
            }
            _ => assert!(buf.intact() && len.intact(), "output written on {s:?}"),
        }
    }

    fn kms_generate(
        &mut self,
        kms: LocalArg,
        principal: &S,
        key_id: &S,
        dek_len: DekLen,
        ctx: &CtxKv,
        dek: OutArg,
        blob: OutArg,
        len_null: bool,
        hold: &mut Hold,
    ) {
        let k = self.local(kms);
        let (p, _) = hold.s(principal, Role::Principal);
        let (id, _) = hold.s(key_id, Role::KeyId);
        let (cp, cn, _) = hold.ctx(ctx, &self.params);
        let dl = match dek_len {
            DekLen::L64 => 64,
            DekLen::L32 => 32,
            DekLen::Raw(n) => usize::from(n),
            DekLen::Max => usize::MAX,
        };
        // The key buffer is always 64 bytes: the library writes `dek_len`
        // bytes only once it is 32 or 64.
        let mut d = Buf::new(64, 16, usize::from(dek.misalign % 16), dek.null);
        let (mut b, cap) = out_buf(blob, MAX_BLOB);
        let mut len = Buf::typed::<usize>(len_null);
        // SAFETY: every pointer NULL or valid as documented.
        let s = st(unsafe {
            envol_ffi::envol_local_kms_generate_data_key(
                k,
                p,
                id,
                dl,
                cp,
                cn,
                d.cast(),
                b.cast(),
                cap,
                len.cast(),
            )
        });
        if s == OK {
            let n: usize = len.read();
            assert!(dl == 32 || dl == 64);
            assert!(n > 0 && n <= cap);
            assert!(d.intact_after(dl) && b.intact_after(n));
            let key = d.bytes()[..dl].to_vec();
            let bytes = b.bytes()[..n].to_vec();
            // What was wrapped unwraps to the same key, when allowed.
            let mut back = Buf::new(64, 8, 0, false);
            let mut bl = Buf::typed::<usize>(false);
            // SAFETY: as above.
            let s2 = st(unsafe {
                envol_ffi::envol_local_kms_decrypt_data_key(
                    k,
                    p,
                    bytes.as_ptr(),
                    n,
                    cp,
                    cn,
                    back.cast(),
                    64,
                    bl.cast(),
                )
            });
            if s2 == OK {
                assert_eq!(bl.read::<usize>(), dl);
                assert_eq!(&back.bytes()[..dl], &key[..], "generate/decrypt disagree");
            }
            push_pool(&mut self.deks, key.clone());
            push_pool(
                &mut self.blobs,
                PoolBlob {
                    bytes,
                    dek: Some(key),
                },
            );
        } else {
            assert!(
                d.intact() && b.intact() && len.intact(),
                "output written on {s:?}"
            );
        }
    }
}
