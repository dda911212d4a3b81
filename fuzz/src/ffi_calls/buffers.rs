//! Caller memory: canary-filled buffers whose every byte past what a call
//! may write is checked afterwards, and the strings, tables and arrays one
//! call's arguments point into (`Hold`).

use std::ffi::c_char;
use std::mem::{align_of, size_of};
use std::ptr::{null, null_mut};

use envol::header::{Header, VolumeState};
use envol::kms::policy::MAX_POLICY_BYTES;
use envol_ffi::{envol_kv, envol_volume_params};

use super::args::{
    ACTIONS, CTX_KEYS, CTX_VALS, Cap, CtxKv, KEY_IDS, OutArg, POLICIES, PRINCIPALS, PolicyArg,
    Role, S, UNTERMINATED,
};
use super::values::{params_value, rust_params};
use super::{MAX_BUF, SLACK};

/// The canary byte at index `i` of a buffer: position-dependent, so a
/// shifted or partial write shows.
pub(super) fn canary(i: usize) -> u8 {
    (i as u8).wrapping_mul(151) ^ 0x5a
}

/// A length no buffer can have: the library must refuse it before it
/// touches anything.
pub(super) fn wild(max: bool) -> usize {
    if max {
        usize::MAX
    } else {
        isize::MAX as usize + 1
    }
}

/// A canary-filled caller buffer: `len` usable bytes at `off`, slack after.
pub(super) struct Buf {
    pub(super) mem: Vec<u8>,
    off: usize,
    pub(super) len: usize,
    pub(super) null: bool,
}

impl Buf {
    /// `len` bytes whose pointer is `misalign` bytes past an address
    /// aligned to `align`.
    pub(super) fn new(len: usize, align: usize, misalign: usize, null: bool) -> Buf {
        let mut mem: Vec<u8> = (0..len + align + misalign + SLACK).map(canary).collect();
        let base = mem.as_mut_ptr() as usize;
        let off = (align - base % align) % align + misalign;
        Buf {
            mem,
            off,
            len,
            null,
        }
    }

    /// An aligned output of one `T`.
    pub(super) fn typed<T>(null: bool) -> Buf {
        Buf::new(size_of::<T>(), align_of::<T>(), 0, null)
    }

    pub(super) fn ptr(&mut self) -> *mut u8 {
        if self.null {
            null_mut()
        } else {
            // SAFETY: `off` is inside `mem`.
            unsafe { self.mem.as_mut_ptr().add(self.off) }
        }
    }

    pub(super) fn cast<T>(&mut self) -> *mut T {
        self.ptr().cast()
    }

    pub(super) fn bytes(&self) -> &[u8] {
        &self.mem[self.off..self.off + self.len]
    }

    /// Nothing written at all.
    pub(super) fn intact(&self) -> bool {
        self.mem.iter().enumerate().all(|(i, &b)| b == canary(i))
    }

    /// Nothing written outside the usable bytes.
    pub(super) fn slack_intact(&self) -> bool {
        self.mem
            .iter()
            .enumerate()
            .filter(|(i, _)| *i < self.off || *i >= self.off + self.len)
            .all(|(i, &b)| b == canary(i))
    }

    /// Nothing written after the first `n` usable bytes.
    pub(super) fn intact_after(&self, n: usize) -> bool {
        self.mem
            .iter()
            .enumerate()
            .filter(|(i, _)| *i < self.off || *i >= self.off + n)
            .all(|(i, &b)| b == canary(i))
    }

    pub(super) fn read<T: Copy>(&self) -> T {
        // SAFETY: `len >= size_of::<T>()` for typed buffers, and every use
        // reads plain integers.
        unsafe { self.mem.as_ptr().add(self.off).cast::<T>().read_unaligned() }
    }
}

/// An output buffer as the fuzzer described it; `natural` is the size that
/// always suffices. Returns the buffer and the capacity to pass.
pub(super) fn out_buf(a: OutArg, natural: usize) -> (Buf, usize) {
    let cap = match a.cap {
        Cap::Enough => natural,
        Cap::Len(n) => usize::from(n) % (MAX_BUF + 1),
        Cap::Wild(m) => wild(m),
    };
    // Past the address space the library must refuse before writing; the
    // real room is what the library could ever write.
    let real = if cap > MAX_BUF {
        MAX_BUF.max(natural)
    } else {
        cap
    };
    (
        Buf::new(real, 16, usize::from(a.misalign % 16), a.null),
        cap,
    )
}

/// Keeps what the pointers of one call point to alive until it returns.
/// Inner vectors never move when the outer ones grow.
#[derive(Default)]
pub(super) struct Hold {
    bytes: Vec<Vec<u8>>,
    kvs: Vec<Vec<envol_kv>>,
    pub(super) ptrs: Vec<Vec<*const c_char>>,
}

impl Hold {
    pub(super) fn keep(&mut self, v: Vec<u8>) -> *mut u8 {
        self.bytes.push(v);
        self.bytes.last_mut().map_or(null_mut(), |v| v.as_mut_ptr())
    }

    /// `s` NUL-terminated.
    pub(super) fn c(&mut self, s: &[u8]) -> *const c_char {
        let mut v = s.to_vec();
        v.push(0);
        self.keep(v).cast_const().cast()
    }

