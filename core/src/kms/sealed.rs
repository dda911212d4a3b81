//! The sealed key store: everything a [`LocalKms`] holds (master key
//! versions, states, policies, grants, protected volumes, tombstones, the
//! service policy, the audit chain's key and head) encrypted and
//! authenticated under a 256-bit root key, so that a restarted service
//! still unwraps yesterday's volumes.
//!
//! File: `"EVKS"`, version (2; version 1 is still read), three zero bytes,
//! 12-byte nonce, u32 length, AES-256-GCM ciphertext, 16-byte tag; the
//! first 24 bytes are associated data. The parser is total: a wrong root
//! key or any damage is [`SealError::Corrupt`], never a panic, and no count
//! read from the file allocates more than the file could hold.
//!
//! Whatever the service accepts, it can seal and unseal: every change that
//! grows the store is checked against [`MAX_SEALED`] before it is made
//! ([`growth`], [`body_len`]), stored policies are read back with the
//! stored-policy bound, and the plaintext body is built in a buffer that
//! wipes every allocation it leaves behind.

use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use zeroize::Zeroize;

use super::audit::{AuditKey, AuditSink};
use super::local::{Change, Entropy, Entry, GrantConstraint, GrantInfo, KeyState, LocalKms, State};
use super::policy::{Action, Policy};
use super::{Clock, KmsError};
use crate::bytes::Reader;
use crate::envelope::MasterKey;

const MAGIC: &[u8; 4] = b"EVKS";
const VERSION: u8 = 2;
const HEAD: usize = 24;
const TAG: usize = 16;
/// Largest sealed store accepted (64 MiB).
pub const MAX_SEALED: usize = 64 << 20;
/// Largest plaintext body: what the service's quotas keep it under.
pub(crate) const MAX_BODY: usize = MAX_SEALED - HEAD - TAG;

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

impl From<SealError> for KmsError {
    fn from(_: SealError) -> KmsError {
        KmsError::Unavailable
    }
}

