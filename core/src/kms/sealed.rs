//! The sealed key store: everything a [`LocalKms`] holds (master key
//! versions, states, policies, grants, protected volumes, the audit chain's
//! head) encrypted and authenticated under a 256-bit root key, so that a
//! restarted service still unwraps yesterday's volumes.
//!
//! File: `"EVKS"`, version (1), three zero bytes, 12-byte nonce, u32 length,
//! AES-256-GCM ciphertext, 16-byte tag; the first 24 bytes are associated
//! data. The parser is total: a wrong root key or any damage is
//! [`SealError::Corrupt`], never a panic, and no count read from the file
//! allocates more than the file could hold.

use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use zeroize::Zeroize;

use super::KmsError;
use super::audit::AuditSink;
use super::local::{Clock, Entropy, Entry, GrantConstraint, GrantInfo, KeyState, LocalKms};
use super::policy::{Action, Policy};
use crate::envelope::MasterKey;

const MAGIC: &[u8; 4] = b"EVKS";
const VERSION: u8 = 1;
const HEAD: usize = 24;
/// Largest sealed store accepted (64 MiB).
pub const MAX_SEALED: usize = 64 << 20;

/// Why a sealed store could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SealError {
    /// Not a sealed envol key store.
    BadMagic,
    /// A format version this code does not read.
    UnsupportedVersion(u8),
    /// Shorter than its header says, or over the size limit.
    Truncated,
    /// Authentication failed: wrong root key, or the file was damaged.
    Corrupt,
    /// Authentic but malformed content (a bug in whatever wrote it).
    Malformed,
    /// The RNG failed while sealing.
    Rng,
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealError::BadMagic => f.write_str("not a sealed envol key store"),
            SealError::UnsupportedVersion(v) => write!(f, "unsupported key store version {v}"),
            SealError::Truncated => f.write_str("key store truncated or too large"),
            SealError::Corrupt => f.write_str("wrong root key or damaged key store"),
            SealError::Malformed => f.write_str("malformed key store content"),
            SealError::Rng => f.write_str("random number generator failed"),
        }
    }
}

impl core::error::Error for SealError {}

