//! The local key service's audit log through the ABI: events, head,
//! verification of exported lines, and audit sinks (that keep lines or
//! fail).

use std::ffi::{c_char, c_int, c_void};
use std::ptr::null;

use envol_ffi::{envol_local_kms, envol_status};

use super::args::{LocalArg, OutArg};
use super::buffers::{Buf, out_buf};
use super::ops::Op;
use super::{N_KMS, OK, State, st};

/// A harness audit sink: keeps the lines it gets, or fails when told to.
pub(super) struct Sink {
    pub(super) installed: bool,
    pub(super) fail: bool,
    pub(super) lines: Vec<Vec<u8>>,
}

unsafe extern "C" fn audit_sink(user: *mut c_void, line: *const c_char, len: usize) -> c_int {
    // SAFETY: `user` is a live `Sink` reached only through this pointer
    // while a call runs; `line` is valid for `len + 1` reads (the contract).
    unsafe {
        let s = &mut *user.cast::<Sink>();
        if s.fail {
            return 5;
        }
        let l = std::slice::from_raw_parts(line.cast::<u8>(), len + 1);
        assert_eq!(l[len], 0, "sink line not NUL-terminated");
        assert!(!l[..len].contains(&0) && !l[..len].contains(&b'\n'));
        if s.lines.len() >= 64 {
            s.lines.remove(0);
        }
        s.lines.push(l[..len].to_vec());
        0
    }
}

impl State {
    /// Runs an audit op.
    pub(super) fn run_audit(&mut self, op: &Op) {
        match op {
            Op::KmsAudit {
                kms,
                index,
                out,
                len_null,
            } => self.kms_audit(*kms, usize::from(*index), *out, *len_null),
            Op::KmsAuditHead { kms, out, len_null } => self.kms_audit_head(*kms, *out, *len_null),
            Op::KmsAuditVerifyLines {
                kms,
                lines,
                mutate,
                head,
                from_genesis,
            } => self.kms_audit_verify_lines(*kms, *lines, *mutate, *head, *from_genesis),
            Op::KmsAuditSink { kms, mode, probe } => self.kms_audit_sink(*kms, *mode, *probe),
            _ => unreachable!("not an audit op: {op:?}"),
        }
    }

    pub(super) fn sink(&mut self, i: usize) -> &mut Sink {
        // SAFETY: as for `fake` (fake_kms.rs).
        unsafe { &mut *self.sinks[i % N_KMS] }
    }

    /// For every handle whose sink fails: the handle and its next audit
    /// sequence number.
    pub(super) fn failing_sinks(&mut self) -> Vec<(usize, *mut envol_local_kms, u64)> {
        let mut v = Vec::new();
        for i in 0..N_KMS {
            let h = self.kms[i];
            if h.is_null() || !(self.sink(i).installed && self.sink(i).fail) {
                continue;
            }
            let (mut first, mut next) = (0u64, 0u64);
            // SAFETY: a live handle; writable outputs.
            let r = st(unsafe { envol_ffi::envol_local_kms_audit_range(h, &mut first, &mut next) });
            assert_eq!(r, OK);
            v.push((i, h, next));
        }
        v
    }

    fn kms_audit_head(&mut self, kms: LocalArg, out: OutArg, len_null: bool) {
        let k = self.local(kms);
        let (mut buf, cap) = out_buf(out, envol_ffi::ENVOL_AUDIT_HEAD_SIZE);
        let mut len = Buf::typed::<usize>(len_null);
        // SAFETY: every pointer NULL or valid as documented.
        let s =
            st(unsafe { envol_ffi::envol_local_kms_audit_head(k, buf.cast(), cap, len.cast()) });
        match s {
            OK => {
                assert!(self.local_ok(kms));
                let l: usize = len.read();
                assert!(l < cap && l < envol_ffi::ENVOL_AUDIT_HEAD_SIZE);
                let head = &buf.bytes()[..=l];
                assert_eq!(head[l], 0);
                assert!(buf.intact_after(l + 1));
                let (mut first, mut next) = (0u64, 0u64);
                // SAFETY: as above.
                let r =
                    st(unsafe { envol_ffi::envol_local_kms_audit_range(k, &mut first, &mut next) });
                assert_eq!(r, OK);
                if next == 0 {
                    assert_eq!(l, 0, "a head before any event");
                } else {
                    let text = std::str::from_utf8(&head[..l]).expect("ASCII head");
                    assert!(
                        text.starts_with(&format!("seq={} hash=", next - 1)),
                        "head {text:?} is not event {}",
                        next - 1
                    );
                    let h: envol::kms::audit::AuditHead = text.parse().expect("head parses");
                    assert_eq!(h.to_string(), text);
                }
            }
            envol_status::ENVOL_ERR_BUFFER_TOO_SMALL => {
                assert!(buf.intact());
                let need: usize = len.read();
                assert!(need > cap && need <= envol_ffi::ENVOL_AUDIT_HEAD_SIZE);
            }
            _ => assert!(buf.intact() && len.intact(), "output written on {s:?}"),
        }
        if !self.local_ok(kms) {
            assert_ne!(s, OK);
        }
    }

