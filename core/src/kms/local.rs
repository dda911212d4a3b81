//! `LocalKms`, the reference key service.
//!
//! Master keys are generated inside and never leave: there is no accessor,
//! no `Debug` of key material, and the only serialisation is the sealed
//! store (`sealed.rs`). Every call names a principal, is checked against the
//! service policy (creating and listing keys) or the key policy and the
//! key's grants (everything else; default deny, explicit deny wins), and is
//! audited, allowed or refused.
//!
//! Every call runs in two phases: a read-only check that decides the
//! outcome and plans a [`Change`], then the audit record, then the change.
//! The event is in the sink before the change exists; if the sink fails,
//! the call fails and nothing changed (fail closed). Changes the service
//! makes on its own ([`LocalKms::tick`]: key destruction at the end of a
//! deletion window, automatic rotation) are recorded the same way first.
//!
//! Time comes from an injected [`Clock`], randomness from an injected
//! [`Entropy`], so this runs without an OS.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::audit::{
    AuditEvent, AuditHead, AuditKey, AuditSink, ChainError, NullSink, Outcome, SERVICE_PRINCIPAL,
};
use super::policy::{Action, Decision, Policy};
use super::sealed;
use super::{Clock, Kms, KmsError};
use crate::envelope::{self, Context, DataKey, MasterKey, WrappedKey, check_key_id};
use crate::xts::KeySize;

mod checks;
mod manage;
mod service;

use checks::*;

/// A source of cryptographic randomness.
pub trait Entropy {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), KmsError>;
}

impl<R: rand_core::TryCryptoRng> Entropy for R {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), KmsError> {
        self.try_fill_bytes(buf).map_err(|_| KmsError::Unavailable)
    }
}

/// Adapts an [`Entropy`] to `rand_core` for the envelope functions.
struct RngAdapter<'a>(&'a mut dyn Entropy);

impl rand_core::TryRng for RngAdapter<'_> {
    type Error = KmsError;
    fn try_next_u32(&mut self) -> Result<u32, KmsError> {
        let mut b = [0u8; 4];
        self.0.fill(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, KmsError> {
        let mut b = [0u8; 8];
        self.0.fill(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), KmsError> {
        self.0.fill(dst)
    }
}
impl rand_core::TryCryptoRng for RngAdapter<'_> {}

/// At most this many recent audit events are kept in memory; older ones
/// live only in the sink. Events are addressed by sequence number
/// ([`LocalKms::audit_event`]), so the window moving never renumbers them.
pub const MAX_LOG_IN_MEMORY: usize = 65_536;
/// Most master keys one service holds.
pub const MAX_KEYS: usize = 10_000;
/// Most grants on one key.
pub const MAX_GRANTS_PER_KEY: usize = 1_000;
/// Longest principal name, in bytes.
pub const MAX_PRINCIPAL: usize = 256;

/// Seconds in a day.
pub(crate) const DAY: u64 = 86_400;

/// Checks a principal name: 1..=[`MAX_PRINCIPAL`] bytes, not starting
/// with `(` (which marks the service's own audit records).
pub fn check_principal(principal: &str) -> Result<(), KmsError> {
    if principal.is_empty() || principal.len() > MAX_PRINCIPAL || principal.starts_with('(') {
        return Err(KmsError::InvalidArgument);
    }
    Ok(())
}

/// The life cycle of a master key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// Usable.
    Enabled,
    /// Refuses cryptographic use until enabled again.
    Disabled,
    /// Will be deleted at `delete_at` (seconds) unless cancelled.
    PendingDeletion {
        /// When the key material is destroyed.
        delete_at: u64,
    },
    /// Key material destroyed; blobs under it are lost for good.
    Deleted,
}

/// A limit on what a grant allows, on the call's encryption context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GrantConstraint {
    /// The context must be exactly these pairs.
    ContextEquals(Vec<(String, String)>),
    /// The context must contain these pairs (and may hold more).
    ContextSubset(Vec<(String, String)>),
}

impl GrantConstraint {
    fn pairs(&self) -> &[(String, String)] {
        match self {
            GrantConstraint::ContextEquals(p) | GrantConstraint::ContextSubset(p) => p,
        }
    }
}

