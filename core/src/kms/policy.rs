//! Key policies: JSON documents in the shape AWS KMS users know.
//!
//! A [`Policy`] is a list of statements, each naming an [`Effect`], the
//! principals it is about, the actions it covers (with `*` and `?`
//! wildcards) and optional conditions on the encryption context:
//!
//! ```json
//! { "Version": "2012-10-17",
//!   "Statement": [
//!     { "Sid": "HypervisorUse",
//!       "Effect": "Allow",
//!       "Principal": {"Envol": "hypervisor"},
//!       "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
//!       "Condition": {"StringLike": {"kms:EncryptionContext:volume": "vol-*"}} } ] }
//! ```
//!
//! Evaluation is default deny: an explicit `Deny` in any applicable
//! statement wins over every `Allow`, and a request no statement covers is
//! refused ([`Decision::ImplicitDeny`]).
//!
//! Parsing is strict (unknown fields, duplicate fields, unknown exact action
//! names and unsupported condition operators or keys are errors naming their
//! place in the document), bounded ([`MAX_POLICY_BYTES`], [`MAX_STATEMENTS`],
//! [`MAX_LIST_ITEMS`], [`MAX_CONDITIONS`]) and total: it never panics.
//! Wildcard matching is iterative and takes time proportional to the product
//! of the pattern and text lengths at worst, whatever the pattern.

use alloc::borrow::ToOwned;
use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use serde_json::{Map, Value};

use crate::envelope::Context;

mod parse;

use parse::*;

/// Largest policy document [`Policy::parse`] accepts, in bytes.
pub const MAX_POLICY_BYTES: usize = 32 * 1024;
/// Largest canonical form ([`Policy::to_json`]) a key service stores and
/// [`Policy::parse_stored`] reads back. The canonical form of a document
/// [`Policy::parse`] accepts can be longer than the document (single
/// strings become one-element arrays, a lone statement an array: at most
/// 5/3 of the input), and a service must always read back what it stored.
pub const MAX_STORED_POLICY_BYTES: usize = 2 * MAX_POLICY_BYTES;
/// Most statements a policy may hold.
pub const MAX_STATEMENTS: usize = 64;
/// Most entries in one list: principal names (per principal type), action
/// patterns, or values of one condition key.
pub const MAX_LIST_ITEMS: usize = 64;
/// Most condition keys in one statement, over all operators.
pub const MAX_CONDITIONS: usize = 64;
/// The only policy language version accepted in `"Version"`.
pub const POLICY_VERSION: &str = "2012-10-17";

const ACTION_PREFIX: &str = "kms:";
const CONTEXT_KEY_PREFIX: &str = "kms:EncryptionContext:";
const CONTEXT_KEYS_KEY: &str = "kms:EncryptionContextKeys";

/// Whether a statement allows or denies what it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    /// The statement allows its actions.
    Allow,
    /// The statement denies its actions; a deny always wins.
    Deny,
}

impl Effect {
    fn name(self) -> &'static str {
        match self {
            Effect::Allow => "Allow",
            Effect::Deny => "Deny",
        }
    }
}

/// An operation on a master key that a policy can allow or deny.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Make a data key, returned in plaintext and wrapped.
    GenerateDataKey,
    /// Make a data key, returned only wrapped.
    GenerateDataKeyWithoutPlaintext,
    /// Unwrap a data key or decrypt a secret.
    Decrypt,
    /// Encrypt a small secret.
    Encrypt,
    /// Re-wrap a blob, as the source key.
    ReEncryptFrom,
    /// Re-wrap a blob, as the destination key.
    ReEncryptTo,
    /// Read the key's metadata.
    DescribeKey,
    /// Enable the key.
    EnableKey,
    /// Disable the key.
    DisableKey,
    /// Schedule the key for deletion.
    ScheduleKeyDeletion,
    /// Cancel a scheduled deletion.
    CancelKeyDeletion,
    /// Replace the key policy.
    PutKeyPolicy,
    /// Read the key policy.
    GetKeyPolicy,
    /// Create a grant on the key.
    CreateGrant,
    /// List the key's grants.
    ListGrants,
    /// Retire a grant.
    RetireGrant,
    /// Revoke a grant.
    RevokeGrant,
    /// Rotate the key's backing material now.
    RotateKeyOnDemand,
    /// Turn on automatic rotation.
    EnableKeyRotation,
    /// Turn off automatic rotation.
    DisableKeyRotation,
    /// List the volumes whose data keys the key protects.
    ListProtectedVolumes,
    /// Read the key's audit log.
    ReadAuditLog,
    /// Forget that the key protects a volume (which lets deletion proceed
    /// without `force`).
    ForgetVolume,
    /// Retire a volume: the service keeps a tombstone for its encryption
    /// context and never unwraps its data key again.
    RetireVolume,
    /// Create a master key (service policy).
    CreateKey,
    /// List the master keys (service policy).
    ListKeys,
    /// Replace the service policy (service policy).
    PutServicePolicy,
    /// The service destroyed a key's material at the end of its deletion
    /// window (an audit record of the service's own; no caller asks it).
    DeleteKey,
    /// The service rotated a key on its automatic schedule (an audit
    /// record of the service's own; no caller asks it).
    RotateKey,
}

