//! The audit trail of a key service: one event per call, allowed or
//! refused, and one per change the service makes on its own (a key
//! destroyed at the end of its deletion window, an automatic rotation).
//!
//! Events form a keyed chain: each event's `hash` is
//! HMAC-SHA256(audit key, "envol-audit-v2" ‖ previous hash ‖ the event's
//! fields), under a key the service holds (kept in its sealed store). So an
//! edited, dropped, inserted or reordered event is detected, and a log
//! re-hashed by someone without the key does not verify. A log cut at its
//! end still verifies on its own; an operator who exported an
//! [`AuditHead`] earlier detects the cut (and any rewrite before the head)
//! with [`verify_against_head`].
//!
//! Two wire forms, one content: the binary encoding ([`AuditEvent::encode`],
//! [`AuditEvent::decode`]) and one text line per event
//! ([`AuditEvent::to_line`], [`AuditEvent::from_line`]), which is what the C
//! ABI's audit sink receives and what `envol audit` prints. Both carry the
//! previous hash, so an exported trail verifies later on its own.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write as _};

use hmac::Mac;
use zeroize::Zeroize;

use super::KmsError;
use super::policy::Action;
use crate::bytes::Reader;

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The call was allowed and succeeded.
    Allowed,
    /// The call was refused or failed with this error.
    Refused(KmsError),
}

impl Outcome {
    /// The stable name: `"ENVOL_OK"` or the error's
    /// [`KmsError::status_name`], as the C ABI spells its statuses.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Allowed => "ENVOL_OK",
            Outcome::Refused(e) => e.status_name(),
        }
    }

    /// The outcome called `name`.
    pub fn from_name(name: &str) -> Option<Outcome> {
        if name == "ENVOL_OK" {
            return Some(Outcome::Allowed);
        }
        ERRORS
            .iter()
            .find(|e| e.status_name() == name)
            .map(|e| Outcome::Refused(*e))
    }
}

/// The key under which a service's audit chain is computed. Zeroized on
/// drop; never printed.
#[derive(Clone)]
pub struct AuditKey([u8; 32]);

impl AuditKey {
    /// A key from bytes (the service makes its own; tests and tools that
    /// hold a service's store use this).
    pub fn from_bytes(bytes: [u8; 32]) -> AuditKey {
        AuditKey(bytes)
    }

    pub(crate) fn expose_for_sealing(&self) -> &[u8; 32] {
        &self.0
    }
}

impl Drop for AuditKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

/// One audited call or service action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    /// Position in the chain, from 0.
    pub seq: u64,
    /// Seconds since the Unix epoch, from the service's clock.
    pub time: u64,
    /// Who called ([`SERVICE_PRINCIPAL`] for the service's own actions).
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

/// The principal named in events the service records on its own (key
/// destruction, automatic rotation): not a name any caller can be given,
/// since principals in calls are checked not to start with `(`.
pub const SERVICE_PRINCIPAL: &str = "(service)";

/// Where a key service sends its audit events. A sink that returns an error
/// makes the call fail (fail closed), and the call changes nothing.
pub trait AuditSink {
    /// Stores one event durably before returning `Ok`.
    fn record(&mut self, event: &AuditEvent) -> Result<(), AuditSinkError>;
}

/// A sink could not store an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditSinkError;

/// A sink that discards events (the service still keeps its own window).
#[derive(Debug, Default)]
pub struct NullSink;

impl AuditSink for NullSink {
    fn record(&mut self, _: &AuditEvent) -> Result<(), AuditSinkError> {
        Ok(())
    }
}

/// The newest event of a chain, as an operator exports it to check a log
/// later: text form `seq=<n> hash=<64 hex digits>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditHead {
    /// Sequence number of the event.
    pub seq: u64,
    /// Its hash.
    pub hash: [u8; 32],
}

impl fmt::Display for AuditHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seq={} hash=", self.seq)?;
        write_hex(f, &self.hash)
    }
}

impl core::str::FromStr for AuditHead {
    type Err = ChainError;
    fn from_str(s: &str) -> Result<AuditHead, ChainError> {
        let bad = ChainError::BadHead;
        let (seq, hash) = s.trim().split_once(' ').ok_or(bad)?;
        let seq = parse_u64(seq.strip_prefix("seq=").ok_or(bad)?).ok_or(bad)?;
        let hash = parse_hex32(hash.strip_prefix("hash=").ok_or(bad)?).ok_or(bad)?;
        Ok(AuditHead { seq, hash })
    }
}

