//! Parsing a policy document: strict JSON (no duplicate keys, no unknown
//! fields), every error located by path, line and column.

use super::*;

pub(super) fn syntax_error(e: serde_json::Error) -> PolicyError {
    let (line, column) = (e.line(), e.column());
    let full = e.to_string();
    let suffix = format!(" at line {line} column {column}");
    let message = full
        .strip_suffix(suffix.as_str())
        .unwrap_or(&full)
        .to_owned();
    PolicyError {
        path: String::new(),
        // A syntax error always has a line; keep `line != 0` meaning
        // "syntax error" even if serde_json ever reports none.
        line: line.max(1),
        column,
        message,
    }
}

pub(super) fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// Refuses fields other than `allowed`, naming the first one found.
pub(super) fn check_fields(
    obj: &Map<String, Value>,
    path: &str,
    allowed: &[&str],
) -> Result<(), PolicyError> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(PolicyError::at(&join(path, k), "unknown field")),
        None => Ok(()),
    }
}

pub(super) fn expect_str<'v>(v: &'v Value, path: &str) -> Result<&'v str, PolicyError> {
    v.as_str()
        .ok_or_else(|| PolicyError::at(path, "expected a string"))
}

/// A string or an array of strings, at most [`MAX_LIST_ITEMS`], each passed
/// through `item` with its own path.
pub(super) fn string_list<T>(
    v: &Value,
    path: &str,
    mut item: impl FnMut(&str, &str) -> Result<T, PolicyError>,
) -> Result<Vec<T>, PolicyError> {
    match v {
        Value::String(s) => Ok(alloc::vec![item(s, path)?]),
        Value::Array(a) => {
            if a.len() > MAX_LIST_ITEMS {
                return Err(PolicyError::at(
                    path,
                    format!("more than {MAX_LIST_ITEMS} entries"),
                ));
            }
            a.iter()
                .enumerate()
                .map(|(i, e)| {
                    let p = format!("{path}[{i}]");
                    item(expect_str(e, &p)?, &p)
                })
                .collect()
        }
        _ => Err(PolicyError::at(
            path,
            "expected a string or an array of strings",
        )),
    }
}