impl Action {
    /// Every action, in declaration order.
    pub const ALL: [Action; 29] = [
        Action::GenerateDataKey,
        Action::GenerateDataKeyWithoutPlaintext,
        Action::Decrypt,
        Action::Encrypt,
        Action::ReEncryptFrom,
        Action::ReEncryptTo,
        Action::DescribeKey,
        Action::EnableKey,
        Action::DisableKey,
        Action::ScheduleKeyDeletion,
        Action::CancelKeyDeletion,
        Action::PutKeyPolicy,
        Action::GetKeyPolicy,
        Action::CreateGrant,
        Action::ListGrants,
        Action::RetireGrant,
        Action::RevokeGrant,
        Action::RotateKeyOnDemand,
        Action::EnableKeyRotation,
        Action::DisableKeyRotation,
        Action::ListProtectedVolumes,
        Action::ReadAuditLog,
        Action::ForgetVolume,
        Action::RetireVolume,
        Action::CreateKey,
        Action::ListKeys,
        Action::PutServicePolicy,
        Action::DeleteKey,
        Action::RotateKey,
    ];

    /// The operations a grant may give, as in AWS KMS: the cryptographic
    /// operations, `DescribeKey`, `CreateGrant` and `RetireGrant`. Never a
    /// management action (policy, state, deletion, rotation, revocation).
    pub const GRANT_OPERATIONS: [Action; 9] = [
        Action::GenerateDataKey,
        Action::GenerateDataKeyWithoutPlaintext,
        Action::Decrypt,
        Action::Encrypt,
        Action::ReEncryptFrom,
        Action::ReEncryptTo,
        Action::DescribeKey,
        Action::CreateGrant,
        Action::RetireGrant,
    ];

    /// Whether a grant may give this action.
    pub fn is_grant_operation(self) -> bool {
        Action::GRANT_OPERATIONS.contains(&self)
    }

