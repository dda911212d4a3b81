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

    /// Sets the service policy, which says who may create and list keys
    /// (`kms:CreateKey`, `kms:ListKeys`) and replace it
    /// (`kms:PutServicePolicy`); statements with encryption-context
    /// conditions never apply to these. The first one is set by whoever
    /// holds the service (the operator, at setup); after that, `principal`
    /// needs `kms:PutServicePolicy` under the current one.
    pub fn set_service_policy(&mut self, principal: &str, policy: Policy) -> Result<(), KmsError> {
        let empty = Context::empty();
        self.call(
            principal,
            Action::PutServicePolicy,
            "",
            &empty,
            |st, _, _| {
                if st.service_policy.is_some() {
                    service_authorize(st, principal, Action::PutServicePolicy)?;
                }
                if !policy.is_storable() {
                    return Err(KmsError::InvalidArgument);
                }
                Ok(((), Change::SetServicePolicy(policy)))
            },
        )
    }

    /// Creates a master key with a fresh backing version and `policy`
    /// (needs `kms:CreateKey` under the service policy).
    pub fn create_key(
        &mut self,
        creator: &str,
        key_id: &str,
        policy: Policy,
    ) -> Result<(), KmsError> {
        let empty = Context::empty();
        self.call(
            creator,
            Action::CreateKey,
            key_id,
            &empty,
            |st, rng, now| {
                service_authorize(st, creator, Action::CreateKey)?;
                check_key_id(key_id).map_err(|_| KmsError::InvalidArgument)?;
                if st.keys.contains_key(key_id) || !policy.is_storable() {
                    return Err(KmsError::InvalidArgument);
                }
                if st.keys.len() >= MAX_KEYS {
                    return Err(KmsError::LimitExceeded);
                }
                let mk =
                    MasterKey::generate(&mut RngAdapter(rng)).map_err(|_| KmsError::Unavailable)?;
                let entry = Entry {
                    state: KeyState::Enabled,
                    created: now,
                    versions: alloc::vec![Box::new(mk)],
                    rotation_period: None,
                    last_rotated: now,
                    policy,
                    grants: Vec::new(),
                    protected: BTreeSet::new(),
                };
                Ok(((), Change::CreateKey(key_id.into(), Box::new(entry))))
            },
        )
    }

    /// The ids of all keys, deleted ones included (needs `kms:ListKeys`
    /// under the service policy).
    pub fn list_keys(&mut self, principal: &str) -> Result<Vec<String>, KmsError> {
        let empty = Context::empty();
        self.call(principal, Action::ListKeys, "", &empty, |st, _, _| {
            service_authorize(st, principal, Action::ListKeys)?;
            Ok((st.keys.keys().cloned().collect(), Change::None))
        })
    }

    /// State, versions and rotation of a key.
    pub fn describe_key(&mut self, principal: &str, key_id: &str) -> Result<KeyInfo, KmsError> {
        self.manage(principal, key_id, Action::DescribeKey, |e, _, _| {
            let info = KeyInfo {
                key_id: key_id.into(),
                state: e.state,
                backing_versions: u32::try_from(e.versions.len()).unwrap_or(u32::MAX),
                rotation_period: e.rotation_period,
                created: e.created,
            };
            Ok((info, Change::None))
        })
    }

    /// Disabled → Enabled.
    pub fn enable_key(&mut self, principal: &str, key_id: &str) -> Result<(), KmsError> {
        self.set_enabled(principal, key_id, Action::EnableKey, KeyState::Enabled)
    }

    /// Enabled → Disabled.
    pub fn disable_key(&mut self, principal: &str, key_id: &str) -> Result<(), KmsError> {
        self.set_enabled(principal, key_id, Action::DisableKey, KeyState::Disabled)
    }

    fn set_enabled(
        &mut self,
        principal: &str,
        key_id: &str,
        action: Action,
        to: KeyState,
    ) -> Result<(), KmsError> {
        self.manage(principal, key_id, action, |e, _, _| match e.state {
            KeyState::Enabled | KeyState::Disabled => Ok(((), Change::SetState(key_id.into(), to))),
            KeyState::PendingDeletion { .. } => Err(KmsError::PendingDeletion),
            KeyState::Deleted => Err(KmsError::NotFound),
        })
    }

    /// Schedules deletion in 7..=30 days. A key that still protects volumes
    /// needs `force`. Returns the deletion time.
    pub fn schedule_key_deletion(
        &mut self,
        principal: &str,
        key_id: &str,
        days: u32,
        force: bool,
    ) -> Result<u64, KmsError> {
        self.manage(
            principal,
            key_id,
            Action::ScheduleKeyDeletion,
            |e, _, now| {
                if !(7..=30).contains(&days) {
                    return Err(KmsError::InvalidArgument);
                }
                if matches!(e.state, KeyState::PendingDeletion { .. }) {
                    return Err(KmsError::PendingDeletion);
                }
                if !e.protected.is_empty() && !force {
                    return Err(KmsError::KeyInUse);
                }
                let delete_at = now.saturating_add(u64::from(days) * DAY);
                let s = KeyState::PendingDeletion { delete_at };
                Ok((delete_at, Change::SetState(key_id.into(), s)))
            },
        )
    }

    /// PendingDeletion → Disabled (as AWS does).
    pub fn cancel_key_deletion(&mut self, principal: &str, key_id: &str) -> Result<(), KmsError> {
        self.manage(
            principal,
            key_id,
            Action::CancelKeyDeletion,
            |e, _, _| match e.state {
                KeyState::PendingDeletion { .. } => {
                    Ok(((), Change::SetState(key_id.into(), KeyState::Disabled)))
                }
                _ => Err(KmsError::InvalidArgument),
            },
        )
    }

    /// Replaces the key policy.
    pub fn put_key_policy(
        &mut self,
        principal: &str,
        key_id: &str,
        policy: Policy,
    ) -> Result<(), KmsError> {
        self.manage(principal, key_id, Action::PutKeyPolicy, |_, _, _| {
            if !policy.is_storable() {
                return Err(KmsError::InvalidArgument);
            }
            Ok(((), Change::SetPolicy(key_id.into(), policy)))
        })
    }

    /// The key policy.
    pub fn get_key_policy(&mut self, principal: &str, key_id: &str) -> Result<Policy, KmsError> {
        self.manage(principal, key_id, Action::GetKeyPolicy, |e, _, _| {
            Ok((e.policy.clone(), Change::None))
        })
    }

    /// Grants `grantee` `operations` on this key, within `constraint`.
    /// Returns the grant id.
    ///
    /// Only grant operations ([`Action::GRANT_OPERATIONS`]) may be granted;
    /// anything else is `InvalidArgument`. A principal whose right to
    /// create grants comes from a grant (not the key policy) can only
    /// narrow it: the new grant's operations must be among that grant's,
    /// and its constraint at least as strict.
    pub fn create_grant(
        &mut self,
        principal: &str,
        key_id: &str,
        grantee: &str,
        operations: &[Action],
        constraint: Option<GrantConstraint>,
        retiring_principal: Option<&str>,
    ) -> Result<String, KmsError> {
        let empty = Context::empty();
        let action = Action::CreateGrant;
        self.call(principal, action, key_id, &empty, |st, rng, _| {
            check_principal(grantee)?;
            if let Some(r) = retiring_principal {
                check_principal(r)?;
            }
            let mut ops: Vec<Action> = Vec::new();
            for op in operations {
                if !op.is_grant_operation() {
                    return Err(KmsError::InvalidArgument);
                }
                if !ops.contains(op) {
                    ops.push(*op);
                }
            }
            if ops.is_empty() {
                return Err(KmsError::InvalidArgument);
            }
            if let Some(c) = &constraint {
                check_pairs(c.pairs())?;
            }
            let e = authorize_grant_creation(st, principal, key_id, &ops, constraint.as_ref())?;
            if e.grants.len() >= MAX_GRANTS_PER_KEY {
                return Err(KmsError::LimitExceeded);
            }
            let mut raw = [0u8; 16];
            rng.fill(&mut raw)?;
            let id = format!("grant-{}", hex(&raw));
            let grant = GrantInfo {
                id: id.clone(),
                grantee: grantee.into(),
                operations: ops,
                constraint,
                retiring_principal: retiring_principal.map(String::from),
            };
            Ok((id, Change::AddGrant(key_id.into(), grant)))
        })
    }

    /// The key's grants.
    pub fn list_grants(
        &mut self,
        principal: &str,
        key_id: &str,
    ) -> Result<Vec<GrantInfo>, KmsError> {
        self.manage(principal, key_id, Action::ListGrants, |e, _, _| {
            Ok((e.grants.clone(), Change::None))
        })
    }

    /// Retires a grant: allowed for its retiring principal and its grantee,
    /// or by policy or grant (`kms:RetireGrant`).
    pub fn retire_grant(
        &mut self,
        principal: &str,
        key_id: &str,
        grant_id: &str,
    ) -> Result<(), KmsError> {
        let empty = Context::empty();
        self.call(
            principal,
            Action::RetireGrant,
            key_id,
            &empty,
            |st, _, _| {
                let e = live_entry(st, key_id)?;
                let g = e
                    .grants
                    .iter()
                    .find(|g| g.id == grant_id)
                    .ok_or(KmsError::NotFound)?;
                let own =
                    g.grantee == principal || g.retiring_principal.as_deref() == Some(principal);
                if !own {
                    authorize(st, principal, key_id, Action::RetireGrant, &empty)?;
                }
                Ok(((), Change::RemoveGrant(key_id.into(), grant_id.into())))
            },
        )
    }

    /// Revokes a grant (policy `kms:RevokeGrant`).
    pub fn revoke_grant(
        &mut self,
        principal: &str,
        key_id: &str,
        grant_id: &str,
    ) -> Result<(), KmsError> {
        self.manage(principal, key_id, Action::RevokeGrant, |e, _, _| {
            if !e.grants.iter().any(|g| g.id == grant_id) {
                return Err(KmsError::NotFound);
            }
            Ok(((), Change::RemoveGrant(key_id.into(), grant_id.into())))
        })
    }

    /// Adds a backing version now; old versions stay for existing blobs.
    /// Returns the new version number.
    pub fn rotate_key_on_demand(&mut self, principal: &str, key_id: &str) -> Result<u32, KmsError> {
        self.manage(
            principal,
            key_id,
            Action::RotateKeyOnDemand,
            |e, rng, now| {
                usable(e)?;
                let v = u32::try_from(e.versions.len() + 1).map_err(|_| KmsError::LimitExceeded)?;
                let mk =
                    MasterKey::generate(&mut RngAdapter(rng)).map_err(|_| KmsError::Unavailable)?;
                Ok((v, Change::AddVersion(key_id.into(), Box::new(mk), now)))
            },
        )
    }

    /// Rotates automatically every `period_days` (1..=2560) days.
    pub fn enable_key_rotation(
        &mut self,
        principal: &str,
        key_id: &str,
        period_days: u32,
    ) -> Result<(), KmsError> {
        self.manage(principal, key_id, Action::EnableKeyRotation, |_, _, _| {
            if !(1..=2560).contains(&period_days) {
                return Err(KmsError::InvalidArgument);
            }
            let period = Some(u64::from(period_days) * DAY);
            Ok(((), Change::SetRotation(key_id.into(), period)))
        })
    }

    /// Stops automatic rotation.
    pub fn disable_key_rotation(&mut self, principal: &str, key_id: &str) -> Result<(), KmsError> {
        self.manage(principal, key_id, Action::DisableKeyRotation, |_, _, _| {
            Ok(((), Change::SetRotation(key_id.into(), None)))
        })
    }

    /// The encryption contexts (volumes) this key has wrapped data keys for:
    /// what deleting it would make unreadable.
    pub fn protected_volumes(
        &mut self,
        principal: &str,
        key_id: &str,
    ) -> Result<Vec<Vec<(String, String)>>, KmsError> {
        self.manage(
            principal,
            key_id,
            Action::ListProtectedVolumes,
            |e, _, _| Ok((e.protected.iter().cloned().collect(), Change::None)),
        )
    }

    /// Forgets that `context` is protected by `key_id` (after a volume is
    /// destroyed or rewrapped elsewhere), so deleting the key no longer
    /// needs `force` for it. Needs `kms:ForgetVolume`: removing the guard is
    /// a management right, not a read.
    pub fn forget_volume(
        &mut self,
        principal: &str,
        key_id: &str,
        context: &Context<'_>,
    ) -> Result<(), KmsError> {
        let ctx = owned(context);
        self.manage(principal, key_id, Action::ForgetVolume, |_, _, _| {
            Ok(((), Change::Forget(key_id.into(), ctx)))
        })
    }

    /// Whether the volume context `context` was retired here.
    pub fn is_retired(&self, context: &Context<'_>) -> bool {
        self.state.tombstones.contains(&owned(context))
    }

    /// The data key of `w` under `ctx`, into `out`; the caller authorized it.
    fn open_blob(
        st: &State,
        w: &WrappedKey<'_>,
        ctx: &Context<'_>,
        out: &mut [u8],
    ) -> Result<usize, KmsError> {
        let e = st.keys.get(w.key_id()).ok_or(KmsError::NotFound)?;
        let idx = usize::try_from(w.backing_version())
            .ok()
            .and_then(|v| v.checked_sub(1))
            .ok_or(KmsError::InvalidCiphertext)?;
        let mk = e.versions.get(idx).ok_or(KmsError::InvalidCiphertext)?;
        w.open(mk, ctx, out).map_err(|err| match err {
            envelope::Error::BufferTooSmall => KmsError::BufferTooSmall,
            _ => KmsError::InvalidCiphertext,
        })
    }

    /// The key id named by a blob, for audit records ("" if unparsable).
    fn blob_key(blob: &[u8]) -> String {
        WrappedKey::parse(blob)
            .map(|w| String::from(w.key_id()))
            .unwrap_or_default()
    }
}