    /// A string argument, and the Rust string it is if it is one.
    pub(super) fn s(&mut self, s: &S, role: Role) -> (*const c_char, Option<String>) {
        let pool: &[&str] = match role {
            Role::Principal => &PRINCIPALS,
            Role::KeyId => &KEY_IDS,
            Role::CtxKey => &CTX_KEYS,
            Role::CtxVal => &CTX_VALS,
            Role::Action => &ACTIONS,
        };
        let bytes: Vec<u8> = match s {
            S::Pool(i) => pool[usize::from(*i) % pool.len()].as_bytes().to_vec(),
            S::Null => return (null(), None),
            S::Empty => Vec::new(),
            S::Long(n) => vec![b'x'; usize::from(*n) % 1100],
            S::NotUtf8 => return (self.c(b"k\xff\xfe"), None),
            S::Unterminated => return (UNTERMINATED.as_ptr().cast(), None),
            S::Raw(v) => v
                .iter()
                .copied()
                .take_while(|&b| b != 0)
                .take(300)
                .collect(),
        };
        let p = self.c(&bytes);
        (p, String::from_utf8(bytes).ok())
    }

    pub(super) fn policy(&mut self, p: &PolicyArg) -> *const c_char {
        match p {
            PolicyArg::Pool(i) => self.c(POLICIES[usize::from(*i) % POLICIES.len()].as_bytes()),
            PolicyArg::Raw(v) => {
                let b: Vec<u8> = v.iter().copied().take_while(|&b| b != 0).collect();
                self.c(&b)
            }
            PolicyArg::Null => null(),
            PolicyArg::Unterminated => UNTERMINATED.as_ptr().cast(),
            PolicyArg::Huge => {
                let mut s = POLICIES[0].as_bytes().to_vec();
                s.resize(MAX_POLICY_BYTES + 10, b' ');
                self.c(&s)
            }
        }
    }

    /// A context argument; with the pairs as Rust strings when they all are.
    pub(super) fn ctx(
        &mut self,
        c: &CtxKv,
        params: &[envol_volume_params],
    ) -> (*const envol_kv, usize, Option<Vec<(String, String)>>) {
        let pairs_of = |h: &mut Hold, list: &[(S, S)]| {
            let mut kv = Vec::new();
            let mut rust = Some(Vec::new());
            for (k, v) in list.iter().take(17) {
                let (kp, ks) = h.s(k, Role::CtxKey);
                let (vp, vs) = h.s(v, Role::CtxVal);
                match (ks, vs, rust.as_mut()) {
                    (Some(ks), Some(vs), Some(r)) => r.push((ks, vs)),
                    _ => rust = None,
                }
                kv.push(envol_kv { key: kp, value: vp });
            }
            (kv, rust)
        };
        match c {
            CtxKv::Empty => (null(), 0, Some(Vec::new())),
            CtxKv::Pairs(list) => {
                let (kv, rust) = pairs_of(self, list);
                let n = kv.len();
                self.kvs.push(kv);
                let p = self.kvs.last().map_or(null(), |v| v.as_ptr());
                (p, n, rust)
            }
            CtxKv::OfParams(pa) => {
                let Some(p) = params_value(pa, params).and_then(|p| rust_params(&p)) else {
                    return (null(), 0, Some(Vec::new()));
                };
                let shell = Header {
                    params: p,
                    state: VolumeState::Active,
                    sequence: 0,
                    blob: &[],
                    mac: [0; 32],
                };
                let strings = shell.context_strings();
                let ctx = strings.context();
                let rust: Vec<(String, String)> = ctx
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                let kv: Vec<envol_kv> = rust
                    .iter()
                    .map(|(k, v)| envol_kv {
                        key: self.c(k.as_bytes()),
                        value: self.c(v.as_bytes()),
                    })
                    .collect();
                let n = kv.len();
                self.kvs.push(kv);
                let p = self.kvs.last().map_or(null(), |v| v.as_ptr());
                (p, n, Some(rust))
            }
            // NULL is the empty context when the length is 0.
            CtxKv::Null(n) => (null(), usize::from(*n), (*n == 0).then(Vec::new)),
            CtxKv::Misaligned(list) => {
                let (kv, _) = pairs_of(self, list);
                let n = kv.len().max(1);
                let mut raw = vec![0u8; n * size_of::<envol_kv>() + 16];
                let base = raw.as_mut_ptr() as usize;
                let off = (8 - base % 8) % 8 + 1 + (n % 7);
                for (i, p) in kv.iter().enumerate() {
                    // SAFETY: inside `raw` (16 bytes of room for `off`).
                    unsafe {
                        raw.as_mut_ptr()
                            .add(off + i * size_of::<envol_kv>())
                            .cast::<envol_kv>()
                            .write_unaligned(*p);
                    }
                }
                let p = self.keep(raw);
                // SAFETY: inside the kept buffer.
                (unsafe { p.add(off) }.cast_const().cast(), n, None)
            }
            CtxKv::Over(n) => {
                let (kv, _) = pairs_of(self, &[(S::Pool(0), S::Pool(0))]);
                self.kvs.push(kv);
                let p = self.kvs.last().map_or(null(), |v| v.as_ptr());
                (p, 17 + usize::from(*n), None)
            }
        }
    }
}