    /// The policy name: `"kms:"` followed by the variant name, e.g.
    /// `"kms:Decrypt"`.
    pub fn name(self) -> &'static str {
        match self {
            Action::GenerateDataKey => "kms:GenerateDataKey",
            Action::GenerateDataKeyWithoutPlaintext => "kms:GenerateDataKeyWithoutPlaintext",
            Action::Decrypt => "kms:Decrypt",
            Action::Encrypt => "kms:Encrypt",
            Action::ReEncryptFrom => "kms:ReEncryptFrom",
            Action::ReEncryptTo => "kms:ReEncryptTo",
            Action::DescribeKey => "kms:DescribeKey",
            Action::EnableKey => "kms:EnableKey",
            Action::DisableKey => "kms:DisableKey",
            Action::ScheduleKeyDeletion => "kms:ScheduleKeyDeletion",
            Action::CancelKeyDeletion => "kms:CancelKeyDeletion",
            Action::PutKeyPolicy => "kms:PutKeyPolicy",
            Action::GetKeyPolicy => "kms:GetKeyPolicy",
            Action::CreateGrant => "kms:CreateGrant",
            Action::ListGrants => "kms:ListGrants",
            Action::RetireGrant => "kms:RetireGrant",
            Action::RevokeGrant => "kms:RevokeGrant",
            Action::RotateKeyOnDemand => "kms:RotateKeyOnDemand",
            Action::EnableKeyRotation => "kms:EnableKeyRotation",
            Action::DisableKeyRotation => "kms:DisableKeyRotation",
            Action::ListProtectedVolumes => "kms:ListProtectedVolumes",
            Action::ReadAuditLog => "kms:ReadAuditLog",
            Action::ForgetVolume => "kms:ForgetVolume",
            Action::RetireVolume => "kms:RetireVolume",
            Action::CreateKey => "kms:CreateKey",
            Action::ListKeys => "kms:ListKeys",
            Action::PutServicePolicy => "kms:PutServicePolicy",
            Action::DeleteKey => "kms:DeleteKey",
            Action::RotateKey => "kms:RotateKey",
        }
    }

    /// The name without the `"kms:"` prefix.
    fn short_name(self) -> &'static str {
        let n = self.name();
        n.get(ACTION_PREFIX.len()..).unwrap_or(n)
    }

    /// The action called `name`: `"kms:"` followed by the action name, the
    /// part after `"kms:"` compared ASCII case-insensitively as in policies
    /// (`"kms:decrypt"` is [`Action::Decrypt`]).
    pub fn from_name(name: &str) -> Option<Action> {
        let rest = name.strip_prefix(ACTION_PREFIX)?;
        Action::ALL
            .into_iter()
            .find(|a| a.short_name().eq_ignore_ascii_case(rest))
    }
}

/// The outcome of evaluating a policy for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// An applicable statement allows the request and none denies it.
    Allow,
    /// An applicable statement denies the request.
    ExplicitDeny,
    /// No statement applies to the request, so it is refused.
    ImplicitDeny,
}

/// Why a policy document was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    /// Where in the document, e.g. `"Statement[1].Condition.StringLike"`;
    /// empty for the document as a whole and for JSON syntax errors.
    pub path: String,
    /// One-based line of a JSON syntax error; 0 for any other error.
    pub line: usize,
    /// Column of a JSON syntax error; 0 for any other error.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl PolicyError {
    fn at(path: &str, message: impl Into<String>) -> PolicyError {
        PolicyError {
            path: path.to_owned(),
            line: 0,
            column: 0,
            message: message.into(),
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line != 0 {
            write!(
                f,
                "policy error at line {} column {}: {}",
                self.line, self.column, self.message
            )
        } else if self.path.is_empty() {
            write!(f, "policy error: {}", self.message)
        } else {
            write!(f, "policy error at {}: {}", self.path, self.message)
        }
    }
}

impl core::error::Error for PolicyError {}

/// Who a statement is about.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Principal {
    /// `"*"`: anyone.
    Any,
    /// Named principals; `"*"` in either list also means anyone. Both lists
    /// empty names no one.
    Names {
        envol: Vec<String>,
        aws: Vec<String>,
    },
}

impl Principal {
    fn matches(&self, principal: &str) -> bool {
        match self {
            Principal::Any => true,
            Principal::Names { envol, aws } => envol
                .iter()
                .chain(aws.iter())
                .any(|n| n == "*" || n == principal),
        }
    }
}

/// One entry of a statement's `"Action"`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ActionPattern {
    /// A wildcard-free name, resolved.
    Exact(Action),
    /// A pattern with `*` or `?`: the part after `"kms:"`, as written.
    Wildcard(String),
}

