//! `envol_envelope_seal` / `envol_envelope_open` against the core envelope.

use std::ptr::null;

use envol::envelope::{Context, MAX_BLOB, MasterKey};

use super::args::{CtxKv, Key32, KeyArg, OutArg, Role, S};
use super::buffers::{Buf, Hold, out_buf};
use super::ops::Op;
use super::values::root_bytes;
use super::{OK, PoolBlob, State, push_pool, st};

impl State {
    /// Runs an envelope op.
    pub(super) fn run_envelope(&mut self, op: &Op) {
        let mut hold = Hold::default();
        match op {
            Op::EnvelopeSeal {
                master,
                key_id,
                version,
                ctx,
                secret,
                nonce,
                out,
                len_null,
            } => self.envelope_seal(
                *master, key_id, *version, ctx, secret, *nonce, *out, *len_null, &mut hold,
            ),
            Op::EnvelopeOpen {
                master,
                blob,
                ctx,
                out,
                len_null,
            } => {
                let m = root_bytes(*master).map_or(null(), |r| hold.keep(r.to_vec()).cast_const());
                let (bp, bl, _, _) = self.blob(blob, &mut hold);
                let (cp, cn, _) = hold.ctx(ctx, &self.params);
                let (mut buf, cap) = out_buf(*out, envol::envelope::MAX_SECRET);
                let mut len = Buf::typed::<usize>(*len_null);
                // SAFETY: every pointer NULL or valid as documented.
                let s = st(unsafe {
                    envol_ffi::envol_envelope_open(m, bp, bl, cp, cn, buf.cast(), cap, len.cast())
                });
                if s == OK {
                    let n: usize = len.read();
                    assert!(n >= 1 && n <= cap);
                    assert!(buf.intact_after(n));
                } else {
                    assert!(buf.intact() && len.intact(), "output written on {s:?}");
                }
            }
            _ => unreachable!("not an envelope op: {op:?}"),
        }
        drop(hold);
    }

    fn envelope_seal(
        &mut self,
        master: Key32,
        key_id: &S,
        version: u32,
        ctx: &CtxKv,
        secret: &KeyArg,
        nonce: Option<[u8; 12]>,
        out: OutArg,
        len_null: bool,
        hold: &mut Hold,
    ) {
        let m = root_bytes(master);
        let mp = m.map_or(null(), |r| hold.keep(r.to_vec()).cast_const());
        let (id, id_s) = hold.s(key_id, Role::KeyId);
        let (cp, cn, pairs) = hold.ctx(ctx, &self.params);
        let (sp, sl, secret_bytes) = self.key(secret, hold, 1);
        let np = nonce.map_or(null(), |n| hold.keep(n.to_vec()).cast_const());
        let (mut buf, cap) = out_buf(out, MAX_BLOB);
        let mut len = Buf::typed::<usize>(len_null);
        // SAFETY: every pointer NULL or valid as documented.
        let s = st(unsafe {
            envol_ffi::envol_envelope_seal(
                mp,
                id,
                version,
                cp,
                cn,
                sp,
                sl,
                np,
                buf.cast(),
                cap,
                len.cast(),
            )
        });
        if s != OK {
            assert!(buf.intact() && len.intact(), "output written on {s:?}");
            return;
        }
        let n: usize = len.read();
        assert!(n > 0 && n <= cap);
        assert!(buf.intact_after(n));
        let blob = buf.bytes()[..n].to_vec();
        let (m, id_s, pairs, secret_bytes, nonce) = (
            m.expect("master"),
            id_s.expect("key id"),
            pairs.expect("context"),
            secret_bytes.expect("secret"),
            nonce.expect("nonce"),
        );
        // The same bytes as the core's seal.
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let context = Context::new(&refs).expect("accepted context");
        let mut expect = vec![0u8; MAX_BLOB];
        let en = MasterKey::from_bytes(m)
            .seal_with_nonce(&id_s, version, &context, &secret_bytes, &nonce, &mut expect)
            .expect("core seals what the ABI sealed");
        assert_eq!(&expect[..en], &blob[..], "ABI seal differs from core seal");
        // And it opens again to the secret.
        let mut plain = Buf::new(envol::envelope::MAX_SECRET, 1, 0, false);
        let mut pl = Buf::typed::<usize>(false);
        // SAFETY: valid pointers.
        let s2 = st(unsafe {
            envol_ffi::envol_envelope_open(
                mp,
                blob.as_ptr(),
                n,
                cp,
                cn,
                plain.cast(),
                envol::envelope::MAX_SECRET,
                pl.cast(),
            )
        });
        assert_eq!(s2, OK);
        let pn: usize = pl.read();
        assert_eq!(&plain.bytes()[..pn], &secret_bytes[..]);
        push_pool(
            &mut self.blobs,
            PoolBlob {
                bytes: blob,
                dek: None,
            },
        );
    }
}