/// A grant as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantInfo {
    /// The grant's id.
    pub id: String,
    /// Who it lets act.
    pub grantee: String,
    /// What it lets them do (only [`Action::GRANT_OPERATIONS`]).
    pub operations: Vec<Action>,
    /// On which contexts.
    pub constraint: Option<GrantConstraint>,
    /// Who may retire it besides the grantee.
    pub retiring_principal: Option<String>,
}

/// What `describe_key` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key's id.
    pub key_id: String,
    /// Its state.
    pub state: KeyState,
    /// How many backing versions it has (new wraps use the newest).
    pub backing_versions: u32,
    /// Automatic rotation period in seconds, if enabled.
    pub rotation_period: Option<u64>,
    /// When it was created.
    pub created: u64,
}

/// One master key and everything attached to it.
pub(crate) struct Entry {
    pub state: KeyState,
    pub created: u64,
    /// Backing versions; version `n` is `versions[n - 1]`. Empty once
    /// deleted. Boxed, so growing the list moves pointers, never key bytes
    /// (a reallocation would leave copies in freed memory).
    #[allow(clippy::vec_box)]
    pub versions: Vec<Box<MasterKey>>,
    pub rotation_period: Option<u64>,
    pub last_rotated: u64,
    pub policy: Policy,
    pub grants: Vec<GrantInfo>,
    /// Encryption contexts of the data keys wrapped under this key.
    pub protected: BTreeSet<Vec<(String, String)>>,
}

/// What the service holds, apart from its collaborators and audit chain.
#[derive(Default)]
pub(crate) struct State {
    pub keys: BTreeMap<String, Entry>,
    /// Who may create and list keys; `None` until the operator sets one,
    /// and then nobody may.
    pub service_policy: Option<Policy>,
    /// Contexts of retired volumes: never unwrapped again.
    pub tombstones: BTreeSet<Vec<(String, String)>>,
}

/// The audit chain's state.
#[derive(Default)]
pub(crate) struct Chain {
    /// The chain's MAC key; made at the first event.
    pub key: Option<AuditKey>,
    pub log: VecDeque<AuditEvent>,
    pub next_seq: u64,
    pub last_hash: [u8; 32],
}

impl Chain {
    /// Appends a recorded event: the chain moves on past it, and the
    /// in-memory window drops its oldest event when full.
    fn push(&mut self, e: AuditEvent) {
        self.next_seq = e.seq.wrapping_add(1);
        self.last_hash = e.hash;
        if self.log.len() >= MAX_LOG_IN_MEMORY {
            self.log.pop_front();
        }
        self.log.push_back(e);
    }
}

/// A change a call makes, planned by its read-only check and applied only
/// after the call's audit event is recorded. Applying never fails.
pub(crate) enum Change {
    None,
    CreateKey(String, Box<Entry>),
    SetState(String, KeyState),
    SetPolicy(String, Policy),
    AddGrant(String, GrantInfo),
    RemoveGrant(String, String),
    AddVersion(String, Box<MasterKey>, u64),
    SetLastRotated(String, u64),
    SetRotation(String, Option<u64>),
    Protect(String, Vec<(String, String)>),
    Forget(String, Vec<(String, String)>),
    Tombstone(String, Vec<(String, String)>),
    Destroy(String),
    SetServicePolicy(Policy),
}

/// The reference key service.
pub struct LocalKms {
    pub(crate) state: State,
    pub(crate) chain: Chain,
    /// The length of the sealed body, kept up to date by [`LocalKms::apply`].
    pub(crate) body: usize,
    entropy: Box<dyn Entropy + Send>,
    clock: Box<dyn Clock + Send>,
    sink: Box<dyn AuditSink + Send>,
}

impl fmt::Debug for LocalKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKms")
            .field("keys", &self.state.keys.len())
            .field("audit_events", &self.chain.next_seq)
            .finish_non_exhaustive()
    }
}