impl ActionPattern {
    fn matches(&self, action: Action) -> bool {
        match self {
            ActionPattern::Exact(a) => *a == action,
            ActionPattern::Wildcard(p) => wildcard_match(p, action.short_name(), true),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Operator {
    StringEquals,
    StringLike,
}

impl Operator {
    fn name(self) -> &'static str {
        match self {
            Operator::StringEquals => "StringEquals",
            Operator::StringLike => "StringLike",
        }
    }

    fn test(self, pattern: &str, text: &str) -> bool {
        match self {
            Operator::StringEquals => pattern == text,
            Operator::StringLike => wildcard_match(pattern, text, false),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum ConditionKey {
    /// `kms:EncryptionContext:<key>`: the value of one context key.
    Context(String),
    /// `kms:EncryptionContextKeys`: the set of context keys (for all values).
    ContextKeys,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Condition {
    op: Operator,
    key: ConditionKey,
    values: Vec<String>,
}

impl Condition {
    fn holds(&self, context: &Context<'_>) -> bool {
        match &self.key {
            ConditionKey::Context(k) => match context.get(k) {
                Some(v) => self.values.iter().any(|p| self.op.test(p, v)),
                None => false,
            },
            ConditionKey::ContextKeys => context
                .iter()
                .all(|(k, _)| self.values.iter().any(|p| self.op.test(p, k))),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Statement {
    sid: Option<String>,
    effect: Effect,
    principal: Principal,
    actions: Vec<ActionPattern>,
    /// Sorted by (operator, key); no two share both.
    conditions: Vec<Condition>,
}

impl Statement {
    fn applies(&self, principal: &str, action: Action, context: &Context<'_>) -> bool {
        self.principal.matches(principal)
            && self.actions.iter().any(|p| p.matches(action))
            && self.conditions.iter().all(|c| c.holds(context))
    }
}

/// A parsed, validated key policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    version: Option<String>,
    id: Option<String>,
    statements: Vec<Statement>,
}

impl Policy {
    /// Parses and validates a policy document.
    ///
    /// Documents over [`MAX_POLICY_BYTES`] are refused before any parsing.
    /// JSON syntax errors carry their line and column; every other error
    /// carries the path of the offending field.
    pub fn parse(json: &str) -> Result<Policy, PolicyError> {
        if json.len() > MAX_POLICY_BYTES {
            return Err(PolicyError::at(
                "",
                format!(
                    "document is {} bytes; the limit is {MAX_POLICY_BYTES}",
                    json.len()
                ),
            ));
        }
        Self::parse_unbounded(json)
    }

    /// Parses a policy a key service stored (its canonical form), allowing
    /// up to [`MAX_STORED_POLICY_BYTES`]: everything [`Policy::parse`]
    /// accepts reads back through this.
    pub fn parse_stored(json: &str) -> Result<Policy, PolicyError> {
        if json.len() > MAX_STORED_POLICY_BYTES {
            return Err(PolicyError::at(
                "",
                format!(
                    "stored document is {} bytes; the limit is {MAX_STORED_POLICY_BYTES}",
                    json.len()
                ),
            ));
        }
        Self::parse_unbounded(json)
    }

    fn parse_unbounded(json: &str) -> Result<Policy, PolicyError> {
        let value: Value = serde_json::from_str(json).map_err(syntax_error)?;
        check_duplicate_keys(json)?;
        parse_document(&value)
    }

    /// Whether a service can store this policy and read it back as it is:
    /// its canonical form fits [`MAX_STORED_POLICY_BYTES`] and parses back
    /// to an equal policy. Every policy [`Policy::parse`] returns passes;
    /// key services check it anyway before accepting one.
    pub fn is_storable(&self) -> bool {
        let json = self.to_json();
        Policy::parse_stored(&json).is_ok_and(|p| p == *self)
    }

    /// Decides whether `principal` may perform `action` in `context`.
    ///
    /// Any applicable `Deny` statement gives [`Decision::ExplicitDeny`];
    /// otherwise any applicable `Allow` gives [`Decision::Allow`]; otherwise
    /// [`Decision::ImplicitDeny`].
    pub fn evaluate(&self, principal: &str, action: Action, context: &Context<'_>) -> Decision {
        let mut allowed = false;
        for s in &self.statements {
            if s.applies(principal, action, context) {
                match s.effect {
                    Effect::Deny => return Decision::ExplicitDeny,
                    Effect::Allow => allowed = true,
                }
            }
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::ImplicitDeny
        }
    }

    /// The policy as canonical JSON: compact, lists always as arrays, exact
    /// action names spelled as [`Action::name`]. [`Policy::parse`] accepts it
    /// and gives back an equal policy.
    pub fn to_json(&self) -> String {
        let mut doc = Map::new();
        if let Some(v) = &self.version {
            doc.insert("Version".to_owned(), Value::String(v.clone()));
        }
        if let Some(id) = &self.id {
            doc.insert("Id".to_owned(), Value::String(id.clone()));
        }
        let statements = self.statements.iter().map(statement_json).collect();
        doc.insert("Statement".to_owned(), Value::Array(statements));
        Value::Object(doc).to_string()
    }

    /// One `Allow` statement for `"kms:*"` naming `principals` (as `Envol`
    /// principals; `"*"` means anyone). With no principals it allows no one.
    pub fn allow_all(principals: &[&str]) -> Policy {
        Policy {
            version: Some(POLICY_VERSION.to_owned()),
            id: None,
            statements: alloc::vec![Statement {
                sid: None,
                effect: Effect::Allow,
                principal: Principal::Names {
                    envol: principals.iter().map(|p| (*p).to_owned()).collect(),
                    aws: Vec::new(),
                },
                actions: alloc::vec![ActionPattern::Wildcard("*".to_owned())],
                conditions: Vec::new(),
            }],
        }
    }
}

// ---------------------------------------------------------------------------
// Wildcard matching.

/// Whether `text` matches `pattern`, where `*` matches any run of characters
/// (including none) and `?` exactly one. `fold` compares ASCII letters
/// case-insensitively.
///
/// The classic two-pointer algorithm: on a mismatch, the most recent `*`
/// absorbs one more character of text and matching resumes after it. No
/// recursion; at most O(len(pattern) * len(text)) steps.
fn wildcard_match(pattern: &str, text: &str, fold: bool) -> bool {
    let (mut pi, mut ti) = (0usize, 0usize);
    // (pattern index just after the last `*`, text index it resumes from)
    let mut star: Option<(usize, usize)> = None;
    loop {
        let Some(tc) = text.get(ti..).and_then(|t| t.chars().next()) else {
            // Text exhausted: only `*`s may remain.
            return pattern
                .get(pi..)
                .is_some_and(|p| p.chars().all(|c| c == '*'));
        };
        if let Some(pc) = pattern.get(pi..).and_then(|p| p.chars().next()) {
            if pc == '*' {
                pi += 1;
                star = Some((pi, ti));
                continue;
            }
            let same = if fold {
                pc.eq_ignore_ascii_case(&tc)
            } else {
                pc == tc
            };
            if pc == '?' || same {
                pi += pc.len_utf8();
                ti += tc.len_utf8();
                continue;
            }
        }
        match star {
            Some((sp, st)) => {
                let Some(c) = text.get(st..).and_then(|t| t.chars().next()) else {
                    return false;
                };
                let next = st + c.len_utf8();
                star = Some((sp, next));
                pi = sp;
                ti = next;
            }
            None => return false,
        }
    }
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?'])
}

// ---------------------------------------------------------------------------
// Serialization.

fn string_array(items: impl Iterator<Item = String>) -> Value {
    Value::Array(items.map(Value::String).collect())
}

fn statement_json(s: &Statement) -> Value {
    let mut m = Map::new();
    if let Some(sid) = &s.sid {
        m.insert("Sid".to_owned(), Value::String(sid.clone()));
    }
    m.insert(
        "Effect".to_owned(),
        Value::String(s.effect.name().to_owned()),
    );
    let principal = match &s.principal {
        Principal::Any => Value::String("*".to_owned()),
        Principal::Names { envol, aws } => {
            let mut p = Map::new();
            if !envol.is_empty() || aws.is_empty() {
                p.insert("Envol".to_owned(), string_array(envol.iter().cloned()));
            }
            if !aws.is_empty() {
                p.insert("AWS".to_owned(), string_array(aws.iter().cloned()));
            }
            Value::Object(p)
        }
    };
    m.insert("Principal".to_owned(), principal);
    m.insert(
        "Action".to_owned(),
        string_array(s.actions.iter().map(|a| match a {
            ActionPattern::Exact(a) => a.name().to_owned(),
            ActionPattern::Wildcard(p) => format!("{ACTION_PREFIX}{p}"),
        })),
    );
    if !s.conditions.is_empty() {
        let mut ops = Map::new();
        for c in &s.conditions {
            let key = match &c.key {
                ConditionKey::Context(k) => format!("{CONTEXT_KEY_PREFIX}{k}"),
                ConditionKey::ContextKeys => CONTEXT_KEYS_KEY.to_owned(),
            };
            let entry = ops
                .entry(c.op.name().to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(keys) = entry {
                keys.insert(key, string_array(c.values.iter().cloned()));
            }
        }
        m.insert("Condition".to_owned(), Value::Object(ops));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests;