/// Parses a blob this service can open: envol's own AES-256-GCM. A blob
/// from another kind of key service is invalid ciphertext here.
fn parse_blob(blob: &[u8]) -> Result<WrappedKey<'_>, KmsError> {
    WrappedKey::parse(blob)
        .ok()
        .filter(|w| w.algorithm() == envelope::Algorithm::Aes256Gcm)
        .ok_or(KmsError::InvalidCiphertext)
}

/// The entry of a key that exists and is not deleted.
fn live_entry<'s>(st: &'s State, key_id: &str) -> Result<&'s Entry, KmsError> {
    match st.keys.get(key_id) {
        Some(e) if e.state != KeyState::Deleted => Ok(e),
        _ => Err(KmsError::NotFound),
    }
}

/// Key policy, then grants: explicit deny wins, then allow, then a grant.
fn authorize<'s>(
    st: &'s State,
    principal: &str,
    key_id: &str,
    action: Action,
    ctx: &Context<'_>,
) -> Result<&'s Entry, KmsError> {
    let e = live_entry(st, key_id)?;
    match e.policy.evaluate(principal, action, ctx) {
        Decision::ExplicitDeny => Err(KmsError::AccessDenied),
        Decision::Allow => Ok(e),
        Decision::ImplicitDeny => {
            let granted = e.grants.iter().any(|g| {
                g.grantee == principal
                    && g.operations.contains(&action)
                    && grant_context_ok(g.constraint.as_ref(), ctx)
            });
            if granted {
                Ok(e)
            } else {
                Err(KmsError::AccessDenied)
            }
        }
    }
}

