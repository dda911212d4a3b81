//! `LocalKms`, the reference key service.
//!
//! Master keys are generated inside and never leave: there is no accessor,
//! no `Debug` of key material, and the only serialisation is the sealed
//! store (`sealed.rs`). Every call names a principal, is checked against the
//! key policy and the key's grants (default deny, explicit deny wins), and
//! emits a hash-chained audit event, allowed or refused; if the external
//! audit sink fails, the call fails. Time comes from an injected [`Clock`],
//! randomness from an injected [`Entropy`], so this runs without an OS.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::audit::{AuditEvent, AuditSink, NullSink, Outcome};
use super::policy::{Action, Decision, Policy};
use super::{Kms, KmsError};
use crate::envelope::{self, Context, DataKey, MasterKey, WrappedKey, check_key_id};
use crate::xts::KeySize;

/// Seconds since the Unix epoch.
pub trait Clock {
    /// The current time.
    fn now(&self) -> u64;
}

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

/// At most this many recent audit events (and at most twice as many
/// briefly) are kept in memory; older ones live only in the sink.
pub const MAX_LOG_IN_MEMORY: usize = 65_536;

/// Seconds in a day.
pub(crate) const DAY: u64 = 86_400;

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

/// A grant as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantInfo {
    /// The grant's id.
    pub id: String,
    /// Who it lets act.
    pub grantee: String,
    /// What it lets them do.
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
    /// Backing versions; version `n` is `versions[n - 1]`. Empty once deleted.
    pub versions: Vec<MasterKey>,
    pub rotation_period: Option<u64>,
    pub last_rotated: u64,
    pub policy: Policy,
    pub grants: Vec<GrantInfo>,
    /// Encryption contexts of the data keys wrapped under this key.
    pub protected: BTreeSet<Vec<(String, String)>>,
}

/// The reference key service.
pub struct LocalKms {
    pub(crate) keys: BTreeMap<String, Entry>,
    entropy: Box<dyn Entropy + Send>,
    clock: Box<dyn Clock + Send>,
    sink: Box<dyn AuditSink + Send>,
    pub(crate) log: Vec<AuditEvent>,
    pub(crate) next_seq: u64,
    pub(crate) last_hash: [u8; 32],
}

impl fmt::Debug for LocalKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKms")
            .field("keys", &self.keys.len())
            .field("audit_events", &self.next_seq)
            .finish_non_exhaustive()
    }
}