pub(super) fn parse_document(v: &Value) -> Result<Policy, PolicyError> {
    let obj = v
        .as_object()
        .ok_or_else(|| PolicyError::at("", "expected a JSON object"))?;
    check_fields(obj, "", &["Version", "Id", "Statement"])?;
    let version = match obj.get("Version") {
        None => None,
        Some(v) => {
            let s = expect_str(v, "Version")?;
            if s != POLICY_VERSION {
                return Err(PolicyError::at(
                    "Version",
                    format!("expected \"{POLICY_VERSION}\""),
                ));
            }
            Some(s.to_owned())
        }
    };
    let id = match obj.get("Id") {
        None => None,
        Some(v) => Some(expect_str(v, "Id")?.to_owned()),
    };
    let statements = match obj.get("Statement") {
        None => return Err(PolicyError::at("Statement", "missing required field")),
        Some(Value::Object(s)) => alloc::vec![parse_statement(s, "Statement")?],
        Some(Value::Array(a)) => {
            if a.is_empty() {
                return Err(PolicyError::at("Statement", "no statements"));
            }
            if a.len() > MAX_STATEMENTS {
                return Err(PolicyError::at(
                    "Statement",
                    format!("more than {MAX_STATEMENTS} statements"),
                ));
            }
            a.iter()
                .enumerate()
                .map(|(i, s)| {
                    let p = format!("Statement[{i}]");
                    let s = s
                        .as_object()
                        .ok_or_else(|| PolicyError::at(&p, "expected an object"))?;
                    parse_statement(s, &p)
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        Some(_) => {
            return Err(PolicyError::at(
                "Statement",
                "expected an object or an array of objects",
            ));
        }
    };
    Ok(Policy {
        version,
        id,
        statements,
    })
}

pub(super) fn required<'v>(
    obj: &'v Map<String, Value>,
    path: &str,
    field: &str,
) -> Result<&'v Value, PolicyError> {
    obj.get(field)
        .ok_or_else(|| PolicyError::at(&join(path, field), "missing required field"))
}

pub(super) fn parse_statement(
    obj: &Map<String, Value>,
    path: &str,
) -> Result<Statement, PolicyError> {
    check_fields(
        obj,
        path,
        &["Sid", "Effect", "Principal", "Action", "Condition"],
    )?;
    let sid = match obj.get("Sid") {
        None => None,
        Some(v) => Some(expect_str(v, &join(path, "Sid"))?.to_owned()),
    };
    let effect_path = join(path, "Effect");
    let effect = match required(obj, path, "Effect")?.as_str() {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        _ => {
            return Err(PolicyError::at(
                &effect_path,
                "expected \"Allow\" or \"Deny\"",
            ));
        }
    };
    let principal = parse_principal(required(obj, path, "Principal")?, &join(path, "Principal"))?;
    let actions = parse_actions(required(obj, path, "Action")?, &join(path, "Action"))?;
    let conditions = match obj.get("Condition") {
        None => Vec::new(),
        Some(v) => parse_conditions(v, &join(path, "Condition"))?,
    };
    Ok(Statement {
        sid,
        effect,
        principal,
        actions,
        conditions,
    })
}

pub(super) fn parse_principal(v: &Value, path: &str) -> Result<Principal, PolicyError> {
    const EXPECTED: &str = "expected \"*\" or an object with \"Envol\" or \"AWS\"";
    match v {
        Value::String(s) if s == "*" => Ok(Principal::Any),
        Value::Object(obj) => {
            check_fields(obj, path, &["Envol", "AWS"])?;
            if obj.is_empty() {
                return Err(PolicyError::at(path, EXPECTED));
            }
            let names = |field: &str| -> Result<Vec<String>, PolicyError> {
                match obj.get(field) {
                    None => Ok(Vec::new()),
                    Some(v) => string_list(v, &join(path, field), |s, p| {
                        if s.is_empty() {
                            Err(PolicyError::at(p, "empty principal name"))
                        } else {
                            Ok(s.to_owned())
                        }
                    }),
                }
            };
            Ok(Principal::Names {
                envol: names("Envol")?,
                aws: names("AWS")?,
            })
        }
        _ => Err(PolicyError::at(path, EXPECTED)),
    }
}

pub(super) fn parse_actions(v: &Value, path: &str) -> Result<Vec<ActionPattern>, PolicyError> {
    let actions = string_list(v, path, |s, p| {
        let Some(rest) = s.strip_prefix(ACTION_PREFIX) else {
            return Err(PolicyError::at(
                p,
                format!("action {s:?} does not start with \"kms:\""),
            ));
        };
        if has_wildcard(rest) {
            Ok(ActionPattern::Wildcard(rest.to_owned()))
        } else {
            Action::from_name(s)
                .map(ActionPattern::Exact)
                .ok_or_else(|| PolicyError::at(p, format!("unknown action {s:?}")))
        }
    })?;
    if actions.is_empty() {
        return Err(PolicyError::at(path, "no actions"));
    }
    Ok(actions)
}

pub(super) fn parse_conditions(v: &Value, path: &str) -> Result<Vec<Condition>, PolicyError> {
    let obj = v
        .as_object()
        .ok_or_else(|| PolicyError::at(path, "expected an object"))?;
    let mut out: Vec<Condition> = Vec::new();
    for (op_name, keys) in obj {
        let op_path = join(path, op_name);
        let op = match op_name.as_str() {
            "StringEquals" => Operator::StringEquals,
            "StringLike" => Operator::StringLike,
            _ => {
                return Err(PolicyError::at(
                    &op_path,
                    format!(
                        "unsupported condition operator {op_name:?} \
                         (expected \"StringEquals\" or \"StringLike\")"
                    ),
                ));
            }
        };
        let keys = keys
            .as_object()
            .ok_or_else(|| PolicyError::at(&op_path, "expected an object"))?;
        for (key_name, values) in keys {
            let key_path = join(&op_path, key_name);
            let key = parse_condition_key(key_name, &key_path)?;
            if out.iter().any(|c| c.op == op && c.key == key) {
                return Err(PolicyError::at(&key_path, "duplicate condition key"));
            }
            if out.len() == MAX_CONDITIONS {
                return Err(PolicyError::at(
                    path,
                    format!("more than {MAX_CONDITIONS} condition keys"),
                ));
            }
            let values = string_list(values, &key_path, |s, _| Ok(s.to_owned()))?;
            if values.is_empty() {
                return Err(PolicyError::at(&key_path, "no values"));
            }
            out.push(Condition { op, key, values });
        }
    }
    out.sort_by(|a, b| (a.op, &a.key).cmp(&(b.op, &b.key)));
    Ok(out)
}

/// `kms:EncryptionContext:<key>` or `kms:EncryptionContextKeys`; the
/// prefix is ASCII case-insensitive as in AWS, `<key>` is exact.
pub(super) fn parse_condition_key(name: &str, path: &str) -> Result<ConditionKey, PolicyError> {
    if name.eq_ignore_ascii_case(CONTEXT_KEYS_KEY) {
        return Ok(ConditionKey::ContextKeys);
    }
    let n = CONTEXT_KEY_PREFIX.len();
    let prefixed = name
        .get(..n)
        .is_some_and(|p| p.eq_ignore_ascii_case(CONTEXT_KEY_PREFIX));
    match name.get(n..) {
        Some(key) if prefixed => {
            if key.is_empty() {
                Err(PolicyError::at(path, "empty encryption context key"))
            } else if key.len() > crate::envelope::MAX_CONTEXT_KEY {
                Err(PolicyError::at(
                    path,
                    format!(
                        "encryption context key longer than {} bytes",
                        crate::envelope::MAX_CONTEXT_KEY
                    ),
                ))
            } else {
                Ok(ConditionKey::Context(key.to_owned()))
            }
        }
        _ => Err(PolicyError::at(
            path,
            format!(
                "unsupported condition key {name:?} (expected \
                 \"kms:EncryptionContext:<key>\" or \"kms:EncryptionContextKeys\")"
            ),
        )),
    }
}

/// Refuses objects that repeat a field (serde_json would keep the last one
/// silently, so `"Effect": "Deny", "Effect": "Allow"` would read as Allow).
///
/// Runs only on text serde_json has accepted, so the scan can be simple:
/// a string followed by `:` is a field name. Nesting depth is bounded by
/// serde_json's recursion limit.
pub(super) fn check_duplicate_keys(json: &str) -> Result<(), PolicyError> {
    enum Frame {
        Object {
            keys: BTreeSet<String>,
            current: String,
        },
        Array {
            index: usize,
        },
    }
    fn path_of(stack: &[Frame], last: &str) -> String {
        let mut path = String::new();
        let n = stack.len();
        for (i, f) in stack.iter().enumerate() {
            match f {
                Frame::Array { index } => path.push_str(&format!("[{index}]")),
                Frame::Object { current, .. } => {
                    let name = if i + 1 == n { last } else { current.as_str() };
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(name);
                }
            }
        }
        path
    }

    let bytes = json.as_bytes();
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'{' => stack.push(Frame::Object {
                keys: BTreeSet::new(),
                current: String::new(),
            }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => {
                if let Some(Frame::Array { index }) = stack.last_mut() {
                    *index += 1;
                }
            }
            b'"' => {
                let start = i;
                i += 1;
                while let Some(&c) = bytes.get(i) {
                    match c {
                        b'\\' => i += 2,
                        b'"' => break,
                        _ => i += 1,
                    }
                }
                // `i` is at the closing quote.
                let raw = json.get(start..=i).unwrap_or("");
                let mut j = i + 1;
                while bytes.get(j).is_some_and(|c| c.is_ascii_whitespace()) {
                    j += 1;
                }
                if bytes.get(j) == Some(&b':') {
                    let key = if raw.contains('\\') {
                        serde_json::from_str::<String>(raw).unwrap_or_else(|_| raw.to_owned())
                    } else {
                        raw.get(1..raw.len().saturating_sub(1))
                            .unwrap_or("")
                            .to_owned()
                    };
                    if let Some(Frame::Object { keys, current }) = stack.last_mut() {
                        if keys.contains(&key) {
                            return Err(PolicyError::at(&path_of(&stack, &key), "duplicate field"));
                        }
                        current.clone_from(&key);
                        keys.insert(key);
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}
