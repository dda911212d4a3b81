//! The fake key service: honest by default (real AES-GCM blobs under a fixed
//! master key, or AWS-style opaque blobs for key ids starting with "aws"),
//! scripted to fail or lie by `FakeScript`.

use std::collections::VecDeque;
use std::ffi::{CStr, c_char, c_void};

use envol::envelope::{Algorithm, Context, MAX_BLOB, MasterKey, WrappedKey};
use envol_ffi::{envol_kv, envol_status, envol_status_arg};

use super::State;
use super::args::{FDek, FLen, FStatus, FakeAnswer};
use super::ops::Op;
use super::values::derived_key;

const FAKE_MASTER: [u8; 32] = [0x42; 32];

pub(super) struct Fake {
    pub(super) script: VecDeque<FakeAnswer>,
    pub(super) counter: u64,
    /// The data key the last generate callback that reported success left
    /// in envol's buffer (the key envol then uses).
    pub(super) last_gen: Option<Vec<u8>>,
    /// Likewise for decrypt (the first `*dek_len` bytes, if 32 or 64).
    pub(super) last_dec: Option<Vec<u8>>,
}

/// A C context as Rust pairs.
///
/// # Safety
/// `ctx` valid for `n` pairs of NUL-terminated strings (the table's
/// contract: envol passes its own copies).
unsafe fn c_pairs(ctx: *const envol_kv, n: usize) -> Option<Vec<(String, String)>> {
    if n == 0 {
        return Some(Vec::new());
    }
    if ctx.is_null() {
        return None;
    }
    // SAFETY: forwarded contract.
    let kv = unsafe { std::slice::from_raw_parts(ctx, n) };
    let mut out = Vec::new();
    for p in kv {
        if p.key.is_null() || p.value.is_null() {
            return None;
        }
        // SAFETY: forwarded contract.
        let (k, v) = unsafe { (CStr::from_ptr(p.key), CStr::from_ptr(p.value)) };
        out.push((k.to_str().ok()?.to_owned(), v.to_str().ok()?.to_owned()));
    }
    Some(out)
}

/// # Safety
/// `p` NULL or NUL-terminated.
unsafe fn c_string(p: *const c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: forwarded contract.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .ok()
        .map(str::to_owned)
}

/// An 8-byte digest of a context, for the opaque fake blobs.
fn ctx_hash(pairs: &[(String, String)]) -> [u8; 8] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for (k, v) in pairs {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    let d: [u8; 32] = h.finalize().into();
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    out
}

fn status_code(s: envol_status) -> u32 {
    s as u32
}

impl Fake {
    fn next_answer(&mut self) -> Option<FakeAnswer> {
        self.script.pop_front()
    }

    /// Wraps `dek` honestly under `key_id` for `pairs`.
    fn wrap(
        &mut self,
        key_id: &str,
        pairs: &[(String, String)],
        dek: &[u8],
    ) -> Result<Vec<u8>, u32> {
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let ctx = Context::new(&refs).map_err(|_| status_code(envol_status::ENVOL_ERR_CONTEXT))?;
        if key_id == "missing" {
            return Err(status_code(envol_status::ENVOL_ERR_KEY_NOT_FOUND));
        }
        let mut out = vec![0u8; MAX_BLOB];
        let n = if key_id.starts_with("aws") {
            let mut ct: Vec<u8> = dek.iter().map(|b| b ^ 0x36).collect();
            ct.extend_from_slice(&ctx_hash(pairs));
            let w = WrappedKey::from_opaque(Algorithm::AwsKms, key_id, &ct)
                .map_err(|_| status_code(envol_status::ENVOL_ERR_KEY_ID))?;
            w.encode(&mut out)
                .map_err(|_| status_code(envol_status::ENVOL_ERR_KEY_ID))?
        } else {
            self.counter += 1;
            let mut nonce = [0u8; 12];
            nonce[..8].copy_from_slice(&self.counter.to_le_bytes());
            MasterKey::from_bytes(FAKE_MASTER)
                .seal_with_nonce(key_id, 1, &ctx, dek, &nonce, &mut out)
                .map_err(|_| status_code(envol_status::ENVOL_ERR_KEY_ID))?
        };
        out.truncate(n);
        Ok(out)
    }

    /// Unwraps an honest blob.
    fn unwrap(blob: &[u8], pairs: &[(String, String)]) -> Result<Vec<u8>, u32> {
        let bad = status_code(envol_status::ENVOL_ERR_INVALID_CIPHERTEXT);
        let w = WrappedKey::parse(blob).map_err(|_| bad)?;
        match w.algorithm() {
            Algorithm::Aes256Gcm => {
                let refs: Vec<(&str, &str)> = pairs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let ctx = Context::new(&refs).map_err(|_| bad)?;
                let mut out = vec![0u8; envol::envelope::MAX_SECRET];
                let n = w
                    .open(&MasterKey::from_bytes(FAKE_MASTER), &ctx, &mut out)
                    .map_err(|_| bad)?;
                out.truncate(n);
                Ok(out)
            }
            Algorithm::AwsKms => {
                let ct = w.ciphertext();
                if ct.len() < 8 || ct[ct.len() - 8..] != ctx_hash(pairs) {
                    return Err(bad);
                }
                Ok(ct[..ct.len() - 8].iter().map(|b| b ^ 0x36).collect())
            }
            _ => Err(bad),
        }
    }

