//! Grants from C: create (with context constraints), retire, revoke,
//! count; and how many volumes a key protects.

use super::*;

/// Grant operations from C: each a NUL-terminated action name such as
/// `"kms:Decrypt"`.
///
/// # Safety
/// `ops` NULL or valid for `n` reads of pointers to NUL-terminated
/// strings.
pub(super) unsafe fn in_operations(
    ops: *const *const c_char,
    n: usize,
) -> Result<Vec<Action>, envol_status> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if ops.is_null() {
        return Err(envol_status::ENVOL_ERR_NULL_POINTER);
    }
    if n > ENVOL_MAX_GRANT_OPERATIONS {
        return Err(envol_status::ENVOL_ERR_INVALID_ARGUMENT);
    }
    if !(ops as usize).is_multiple_of(align_of::<*const c_char>()) {
        return Err(envol_status::ENVOL_ERR_ALIGNMENT);
    }
    // SAFETY: non-NULL, aligned, at most 32 elements, per the contract.
    let names = unsafe { core::slice::from_raw_parts(ops, n) };
    let mut actions = Vec::with_capacity(n);
    for &name in names {
        // SAFETY: the caller's contract on each string.
        let action = match unsafe { in_str(name, 64) } {
            Ok(s) => Action::from_name(s).ok_or(envol_status::ENVOL_ERR_INVALID_ARGUMENT)?,
            Err(StrError::Null) => return Err(envol_status::ENVOL_ERR_NULL_POINTER),
            Err(_) => return Err(envol_status::ENVOL_ERR_INVALID_ARGUMENT),
        };
        actions.push(action);
    }
    Ok(actions)
}

/// Lets `grantee` perform `operations` (`n_ops` action names such as
/// `"kms:Decrypt"`, `"kms:GenerateDataKey"`) on `key_id`, limited by
/// `constraint_kind` (an `envol_grant_constraint`: 0 none, 1 the call's
/// context must equal `constraint`, 2 it must contain `constraint`).
/// With kind 0, `constraint_len` must be 0. `retiring_principal` (may be
/// NULL) may retire the grant besides the grantee. Needs
/// `kms:CreateGrant`.
///
/// Writes the new grant's id, NUL-terminated, to `grant_id_out`, which
/// must have room for `ENVOL_GRANT_ID_SIZE` bytes: a smaller
/// `grant_id_cap` is `ENVOL_ERR_BUFFER_TOO_SMALL` before any grant is
/// made. An unknown action name or constraint kind is
/// `ENVOL_ERR_INVALID_ARGUMENT`; an invalid constraint context
/// `ENVOL_ERR_CONTEXT`.
///
/// # Safety
/// `kms` NULL or a live handle; strings NULL or NUL-terminated;
/// `operations` NULL or valid for `n_ops` reads; `constraint` as for
/// every context argument; `grant_id_out` NULL or valid for
/// `grant_id_cap` writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_local_kms_create_grant(
    kms: *mut envol_local_kms,
    principal: *const c_char,
    key_id: *const c_char,
    grantee: *const c_char,
    operations: *const *const c_char,
    n_ops: usize,
    constraint_kind: c_int,
    constraint: *const envol_kv,
    constraint_len: usize,
    retiring_principal: *const c_char,
    grant_id_out: *mut c_char,
    grant_id_cap: usize,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: the caller's contract on every argument.
        let mut k = try_status!(unsafe { handle(kms) });
        // SAFETY: as above.
        let p = try_status!(unsafe { in_principal(principal) });
        // SAFETY: as above.
        let id = try_status!(unsafe { in_key_id(key_id) });
        // SAFETY: as above.
        let grantee = try_status!(unsafe { in_principal(grantee) });
        // SAFETY: as above.
        let ops = try_status!(unsafe { in_operations(operations, n_ops) });
        // SAFETY: as above.
        let pairs = try_status!(unsafe { in_context(constraint, constraint_len) });
        let owned: Vec<(String, String)> =
            pairs.iter().map(|(k, v)| (k.into(), v.into())).collect();
        let limit = match constraint_kind {
            c if c == envol_grant_constraint::ENVOL_GRANT_NO_CONSTRAINT as c_int => {
                if constraint_len != 0 {
                    return envol_status::ENVOL_ERR_INVALID_ARGUMENT;
                }
                None
            }
            c if c == envol_grant_constraint::ENVOL_GRANT_CONTEXT_EQUALS as c_int => {
                Some(GrantConstraint::ContextEquals(owned))
            }
            c if c == envol_grant_constraint::ENVOL_GRANT_CONTEXT_SUBSET as c_int => {
                Some(GrantConstraint::ContextSubset(owned))
            }
            _ => return envol_status::ENVOL_ERR_INVALID_ARGUMENT,
        };
        let retiring = if retiring_principal.is_null() {
            None
        } else {
            // SAFETY: as above.
            Some(try_status!(unsafe { in_principal(retiring_principal) }))
        };
        if grant_id_out.is_null() {
            return envol_status::ENVOL_ERR_NULL_POINTER;
        }
        if grant_id_cap < ENVOL_GRANT_ID_SIZE {
            return envol_status::ENVOL_ERR_BUFFER_TOO_SMALL;
        }
        try_status!(check_span(grant_id_out as usize, grant_id_cap));
        let gid = try_status!(k.create_grant(p, id, grantee, &ops, limit, retiring));
        if gid.len() >= ENVOL_GRANT_ID_SIZE || gid.as_bytes().contains(&0) {
            // Cannot happen with today's ids; undo rather than leave a
            // grant nobody can name.
            let _ = k.revoke_grant(p, id, &gid);
            return envol_status::ENVOL_ERR_INTERNAL;
        }
        // SAFETY: `grant_id_out` is valid for `grant_id_cap` >= 64 writes
        // per the contract, and the id and its NUL take fewer.
        unsafe {
            core::ptr::copy_nonoverlapping(gid.as_ptr(), grant_id_out.cast::<u8>(), gid.len());
            grant_id_out.add(gid.len()).write(0);
        }
        envol_status::ENVOL_OK
    })
}