/// Why a chain does not verify, and at which event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainError {
    /// Event `index` does not carry sequence number `expected`.
    Sequence {
        /// Position in the log.
        index: usize,
        /// The sequence number it should carry.
        expected: u64,
    },
    /// Event `index` does not link to the hash of the event before it.
    Link {
        /// Position in the log.
        index: usize,
    },
    /// Event `index`'s hash does not match its contents under the key.
    Hash {
        /// Position in the log.
        index: usize,
    },
    /// Entry `index` does not decode (a binary record or a text line).
    Decode {
        /// Position in the log.
        index: usize,
    },
    /// The log ends before the exported head's event: it was cut.
    HeadMissing {
        /// The head's sequence number.
        seq: u64,
    },
    /// The log's event at the head's sequence number is not the exported
    /// one: the log was rewritten.
    HeadMismatch {
        /// The head's sequence number.
        seq: u64,
    },
    /// An exported head that does not parse.
    BadHead,
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainError::Sequence { index, expected } => {
                write!(f, "audit event {index}: expected sequence {expected}")
            }
            ChainError::Link { index } => write!(f, "audit event {index}: broken link"),
            ChainError::Hash { index } => write!(f, "audit event {index}: hash mismatch"),
            ChainError::Decode { index } => write!(f, "audit entry {index} does not decode"),
            ChainError::HeadMissing { seq } => {
                write!(f, "audit log ends before the exported head (event {seq})")
            }
            ChainError::HeadMismatch { seq } => {
                write!(
                    f,
                    "audit event {seq} is not the one the exported head names"
                )
            }
            ChainError::BadHead => f.write_str("exported audit head does not parse"),
        }
    }
}

impl core::error::Error for ChainError {}

const DOMAIN: &[u8] = b"envol-audit-v2";

impl AuditEvent {
    /// Builds the event that follows `prev_hash` at `seq` and computes its
    /// hash under `key`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        key: &AuditKey,
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
        e.hash = e.compute_hash(key);
        e
    }

    /// The hash this event should carry under `key`.
    pub fn compute_hash(&self, key: &AuditKey) -> [u8; 32] {
        let mut m = crate::envelope::hmac_sha256(&key.0);
        m.update(DOMAIN);
        m.update(&self.prev_hash);
        let mut body = Vec::new();
        self.encode_body(&mut body);
        m.update(&body);
        m.finalize().into_bytes().into()
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

    /// Binary wire form: body length, body, previous hash, hash.
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
        let mut r = Reader::new(bytes);
        let body_len = usize::try_from(r.u32()?).ok()?;
        let body_end = r.pos().checked_add(body_len)?;
        let seq = r.u64()?;
        let time = r.u64()?;
        let principal = r.string()?;
        // The canonical spelling only: `from_name` is case-insensitive, and
        // a log must not verify after an edit that parses to the same value.
        let name = r.str()?;
        let action = Action::from_name(name).filter(|a| a.name() == name)?;
        let key_id = r.string()?;
        let n = r.count(8)?;
        let mut context = Vec::with_capacity(n);
        for _ in 0..n {
            context.push((r.string()?, r.string()?));
        }
        let outcome = match r.u8()? {
            0 => Outcome::Allowed,
            1 => Outcome::Refused(error_from_code(r.u8()?)?),
            _ => return None,
        };
        if r.pos() != body_end {
            return None;
        }
        let prev_hash = r.array()?;
        let hash = r.array()?;
        let e = AuditEvent {
            seq,
            time,
            principal,
            action,
            key_id,
            context,
            outcome,
            prev_hash,
            hash,
        };
        Some((e, r.pos()))
    }

    /// The event as one line of text, e.g.
    ///
    /// ```text
    /// seq=3 time=1700000000 principal=mallory action=kms:Decrypt key=disk-key context={volume=vol-1} outcome=ENVOL_ERR_ACCESS_DENIED prev=<64 hex> hash=<64 hex>
    /// ```
    ///
    /// In names and context strings, control characters, space, `\`, `=`,
    /// `,`, `{` and `}` are written as `\xNN` per UTF-8 byte, so the line
    /// splits unambiguously and never spans lines. Outcomes are the C ABI's
    /// status names.
    pub fn to_line(&self) -> String {
        let mut s = String::new();
        // Writing into a String cannot fail.
        let _ = write!(
            s,
            "seq={} time={} principal={} action={} key={} context={{",
            self.seq,
            self.time,
            Escaped(&self.principal),
            self.action.name(),
            Escaped(&self.key_id)
        );
        for (i, (k, v)) in self.context.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(s, "{sep}{}={}", Escaped(k), Escaped(v));
        }
        let _ = write!(s, "}} outcome={} prev=", self.outcome.name());
        let _ = write_hex(&mut s, &self.prev_hash);
        s.push_str(" hash=");
        let _ = write_hex(&mut s, &self.hash);
        s
    }

    /// Parses a line written by [`AuditEvent::to_line`] (without its line
    /// ending). Only the canonical form is accepted: a line that parses is
    /// byte-for-byte what `to_line` writes for the event. Total.
    pub fn from_line(line: &str) -> Option<AuditEvent> {
        let mut fields = line.split(' ');
        let mut field =
            |name: &str| -> Option<&str> { fields.next()?.strip_prefix(name)?.strip_prefix('=') };
        let seq = parse_u64(field("seq")?)?;
        let time = parse_u64(field("time")?)?;
        let principal = unescape(field("principal")?)?;
        let action = Action::from_name(field("action")?)?;
        let key_id = unescape(field("key")?)?;
        let context_text = field("context")?.strip_prefix('{')?.strip_suffix('}')?;
        let outcome = Outcome::from_name(field("outcome")?)?;
        let prev_hash = parse_hex32(field("prev")?)?;
        let hash = parse_hex32(field("hash")?)?;
        if fields.next().is_some() {
            return None;
        }
        let mut context = Vec::new();
        if !context_text.is_empty() {
            for pair in context_text.split(',') {
                let (k, v) = pair.split_once('=')?;
                context.push((unescape(k)?, unescape(v)?));
            }
        }
        let e = AuditEvent {
            seq,
            time,
            principal,
            action,
            key_id,
            context,
            outcome,
            prev_hash,
            hash,
        };
        (e.to_line() == line).then_some(e)
    }
}