/// `CreateGrant` by key policy, or by a grant the new one narrows.
fn authorize_grant_creation<'s>(
    st: &'s State,
    principal: &str,
    key_id: &str,
    ops: &[Action],
    constraint: Option<&GrantConstraint>,
) -> Result<&'s Entry, KmsError> {
    let e = live_entry(st, key_id)?;
    match e
        .policy
        .evaluate(principal, Action::CreateGrant, &Context::empty())
    {
        Decision::ExplicitDeny => Err(KmsError::AccessDenied),
        Decision::Allow => Ok(e),
        Decision::ImplicitDeny => {
            let narrows = e.grants.iter().any(|g| {
                g.grantee == principal
                    && g.operations.contains(&Action::CreateGrant)
                    && ops.iter().all(|op| g.operations.contains(op))
                    && narrower(constraint, g.constraint.as_ref())
            });
            if narrows {
                Ok(e)
            } else {
                Err(KmsError::AccessDenied)
            }
        }
    }
}

/// Whether every context `child` admits is one `parent` admits.
fn narrower(child: Option<&GrantConstraint>, parent: Option<&GrantConstraint>) -> bool {
    let contains = |big: &[(String, String)], small: &[(String, String)]| {
        small.iter().all(|p| big.contains(p))
    };
    match (child, parent) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(GrantConstraint::ContextEquals(c)), Some(GrantConstraint::ContextEquals(p))) => {
            c.len() == p.len() && contains(c, p)
        }
        (Some(GrantConstraint::ContextSubset(_)), Some(GrantConstraint::ContextEquals(_))) => false,
        (Some(c), Some(GrantConstraint::ContextSubset(p))) => contains(c.pairs(), p),
    }
}