/// A grant id from C.
///
/// # Safety
/// As for [`in_str`].
pub(super) unsafe fn in_grant_id<'a>(ptr: *const c_char) -> Result<&'a str, envol_status> {
    // SAFETY: forwarded contract.
    match unsafe { in_str(ptr, ENVOL_GRANT_ID_SIZE - 1) } {
        Ok(s) => Ok(s),
        Err(StrError::Null) => Err(envol_status::ENVOL_ERR_NULL_POINTER),
        Err(_) => Err(envol_status::ENVOL_ERR_INVALID_ARGUMENT),
    }
}

/// Ends grant `grant_id` of `key_id` with `f` (retire or revoke).
///
/// # Safety
/// As for [`envol_local_kms_retire_grant`].
unsafe fn end_grant(
    kms: *mut envol_local_kms,
    principal: *const c_char,
    key_id: *const c_char,
    grant_id: *const c_char,
    f: fn(&mut LocalKms, &str, &str, &str) -> Result<(), KmsError>,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: the caller's contract.
        let gid = try_status!(unsafe { in_grant_id(grant_id) });
        // SAFETY: as above.
        try_status!(unsafe { manage(kms, principal, key_id, |k, p, id| f(k, p, id, gid)) });
        envol_status::ENVOL_OK
    })
}

/// Retires grant `grant_id` of `key_id`: allowed for its grantee and its
/// retiring principal, or by policy (`kms:RetireGrant`). An unknown
/// grant is `ENVOL_ERR_KEY_NOT_FOUND`.
///
/// # Safety
/// `kms` NULL or a live handle; strings NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_local_kms_retire_grant(
    kms: *mut envol_local_kms,
    principal: *const c_char,
    key_id: *const c_char,
    grant_id: *const c_char,
) -> envol_status {
    // SAFETY: the caller's contract.
    unsafe { end_grant(kms, principal, key_id, grant_id, LocalKms::retire_grant) }
}

/// Revokes grant `grant_id` of `key_id` (needs `kms:RevokeGrant`). An
/// unknown grant is `ENVOL_ERR_KEY_NOT_FOUND`.
///
/// # Safety
/// As for [`envol_local_kms_retire_grant`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_local_kms_revoke_grant(
    kms: *mut envol_local_kms,
    principal: *const c_char,
    key_id: *const c_char,
    grant_id: *const c_char,
) -> envol_status {
    // SAFETY: the caller's contract.
    unsafe { end_grant(kms, principal, key_id, grant_id, LocalKms::revoke_grant) }
}

/// Stores the number of grants on `key_id` in `*count` (needs
/// `kms:ListGrants`).
///
/// # Safety
/// As for [`envol_local_kms_enable_key`]; `count` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_local_kms_grant_count(
    kms: *mut envol_local_kms,
    principal: *const c_char,
    key_id: *const c_char,
    count: *mut usize,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        if count.is_null() {
            return envol_status::ENVOL_ERR_NULL_POINTER;
        }
        // SAFETY: forwarded contract.
        let grants =
            try_status!(unsafe { manage(kms, principal, key_id, |k, p, id| k.list_grants(p, id)) });
        // SAFETY: non-NULL and writable per the contract.
        unsafe { count.write(grants.len()) };
        envol_status::ENVOL_OK
    })
}

/// Stores in `*count` how many distinct encryption contexts (volumes)
/// `key_id` has wrapped data keys for: what deleting it would make
/// unreadable (needs `kms:ListProtectedVolumes`).
///
/// # Safety
/// As for [`envol_local_kms_grant_count`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_local_kms_protected_volume_count(
    kms: *mut envol_local_kms,
    principal: *const c_char,
    key_id: *const c_char,
    count: *mut usize,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        if count.is_null() {
            return envol_status::ENVOL_ERR_NULL_POINTER;
        }
        // SAFETY: forwarded contract.
        let volumes = try_status!(unsafe {
            manage(kms, principal, key_id, |k, p, id| {
                k.protected_volumes(p, id)
            })
        });
        // SAFETY: non-NULL and writable per the contract.
        unsafe { count.write(volumes.len()) };
        envol_status::ENVOL_OK
    })
}