/// Checks a run of events under `key`: consecutive sequence numbers
/// starting at the first event's, each linked to the one before, each hash
/// right. With `from_genesis`, the first event must be sequence 0 with a
/// zero link.
pub fn verify_chain(
    key: &AuditKey,
    events: &[AuditEvent],
    from_genesis: bool,
) -> Result<(), ChainError> {
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
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            &e.compute_hash(key)[..],
            &e.hash[..],
        )) {
            return Err(ChainError::Hash { index });
        }
        prev = Some(e.hash);
        expected = expected.wrapping_add(1);
    }
    Ok(())
}

/// [`verify_chain`], then checks the log against a head exported earlier:
/// the log must reach the head's event, and that event must be the one the
/// head names. A log cut before the head, or rewritten up to it, fails.
pub fn verify_against_head(
    key: &AuditKey,
    events: &[AuditEvent],
    from_genesis: bool,
    head: &AuditHead,
) -> Result<(), ChainError> {
    verify_chain(key, events, from_genesis)?;
    let first = events.first().map_or(0, |e| e.seq);
    let at = head
        .seq
        .checked_sub(first)
        .and_then(|i| usize::try_from(i).ok())
        .and_then(|i| events.get(i))
        .ok_or(ChainError::HeadMissing { seq: head.seq })?;
    if at.hash != head.hash {
        return Err(ChainError::HeadMismatch { seq: head.seq });
    }
    Ok(())
}

/// Decodes a whole binary log written with [`AuditEvent::encode`] and
/// verifies it under `key`.
pub fn verify_encoded(
    key: &AuditKey,
    bytes: &[u8],
    from_genesis: bool,
) -> Result<Vec<AuditEvent>, ChainError> {
    let events = decode_all(bytes)?;
    verify_chain(key, &events, from_genesis)?;
    Ok(events)
}

/// Decodes a whole binary log without verifying it.
pub fn decode_all(bytes: &[u8]) -> Result<Vec<AuditEvent>, ChainError> {
    let mut events = Vec::new();
    let mut pos = 0;
    while let Some(rest) = bytes.get(pos..).filter(|r| !r.is_empty()) {
        let (e, used) = AuditEvent::decode(rest).ok_or(ChainError::Decode {
            index: events.len(),
        })?;
        events.push(e);
        pos += used;
    }
    Ok(events)
}

