//! The audit trail of a key service: one event per call, allowed or denied,
//! hash-chained so that an edited, dropped, inserted or reordered event is
//! detected by [`verify_chain`].
//!
//! Event hash = SHA-256("envol-audit-v1" ‖ previous hash ‖ encoding of the
//! event's fields). The encoding is also the wire form ([`AuditEvent::encode`],
//! [`AuditEvent::decode`]), so a log written to a file verifies the same way.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use sha2::{Digest, Sha256};

use super::KmsError;
use super::policy::Action;

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The call was allowed and succeeded.
    Allowed,
    /// The call was refused or failed with this error.
    Refused(KmsError),
}

/// One audited call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    /// Position in the chain, from 0.
    pub seq: u64,
    /// Seconds since the Unix epoch, from the service's clock.
    pub time: u64,
    /// Who called.
    pub principal: String,
    /// What was asked.
    pub action: Action,
    /// The master key concerned (empty if none could be named).
    pub key_id: String,
    /// The encryption context of the call, sorted by key.
    pub context: Vec<(String, String)>,
    /// How it ended.
    pub outcome: Outcome,
    /// Hash of the previous event (zero for the first).
    pub prev_hash: [u8; 32],
    /// Hash of this event.
    pub hash: [u8; 32],
}

/// Where a key service sends its audit events. A sink that returns an error
/// makes the call fail (fail closed).
pub trait AuditSink {
    /// Stores one event.
    fn record(&mut self, event: &AuditEvent) -> Result<(), AuditSinkError>;
}

/// A sink could not store an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditSinkError;

/// A sink that discards events (the service still keeps its own log).
#[derive(Debug, Default)]
pub struct NullSink;

impl AuditSink for NullSink {
    fn record(&mut self, _: &AuditEvent) -> Result<(), AuditSinkError> {
        Ok(())
    }
}

/// Why a chain does not verify, and at which event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainError {
    /// Event `index` does not carry sequence number `expected`.
    Sequence {
        /// Position in the slice.
        index: usize,
        /// The sequence number it should carry.
        expected: u64,
    },
    /// Event `index` does not link to the hash of the event before it.
    Link {
        /// Position in the slice.
        index: usize,
    },
    /// Event `index`'s hash does not match its contents.
    Hash {
        /// Position in the slice.
        index: usize,
    },
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainError::Sequence { index, expected } => {
                write!(f, "audit event {index}: expected sequence {expected}")
            }
            ChainError::Link { index } => write!(f, "audit event {index}: broken link"),
            ChainError::Hash { index } => write!(f, "audit event {index}: hash mismatch"),
        }
    }
}

impl core::error::Error for ChainError {}

const DOMAIN: &[u8] = b"envol-audit-v1";

impl AuditEvent {
    /// Builds the event that follows `prev_hash` at `seq` and computes its hash.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        seq: u64,
        time: u64,
        principal: &str,
        action: Action,
        key_id: &str,
        context: Vec<(String, String)>,
        outcome: Outcome,
        prev_hash: [u8; 32],
    ) -> AuditEvent {
        let mut e = AuditEvent {
            seq,
            time,
            principal: principal.into(),
            action,
            key_id: key_id.into(),
            context,
            outcome,
            prev_hash,
            hash: [0; 32],
        };
        e.hash = e.compute_hash();
        e
    }

    /// The hash this event should carry.
    pub fn compute_hash(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(DOMAIN);
        h.update(self.prev_hash);
        let mut body = Vec::new();
        self.encode_body(&mut body);
        h.update(&body);
        h.finalize().into()
    }

    fn encode_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.time.to_le_bytes());
        put_str(out, &self.principal);
        put_str(out, self.action.name());
        put_str(out, &self.key_id);
        out.extend_from_slice(&u32_len(self.context.len()).to_le_bytes());
        for (k, v) in &self.context {
            put_str(out, k);
            put_str(out, v);
        }
        match self.outcome {
            Outcome::Allowed => out.push(0),
            Outcome::Refused(e) => {
                out.push(1);
                out.push(error_code(e));
            }
        }
    }

    /// Wire form: body, then previous hash and hash.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut body = Vec::new();
        self.encode_body(&mut body);
        out.extend_from_slice(&u32_len(body.len()).to_le_bytes());
        out.extend_from_slice(&body);
        out.extend_from_slice(&self.prev_hash);
        out.extend_from_slice(&self.hash);
    }

    /// Parses one event from the front of `bytes`; returns it and the bytes
    /// used. Total: any input gives an event or `None`.
    pub fn decode(bytes: &[u8]) -> Option<(AuditEvent, usize)> {
        let mut r = Cursor { b: bytes, pos: 0 };
        let body_len = usize::try_from(r.u32()?).ok()?;
        let body_end = r.pos.checked_add(body_len)?;
        let seq = r.u64()?;
        let time = r.u64()?;
        let principal = r.string()?;
        // The canonical spelling only: `from_name` is case-insensitive, and
        // a log must not verify after an edit that parses to the same value.
        let name = r.string()?;
        let action = Action::from_name(&name).filter(|a| a.name() == name)?;
        let key_id = r.string()?;
        let n = usize::try_from(r.u32()?).ok()?;
        // Each pair takes at least 8 bytes: bound the count before allocating.
        if n > bytes.len() / 8 {
            return None;
        }
        let mut context = Vec::with_capacity(n);
        for _ in 0..n {
            context.push((r.string()?, r.string()?));
        }
        let outcome = match r.u8()? {
            0 => Outcome::Allowed,
            1 => Outcome::Refused(error_from_code(r.u8()?)?),
            _ => return None,
        };
        if r.pos != body_end {
            return None;
        }
        let prev_hash = r.array32()?;
        let hash = r.array32()?;
        Some((
            AuditEvent {
                seq,
                time,
                principal,
                action,
                key_id,
                context,
                outcome,
                prev_hash,
                hash,
            },
            r.pos,
        ))
    }
}