/// A constraint's pairs must form a valid encryption context.
fn check_pairs(pairs: &[(String, String)]) -> Result<(), KmsError> {
    let mut ctx = Context::empty();
    if pairs.len() > envelope::MAX_CONTEXT_PAIRS {
        return Err(KmsError::InvalidArgument);
    }
    for (k, v) in pairs {
        ctx.insert(k, v).map_err(|_| KmsError::InvalidArgument)?;
    }
    Ok(())
}

/// The service policy's answer for a service-level action.
fn service_authorize(st: &State, principal: &str, action: Action) -> Result<(), KmsError> {
    let policy = st.service_policy.as_ref().ok_or(KmsError::AccessDenied)?;
    match policy.evaluate(principal, action, &Context::empty()) {
        Decision::Allow => Ok(()),
        Decision::ExplicitDeny | Decision::ImplicitDeny => Err(KmsError::AccessDenied),
    }
}

fn usable(e: &Entry) -> Result<(), KmsError> {
    match e.state {
        KeyState::Enabled => Ok(()),
        KeyState::Disabled => Err(KmsError::Disabled),
        KeyState::PendingDeletion { .. } => Err(KmsError::PendingDeletion),
        KeyState::Deleted => Err(KmsError::NotFound),
    }
}

fn not_retired(st: &State, ctx: &Context<'_>) -> Result<(), KmsError> {
    if !st.tombstones.is_empty() && st.tombstones.contains(&owned(ctx)) {
        return Err(KmsError::VolumeRetired);
    }
    Ok(())
}

