//! The read-only checks every call makes before it plans a change: who
//! may do what with which key (policy, grants, the service policy), whether
//! the key and the context are usable, and the blobs this service opens.

use super::*;

/// Parses a blob this service can open: envol's own AES-256-GCM. A blob
/// from another kind of key service is invalid ciphertext here.
pub(super) fn parse_blob(blob: &[u8]) -> Result<WrappedKey<'_>, KmsError> {
    WrappedKey::parse(blob)
        .ok()
        .filter(|w| w.algorithm() == envelope::Algorithm::Aes256Gcm)
        .ok_or(KmsError::InvalidCiphertext)
}

/// The entry of a key that exists and is not deleted.
pub(super) fn live_entry<'s>(st: &'s State, key_id: &str) -> Result<&'s Entry, KmsError> {
    match st.keys.get(key_id) {
        Some(e) if e.state != KeyState::Deleted => Ok(e),
        _ => Err(KmsError::NotFound),
    }
}

/// Key policy, then grants: explicit deny wins, then allow, then a grant.
pub(super) fn authorize<'s>(
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
pub(super) fn authorize_grant_creation<'s>(
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
pub(super) fn narrower(child: Option<&GrantConstraint>, parent: Option<&GrantConstraint>) -> bool {
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
pub(super) fn check_pairs(pairs: &[(String, String)]) -> Result<(), KmsError> {
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
pub(super) fn service_authorize(
    st: &State,
    principal: &str,
    action: Action,
) -> Result<(), KmsError> {
    let policy = st.service_policy.as_ref().ok_or(KmsError::AccessDenied)?;
    match policy.evaluate(principal, action, &Context::empty()) {
        Decision::Allow => Ok(()),
        Decision::ExplicitDeny | Decision::ImplicitDeny => Err(KmsError::AccessDenied),
    }
}

pub(super) fn usable(e: &Entry) -> Result<(), KmsError> {
    match e.state {
        KeyState::Enabled => Ok(()),
        KeyState::Disabled => Err(KmsError::Disabled),
        KeyState::PendingDeletion { .. } => Err(KmsError::PendingDeletion),
        KeyState::Deleted => Err(KmsError::NotFound),
    }
}

pub(super) fn not_retired(st: &State, ctx: &Context<'_>) -> Result<(), KmsError> {
    if !st.tombstones.is_empty() && st.tombstones.contains(&owned(ctx)) {
        return Err(KmsError::VolumeRetired);
    }
    Ok(())
}

pub(super) fn grant_context_ok(c: Option<&GrantConstraint>, ctx: &Context<'_>) -> bool {
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
pub(super) fn wrap(
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
pub(super) fn protect(e: &Entry, key_id: &str, ctx: &Context<'_>) -> Change {
    let ctx = owned(ctx);
    if e.protected.contains(&ctx) {
        Change::None
    } else {
        Change::Protect(key_id.into(), ctx)
    }
}

/// Authorizes `action` with the blob's own key and context, and checks the
/// key is usable and the volume not retired.
pub(super) fn authorize_blob<'s, 'b>(
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
