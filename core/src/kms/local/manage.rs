//! The key-management calls: the service policy, keys and their states,
//! deletion, policies, grants, rotation, the volumes a key protects.

use super::*;

impl LocalKms {
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
}