fn grant_context_ok(c: Option<&GrantConstraint>, ctx: &Context<'_>) -> bool {
    match c {
        None => true,
        Some(GrantConstraint::ContextEquals(pairs)) => {
            ctx.len() == pairs.len() && pairs.iter().all(|(k, v)| ctx.get(k) == Some(v.as_str()))
        }
        Some(GrantConstraint::ContextSubset(pairs)) => {
            pairs.iter().all(|(k, v)| ctx.get(k) == Some(v.as_str()))
        }
    }
}

/// Seals `secret` under the newest version of `key_id`.
fn wrap(
    e: &Entry,
    key_id: &str,
    ctx: &Context<'_>,
    secret: &[u8],
    rng: &mut dyn Entropy,
    out: &mut [u8],
) -> Result<usize, KmsError> {
    let version = u32::try_from(e.versions.len()).map_err(|_| KmsError::InvalidArgument)?;
    let mk = e.versions.last().ok_or(KmsError::NotFound)?;
    mk.seal(key_id, version, ctx, secret, &mut RngAdapter(rng), out)
        .map_err(|err| match err {
            envelope::Error::BufferTooSmall => KmsError::BufferTooSmall,
            envelope::Error::Rng => KmsError::Unavailable,
            _ => KmsError::InvalidArgument,
        })
}

