//! Store, key, grant and audit commands. Key management is the reference
//! service's (`--store`); on PKCS#11 keys can be created; on KMIP keys can
//! be created and described; AWS keys are managed with AWS's own tools
//! (`aws kms ...`), and the command says so.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use envol::kms::audit::{AuditHead, Outcome, parse_lines};
use envol::kms::policy::{Action, Policy};
use envol::kms::{GrantConstraint, KeyState, LocalKms};
use serde_json::json;

use crate::Ctx;
use crate::out::{Failure, hex, utc};
use crate::service::{Service, Store, audit_path, root_key};

#[derive(Subcommand)]
pub enum StoreCmd {
    /// Creates a new store; --admin may then create keys and list them.
    Init {
        /// The principal allowed kms:CreateKey, kms:ListKeys and
        /// kms:PutServicePolicy.
        #[arg(long)]
        admin: String,
    },
}

#[derive(Subcommand)]
pub enum KeyCmd {
    /// Creates a master key with a key policy (JSON file).
    Create {
        key_id: String,
        /// The key policy, a JSON file in the shape AWS KMS uses.
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// State, backing versions, rotation, creation time.
    Describe { key_id: String },
    /// Every key's id.
    List,
    /// Prints the key policy.
    GetPolicy { key_id: String },
    /// Replaces the key policy (JSON file).
    PutPolicy { key_id: String, policy: PathBuf },
    /// Disabled → Enabled.
    Enable { key_id: String },
    /// Enabled → Disabled: cryptographic use is refused.
    Disable { key_id: String },
    /// A new backing version now (old blobs still open).
    Rotate { key_id: String },
    /// Rotates automatically every --days days.
    EnableRotation {
        key_id: String,
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// Stops automatic rotation.
    DisableRotation { key_id: String },
    /// Deletes the key after 7..=30 days (refused while it protects volumes,
    /// unless --force).
    ScheduleDeletion {
        key_id: String,
        #[arg(long, default_value_t = 30)]
        days: u32,
        #[arg(long)]
        force: bool,
    },
    /// Cancels a scheduled deletion (the key comes back disabled).
    CancelDeletion { key_id: String },
}

#[derive(Subcommand)]
pub enum GrantCmd {
    /// Lets --grantee use the key for some operations.
    Create {
        key_id: String,
        #[arg(long)]
        grantee: String,
        /// An operation (kms:Decrypt, kms:GenerateDataKey, ...); repeat.
        #[arg(long = "operation", required = true)]
        operations: Vec<String>,
        /// The context must be exactly these pairs (key=value; repeat).
        #[arg(long = "context-equals", conflicts_with = "context_subset")]
        context_equals: Vec<String>,
        /// The context must contain these pairs (key=value; repeat).
        #[arg(long = "context-subset")]
        context_subset: Vec<String>,
        /// Who else may retire the grant.
        #[arg(long)]
        retiring_principal: Option<String>,
    },
    /// The key's grants.
    List { key_id: String },
    /// Retires a grant (its grantee or retiring principal).
    Retire { key_id: String, grant_id: String },
    /// Revokes a grant (a key administrator).
    Revoke { key_id: String, grant_id: String },
}

#[derive(Subcommand)]
pub enum AuditCmd {
    /// Prints the trail (<store>.audit), filtered.
    Show {
        #[arg(long)]
        key: Option<String>,
        /// Only this principal's calls.
        #[arg(long)]
        by: Option<String>,
        /// allowed, refused, or one status (e.g. ENVOL_ERR_ACCESS_DENIED).
        #[arg(long)]
        outcome: Option<String>,
    },
    /// Verifies the trail's keyed chain from its first event, and with
    /// --head that it reaches that exported head unchanged.
    Verify {
        /// A head exported earlier (`seq=N hash=HEX`).
        #[arg(long)]
        head: Option<String>,
    },
    /// The chain's newest event, to keep somewhere safe.
    Head,
}

/// The reference service for a management command.
fn local(ctx: &Ctx) -> Result<Store, Failure> {
    let Some(path) = &ctx.choice.store else {
        let hint = match ctx.choice.kms.as_deref() {
            Some("aws") => "AWS keys are managed with `aws kms ...`",
            Some("pkcs11") => "on PKCS#11 only `envol key create` is offered",
            Some("kmip") => {
                "on KMIP `envol key create` and `describe` are offered; \
                 revoke and destroy keys with the server's own tools"
            }
            _ => "pass --store PATH (or set ENVOL_STORE)",
        };
        return Err(Failure::invalid("this needs the reference service's store").hint(hint));
    };
    let root = root_key(&ctx.choice)?;
    Store::open(path, &root)
}

/// Runs `f` on the store, and writes the store back whatever `f` said (its
/// audit chain moved on).
fn with_store<T>(
    ctx: &Ctx,
    f: impl FnOnce(&mut LocalKms, &str) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let principal = ctx.principal()?.to_owned();
    let mut s = local(ctx)?;
    let r = f(&mut s.kms, &principal);
    s.commit()?;
    r
}

fn read_policy(path: &Path) -> Result<Policy, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| Failure::io(path.display(), &e))?;
    Policy::parse(&text)
        .map_err(|e| Failure::new("ENVOL_ERR_POLICY", format!("{}: {e}", path.display())))
}