fn owned(ctx: &Context<'_>) -> Vec<(String, String)> {
    ctx.iter().map(|(k, v)| (k.into(), v.into())).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl LocalKms {
    /// An empty service.
    pub fn new(
        entropy: Box<dyn Entropy + Send>,
        clock: Box<dyn Clock + Send>,
        sink: Option<Box<dyn AuditSink + Send>>,
    ) -> LocalKms {
        LocalKms {
            keys: BTreeMap::new(),
            entropy,
            clock,
            sink: sink.unwrap_or_else(|| Box::new(NullSink)),
            log: Vec::new(),
            next_seq: 0,
            last_hash: [0; 32],
        }
    }

    /// The service's recent audit events (since it was created or unsealed,
    /// at most [`MAX_LOG_IN_MEMORY`]-ish; the chain continues across sealing
    /// and windows verify with `verify_chain(.., false)`).
    pub fn audit_log(&self) -> &[AuditEvent] {
        &self.log
    }

    /// Replaces the external audit sink.
    pub fn set_audit_sink(&mut self, sink: Box<dyn AuditSink + Send>) {
        self.sink = sink;
    }

    pub(crate) fn parts(&mut self) -> (&mut dyn Entropy, &dyn Clock) {
        (self.entropy.as_mut(), self.clock.as_ref())
    }

    /// Records an event; a failing sink turns the whole call into
    /// `AuditFailed`. The service's own log always keeps the event.
    fn audit(
        &mut self,
        principal: &str,
        action: Action,
        key_id: &str,
        ctx: Vec<(String, String)>,
        outcome: Outcome,
    ) -> Result<(), KmsError> {
        let e = AuditEvent::new(
            self.next_seq,
            self.clock.now(),
            principal,
            action,
            key_id,
            ctx,
            outcome,
            self.last_hash,
        );
        self.next_seq += 1;
        self.last_hash = e.hash;
        let sunk = self.sink.record(&e);
        // Keep a bounded window in memory; the sink has everything and the
        // chain head survives sealing.
        if self.log.len() >= 2 * MAX_LOG_IN_MEMORY {
            self.log.drain(..MAX_LOG_IN_MEMORY);
        }
        self.log.push(e);
        sunk.map_err(|_| KmsError::AuditFailed)
    }

    /// Runs `f` and audits its outcome; a sink failure makes it fail.
    fn audited<T>(
        &mut self,
        principal: &str,
        action: Action,
        key_id: &str,
        ctx: &Context<'_>,
        f: impl FnOnce(&mut Self) -> Result<T, KmsError>,
    ) -> Result<T, KmsError> {
        self.tick();
        let r = f(self);
        let outcome = match &r {
            Ok(_) => Outcome::Allowed,
            Err(e) => Outcome::Refused(*e),
        };
        self.audit(principal, action, key_id, owned(ctx), outcome)?;
        r
    }

    /// Applies the clock: deletes keys whose window has passed and rotates
    /// keys whose rotation period has elapsed.
    pub fn tick(&mut self) {
        let now = self.clock.now();
        let mut to_rotate = Vec::new();
        for (id, e) in self.keys.iter_mut() {
            if let KeyState::PendingDeletion { delete_at } = e.state
                && now >= delete_at
            {
                e.state = KeyState::Deleted;
                // Dropping the versions zeroizes them.
                e.versions.clear();
                e.grants.clear();
            }
            let due = e
                .rotation_period
                .is_some_and(|p| now.saturating_sub(e.last_rotated) >= p);
            if e.state == KeyState::Enabled && due {
                to_rotate.push(id.clone());
            }
        }
        for id in to_rotate {
            let _ = self.rotate_inner(&id);
        }
    }

    fn rotate_inner(&mut self, key_id: &str) -> Result<u32, KmsError> {
        let mk = MasterKey::generate(&mut RngAdapter(self.entropy.as_mut()))
            .map_err(|_| KmsError::Unavailable)?;
        let now = self.clock.now();
        let e = self.keys.get_mut(key_id).ok_or(KmsError::NotFound)?;
        e.versions.push(mk);
        e.last_rotated = now;
        u32::try_from(e.versions.len()).map_err(|_| KmsError::InvalidArgument)
    }

    /// Policy, then grants: explicit deny wins, then allow, then a grant.
    fn authorize(
        &self,
        principal: &str,
        key_id: &str,
        action: Action,
        ctx: &Context<'_>,
    ) -> Result<&Entry, KmsError> {
        let e = self.keys.get(key_id).ok_or(KmsError::NotFound)?;
        if e.state == KeyState::Deleted {
            return Err(KmsError::NotFound);
        }
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

    fn usable(e: &Entry) -> Result<(), KmsError> {
        match e.state {
            KeyState::Enabled => Ok(()),
            KeyState::Disabled => Err(KmsError::Disabled),
            KeyState::PendingDeletion { .. } => Err(KmsError::PendingDeletion),
            KeyState::Deleted => Err(KmsError::NotFound),
        }
    }

    /// Creates a master key with a fresh backing version and `policy`.
    /// Audited as `kms:PutKeyPolicy` by `creator`.
    pub fn create_key(
        &mut self,
        creator: &str,
        key_id: &str,
        policy: Policy,
    ) -> Result<(), KmsError> {
        let empty = Context::empty();
        self.audited(creator, Action::PutKeyPolicy, key_id, &empty, |s| {
            check_key_id(key_id).map_err(|_| KmsError::InvalidArgument)?;
            if s.keys.contains_key(key_id) {
                return Err(KmsError::InvalidArgument);
            }
            let mk = MasterKey::generate(&mut RngAdapter(s.entropy.as_mut()))
                .map_err(|_| KmsError::Unavailable)?;
            let now = s.clock.now();
            s.keys.insert(
                key_id.into(),
                Entry {
                    state: KeyState::Enabled,
                    created: now,
                    versions: alloc::vec![mk],
                    rotation_period: None,
                    last_rotated: now,
                    policy,
                    grants: Vec::new(),
                    protected: BTreeSet::new(),
                },
            );
            Ok(())
        })
    }

    /// Runs a management action on `key_id` after authorising it.
    fn manage<T>(
        &mut self,
        principal: &str,
        key_id: &str,
        action: Action,
        f: impl FnOnce(&mut Self) -> Result<T, KmsError>,
    ) -> Result<T, KmsError> {
        let empty = Context::empty();
        self.audited(principal, action, key_id, &empty, |s| {
            s.authorize(principal, key_id, action, &empty)?;
            f(s)
        })
    }

    fn entry(&mut self, key_id: &str) -> Result<&mut Entry, KmsError> {
        self.keys.get_mut(key_id).ok_or(KmsError::NotFound)
    }

    /// State, versions and rotation of a key.
    pub fn describe_key(&mut self, principal: &str, key_id: &str) -> Result<KeyInfo, KmsError> {
        self.manage(principal, key_id, Action::DescribeKey, |s| {
            let e = s.entry(key_id)?;
            Ok(KeyInfo {
                key_id: key_id.into(),
                state: e.state,
                backing_versions: u32::try_from(e.versions.len()).unwrap_or(u32::MAX),
                rotation_period: e.rotation_period,
                created: e.created,
            })
        })
    }

    /// Disabled → Enabled.
    pub fn enable_key(&mut self, principal: &str, key_id: &str) -> Result<(), KmsError> {
        self.manage(principal, key_id, Action::EnableKey, |s| {
            let e = s.entry(key_id)?;
            match e.state {
                KeyState::Enabled | KeyState::Disabled => {
                    e.state = KeyState::Enabled;
                    Ok(())
                }
                KeyState::PendingDeletion { .. } => Err(KmsError::PendingDeletion),
                KeyState::Deleted => Err(KmsError::NotFound),
            }
        })
    }

    /// Enabled → Disabled.
    pub fn disable_key(&mut self, principal: &str, key_id: &str) -> Result<(), KmsError> {
        self.manage(principal, key_id, Action::DisableKey, |s| {
            let e = s.entry(key_id)?;
            match e.state {
                KeyState::Enabled | KeyState::Disabled => {
                    e.state = KeyState::Disabled;
                    Ok(())
                }
                KeyState::PendingDeletion { .. } => Err(KmsError::PendingDeletion),
                KeyState::Deleted => Err(KmsError::NotFound),
            }
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
        self.manage(principal, key_id, Action::ScheduleKeyDeletion, |s| {
            if !(7..=30).contains(&days) {
                return Err(KmsError::InvalidArgument);
            }
            let now = s.clock.now();
            let e = s.entry(key_id)?;
            if matches!(e.state, KeyState::PendingDeletion { .. }) {
                return Err(KmsError::PendingDeletion);
            }
            if !e.protected.is_empty() && !force {
                return Err(KmsError::KeyInUse);
            }
            let delete_at = now.saturating_add(u64::from(days) * DAY);
            e.state = KeyState::PendingDeletion { delete_at };
            Ok(delete_at)
        })
    }

    /// PendingDeletion → Disabled (as AWS does).
    pub fn cancel_key_deletion(&mut self, principal: &str, key_id: &str) -> Result<(), KmsError> {
        self.manage(principal, key_id, Action::CancelKeyDeletion, |s| {
            let e = s.entry(key_id)?;
            match e.state {
                KeyState::PendingDeletion { .. } => {
                    e.state = KeyState::Disabled;
                    Ok(())
                }
                _ => Err(KmsError::InvalidArgument),
            }
        })
    }

    /// Replaces the key policy.
    pub fn put_key_policy(
        &mut self,
        principal: &str,
        key_id: &str,
        policy: Policy,
    ) -> Result<(), KmsError> {
        self.manage(principal, key_id, Action::PutKeyPolicy, |s| {
            s.entry(key_id)?.policy = policy;
            Ok(())
        })
    }

    /// The key policy.
    pub fn get_key_policy(&mut self, principal: &str, key_id: &str) -> Result<Policy, KmsError> {
        self.manage(principal, key_id, Action::GetKeyPolicy, |s| {
            Ok(s.entry(key_id)?.policy.clone())
        })
    }

    /// Grants `grantee` the cryptographic `operations` on this key, within
    /// `constraint`. Returns the grant id.
    pub fn create_grant(
        &mut self,
        principal: &str,
        key_id: &str,
        grantee: &str,
        operations: &[Action],
        constraint: Option<GrantConstraint>,
        retiring_principal: Option<&str>,
    ) -> Result<String, KmsError> {
        self.manage(principal, key_id, Action::CreateGrant, |s| {
            if grantee.is_empty() || operations.is_empty() {
                return Err(KmsError::InvalidArgument);
            }
            let mut raw = [0u8; 16];
            s.entropy.fill(&mut raw)?;
            let id = format!("grant-{}", hex(&raw));
            let e = s.entry(key_id)?;
            e.grants.push(GrantInfo {
                id: id.clone(),
                grantee: grantee.into(),
                operations: operations.to_vec(),
                constraint,
                retiring_principal: retiring_principal.map(String::from),
            });
            Ok(id)
        })
    }

    /// The key's grants.
    pub fn list_grants(
        &mut self,
        principal: &str,
        key_id: &str,
    ) -> Result<Vec<GrantInfo>, KmsError> {
        self.manage(principal, key_id, Action::ListGrants, |s| {
            Ok(s.entry(key_id)?.grants.clone())
        })
    }

    /// Retires a grant: allowed for its retiring principal and its grantee,
    /// or by policy (`kms:RetireGrant`).
    pub fn retire_grant(
        &mut self,
        principal: &str,
        key_id: &str,
        grant_id: &str,
    ) -> Result<(), KmsError> {
        let empty = Context::empty();
        self.audited(principal, Action::RetireGrant, key_id, &empty, |s| {
            let e = s.keys.get(key_id).ok_or(KmsError::NotFound)?;
            let g = e
                .grants
                .iter()
                .find(|g| g.id == grant_id)
                .ok_or(KmsError::NotFound)?;
            let own = g.grantee == principal || g.retiring_principal.as_deref() == Some(principal);
            if !own {
                s.authorize(principal, key_id, Action::RetireGrant, &empty)?;
            }
            s.entry(key_id)?.grants.retain(|g| g.id != grant_id);
            Ok(())
        })
    }

    /// Revokes a grant (policy `kms:RevokeGrant`).
    pub fn revoke_grant(
        &mut self,
        principal: &str,
        key_id: &str,
        grant_id: &str,
    ) -> Result<(), KmsError> {
        self.manage(principal, key_id, Action::RevokeGrant, |s| {
            let e = s.entry(key_id)?;
            let before = e.grants.len();
            e.grants.retain(|g| g.id != grant_id);
            if e.grants.len() == before {
                return Err(KmsError::NotFound);
            }
            Ok(())
        })
    }

    /// Adds a backing version now; old versions stay for existing blobs.
    /// Returns the new version number.
    pub fn rotate_key_on_demand(&mut self, principal: &str, key_id: &str) -> Result<u32, KmsError> {
        self.manage(principal, key_id, Action::RotateKeyOnDemand, |s| {
            Self::usable(s.entry(key_id)?)?;
            s.rotate_inner(key_id)
        })
    }

    /// Rotates automatically every `period_days` (1..=2560) days.
    pub fn enable_key_rotation(
        &mut self,
        principal: &str,
        key_id: &str,
        period_days: u32,
    ) -> Result<(), KmsError> {
        self.manage(principal, key_id, Action::EnableKeyRotation, |s| {
            if !(1..=2560).contains(&period_days) {
                return Err(KmsError::InvalidArgument);
            }
            s.entry(key_id)?.rotation_period = Some(u64::from(period_days) * DAY);
            Ok(())
        })
    }

    /// Stops automatic rotation.
    pub fn disable_key_rotation(&mut self, principal: &str, key_id: &str) -> Result<(), KmsError> {
        self.manage(principal, key_id, Action::DisableKeyRotation, |s| {
            s.entry(key_id)?.rotation_period = None;
            Ok(())
        })
    }

    /// The encryption contexts (volumes) this key has wrapped data keys for:
    /// what deleting it would make unreadable.
    pub fn protected_volumes(
        &mut self,
        principal: &str,
        key_id: &str,
    ) -> Result<Vec<Vec<(String, String)>>, KmsError> {
        self.manage(principal, key_id, Action::ListProtectedVolumes, |s| {
            Ok(s.entry(key_id)?.protected.iter().cloned().collect())
        })
    }

    /// Forgets that `context` is protected by `key_id` (after a volume is
    /// destroyed or rewrapped elsewhere).
    pub fn forget_volume(
        &mut self,
        principal: &str,
        key_id: &str,
        context: &Context<'_>,
    ) -> Result<(), KmsError> {
        let ctx = owned(context);
        self.manage(principal, key_id, Action::ListProtectedVolumes, |s| {
            s.entry(key_id)?.protected.remove(&ctx);
            Ok(())
        })
    }

    /// Seals `secret` under the newest version of `key_id`, recording the
    /// context as protected when `track` is set.
    fn wrap(
        &mut self,
        key_id: &str,
        ctx: &Context<'_>,
        secret: &[u8],
        track: bool,
        out: &mut [u8],
    ) -> Result<usize, KmsError> {
        let LocalKms { keys, entropy, .. } = self;
        let e = keys.get_mut(key_id).ok_or(KmsError::NotFound)?;
        let version = u32::try_from(e.versions.len()).map_err(|_| KmsError::InvalidArgument)?;
        let mk = e.versions.last().ok_or(KmsError::NotFound)?;
        let n = mk
            .seal(
                key_id,
                version,
                ctx,
                secret,
                &mut RngAdapter(entropy.as_mut()),
                out,
            )
            .map_err(|err| match err {
                envelope::Error::BufferTooSmall => KmsError::BufferTooSmall,
                envelope::Error::Rng => KmsError::Unavailable,
                _ => KmsError::InvalidArgument,
            })?;
        if track {
            e.protected.insert(owned(ctx));
        }
        Ok(n)
    }

    /// Opens a blob under its own key and version; the caller authorised it.
    fn unwrap_blob(
        &self,
        w: &WrappedKey<'_>,
        ctx: &Context<'_>,
        out: &mut [u8],
    ) -> Result<usize, KmsError> {
        let e = self.keys.get(w.key_id()).ok_or(KmsError::NotFound)?;
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

    /// Parses a blob this service can open: envol's own AES-256-GCM. A blob
    /// from another kind of key service is invalid ciphertext here.
    fn parse_blob(blob: &[u8]) -> Result<WrappedKey<'_>, KmsError> {
        WrappedKey::parse(blob)
            .ok()
            .filter(|w| w.algorithm() == envelope::Algorithm::Aes256Gcm)
            .ok_or(KmsError::InvalidCiphertext)
    }

    /// The key id named by a blob, for audit records ("" if unparsable).
    fn blob_key(blob: &[u8]) -> String {
        WrappedKey::parse(blob)
            .map(|w| String::from(w.key_id()))
            .unwrap_or_default()
    }
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

impl Kms for LocalKms {
    fn generate_data_key(
        &mut self,
        principal: &str,
        key_id: &str,
        size: KeySize,
        context: &Context<'_>,
        blob_out: &mut [u8],
    ) -> Result<(DataKey, usize), KmsError> {
        self.audited(principal, Action::GenerateDataKey, key_id, context, |s| {
            let e = s.authorize(principal, key_id, Action::GenerateDataKey, context)?;
            Self::usable(e)?;
            let dek = DataKey::generate(size, &mut RngAdapter(s.entropy.as_mut()))
                .map_err(|_| KmsError::Unavailable)?;
            let n = s.wrap(key_id, context, dek.as_bytes(), true, blob_out)?;
            Ok((dek, n))
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
        self.audited(principal, action, key_id, context, |s| {
            let e = s.authorize(principal, key_id, action, context)?;
            Self::usable(e)?;
            let dek = DataKey::generate(size, &mut RngAdapter(s.entropy.as_mut()))
                .map_err(|_| KmsError::Unavailable)?;
            s.wrap(key_id, context, dek.as_bytes(), true, blob_out)
        })
    }

    fn decrypt_data_key(
        &mut self,
        principal: &str,
        blob: &[u8],
        context: &Context<'_>,
    ) -> Result<DataKey, KmsError> {
        let key_id = Self::blob_key(blob);
        self.audited(principal, Action::Decrypt, &key_id, context, |s| {
            let w = Self::parse_blob(blob)?;
            let e = s.authorize(principal, w.key_id(), Action::Decrypt, context)?;
            Self::usable(e)?;
            if !matches!(w.secret_len(), Some(32 | 64)) {
                return Err(KmsError::InvalidCiphertext);
            }
            let mut buf = [0u8; 64];
            let n = s.unwrap_blob(&w, context, &mut buf)?;
            let dek = DataKey::from_bytes(&buf[..n]).map_err(|_| KmsError::InvalidCiphertext);
            zeroize::Zeroize::zeroize(&mut buf);
            dek
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
        let r = self.audited(
            principal,
            Action::ReEncryptFrom,
            &src_id,
            source_context,
            |s| {
                let w = Self::parse_blob(blob)?;
                let e =
                    s.authorize(principal, w.key_id(), Action::ReEncryptFrom, source_context)?;
                Self::usable(e)?;
                Ok(())
            },
        );
        r?;
        self.audited(
            principal,
            Action::ReEncryptTo,
            dest_key_id,
            dest_context,
            |s| {
                let e = s.authorize(principal, dest_key_id, Action::ReEncryptTo, dest_context)?;
                Self::usable(e)?;
                let w = Self::parse_blob(blob)?;
                let mut secret = [0u8; envelope::MAX_SECRET];
                let n = s.unwrap_blob(&w, source_context, &mut secret)?;
                let track = matches!(n, 32 | 64);
                let r = s.wrap(dest_key_id, dest_context, &secret[..n], track, blob_out);
                zeroize::Zeroize::zeroize(&mut secret[..n]);
                r
            },
        )
    }

    fn encrypt(
        &mut self,
        principal: &str,
        key_id: &str,
        context: &Context<'_>,
        plaintext: &[u8],
        blob_out: &mut [u8],
    ) -> Result<usize, KmsError> {
        self.audited(principal, Action::Encrypt, key_id, context, |s| {
            let e = s.authorize(principal, key_id, Action::Encrypt, context)?;
            Self::usable(e)?;
            if plaintext.is_empty() || plaintext.len() > envelope::MAX_SECRET {
                return Err(KmsError::InvalidArgument);
            }
            s.wrap(key_id, context, plaintext, false, blob_out)
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
        self.audited(principal, Action::Decrypt, &key_id, context, |s| {
            let w = Self::parse_blob(blob)?;
            let e = s.authorize(principal, w.key_id(), Action::Decrypt, context)?;
            Self::usable(e)?;
            s.unwrap_blob(&w, context, out)
        })
    }
}