/// The change that records `ctx` as protected by the key, if it is new.
fn protect(e: &Entry, key_id: &str, ctx: &Context<'_>) -> Change {
    let ctx = owned(ctx);
    if e.protected.contains(&ctx) {
        Change::None
    } else {
        Change::Protect(key_id.into(), ctx)
    }
}

/// Authorizes `action` with the blob's own key and context, and checks the
/// key is usable and the volume not retired.
fn authorize_blob<'s, 'b>(
    st: &'s State,
    principal: &str,
    blob: &'b [u8],
    action: Action,
    ctx: &Context<'_>,
) -> Result<(&'s Entry, WrappedKey<'b>), KmsError> {
    let w = parse_blob(blob)?;
    let e = authorize(st, principal, w.key_id(), action, ctx)?;
    usable(e)?;
    not_retired(st, ctx)?;
    Ok((e, w))
}

impl Kms for LocalKms {
    fn generate_data_key(
        &mut self,
        principal: &str,
        key_id: &str,
        size: KeySize,
        context: &Context<'_>,
        blob_out: &mut [u8],
    ) -> Result<(DataKey, usize), KmsError> {
        let action = Action::GenerateDataKey;
        self.call(principal, action, key_id, context, |st, rng, _| {
            let e = authorize(st, principal, key_id, action, context)?;
            usable(e)?;
            not_retired(st, context)?;
            let dek =
                DataKey::generate(size, &mut RngAdapter(rng)).map_err(|_| KmsError::Unavailable)?;
            let n = wrap(e, key_id, context, dek.as_bytes(), rng, blob_out)?;
            Ok(((dek, n), protect(e, key_id, context)))
        })
    }

    fn generate_data_key_without_plaintext(
        &mut self,
        principal: &str,
        key_id: &str,
        size: KeySize,
        context: &Context<'_>,
        blob_out: &mut [u8],
    ) -> Result<usize, KmsError> {
        let action = Action::GenerateDataKeyWithoutPlaintext;
        self.call(principal, action, key_id, context, |st, rng, _| {
            let e = authorize(st, principal, key_id, action, context)?;
            usable(e)?;
            not_retired(st, context)?;
            let dek =
                DataKey::generate(size, &mut RngAdapter(rng)).map_err(|_| KmsError::Unavailable)?;
            let n = wrap(e, key_id, context, dek.as_bytes(), rng, blob_out)?;
            Ok((n, protect(e, key_id, context)))
        })
    }