fn state_name(s: KeyState) -> (&'static str, Option<u64>) {
    match s {
        KeyState::Enabled => ("Enabled", None),
        KeyState::Disabled => ("Disabled", None),
        KeyState::PendingDeletion { delete_at } => ("PendingDeletion", Some(delete_at)),
        KeyState::Deleted => ("Deleted", None),
    }
}

pub fn store(ctx: &Ctx, c: StoreCmd) -> Result<(), Failure> {
    let StoreCmd::Init { admin } = c;
    let Some(path) = &ctx.choice.store else {
        return Err(Failure::invalid("pass --store PATH for the new store"));
    };
    let root = root_key(&ctx.choice)?;
    let mut s = Store::create(path, &root)?;
    s.kms
        .set_service_policy(&admin, Policy::allow_all(&[admin.as_str()]))
        .map_err(|e| Failure::kms(e, &admin, None))?;
    s.commit()?;
    ctx.out.done(
        &format!(
            "created store {} ({admin} may create and list keys)",
            path.display()
        ),
        json!({"store": path, "admin": admin}),
    )
}

/// Key commands on a KMIP server: create (an AES-256 object named
/// `key_id`, activated) and describe (its state); the server's own tools
/// do the rest.
fn kmip_key(ctx: &Ctx, c: KeyCmd) -> Result<(), Failure> {
    let Some(Service::Kmip(mut k)) = Service::open(&ctx.choice)? else {
        return Err(Failure::invalid("no KMIP server"));
    };
    let failed = |e, id: &str| Failure::kms(e, "kmip", Some(id));
    match c {
        KeyCmd::Create { key_id, policy } => {
            if policy.is_some() {
                return Err(Failure::invalid(
                    "a KMIP server has no envol key policies; it authorises the client certificate",
                ));
            }
            let uid = k.create_key(&key_id).map_err(|e| failed(e, &key_id))?;
            ctx.out.done(
                &format!("created key {key_id} on the KMIP server (unique identifier {uid})"),
                json!({"key_id": key_id, "unique_identifier": uid}),
            )
        }
        KeyCmd::Describe { key_id } => {
            let state = k.key_state(&key_id).map_err(|e| failed(e, &key_id))?;
            ctx.out.done(
                &format!("key {key_id}\n  state: {}", state.name()),
                json!({"key_id": key_id, "state": state.name()}),
            )
        }
        _ => Err(
            Failure::invalid("on KMIP only `envol key create` and `describe` are offered")
                .hint("revoke and destroy keys with the KMIP server's own tools"),
        ),
    }
}