/// Where the encoder writes: a byte counter or a wiping buffer.
trait Out {
    fn put(&mut self, b: &[u8]);
    fn u8(&mut self, v: u8) {
        self.put(&[v]);
    }
    fn u32(&mut self, n: usize) {
        self.put(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.put(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len());
        self.put(s.as_bytes());
    }
    fn pairs(&mut self, p: &[(String, String)]) {
        self.u32(p.len());
        for (k, v) in p {
            self.str(k);
            self.str(v);
        }
    }
}

/// Counts what would be written.
struct Count(usize);

impl Out for Count {
    fn put(&mut self, b: &[u8]) {
        self.0 = self.0.saturating_add(b.len());
    }
}

/// A byte buffer for secrets: when it must grow, the new allocation takes
/// a copy and the old one is wiped before it is freed; dropping it wipes
/// the rest (zeroize clears a vector's whole capacity).
pub(crate) struct SecretBuf(Vec<u8>);

impl SecretBuf {
    pub(crate) fn with_capacity(n: usize) -> SecretBuf {
        SecretBuf(Vec::with_capacity(n))
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        self.0.as_mut_slice()
    }
}

impl Out for SecretBuf {
    fn put(&mut self, b: &[u8]) {
        if self.0.capacity() - self.0.len() < b.len() {
            let want = self.0.len().saturating_add(b.len());
            let mut bigger = Vec::with_capacity(want.max(self.0.capacity().saturating_mul(2)));
            bigger.extend_from_slice(&self.0);
            self.0.zeroize();
            self.0 = bigger;
        }
        self.0.extend_from_slice(b);
    }
}

impl Drop for SecretBuf {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

fn put_policy(out: &mut impl Out, p: &Policy) {
    out.str(&p.to_json());
}

fn put_grant(out: &mut impl Out, g: &GrantInfo) {
    out.str(&g.id);
    out.str(&g.grantee);
    out.u32(g.operations.len());
    for op in &g.operations {
        out.str(op.name());
    }
    match &g.constraint {
        None => out.u8(0),
        Some(GrantConstraint::ContextEquals(p)) => {
            out.u8(1);
            out.pairs(p);
        }
        Some(GrantConstraint::ContextSubset(p)) => {
            out.u8(2);
            out.pairs(p);
        }
    }
    match &g.retiring_principal {
        None => out.u8(0),
        Some(r) => {
            out.u8(1);
            out.str(r);
        }
    }
}

fn put_entry(out: &mut impl Out, id: &str, e: &Entry) {
    out.str(id);
    let (tag, at) = match e.state {
        KeyState::Enabled => (0u8, 0),
        KeyState::Disabled => (1, 0),
        KeyState::PendingDeletion { delete_at } => (2, delete_at),
        KeyState::Deleted => (3, 0),
    };
    out.u8(tag);
    out.u64(at);
    out.u64(e.created);
    out.u64(e.rotation_period.unwrap_or(0));
    out.u64(e.last_rotated);
    out.u32(e.versions.len());
    for v in &e.versions {
        out.put(v.expose_for_sealing());
    }
    put_policy(out, &e.policy);
    out.u32(e.grants.len());
    for g in &e.grants {
        put_grant(out, g);
    }
    out.u32(e.protected.len());
    for p in &e.protected {
        out.pairs(p);
    }
}

/// The version-2 body.
fn encode_store(kms: &LocalKms, audit_key: &[u8; 32], out: &mut impl Out) {
    out.u64(kms.chain.next_seq);
    out.put(&kms.chain.last_hash);
    out.put(audit_key);
    match &kms.state.service_policy {
        None => out.u8(0),
        Some(p) => {
            out.u8(1);
            put_policy(out, p);
        }
    }
    out.u32(kms.state.tombstones.len());
    for t in &kms.state.tombstones {
        out.pairs(t);
    }
    out.u32(kms.state.keys.len());
    for (id, e) in &kms.state.keys {
        put_entry(out, id, e);
    }
}

/// The length of the service's sealed body now, counted from scratch (the
/// service keeps it up to date as it changes; this is for unseal and tests).
pub(crate) fn body_len(kms: &LocalKms) -> usize {
    let mut c = Count(0);
    encode_store(kms, &[0; 32], &mut c);
    c.0
}

/// Encoded sizes of the pieces a change adds or removes.
pub(crate) fn policy_len(p: &Policy) -> usize {
    let mut c = Count(0);
    put_policy(&mut c, p);
    c.0
}

pub(crate) fn grant_len(g: &GrantInfo) -> usize {
    let mut c = Count(0);
    put_grant(&mut c, g);
    c.0
}

pub(crate) fn pairs_len(p: &[(String, String)]) -> usize {
    let mut c = Count(0);
    c.pairs(p);
    c.0
}

pub(crate) fn entry_len(id: &str, e: &Entry) -> usize {
    let mut c = Count(0);
    put_entry(&mut c, id, e);
    c.0
}

/// At most how much `change` grows the sealed body.
pub(crate) fn growth(st: &State, change: &Change) -> usize {
    match change {
        Change::CreateKey(id, e) => entry_len(id, e),
        Change::SetPolicy(_, p) | Change::SetServicePolicy(p) => policy_len(p),
        Change::AddGrant(_, g) => grant_len(g),
        Change::AddVersion(..) => 32,
        Change::Protect(_, p) => pairs_len(p),
        Change::Tombstone(_, p) if !st.tombstones.contains(p) => pairs_len(p),
        _ => 0,
    }
}

impl LocalKms {
    /// Seals the whole store under `root`.
    pub fn seal(&mut self, root: &[u8; 32]) -> Result<Vec<u8>, SealError> {
        // The audit key goes into the store even before the first event, so
        // a store never changes keys under its chain.
        let mut audit_key = match &self.chain.key {
            Some(k) => *k.expose_for_sealing(),
            None => {
                let mut k = [0u8; 32];
                self.entropy().fill(&mut k).map_err(|_| SealError::Rng)?;
                self.chain.key = Some(AuditKey::from_bytes(k));
                k
            }
        };
        let mut body = SecretBuf::with_capacity(body_len(self));
        encode_store(self, &audit_key, &mut body);
        audit_key.zeroize();
        let mut nonce = [0u8; 12];
        self.entropy()
            .fill(&mut nonce)
            .map_err(|_| SealError::Rng)?;
        let body = body.as_mut_slice();
        let len = u32::try_from(body.len()).map_err(|_| SealError::Truncated)?;
        if body.len() > MAX_BODY {
            return Err(SealError::Truncated);
        }
        let mut out = Vec::with_capacity(HEAD + body.len() + TAG);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[VERSION, 0, 0, 0]);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&len.to_le_bytes());
        let cipher = Aes256Gcm::new(&(*root).into());
        let tag = cipher
            .encrypt_inout_detached(&Nonce::from(nonce), &out[..HEAD], body.into())
            .map_err(|_| SealError::Truncated)?;
        out.extend_from_slice(body);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Wraps arbitrary `body` bytes in a well-formed sealed file under `root`,
    /// so fuzzers reach the store decoder. Not for production use.
    #[doc(hidden)]
    pub fn seal_raw_body_for_fuzzing(root: &[u8; 32], version: u8, body: &[u8]) -> Vec<u8> {
        let mut body = body.to_vec();
        let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
        let mut out = Vec::with_capacity(HEAD + body.len() + TAG);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[version, 0, 0, 0]);
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
        let version = head[4];
        if version != 1 && version != VERSION {
            return Err(SealError::UnsupportedVersion(version));
        }
        if head[5..8] != [0, 0, 0] {
            return Err(SealError::Malformed);
        }
        let nonce: [u8; 12] = head[8..20].try_into().map_err(|_| SealError::Truncated)?;
        let len = u32::from_le_bytes([head[20], head[21], head[22], head[23]]);
        let len = usize::try_from(len).map_err(|_| SealError::Truncated)?;
        if bytes.len() != HEAD + len + TAG {
            return Err(SealError::Truncated);
        }
        let mut body = bytes[HEAD..HEAD + len].to_vec();
        let tag: [u8; 16] = bytes[HEAD + len..]
            .try_into()
            .map_err(|_| SealError::Truncated)?;
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
        let r = decode_store(&mut kms, version, &body);
        body.zeroize();
        r?;
        kms.body = body_len(&kms);
        Ok(kms)
    }
}