    fn fresh_dek(&mut self, len: usize) -> Vec<u8> {
        self.counter += 1;
        derived_key(len, self.counter as u8 ^ (self.counter >> 8) as u8)
    }
}

/// Writes `src` (at most `cap` bytes of it) to `dst`.
///
/// # Safety
/// `dst` valid for `cap` writes.
unsafe fn put(dst: *mut u8, cap: usize, src: &[u8]) {
    let n = src.len().min(cap);
    // SAFETY: forwarded contract.
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, n) };
}

/// # Safety
/// `dst` valid for `cap` writes.
unsafe fn scribble(dst: *mut u8, cap: usize) {
    // SAFETY: forwarded contract.
    unsafe { std::ptr::write_bytes(dst, 0xee, cap) };
}

/// Applies an answer's key edits to the key in `dek` (`n` bytes).
///
/// # Safety
/// `dek` valid for `n` reads and writes.
unsafe fn edit_dek(dek: *mut u8, n: usize, how: FDek) {
    if n == 0 {
        return;
    }
    match how {
        FDek::Honest => {}
        // SAFETY: index below `n`.
        FDek::Flip(bit) => unsafe {
            let i = (usize::from(bit) / 8) % n;
            *dek.add(i) ^= 1 << (bit % 8);
        },
        // SAFETY: forwarded contract.
        FDek::Pattern(p) => unsafe { std::ptr::write_bytes(dek, p, n) },
    }
}

fn answer_status(a: &FakeAnswer, honest: u32) -> u32 {
    match a.status {
        FStatus::Honest => honest,
        FStatus::Ok => 0,
        FStatus::Known(k) => u32::from(k) % 40,
        FStatus::Raw(r) => r,
    }
}

fn answer_len(a: &FakeAnswer, honest: usize, cap: usize) -> Option<usize> {
    Some(match a.len {
        FLen::Honest => honest,
        FLen::Zero => 0,
        FLen::Cap => cap,
        FLen::CapPlus(k) => cap.saturating_add(1 + usize::from(k)),
        FLen::Max => usize::MAX,
        FLen::Raw(n) => usize::from(n),
        FLen::Untouched => return None,
    })
}

pub(super) unsafe extern "C" fn fake_generate(
    user: *mut c_void,
    principal: *const c_char,
    key_id: *const c_char,
    dek_len: usize,
    ctx: *const envol_kv,
    ctx_len: usize,
    dek_out: *mut u8,
    blob_out: *mut u8,
    blob_cap: usize,
    blob_len: *mut usize,
) -> envol_status_arg {
    // SAFETY: `user` is the harness's `Fake`, reached only through this
    // pointer while a call runs; the rest is the table's contract.
    unsafe {
        let f = &mut *user.cast::<Fake>();
        f.last_gen = None;
        let answer = f.next_answer();
        let p = c_string(principal);
        let id = c_string(key_id);
        let pairs = c_pairs(ctx, ctx_len);
        let room = dek_len.min(64);
        let honest: Result<(Vec<u8>, Vec<u8>), u32> = match (p, id, pairs) {
            (Some(p), _, _) if p == "eve" => {
                Err(status_code(envol_status::ENVOL_ERR_ACCESS_DENIED))
            }
            (Some(_), Some(id), Some(pairs)) if dek_len == 32 || dek_len == 64 => {
                let dek = f.fresh_dek(dek_len);
                f.wrap(&id, &pairs, &dek).and_then(|blob| {
                    if blob.len() > blob_cap {
                        Err(status_code(envol_status::ENVOL_ERR_BUFFER_TOO_SMALL))
                    } else {
                        Ok((dek, blob))
                    }
                })
            }
            _ => Err(status_code(envol_status::ENVOL_ERR_INVALID_ARGUMENT)),
        };
        let a = answer.unwrap_or(FakeAnswer {
            status: FStatus::Honest,
            len: FLen::Honest,
            dek: FDek::Honest,
            scribble: false,
        });
        if a.scribble {
            scribble(dek_out, room);
            scribble(blob_out, blob_cap.min(MAX_BLOB));
        }
        let (status, n) = match &honest {
            Ok((dek, blob)) => {
                put(dek_out, room, dek);
                put(blob_out, blob_cap, blob);
                (0, blob.len())
            }
            Err(s) => (*s, 0),
        };
        edit_dek(dek_out, room, a.dek);
        if let Some(len) = answer_len(&a, n, blob_cap) {
            blob_len.write(len);
        }
        let status = answer_status(&a, status);
        if status == 0 {
            f.last_gen = Some(std::slice::from_raw_parts(dek_out, room).to_vec());
        }
        envol_status_arg(status)
    }
}