pub fn key(ctx: &Ctx, c: KeyCmd) -> Result<(), Failure> {
    let out = ctx.out;
    if let (KeyCmd::Create { key_id, policy }, Some("pkcs11")) = (&c, ctx.choice.kms.as_deref()) {
        if policy.is_some() {
            return Err(Failure::invalid(
                "a PKCS#11 token has no key policies; its PIN is its policy",
            ));
        }
        let mut svc = Service::open(&ctx.choice)?.ok_or_else(|| Failure::invalid("no token"))?;
        if let Service::Pkcs11(k) = &mut svc {
            k.create_key(key_id)
                .map_err(|e| Failure::kms(e, "pkcs11", Some(key_id)))?;
        }
        return out.done(
            &format!("created key {key_id} in the token"),
            json!({"key_id": key_id}),
        );
    }
    if ctx.choice.kms.as_deref() == Some("kmip") {
        return kmip_key(ctx, c);
    }
    match c {
        KeyCmd::Create { key_id, policy } => {
            let policy = match &policy {
                Some(p) => read_policy(p)?,
                None => {
                    return Err(Failure::invalid("pass --policy FILE (the key policy)")
                        .hint("a key without a policy would be usable by nobody"));
                }
            };
            with_store(ctx, |k, p| {
                k.create_key(p, &key_id, policy)
                    .map_err(|e| Failure::kms(e, p, Some(&key_id)))
            })?;
            out.done(&format!("created key {key_id}"), json!({"key_id": key_id}))
        }
        KeyCmd::Describe { key_id } => {
            let info = with_store(ctx, |k, p| {
                k.describe_key(p, &key_id)
                    .map_err(|e| Failure::kms(e, p, Some(&key_id)))
            })?;
            let (state, delete_at) = state_name(info.state);
            let rotation_days = info.rotation_period.map(|s| s / 86_400);
            let mut human = format!(
                "key {}\n  state: {state}\n  backing versions: {}\n  automatic rotation: {}\n  created: {}",
                info.key_id,
                info.backing_versions,
                rotation_days.map_or("off".to_string(), |d| format!("every {d} days")),
                utc(info.created)
            );
            if let Some(t) = delete_at {
                human.push_str(&format!("\n  deleted at: {}", utc(t)));
            }
            out.done(
                &human,
                json!({"key_id": info.key_id, "state": state, "delete_at": delete_at,
                       "backing_versions": info.backing_versions,
                       "rotation_days": rotation_days, "created": info.created}),
            )
        }
        KeyCmd::List => {
            let keys = with_store(ctx, |k, p| {
                k.list_keys(p).map_err(|e| Failure::kms(e, p, None))
            })?;
            out.done(&keys.join("\n"), json!({"keys": keys}))
        }
        KeyCmd::GetPolicy { key_id } => {
            let pol = with_store(ctx, |k, p| {
                k.get_key_policy(p, &key_id)
                    .map_err(|e| Failure::kms(e, p, Some(&key_id)))
            })?;
            let text = pol.to_json();
            let value: serde_json::Value =
                serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
            let pretty = serde_json::to_string_pretty(&value).unwrap_or(text);
            out.done(&pretty, json!({"key_id": key_id, "policy": value}))
        }
        KeyCmd::PutPolicy { key_id, policy } => {
            let policy = read_policy(&policy)?;
            with_store(ctx, |k, p| {
                k.put_key_policy(p, &key_id, policy)
                    .map_err(|e| Failure::kms(e, p, Some(&key_id)))
            })?;
            out.done(
                &format!("replaced the policy of {key_id}"),
                json!({"key_id": key_id}),
            )
        }
        KeyCmd::Enable { key_id } => simple(ctx, &key_id, "enabled", LocalKms::enable_key),
        KeyCmd::Disable { key_id } => simple(ctx, &key_id, "disabled", LocalKms::disable_key),
        KeyCmd::Rotate { key_id } => {
            let v = with_store(ctx, |k, p| {
                k.rotate_key_on_demand(p, &key_id)
                    .map_err(|e| Failure::kms(e, p, Some(&key_id)))
            })?;
            out.done(
                &format!("rotated {key_id}: new wraps use backing version {v}"),
                json!({"key_id": key_id, "backing_version": v}),
            )
        }
        KeyCmd::EnableRotation { key_id, days } => {
            with_store(ctx, |k, p| {
                k.enable_key_rotation(p, &key_id, days)
                    .map_err(|e| Failure::kms(e, p, Some(&key_id)))
            })?;
            out.done(
                &format!("{key_id} rotates every {days} days"),
                json!({"key_id": key_id, "rotation_days": days}),
            )
        }
        KeyCmd::DisableRotation { key_id } => simple(
            ctx,
            &key_id,
            "automatic rotation off for",
            LocalKms::disable_key_rotation,
        ),
        KeyCmd::ScheduleDeletion {
            key_id,
            days,
            force,
        } => {
            let at = with_store(ctx, |k, p| {
                k.schedule_key_deletion(p, &key_id, days, force)
                    .map_err(|e| Failure::kms(e, p, Some(&key_id)))
            })?;
            out.done(
                &format!("{key_id} is deleted at {} unless cancelled", utc(at)),
                json!({"key_id": key_id, "delete_at": at}),
            )
        }
        KeyCmd::CancelDeletion { key_id } => simple(
            ctx,
            &key_id,
            "deletion cancelled (the key is disabled) for",
            LocalKms::cancel_key_deletion,
        ),
    }
}