fn decode_store(kms: &mut LocalKms, version: u8, body: &[u8]) -> Result<(), SealError> {
    let bad = SealError::Malformed;
    let mut r = Reader::new(body);
    kms.chain.next_seq = r.u64().ok_or(bad)?;
    kms.chain.last_hash = r.array().ok_or(bad)?;
    if version >= 2 {
        kms.chain.key = Some(AuditKey::from_bytes(r.array().ok_or(bad)?));
        kms.state.service_policy = match r.u8().ok_or(bad)? {
            0 => None,
            1 => Some(policy(&mut r)?),
            _ => return Err(bad),
        };
        let n = r.count(4).ok_or(bad)?;
        for _ in 0..n {
            kms.state.tombstones.insert(pairs(&mut r)?);
        }
    }
    let nkeys = r.count(8).ok_or(bad)?;
    for _ in 0..nkeys {
        let (id, entry) = entry(&mut r)?;
        if kms.state.keys.insert(id, entry).is_some() {
            return Err(bad);
        }
    }
    if !r.at_end() {
        return Err(bad);
    }
    Ok(())
}

fn policy(r: &mut Reader<'_>) -> Result<Policy, SealError> {
    Policy::parse_stored(r.str().ok_or(SealError::Malformed)?).map_err(|_| SealError::Malformed)
}

fn pairs(r: &mut Reader<'_>) -> Result<Vec<(String, String)>, SealError> {
    let bad = SealError::Malformed;
    let n = r.count(8).ok_or(bad)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push((r.string().ok_or(bad)?, r.string().ok_or(bad)?));
    }
    Ok(v)
}

fn entry(r: &mut Reader<'_>) -> Result<(String, Entry), SealError> {
    let bad = SealError::Malformed;
    let id = r.string().ok_or(bad)?;
    let tag = r.u8().ok_or(bad)?;
    let at = r.u64().ok_or(bad)?;
    let state = match tag {
        0 => KeyState::Enabled,
        1 => KeyState::Disabled,
        2 => KeyState::PendingDeletion { delete_at: at },
        3 => KeyState::Deleted,
        _ => return Err(bad),
    };
    let created = r.u64().ok_or(bad)?;
    let rot = r.u64().ok_or(bad)?;
    let last_rotated = r.u64().ok_or(bad)?;
    let nver = r.count(32).ok_or(bad)?;
    let mut versions = Vec::with_capacity(nver);
    for _ in 0..nver {
        versions.push(Box::new(MasterKey::from_bytes(r.array().ok_or(bad)?)));
    }
    let policy = policy(r)?;
    let ngrants = r.count(14).ok_or(bad)?;
    let mut grants = Vec::with_capacity(ngrants);
    for _ in 0..ngrants {
        if let Some(g) = grant(r)? {
            grants.push(g);
        }
    }
    let nprot = r.count(4).ok_or(bad)?;
    let mut protected = BTreeSet::new();
    for _ in 0..nprot {
        protected.insert(pairs(r)?);
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
    Ok((id, entry))
}

/// One grant; `None` for a grant left with no operation once operations a
/// grant may not give are dropped. Stores written before grants were
/// limited to grant operations may hold `kms:PutKeyPolicy` and the like:
/// such a store still opens, without the escalation.
fn grant(r: &mut Reader<'_>) -> Result<Option<GrantInfo>, SealError> {
    let bad = SealError::Malformed;
    let id = r.string().ok_or(bad)?;
    let grantee = r.string().ok_or(bad)?;
    let nops = r.count(4).ok_or(bad)?;
    let mut operations = Vec::with_capacity(nops);
    for _ in 0..nops {
        let op = Action::from_name(r.str().ok_or(bad)?).ok_or(bad)?;
        if op.is_grant_operation() && !operations.contains(&op) {
            operations.push(op);
        }
    }
    let constraint = match r.u8().ok_or(bad)? {
        0 => None,
        1 => Some(GrantConstraint::ContextEquals(pairs(r)?)),
        2 => Some(GrantConstraint::ContextSubset(pairs(r)?)),
        _ => return Err(bad),
    };
    let retiring_principal = match r.u8().ok_or(bad)? {
        0 => None,
        1 => Some(r.string().ok_or(bad)?),
        _ => return Err(bad),
    };
    Ok((!operations.is_empty()).then_some(GrantInfo {
        id,
        grantee,
        operations,
        constraint,
        retiring_principal,
    }))
}