    fn decrypt_data_key(
        &mut self,
        principal: &str,
        blob: &[u8],
        context: &Context<'_>,
    ) -> Result<DataKey, KmsError> {
        let key_id = Self::blob_key(blob);
        self.call(principal, Action::Decrypt, &key_id, context, |st, _, _| {
            let (_, w) = authorize_blob(st, principal, blob, Action::Decrypt, context)?;
            if !matches!(w.secret_len(), Some(32 | 64)) {
                return Err(KmsError::InvalidCiphertext);
            }
            let mut buf = [0u8; 64];
            let dek = Self::open_blob(st, &w, context, &mut buf).and_then(|n| {
                DataKey::from_bytes(&buf[..n]).map_err(|_| KmsError::InvalidCiphertext)
            });
            zeroize::Zeroize::zeroize(&mut buf);
            Ok((dek?, Change::None))
        })
    }

    fn re_encrypt(
        &mut self,
        principal: &str,
        blob: &[u8],
        source_context: &Context<'_>,
        dest_key_id: &str,
        dest_context: &Context<'_>,
        blob_out: &mut [u8],
    ) -> Result<usize, KmsError> {
        let src_id = Self::blob_key(blob);
        let from = Action::ReEncryptFrom;
        self.call(principal, from, &src_id, source_context, |st, _, _| {
            authorize_blob(st, principal, blob, from, source_context)?;
            Ok(((), Change::None))
        })?;
        let to = Action::ReEncryptTo;
        self.call(principal, to, dest_key_id, dest_context, |st, rng, _| {
            let e = authorize(st, principal, dest_key_id, to, dest_context)?;
            usable(e)?;
            not_retired(st, dest_context)?;
            let (_, w) = authorize_blob(st, principal, blob, from, source_context)?;
            let mut secret = [0u8; envelope::MAX_SECRET];
            let r = Self::open_blob(st, &w, source_context, &mut secret).and_then(|n| {
                let m = wrap(e, dest_key_id, dest_context, &secret[..n], rng, blob_out)?;
                let change = if matches!(n, 32 | 64) {
                    protect(e, dest_key_id, dest_context)
                } else {
                    Change::None
                };
                Ok((m, change))
            });
            zeroize::Zeroize::zeroize(&mut secret);
            r
        })
    }

    fn encrypt(
        &mut self,
        principal: &str,
        key_id: &str,
        context: &Context<'_>,
        plaintext: &[u8],
        blob_out: &mut [u8],
    ) -> Result<usize, KmsError> {
        self.call(principal, Action::Encrypt, key_id, context, |st, rng, _| {
            let e = authorize(st, principal, key_id, Action::Encrypt, context)?;
            usable(e)?;
            if plaintext.is_empty() || plaintext.len() > envelope::MAX_SECRET {
                return Err(KmsError::InvalidArgument);
            }
            Ok((
                wrap(e, key_id, context, plaintext, rng, blob_out)?,
                Change::None,
            ))
        })
    }

    fn decrypt(
        &mut self,
        principal: &str,
        blob: &[u8],
        context: &Context<'_>,
        out: &mut [u8],
    ) -> Result<usize, KmsError> {
        let key_id = Self::blob_key(blob);
        self.call(principal, Action::Decrypt, &key_id, context, |st, _, _| {
            let (_, w) = authorize_blob(st, principal, blob, Action::Decrypt, context)?;
            Ok((Self::open_blob(st, &w, context, out)?, Change::None))
        })
    }

    fn retire_context(
        &mut self,
        principal: &str,
        blob: &[u8],
        context: &Context<'_>,
    ) -> Result<bool, KmsError> {
        let key_id = Self::blob_key(blob);
        let action = Action::RetireVolume;
        self.call(principal, action, &key_id, context, |st, _, _| {
            let w = parse_blob(blob)?;
            authorize(st, principal, w.key_id(), action, context)?;
            // Only a context the blob really was made for: the tombstone
            // names a volume that exists, not any string a caller sends.
            let mut buf = [0u8; envelope::MAX_SECRET];
            let opened = Self::open_blob(st, &w, context, &mut buf);
            zeroize::Zeroize::zeroize(&mut buf);
            opened?;
            Ok((true, Change::Tombstone(w.key_id().into(), owned(context))))
        })
    }
}