fn simple(
    ctx: &Ctx,
    key_id: &str,
    done: &str,
    f: fn(&mut LocalKms, &str, &str) -> Result<(), envol::kms::KmsError>,
) -> Result<(), Failure> {
    with_store(ctx, |k, p| {
        f(k, p, key_id).map_err(|e| Failure::kms(e, p, Some(key_id)))
    })?;
    ctx.out
        .done(&format!("{done} {key_id}"), json!({"key_id": key_id}))
}

fn pairs(list: &[String]) -> Result<Vec<(String, String)>, Failure> {
    list.iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| Failure::invalid(format!("{kv:?}: a context pair is key=value")))
        })
        .collect()
}

pub fn grant(ctx: &Ctx, c: GrantCmd) -> Result<(), Failure> {
    let out = ctx.out;
    match c {
        GrantCmd::Create {
            key_id,
            grantee,
            operations,
            context_equals,
            context_subset,
            retiring_principal,
        } => {
            let ops = operations
                .iter()
                .map(|o| {
                    Action::from_name(o).ok_or_else(|| {
                        Failure::invalid(format!("unknown operation {o:?}"))
                            .hint("operations are named as in policies, e.g. kms:Decrypt")
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let constraint = if !context_equals.is_empty() {
                Some(GrantConstraint::ContextEquals(pairs(&context_equals)?))
            } else if !context_subset.is_empty() {
                Some(GrantConstraint::ContextSubset(pairs(&context_subset)?))
            } else {
                None
            };
            let id = with_store(ctx, |k, p| {
                k.create_grant(
                    p,
                    &key_id,
                    &grantee,
                    &ops,
                    constraint,
                    retiring_principal.as_deref(),
                )
                .map_err(|e| Failure::kms(e, p, Some(&key_id)))
            })?;
            out.done(
                &format!("grant {id} on {key_id} for {grantee}"),
                json!({"grant_id": id, "key_id": key_id, "grantee": grantee}),
            )
        }
        GrantCmd::List { key_id } => {
            let grants = with_store(ctx, |k, p| {
                k.list_grants(p, &key_id)
                    .map_err(|e| Failure::kms(e, p, Some(&key_id)))
            })?;
            let mut human = Vec::new();
            let mut list = Vec::new();
            for g in &grants {
                let ops: Vec<&str> = g.operations.iter().map(|a| a.name()).collect();
                let (kind, ctxp) = match &g.constraint {
                    None => ("none", Vec::new()),
                    Some(GrantConstraint::ContextEquals(p)) => ("context-equals", p.clone()),
                    Some(GrantConstraint::ContextSubset(p)) => ("context-subset", p.clone()),
                };
                let ctx_text: Vec<String> = ctxp.iter().map(|(k, v)| format!("{k}={v}")).collect();
                human.push(format!(
                    "{}  grantee {}  {}  {}",
                    g.id,
                    g.grantee,
                    ops.join(","),
                    if ctx_text.is_empty() {
                        String::new()
                    } else {
                        format!("{kind} {}", ctx_text.join(","))
                    }
                ));
                list.push(json!({"grant_id": g.id, "grantee": g.grantee, "operations": ops,
                    "constraint": kind, "context": ctxp.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
                    "retiring_principal": g.retiring_principal}));
            }
            out.done(&human.join("\n"), json!({"key_id": key_id, "grants": list}))
        }
        GrantCmd::Retire { key_id, grant_id } => {
            with_store(ctx, |k, p| {
                k.retire_grant(p, &key_id, &grant_id)
                    .map_err(|e| Failure::kms(e, p, Some(&key_id)))
            })?;
            out.done(
                &format!("retired grant {grant_id}"),
                json!({"grant_id": grant_id}),
            )
        }
        GrantCmd::Revoke { key_id, grant_id } => {
            with_store(ctx, |k, p| {
                k.revoke_grant(p, &key_id, &grant_id)
                    .map_err(|e| Failure::kms(e, p, Some(&key_id)))
            })?;
            out.done(
                &format!("revoked grant {grant_id}"),
                json!({"grant_id": grant_id}),
            )
        }
    }
}

pub fn audit(ctx: &Ctx, c: AuditCmd) -> Result<(), Failure> {
    let out = ctx.out;
    let store = local(ctx)?;
    let path = audit_path(ctx.choice.store.as_deref().unwrap_or(Path::new("")));
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Failure::io(path.display(), &e)),
    };
    let events = parse_lines(&text)
        .map_err(|e| Failure::new("ENVOL_ERR_AUDIT_FAILED", format!("{}: {e}", path.display())))?;
    match c {
        AuditCmd::Show { key, by, outcome } => {
            // allowed, refused, or one status name (ENVOL_ERR_KEY_DISABLED).
            let want: Option<Box<dyn Fn(Outcome) -> bool>> = match outcome.as_deref() {
                None => None,
                Some("allowed") => Some(Box::new(|o| o == Outcome::Allowed)),
                Some("refused" | "denied") => Some(Box::new(|o| o != Outcome::Allowed)),
                Some(o) => {
                    let one = Outcome::from_name(o).ok_or_else(|| {
                        Failure::invalid(format!(
                            "outcome {o:?}: allowed, refused, or a status such as ENVOL_ERR_ACCESS_DENIED"
                        ))
                    })?;
                    Some(Box::new(move |x| x == one))
                }
            };
            let shown: Vec<_> = events
                .iter()
                .filter(|e| key.as_ref().is_none_or(|k| &e.key_id == k))
                .filter(|e| by.as_ref().is_none_or(|p| &e.principal == p))
                .filter(|e| want.as_ref().is_none_or(|w| w(e.outcome)))
                .collect();
            let human: Vec<String> = shown
                .iter()
                .map(|e| {
                    // For people, a volume's context is its id (the JSON
                    // form has every pair).
                    let ctx: Vec<String> = match e.context.iter().find(|(k, _)| k == "volume") {
                        Some((_, v)) => vec![v.clone()],
                        None => e.context.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                    };
                    format!(
                        "{:>6}  {}  {:<24} {:<28} {:<16} {}",
                        e.seq,
                        utc(e.time),
                        e.outcome.name(),
                        e.action.name(),
                        e.principal,
                        if e.key_id.is_empty() {
                            ctx.join(",")
                        } else {
                            format!("{} {}", e.key_id, ctx.join(","))
                        }
                    )
                })
                .collect();
            let list: Vec<_> = shown
                .iter()
                .map(|e| {
                    json!({"seq": e.seq, "time": e.time, "outcome": e.outcome.name(),
                           "action": e.action.name(), "principal": e.principal,
                           "key_id": e.key_id,
                           "context": e.context.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>()})
                })
                .collect();
            out.done(&human.join("\n"), json!({"events": list}))
        }
        AuditCmd::Verify { head } => {
            let head =
                match head.as_deref() {
                    None => None,
                    Some(h) => Some(h.parse::<AuditHead>().map_err(|_| {
                        Failure::invalid(format!("{h:?}: a head is `seq=N hash=HEX`"))
                    })?),
                };
            store
                .kms
                .verify_audit(&events, true, head.as_ref())
                .map_err(|e| {
                    Failure::new(
                        "ENVOL_ERR_AUDIT_FAILED",
                        format!("the audit trail does not verify: {e}"),
                    )
                })?;
            out.done(
                &format!(
                    "{} events verify under the service's audit key{}",
                    events.len(),
                    if head.is_some() {
                        " and reach the exported head"
                    } else {
                        ""
                    }
                ),
                json!({"events": events.len(), "head_checked": head.is_some()}),
            )
        }
        AuditCmd::Head => {
            let head = store.kms.audit_head();
            let text = head.as_ref().map(|h| h.to_string());
            out.done(
                text.as_deref().unwrap_or("no events yet"),
                json!({"head": text, "seq": head.as_ref().map(|h| h.seq),
                       "hash": head.as_ref().map(|h| hex(&h.hash))}),
            )
        }
    }
}