impl LocalKms {
    /// Seals the whole store under `root`.
    pub fn seal(&mut self, root: &[u8; 32]) -> Result<Vec<u8>, SealError> {
        let mut body = Vec::new();
        self.encode_store(&mut body);
        let (entropy, _) = self.parts();
        let mut nonce = [0u8; 12];
        entropy.fill(&mut nonce).map_err(|_| SealError::Rng)?;
        let len = u32::try_from(body.len()).map_err(|_| SealError::Truncated)?;
        let mut out = Vec::with_capacity(HEAD + body.len() + 16);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[VERSION, 0, 0, 0]);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&len.to_le_bytes());
        let cipher = Aes256Gcm::new(&(*root).into());
        let tag = cipher
            .encrypt_inout_detached(
                &Nonce::from(nonce),
                &out[..HEAD],
                body.as_mut_slice().into(),
            )
            .map_err(|_| SealError::Truncated)?;
        out.extend_from_slice(&body);
        out.extend_from_slice(&tag);
        body.zeroize();
        Ok(out)
    }

    /// Wraps arbitrary `body` bytes in a well-formed sealed file under `root`,
    /// so fuzzers reach the store decoder. Not for production use.
    #[doc(hidden)]
    pub fn seal_raw_body_for_fuzzing(root: &[u8; 32], body: &[u8]) -> Vec<u8> {
        let mut body = body.to_vec();
        let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
        let mut out = Vec::with_capacity(HEAD + body.len() + 16);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[VERSION, 0, 0, 0]);
        out.extend_from_slice(&[7u8; 12]);
        out.extend_from_slice(&len.to_le_bytes());
        let cipher = Aes256Gcm::new(&(*root).into());
        if let Ok(tag) = cipher.encrypt_inout_detached(
            &Nonce::from([7u8; 12]),
            &out[..HEAD],
            body.as_mut_slice().into(),
        ) {
            out.extend_from_slice(&body);
            out.extend_from_slice(&tag);
        }
        out
    }

    /// Opens a sealed store with `root` and the service's collaborators.
    pub fn unseal(
        root: &[u8; 32],
        bytes: &[u8],
        entropy: Box<dyn Entropy + Send>,
        clock: Box<dyn Clock + Send>,
        sink: Option<Box<dyn AuditSink + Send>>,
    ) -> Result<LocalKms, SealError> {
        if bytes.len() > MAX_SEALED {
            return Err(SealError::Truncated);
        }
        let head = bytes.get(..HEAD).ok_or(SealError::Truncated)?;
        if &head[..4] != MAGIC {
            return Err(SealError::BadMagic);
        }
        if head[4] != VERSION {
            return Err(SealError::UnsupportedVersion(head[4]));
        }
        if head[5..8] != [0, 0, 0] {
            return Err(SealError::Malformed);
        }
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&head[8..20]);
        let len = u32::from_le_bytes([head[20], head[21], head[22], head[23]]);
        let len = usize::try_from(len).map_err(|_| SealError::Truncated)?;
        if bytes.len() != HEAD + len + 16 {
            return Err(SealError::Truncated);
        }
        let mut body = bytes[HEAD..HEAD + len].to_vec();
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&bytes[HEAD + len..]);
        let cipher = Aes256Gcm::new(&(*root).into());
        cipher
            .decrypt_inout_detached(
                &Nonce::from(nonce),
                head,
                body.as_mut_slice().into(),
                &Tag::from(tag),
            )
            .map_err(|_| SealError::Corrupt)?;
        let mut kms = LocalKms::new(entropy, clock, sink);
        let r = kms.decode_store(&body);
        body.zeroize();
        r?;
        Ok(kms)
    }

    fn encode_store(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.next_seq.to_le_bytes());
        out.extend_from_slice(&self.last_hash);
        put_u32(out, self.keys.len());
        for (id, e) in &self.keys {
            put_str(out, id);
            let (tag, at) = match e.state {
                KeyState::Enabled => (0u8, 0),
                KeyState::Disabled => (1, 0),
                KeyState::PendingDeletion { delete_at } => (2, delete_at),
                KeyState::Deleted => (3, 0),
            };
            out.push(tag);
            out.extend_from_slice(&at.to_le_bytes());
            out.extend_from_slice(&e.created.to_le_bytes());
            out.extend_from_slice(&e.rotation_period.unwrap_or(0).to_le_bytes());
            out.extend_from_slice(&e.last_rotated.to_le_bytes());
            put_u32(out, e.versions.len());
            for v in &e.versions {
                out.extend_from_slice(v.expose_for_sealing());
            }
            put_str(out, &e.policy.to_json());
            put_u32(out, e.grants.len());
            for g in &e.grants {
                put_str(out, &g.id);
                put_str(out, &g.grantee);
                put_u32(out, g.operations.len());
                for op in &g.operations {
                    put_str(out, op.name());
                }
                match &g.constraint {
                    None => out.push(0),
                    Some(GrantConstraint::ContextEquals(p)) => {
                        out.push(1);
                        put_pairs(out, p);
                    }
                    Some(GrantConstraint::ContextSubset(p)) => {
                        out.push(2);
                        put_pairs(out, p);
                    }
                }
                match &g.retiring_principal {
                    None => out.push(0),
                    Some(r) => {
                        out.push(1);
                        put_str(out, r);
                    }
                }
            }
            put_u32(out, e.protected.len());
            for p in &e.protected {
                put_pairs(out, p);
            }
        }
    }

    fn decode_store(&mut self, body: &[u8]) -> Result<(), SealError> {
        let mut r = Cur { b: body, pos: 0 };
        self.next_seq = r.u64()?;
        self.last_hash = r.arr::<32>()?;
        let nkeys = r.count(8)?;
        for _ in 0..nkeys {
            let id = r.string()?;
            let tag = r.u8()?;
            let at = r.u64()?;
            let state = match tag {
                0 => KeyState::Enabled,
                1 => KeyState::Disabled,
                2 => KeyState::PendingDeletion { delete_at: at },
                3 => KeyState::Deleted,
                _ => return Err(SealError::Malformed),
            };
            let created = r.u64()?;
            let rot = r.u64()?;
            let last_rotated = r.u64()?;
            let nver = r.count(32)?;
            let mut versions = Vec::with_capacity(nver);
            for _ in 0..nver {
                versions.push(MasterKey::from_bytes(r.arr::<32>()?));
            }
            let policy = Policy::parse(&r.string()?).map_err(|_| SealError::Malformed)?;
            let ngrants = r.count(16)?;
            let mut grants = Vec::with_capacity(ngrants);
            for _ in 0..ngrants {
                let gid = r.string()?;
                let grantee = r.string()?;
                let nops = r.count(4)?;
                let mut operations = Vec::with_capacity(nops);
                for _ in 0..nops {
                    operations.push(Action::from_name(&r.string()?).ok_or(SealError::Malformed)?);
                }
                let constraint = match r.u8()? {
                    0 => None,
                    1 => Some(GrantConstraint::ContextEquals(r.pairs()?)),
                    2 => Some(GrantConstraint::ContextSubset(r.pairs()?)),
                    _ => return Err(SealError::Malformed),
                };
                let retiring_principal = match r.u8()? {
                    0 => None,
                    1 => Some(r.string()?),
                    _ => return Err(SealError::Malformed),
                };
                grants.push(GrantInfo {
                    id: gid,
                    grantee,
                    operations,
                    constraint,
                    retiring_principal,
                });
            }
            let nprot = r.count(4)?;
            let mut protected = BTreeSet::new();
            for _ in 0..nprot {
                protected.insert(r.pairs()?);
            }
            let entry = Entry {
                state,
                created,
                versions,
                rotation_period: if rot == 0 { None } else { Some(rot) },
                last_rotated,
                policy,
                grants,
                protected,
            };
            if self.keys.insert(id, entry).is_some() {
                return Err(SealError::Malformed);
            }
        }
        if r.pos != body.len() {
            return Err(SealError::Malformed);
        }
        Ok(())
    }
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u32(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn put_pairs(out: &mut Vec<u8>, p: &[(String, String)]) {
    put_u32(out, p.len());
    for (k, v) in p {
        put_str(out, k);
        put_str(out, v);
    }
}

struct Cur<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Cur<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], SealError> {
        let end = self.pos.checked_add(n).ok_or(SealError::Malformed)?;
        let s = self.b.get(self.pos..end).ok_or(SealError::Malformed)?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, SealError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, SealError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, SealError> {
        let a = self.arr::<8>()?;
        Ok(u64::from_le_bytes(a))
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], SealError> {
        let b = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }
    /// A count of elements each at least `min` bytes long, bounded by what
    /// is left so no allocation exceeds the input.
    fn count(&mut self, min: usize) -> Result<usize, SealError> {
        let n = usize::try_from(self.u32()?).map_err(|_| SealError::Malformed)?;
        let left = self.b.len() - self.pos;
        if n.checked_mul(min).is_none_or(|need| need > left) {
            return Err(SealError::Malformed);
        }
        Ok(n)
    }
    fn string(&mut self) -> Result<String, SealError> {
        let n = usize::try_from(self.u32()?).map_err(|_| SealError::Malformed)?;
        let b = self.take(n)?;
        core::str::from_utf8(b)
            .map(String::from)
            .map_err(|_| SealError::Malformed)
    }
    fn pairs(&mut self) -> Result<Vec<(String, String)>, SealError> {
        let n = self.count(8)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push((self.string()?, self.string()?));
        }
        Ok(v)
    }
}

impl From<SealError> for KmsError {
    fn from(_: SealError) -> KmsError {
        KmsError::Unavailable
    }
}