/// Parses a text log, one [`AuditEvent::to_line`] line per event (`\n` or
/// `\r\n` endings; a final line ending is optional; blank lines are
/// refused), without verifying it.
pub fn parse_lines(text: &str) -> Result<Vec<AuditEvent>, ChainError> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    if body.is_empty() {
        return Ok(Vec::new());
    }
    body.split('\n')
        .enumerate()
        .map(|(index, l)| {
            let l = l.strip_suffix('\r').unwrap_or(l);
            AuditEvent::from_line(l).ok_or(ChainError::Decode { index })
        })
        .collect()
}

fn u32_len(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&u32_len(s.len()).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Stable one-byte codes for errors in the binary encoding: the index
/// in [`KmsError::ALL`] (append only).
const ERRORS: [KmsError; 12] = KmsError::ALL;

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

/// A string with the line's special characters escaped.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for ch in self.0.chars() {
            if ch.is_control() || matches!(ch, ' ' | '\\' | '=' | ',' | '{' | '}') {
                let mut buf = [0u8; 4];
                for b in ch.encode_utf8(&mut buf).bytes() {
                    write!(f, "\\x{b:02x}")?;
                }
            } else {
                f.write_char(ch)?;
            }
        }
        Ok(())
    }
}

/// Reverses [`Escaped`]: `\xNN` (lowercase hex) per byte; the result must
/// be UTF-8. Whether the escaping was canonical is checked by the caller.
fn unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'\\' {
            if b.get(i + 1) != Some(&b'x') {
                return None;
            }
            let hi = hex_val(*b.get(i + 2)?)?;
            let lo = hex_val(*b.get(i + 3)?)?;
            out.push(hi << 4 | lo);
            i += 4;
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn write_hex(w: &mut impl fmt::Write, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(w, "{b:02x}")?;
    }
    Ok(())
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        *o = hex_val(pair[0])? << 4 | hex_val(pair[1])?;
    }
    Some(out)
}

/// A decimal u64 without sign, leading zeros (except "0") or overflow.
fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn event(key: &AuditKey) -> AuditEvent {
        AuditEvent::new(
            key,
            7,
            1_700_000_000,
            "a b=c\n",
            Action::Decrypt,
            "disk-key",
            alloc::vec![
                ("volume".into(), "vol-{1},é".into()),
                ("x".into(), String::new())
            ],
            Outcome::Refused(KmsError::AccessDenied),
            [9; 32],
        )
    }

    #[test]
    fn lines_round_trip_canonically() {
        let key = AuditKey::from_bytes([1; 32]);
        let e = event(&key);
        let line = e.to_line();
        assert!(!line.contains('\n'));
        assert_eq!(AuditEvent::from_line(&line), Some(e.clone()));
        assert!(line.contains("principal=a\\x20b\\x3dc\\x0a "), "{line}");
        assert!(line.contains("outcome=ENVOL_ERR_ACCESS_DENIED "), "{line}");
        // Non-canonical spellings of the same event are refused.
        for bad in [
            line.replace("\\x20", "\\x20 "),
            line.replace("seq=7", "seq=07"),
            line.replace("action=kms:Decrypt", "action=kms:decrypt"),
            line.replace("\\x0a", "\\x0A"),
            line.replace("é", "\\xc3\\xa9"),
            line.clone() + " ",
        ] {
            assert_eq!(AuditEvent::from_line(&bad), None, "{bad}");
        }
    }

    #[test]
    fn heads_parse_and_print() {
        let h = AuditHead {
            seq: 42,
            hash: [0xab; 32],
        };
        let s = h.to_string();
        assert_eq!(s.parse::<AuditHead>(), Ok(h));
        assert_eq!("seq=1".parse::<AuditHead>(), Err(ChainError::BadHead));
    }

    #[test]
    fn outcome_names_are_unique() {
        for (i, a) in ERRORS.iter().enumerate() {
            for b in &ERRORS[i + 1..] {
                assert_ne!(a.status_name(), b.status_name());
            }
            assert_eq!(
                Outcome::from_name(a.status_name()),
                Some(Outcome::Refused(*a))
            );
        }
    }
}