fn owned(ctx: &Context<'_>) -> Vec<(String, String)> {
    ctx.iter().map(|(k, v)| (k.into(), v.into())).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a read-only check returns: the call's result and the change that
/// goes with it.
type Planned<T> = Result<(T, Change), KmsError>;

impl LocalKms {
    /// An empty service. Nobody may create keys until the operator sets a
    /// service policy ([`LocalKms::set_service_policy`]).
    pub fn new(
        entropy: Box<dyn Entropy + Send>,
        clock: Box<dyn Clock + Send>,
        sink: Option<Box<dyn AuditSink + Send>>,
    ) -> LocalKms {
        let mut kms = LocalKms {
            state: State::default(),
            chain: Chain::default(),
            body: 0,
            entropy,
            clock,
            sink: sink.unwrap_or_else(|| Box::new(NullSink)),
        };
        kms.body = sealed::body_len(&kms);
        kms
    }

    /// The length the sealed store's body has now (tests compare it with a
    /// count from scratch).
    #[doc(hidden)]
    pub fn store_body_len(&self) -> (usize, usize) {
        (self.body, sealed::body_len(self))
    }

    /// The recent audit events held in memory (at most
    /// [`MAX_LOG_IN_MEMORY`], oldest first; everything since the service
    /// was created or unsealed went to the sink).
    pub fn audit_log(&self) -> &VecDeque<AuditEvent> {
        &self.chain.log
    }

    /// The event with sequence number `seq`, if still in memory.
    pub fn audit_event(&self, seq: u64) -> Option<&AuditEvent> {
        let first = self.chain.log.front()?.seq;
        let i = usize::try_from(seq.checked_sub(first)?).ok()?;
        self.chain.log.get(i)
    }

    /// The sequence number the next event will carry.
    pub fn audit_next_seq(&self) -> u64 {
        self.chain.next_seq
    }

    /// The newest event of the chain, for an operator to keep somewhere
    /// safe and check later logs against; `None` before any event.
    pub fn audit_head(&self) -> Option<AuditHead> {
        let seq = self.chain.next_seq.checked_sub(1)?;
        Some(AuditHead {
            seq,
            hash: self.chain.last_hash,
        })
    }

    /// Verifies a log of this service's events (read back from its sink, or
    /// from [`LocalKms::audit_log`]) under the service's audit key, and, with
    /// `head`, that it reaches that exported head unchanged.
    pub fn verify_audit(
        &self,
        events: &[AuditEvent],
        from_genesis: bool,
        head: Option<&AuditHead>,
    ) -> Result<(), ChainError> {
        let Some(key) = self.chain.key.as_ref() else {
            // No event was ever made under this service's key.
            return match events.first() {
                None if head.is_none() => Ok(()),
                None => Err(ChainError::HeadMissing {
                    seq: head.map_or(0, |h| h.seq),
                }),
                Some(_) => Err(ChainError::Hash { index: 0 }),
            };
        };
        match head {
            Some(h) => super::audit::verify_against_head(key, events, from_genesis, h),
            None => super::audit::verify_chain(key, events, from_genesis),
        }
    }

    /// Continues the chain after events its sink stored beyond the sealed
    /// position — what a crash between the sink's write and the store's
    /// leaves. Events before the sealed position are ignored; the rest must
    /// follow on from it (next sequence number, linked to the sealed last
    /// hash) and verify under the service's audit key, or nothing changes.
    /// Returns how many were taken.
    pub fn resume_audit(&mut self, events: &[AuditEvent]) -> Result<usize, ChainError> {
        let next = self.chain.next_seq;
        let Some(start) = events.iter().position(|e| e.seq >= next) else {
            return Ok(0);
        };
        let after = &events[start..];
        if after[0].seq != next {
            return Err(ChainError::Sequence {
                index: 0,
                expected: next,
            });
        }
        if after[0].prev_hash != self.chain.last_hash {
            return Err(ChainError::Link { index: 0 });
        }
        let key = self
            .chain
            .key
            .as_ref()
            .ok_or(ChainError::Hash { index: 0 })?;
        super::audit::verify_chain(key, after, false)?;
        for e in after {
            self.chain.push(e.clone());
        }
        Ok(after.len())
    }

    /// Replaces the external audit sink.
    pub fn set_audit_sink(&mut self, sink: Box<dyn AuditSink + Send>) {
        self.sink = sink;
    }

    /// The service policy, if one was set.
    pub fn service_policy(&self) -> Option<&Policy> {
        self.state.service_policy.as_ref()
    }

    pub(crate) fn entropy(&mut self) -> &mut dyn Entropy {
        self.entropy.as_mut()
    }

    /// The audit key, made on first use.
    fn audit_key(&mut self) -> Result<&AuditKey, KmsError> {
        if self.chain.key.is_none() {
            let mut k = [0u8; 32];
            self.entropy
                .fill(&mut k)
                .map_err(|_| KmsError::AuditFailed)?;
            self.chain.key = Some(AuditKey::from_bytes(k));
            zeroize::Zeroize::zeroize(&mut k);
        }
        self.chain.key.as_ref().ok_or(KmsError::AuditFailed)
    }

    /// Records one event: into the sink first, and only if the sink took it
    /// into the chain and the in-memory window. A failing sink leaves the
    /// chain as it was and is `AuditFailed`.
    fn record(
        &mut self,
        principal: &str,
        action: Action,
        key_id: &str,
        ctx: Vec<(String, String)>,
        outcome: Outcome,
    ) -> Result<(), KmsError> {
        let (seq, prev, now) = (self.chain.next_seq, self.chain.last_hash, self.clock.now());
        let key = self.audit_key()?;
        let e = AuditEvent::new(key, seq, now, principal, action, key_id, ctx, outcome, prev);
        self.sink.record(&e).map_err(|_| KmsError::AuditFailed)?;
        self.chain.push(e);
        Ok(())
    }

    /// Runs one call: the clock's due changes, the read-only `check`, the
    /// store-size check of its change, the audit record, then the change.
    fn call<T>(
        &mut self,
        principal: &str,
        action: Action,
        key_id: &str,
        ctx: &Context<'_>,
        check: impl FnOnce(&State, &mut dyn Entropy, u64) -> Planned<T>,
    ) -> Result<T, KmsError> {
        self.tick();
        let now = self.clock.now();
        let planned = check_principal(principal)
            .and_then(|()| check(&self.state, self.entropy.as_mut(), now))
            .and_then(|(t, change)| {
                self.fits(&change)?;
                Ok((t, change))
            });
        let outcome = match &planned {
            Ok(_) => Outcome::Allowed,
            Err(e) => Outcome::Refused(*e),
        };
        self.record(principal, action, key_id, owned(ctx), outcome)?;
        let (t, change) = planned?;
        self.apply(change);
        Ok(t)
    }

    /// A management call on one key, authorized by its policy and grants.
    fn manage<T>(
        &mut self,
        principal: &str,
        key_id: &str,
        action: Action,
        check: impl FnOnce(&Entry, &mut dyn Entropy, u64) -> Planned<T>,
    ) -> Result<T, KmsError> {
        let empty = Context::empty();
        self.call(principal, action, key_id, &empty, |st, rng, now| {
            let e = authorize(st, principal, key_id, action, &empty)?;
            check(e, rng, now)
        })
    }

    /// Refuses a change that would take the sealed store past its size
    /// limit, so that everything the service accepts can be sealed and
    /// unsealed again.
    fn fits(&self, change: &Change) -> Result<(), KmsError> {
        let growth = sealed::growth(&self.state, change);
        if growth > 0 && self.body.saturating_add(growth) > sealed::MAX_BODY {
            return Err(KmsError::LimitExceeded);
        }
        Ok(())
    }

    /// Applies a change planned and recorded earlier, keeping the sealed
    /// body's length up to date.
    pub(crate) fn apply(&mut self, change: Change) {
        use sealed::{entry_len, grant_len, pairs_len, policy_len};
        let (mut add, mut sub) = (0usize, 0usize);
        let keys = &mut self.state.keys;
        match change {
            Change::None => {}
            Change::CreateKey(id, e) => {
                add = entry_len(&id, &e);
                keys.insert(id, *e);
            }
            Change::SetState(id, s) => {
                if let Some(e) = keys.get_mut(&id) {
                    e.state = s;
                }
            }
            Change::SetPolicy(id, p) => {
                if let Some(e) = keys.get_mut(&id) {
                    (add, sub) = (policy_len(&p), policy_len(&e.policy));
                    e.policy = p;
                }
            }
            Change::AddGrant(id, g) => {
                if let Some(e) = keys.get_mut(&id) {
                    add = grant_len(&g);
                    e.grants.push(g);
                }
            }
            Change::RemoveGrant(id, grant) => {
                if let Some(e) = keys.get_mut(&id) {
                    sub = e
                        .grants
                        .iter()
                        .filter(|g| g.id == grant)
                        .map(grant_len)
                        .sum();
                    e.grants.retain(|g| g.id != grant);
                }
            }
            Change::AddVersion(id, mk, now) => {
                if let Some(e) = keys.get_mut(&id) {
                    add = 32;
                    e.versions.push(mk);
                    e.last_rotated = now;
                }
            }
            Change::SetLastRotated(id, now) => {
                if let Some(e) = keys.get_mut(&id) {
                    e.last_rotated = now;
                }
            }
            Change::SetRotation(id, period) => {
                if let Some(e) = keys.get_mut(&id) {
                    e.rotation_period = period;
                }
            }
            Change::Protect(id, ctx) => {
                if let Some(e) = keys.get_mut(&id) {
                    add = pairs_len(&ctx);
                    if !e.protected.insert(ctx) {
                        add = 0;
                    }
                }
            }
            Change::Forget(id, ctx) => {
                if let Some(e) = keys.get_mut(&id)
                    && e.protected.remove(&ctx)
                {
                    sub = pairs_len(&ctx);
                }
            }
            Change::Tombstone(id, ctx) => {
                if let Some(e) = keys.get_mut(&id)
                    && e.protected.remove(&ctx)
                {
                    sub = pairs_len(&ctx);
                }
                let n = pairs_len(&ctx);
                if self.state.tombstones.insert(ctx) {
                    add = n;
                }
            }
            Change::Destroy(id) => {
                if let Some(e) = keys.get_mut(&id) {
                    sub = 32 * e.versions.len() + e.grants.iter().map(grant_len).sum::<usize>();
                    e.state = KeyState::Deleted;
                    // Dropping the boxes zeroizes the key material.
                    e.versions.clear();
                    e.grants.clear();
                }
            }
            Change::SetServicePolicy(p) => {
                add = policy_len(&p);
                sub = self.state.service_policy.as_ref().map_or(0, policy_len);
                self.state.service_policy = Some(p);
            }
        }
        self.body = self.body.saturating_add(add).saturating_sub(sub);
    }

    /// Applies the clock: destroys keys whose deletion window has passed and
    /// rotates keys whose rotation period has elapsed. Each is recorded in
    /// the audit chain (principal [`SERVICE_PRINCIPAL`], `kms:DeleteKey` or
    /// `kms:RotateKey`) before it happens; while the sink fails, they wait.
    /// Every call runs this first.
    pub fn tick(&mut self) {
        let now = self.clock.now();
        let due: Vec<String> = self
            .state
            .keys
            .iter()
            .filter(|(_, e)| {
                matches!(e.state, KeyState::PendingDeletion { delete_at } if now >= delete_at)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            let ok = self.record(
                SERVICE_PRINCIPAL,
                Action::DeleteKey,
                &id,
                Vec::new(),
                Outcome::Allowed,
            );
            if ok.is_err() {
                return;
            }
            self.apply(Change::Destroy(id));
        }
        let due: Vec<String> = self
            .state
            .keys
            .iter()
            .filter(|(_, e)| {
                e.state == KeyState::Enabled
                    && e.rotation_period
                        .is_some_and(|p| now.saturating_sub(e.last_rotated) >= p)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            let planned = MasterKey::generate(&mut RngAdapter(self.entropy.as_mut()))
                .map_err(|_| KmsError::Unavailable)
                .map(|mk| Change::AddVersion(id.clone(), Box::new(mk), now))
                .and_then(|c| self.fits(&c).map(|()| c));
            let outcome = match &planned {
                Ok(_) => Outcome::Allowed,
                Err(e) => Outcome::Refused(*e),
            };
            if self
                .record(
                    SERVICE_PRINCIPAL,
                    Action::RotateKey,
                    &id,
                    Vec::new(),
                    outcome,
                )
                .is_err()
            {
                return;
            }
            // A refused rotation waits a whole period before it is tried
            // (and recorded) again.
            self.apply(planned.unwrap_or(Change::SetLastRotated(id, now)));
        }
    }
}