    /// The current head of a live handle, NUL-terminated.
    fn audit_head(k: *mut envol_local_kms) -> Vec<u8> {
        let mut b = vec![0u8; envol_ffi::ENVOL_AUDIT_HEAD_SIZE];
        let mut l = 0usize;
        // SAFETY: a live handle and a buffer of the size that suffices.
        let s = st(unsafe {
            envol_ffi::envol_local_kms_audit_head(k, b.as_mut_ptr().cast(), b.len(), &mut l)
        });
        assert_eq!(s, OK);
        b.truncate(l + 1);
        b
    }

    fn kms_audit_verify_lines(
        &mut self,
        kms: LocalArg,
        lines: u8,
        mutate: Option<(u16, u8)>,
        head: u8,
        from_genesis: bool,
    ) {
        let k = self.local(kms);
        if !self.local_ok(kms) {
            // SAFETY: NULL or misaligned: refused before anything is read.
            let s = st(unsafe {
                envol_ffi::envol_local_kms_audit_verify_lines(k, c"".as_ptr(), 0, null(), 0)
            });
            assert_ne!(s, OK);
            return;
        }
        let (mut first, mut next) = (0u64, 0u64);
        // SAFETY: a live handle.
        let r = st(unsafe { envol_ffi::envol_local_kms_audit_range(k, &mut first, &mut next) });
        assert_eq!(r, OK);
        let cur = Self::audit_head(k);
        let want = (u64::from(lines) % 64 + 1).min(next - first);
        let start = next - want;
        let mut text = Vec::new();
        for seq in start..next {
            let mut b = vec![0u8; 4096];
            let mut l = 0usize;
            // SAFETY: as above.
            let s = st(unsafe {
                envol_ffi::envol_local_kms_audit_event_line(
                    k,
                    seq,
                    b.as_mut_ptr().cast(),
                    b.len(),
                    &mut l,
                )
            });
            assert_eq!(s, OK, "event {seq} of the window");
            if !text.is_empty() {
                text.push(b'\n');
            }
            text.extend_from_slice(&b[..l]);
        }
        let mutated = match mutate {
            Some((pos, x)) if !text.is_empty() => {
                let j = usize::from(pos) % text.len();
                // Never a newline (that only splits or joins lines) and
                // never an ASCII case flip.
                if text[j] != b'\n' {
                    text[j] ^= x | 1;
                    true
                } else {
                    false
                }
            }
            _ => false,
        };
        let hp: *const c_char = match head {
            0..0xe0 => cur.as_ptr().cast(),
            0xe0..0xf0 => null(),
            _ => c"seq=1 hash=zz".as_ptr(),
        };
        let genesis = from_genesis && head & 1 == 0;
        // SAFETY: a live handle, `text` readable, the head NUL-terminated.
        let s = st(unsafe {
            envol_ffi::envol_local_kms_audit_verify_lines(
                k,
                text.as_ptr().cast(),
                text.len(),
                hp,
                c_int::from(genesis),
            )
        });
        if head >= 0xf0 {
            assert_ne!(s, OK, "a bad head");
        } else if mutated {
            assert_ne!(s, OK, "a mutated trail verified");
        } else if want > 0 && (!genesis || start == 0) {
            assert_eq!(s, OK, "the handle's own trail does not verify");
        } else if genesis && start != 0 {
            assert_ne!(s, OK, "a trail not from event 0 verified as from genesis");
        }
        if s == OK && head < 0xe0 && cur.len() > 1 {
            // A head to reach: an empty trail does not.
            assert!(!mutated && want > 0);
        }
        // The handle's own chain still verifies.
        // SAFETY: a live handle.
        assert_eq!(
            st(unsafe { envol_ffi::envol_local_kms_audit_verify(k) }),
            OK
        );
    }