/// Checks a run of events: consecutive sequence numbers starting at the
/// first event's, each linked to the one before, each hash right. With
/// `from_genesis`, the first event must be sequence 0 with a zero link.
pub fn verify_chain(events: &[AuditEvent], from_genesis: bool) -> Result<(), ChainError> {
    let mut expected = match events.first() {
        None => return Ok(()),
        Some(e) if from_genesis => {
            if e.seq != 0 {
                return Err(ChainError::Sequence {
                    index: 0,
                    expected: 0,
                });
            }
            if e.prev_hash != [0; 32] {
                return Err(ChainError::Link { index: 0 });
            }
            0
        }
        Some(e) => e.seq,
    };
    let mut prev: Option<[u8; 32]> = None;
    for (index, e) in events.iter().enumerate() {
        if e.seq != expected {
            return Err(ChainError::Sequence { index, expected });
        }
        if prev.is_some_and(|p| e.prev_hash != p) {
            return Err(ChainError::Link { index });
        }
        if e.compute_hash() != e.hash {
            return Err(ChainError::Hash { index });
        }
        prev = Some(e.hash);
        expected = expected.wrapping_add(1);
    }
    Ok(())
}

/// Decodes a whole log written with [`AuditEvent::encode`] and verifies it.
pub fn verify_encoded(bytes: &[u8], from_genesis: bool) -> Result<Vec<AuditEvent>, ChainError> {
    let mut events = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        match AuditEvent::decode(&bytes[pos..]) {
            Some((e, used)) => {
                events.push(e);
                pos += used;
            }
            None => {
                return Err(ChainError::Hash {
                    index: events.len(),
                });
            }
        }
    }
    verify_chain(&events, from_genesis)?;
    Ok(events)
}

fn u32_len(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&u32_len(s.len()).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Stable one-byte codes for errors in the audit encoding.
const ERRORS: [KmsError; 10] = [
    KmsError::AccessDenied,
    KmsError::NotFound,
    KmsError::Disabled,
    KmsError::PendingDeletion,
    KmsError::InvalidCiphertext,
    KmsError::InvalidArgument,
    KmsError::BufferTooSmall,
    KmsError::Unavailable,
    KmsError::AuditFailed,
    KmsError::KeyInUse,
];

fn error_code(e: KmsError) -> u8 {
    ERRORS
        .iter()
        .position(|x| *x == e)
        .and_then(|i| u8::try_from(i).ok())
        .unwrap_or(u8::MAX)
}

fn error_from_code(c: u8) -> Option<KmsError> {
    ERRORS.get(usize::from(c)).copied()
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.b.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_le_bytes(a))
    }
    fn array32(&mut self) -> Option<[u8; 32]> {
        let b = self.take(32)?;
        let mut a = [0u8; 32];
        a.copy_from_slice(b);
        Some(a)
    }
    fn string(&mut self) -> Option<String> {
        let n = usize::try_from(self.u32()?).ok()?;
        let b = self.take(n)?;
        core::str::from_utf8(b).ok().map(String::from)
    }
}