pub(super) unsafe extern "C" fn fake_decrypt(
    user: *mut c_void,
    principal: *const c_char,
    blob: *const u8,
    blob_len: usize,
    ctx: *const envol_kv,
    ctx_len: usize,
    dek_out: *mut u8,
    dek_cap: usize,
    dek_len: *mut usize,
) -> envol_status_arg {
    // SAFETY: as for `fake_generate`.
    unsafe {
        let f = &mut *user.cast::<Fake>();
        f.last_dec = None;
        let answer = f.next_answer();
        let p = c_string(principal);
        let pairs = c_pairs(ctx, ctx_len);
        let blob = std::slice::from_raw_parts(blob, blob_len);
        let honest = match (p, pairs) {
            (Some(p), _) if p == "eve" => Err(status_code(envol_status::ENVOL_ERR_ACCESS_DENIED)),
            (Some(_), Some(pairs)) => Fake::unwrap(blob, &pairs).and_then(|dek| {
                if dek.len() > dek_cap {
                    Err(status_code(envol_status::ENVOL_ERR_BUFFER_TOO_SMALL))
                } else {
                    Ok(dek)
                }
            }),
            _ => Err(status_code(envol_status::ENVOL_ERR_INVALID_ARGUMENT)),
        };
        let a = answer.unwrap_or(FakeAnswer {
            status: FStatus::Honest,
            len: FLen::Honest,
            dek: FDek::Honest,
            scribble: false,
        });
        if a.scribble {
            scribble(dek_out, dek_cap);
        }
        let (status, n) = match &honest {
            Ok(dek) => {
                put(dek_out, dek_cap, dek);
                (0, dek.len())
            }
            Err(s) => (*s, 0),
        };
        edit_dek(dek_out, n.min(dek_cap), a.dek);
        let reported = answer_len(&a, n, dek_cap);
        if let Some(len) = reported {
            dek_len.write(len);
        }
        let status = answer_status(&a, status);
        if status == 0
            && let Some(len @ (32 | 64)) = reported
            && len <= dek_cap
        {
            f.last_dec = Some(std::slice::from_raw_parts(dek_out, len).to_vec());
        }
        envol_status_arg(status)
    }
}

pub(super) unsafe extern "C" fn fake_re_encrypt(
    user: *mut c_void,
    principal: *const c_char,
    blob: *const u8,
    blob_len: usize,
    src_ctx: *const envol_kv,
    src_len: usize,
    dest_key_id: *const c_char,
    dst_ctx: *const envol_kv,
    dst_len: usize,
    blob_out: *mut u8,
    blob_cap: usize,
    out_len: *mut usize,
) -> envol_status_arg {
    // SAFETY: as for `fake_generate`.
    unsafe {
        let f = &mut *user.cast::<Fake>();
        let answer = f.next_answer();
        let p = c_string(principal);
        let id = c_string(dest_key_id);
        let src = c_pairs(src_ctx, src_len);
        let dst = c_pairs(dst_ctx, dst_len);
        let blob = std::slice::from_raw_parts(blob, blob_len);
        let honest = match (p, id, src, dst) {
            (Some(p), ..) if p == "eve" => Err(status_code(envol_status::ENVOL_ERR_ACCESS_DENIED)),
            (Some(_), Some(id), Some(src), Some(dst)) => Fake::unwrap(blob, &src)
                .and_then(|dek| f.wrap(&id, &dst, &dek))
                .and_then(|b| {
                    if b.len() > blob_cap {
                        Err(status_code(envol_status::ENVOL_ERR_BUFFER_TOO_SMALL))
                    } else {
                        Ok(b)
                    }
                }),
            _ => Err(status_code(envol_status::ENVOL_ERR_INVALID_ARGUMENT)),
        };
        let a = answer.unwrap_or(FakeAnswer {
            status: FStatus::Honest,
            len: FLen::Honest,
            dek: FDek::Honest,
            scribble: false,
        });
        if a.scribble {
            scribble(blob_out, blob_cap.min(MAX_BLOB));
        }
        let (status, n) = match &honest {
            Ok(b) => {
                put(blob_out, blob_cap, b);
                (0, b.len())
            }
            Err(s) => (*s, 0),
        };
        if let Some(len) = answer_len(&a, n, blob_cap) {
            out_len.write(len);
        }
        envol_status_arg(answer_status(&a, status))
    }
}

impl State {
    /// Runs a fake key-service op.
    pub(super) fn run_fake(&mut self, op: &Op) {
        match op {
            Op::FakeScript { answers } => {
                let f = self.fake();
                f.script = answers.iter().take(16).cloned().collect();
            }
            _ => unreachable!("not a fake key-service op: {op:?}"),
        }
    }

    pub(super) fn fake(&mut self) -> &mut Fake {
        // SAFETY: made by `Box::into_raw`, freed only in `drop`; no call is
        // running, so no callback holds it.
        unsafe { &mut *self.fake }
    }
}