    fn kms_audit_sink(&mut self, kms: LocalArg, mode: u8, probe: bool) {
        let k = self.local(kms);
        let i = usize::from(kms.slot) % N_KMS;
        let sp = self.sinks[i];
        let mode = mode % 4;
        if mode == 3 {
            let sink = self.sink(i);
            sink.fail = !sink.fail;
        } else {
            let f: envol_ffi::envol_audit_sink_fn = (mode != 2).then_some(audit_sink as _);
            // SAFETY: NULL, misaligned or a live handle; the sink keeps its
            // contract and `sp` lives as long as the harness.
            let s = st(unsafe { envol_ffi::envol_local_kms_set_audit_sink(k, f, sp.cast()) });
            if self.local_ok(kms) {
                assert_eq!(s, OK);
                let sink = self.sink(i);
                sink.installed = mode != 2;
                sink.fail = mode == 1;
                sink.lines.clear();
            } else {
                assert_ne!(s, OK);
            }
        }
        if !probe || !self.local_ok(kms) {
            return;
        }
        // One audited call (a describe of `k1` by `op`).
        let (mut first, mut next) = (0u64, 0u64);
        // SAFETY: a live handle.
        let r = st(unsafe { envol_ffi::envol_local_kms_audit_range(k, &mut first, &mut next) });
        assert_eq!(r, OK);
        let head = Self::audit_head(k);
        let mut state = Buf::typed::<u32>(false);
        let mut vers = Buf::typed::<u32>(false);
        // SAFETY: a live handle, strings, writable outputs.
        let s = st(unsafe {
            envol_ffi::envol_local_kms_describe_key(
                k,
                c"op".as_ptr(),
                c"k1".as_ptr(),
                state.cast(),
                vers.cast(),
            )
        });
        let (mut first2, mut next2) = (0u64, 0u64);
        // SAFETY: as above.
        let r = st(unsafe { envol_ffi::envol_local_kms_audit_range(k, &mut first2, &mut next2) });
        assert_eq!(r, OK);
        let sink = self.sink(i);
        let (installed, fail) = (sink.installed, sink.fail);
        let last = sink.lines.last().cloned();
        if installed && fail {
            assert_eq!(s, envol_status::ENVOL_ERR_AUDIT_FAILED, "failing sink");
            assert!(state.intact() && vers.intact(), "output written on {s:?}");
            assert_eq!(next2, next, "an event recorded past a failing sink");
            assert_eq!(Self::audit_head(k), head, "head moved past a failing sink");
        } else {
            assert_ne!(s, envol_status::ENVOL_ERR_AUDIT_FAILED);
            assert!(next2 > next, "describe was not audited");
            if installed {
                // The sink got exactly the line the window holds.
                let mut b = vec![0u8; 4096];
                let mut l = 0usize;
                // SAFETY: as above.
                let s = st(unsafe {
                    envol_ffi::envol_local_kms_audit_event_line(
                        k,
                        next2 - 1,
                        b.as_mut_ptr().cast(),
                        b.len(),
                        &mut l,
                    )
                });
                assert_eq!(s, OK);
                assert_eq!(last.as_deref(), Some(&b[..l]), "the sink got another line");
            }
        }
        // SAFETY: a live handle.
        assert_eq!(
            st(unsafe { envol_ffi::envol_local_kms_audit_verify(k) }),
            OK
        );
    }

    fn kms_audit(&mut self, kms: LocalArg, index: usize, out: OutArg, len_null: bool) {
        let k = self.local(kms);
        // SAFETY: NULL, misaligned or a live handle.
        let n = unsafe { envol_ffi::envol_local_kms_audit_len(k) };
        if !self.local_ok(kms) {
            assert_eq!(n, 0);
        }
        let (mut first, mut next) = (0u64, 0u64);
        // SAFETY: as above; valid outputs.
        let r = st(unsafe { envol_ffi::envol_local_kms_audit_range(k, &mut first, &mut next) });
        if r == OK {
            assert_eq!(next - first, n as u64);
        }
        let index = if n > 0 && index.is_multiple_of(2) {
            index % n
        } else {
            index
        };
        let seq = first.wrapping_add(index as u64);
        let (mut buf, cap) = out_buf(out, 2048);
        let mut len = Buf::typed::<usize>(len_null);
        // SAFETY: every pointer NULL or valid as documented.
        let s = st(unsafe {
            envol_ffi::envol_local_kms_audit_event_line(k, seq, buf.cast(), cap, len.cast())
        });
        match s {
            OK => {
                let l: usize = len.read();
                assert!(index < n && l < cap);
                let line = &buf.bytes()[..=l];
                assert_eq!(line[l], 0);
                assert!(!line[..l].contains(&0) && line.starts_with(b"seq="));
                assert!(buf.intact_after(l + 1));
            }
            envol_status::ENVOL_ERR_BUFFER_TOO_SMALL => {
                // The one output allowed: the size needed.
                assert!(buf.intact());
                assert!(len.read::<usize>() > cap);
            }
            _ => assert!(buf.intact() && len.intact(), "output written on {s:?}"),
        }
        // SAFETY: as above.
        let v = st(unsafe { envol_ffi::envol_local_kms_audit_verify(k) });
        if self.local_ok(kms) {
            assert_eq!(v, OK, "the audit chain does not verify");
        } else {
            assert_ne!(v, OK);
        }
    }
}
