//! The KMIP 1.4 messages envol sends and the answers it accepts: one
//! operation per request (batch count 1), fields in the order the
//! specification lists them (servers such as PyKMIP read them strictly in
//! that order), and a total reader of responses.
//!
//! Tags, operations and enumerations are the numbers of KMIP 1.4 (OASIS,
//! section 9.1.3); only those envol uses are named here.

use zeroize::Zeroizing;

use super::ttlv::{Item, Value};

/// Tags (KMIP 1.4, 9.1.3.1).
pub mod tag {
    #![allow(missing_docs)]
    pub const ATTRIBUTE: u32 = 0x420008;
    pub const ATTRIBUTE_NAME: u32 = 0x42000A;
    pub const ATTRIBUTE_VALUE: u32 = 0x42000B;
    pub const BATCH_COUNT: u32 = 0x42000D;
    pub const BATCH_ITEM: u32 = 0x42000F;
    pub const BLOCK_CIPHER_MODE: u32 = 0x420011;
    pub const CRYPTOGRAPHIC_ALGORITHM: u32 = 0x420028;
    pub const CRYPTOGRAPHIC_PARAMETERS: u32 = 0x42002B;
    pub const IV_COUNTER_NONCE: u32 = 0x42003D;
    pub const NAME: u32 = 0x420053;
    pub const NAME_TYPE: u32 = 0x420054;
    pub const NAME_VALUE: u32 = 0x420055;
    pub const OBJECT_TYPE: u32 = 0x420057;
    pub const OPERATION: u32 = 0x42005C;
    pub const PROTOCOL_VERSION: u32 = 0x420069;
    pub const PROTOCOL_VERSION_MAJOR: u32 = 0x42006A;
    pub const PROTOCOL_VERSION_MINOR: u32 = 0x42006B;
    pub const REQUEST_HEADER: u32 = 0x420077;
    pub const REQUEST_MESSAGE: u32 = 0x420078;
    pub const REQUEST_PAYLOAD: u32 = 0x420079;
    pub const RESPONSE_HEADER: u32 = 0x42007A;
    pub const RESPONSE_MESSAGE: u32 = 0x42007B;
    pub const RESPONSE_PAYLOAD: u32 = 0x42007C;
    pub const RESULT_MESSAGE: u32 = 0x42007D;
    pub const RESULT_REASON: u32 = 0x42007E;
    pub const RESULT_STATUS: u32 = 0x42007F;
    pub const REVOCATION_REASON: u32 = 0x420081;
    pub const REVOCATION_REASON_CODE: u32 = 0x420082;
    pub const TEMPLATE_ATTRIBUTE: u32 = 0x420091;
    pub const UNIQUE_IDENTIFIER: u32 = 0x420094;
    pub const DATA: u32 = 0x4200C2;
    pub const TAG_LENGTH: u32 = 0x4200CE;
    pub const AEAD_ADDITIONAL_DATA: u32 = 0x4200FE;
    pub const AEAD_TAG: u32 = 0x4200FF;
}

/// Operations (9.1.3.2.27).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Create a managed object (here: an AES-256 key).
    Create = 0x01,
    /// Find objects by attributes.
    Locate = 0x08,
    /// Read the key material (tests only: envol never fetches master keys).
    Get = 0x0A,
    /// Read attributes.
    GetAttributes = 0x0B,
    /// Pre-Active → Active.
    Activate = 0x12,
    /// Active → Deactivated (or Compromised).
    Revoke = 0x13,
    /// Destroy the key material.
    Destroy = 0x14,
    /// Encrypt with a server-held key.
    Encrypt = 0x1F,
    /// Decrypt with a server-held key.
    Decrypt = 0x20,
}

impl Operation {
    /// The operation's name as the specification spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Operation::Create => "Create",
            Operation::Locate => "Locate",
            Operation::Get => "Get",
            Operation::GetAttributes => "Get Attributes",
            Operation::Activate => "Activate",
            Operation::Revoke => "Revoke",
            Operation::Destroy => "Destroy",
            Operation::Encrypt => "Encrypt",
            Operation::Decrypt => "Decrypt",
        }
    }

    /// Whether repeating the request after a lost answer is harmless. Only
    /// these are retried once the request may have reached the server.
    pub const fn idempotent(self) -> bool {
        matches!(
            self,
            Operation::Locate
                | Operation::Get
                | Operation::GetAttributes
                | Operation::Encrypt
                | Operation::Decrypt
        )
    }
}

/// The object states of a managed object (9.1.3.2.17).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// Created, not yet usable.
    PreActive,
    /// Usable for every operation its usage mask allows.
    Active,
    /// Revoked: no longer used to protect (servers differ on whether it may
    /// still decrypt; PyKMIP refuses).
    Deactivated,
    /// Revoked as compromised.
    Compromised,
    /// Key material destroyed.
    Destroyed,
    /// Destroyed after compromise.
    DestroyedCompromised,
}

impl KeyState {
    fn from_code(c: u32) -> Option<KeyState> {
        Some(match c {
            1 => KeyState::PreActive,
            2 => KeyState::Active,
            3 => KeyState::Deactivated,
            4 => KeyState::Compromised,
            5 => KeyState::Destroyed,
            6 => KeyState::DestroyedCompromised,
            _ => return None,
        })
    }

    /// The state as the specification spells it.
    pub const fn name(self) -> &'static str {
        match self {
            KeyState::PreActive => "Pre-Active",
            KeyState::Active => "Active",
            KeyState::Deactivated => "Deactivated",
            KeyState::Compromised => "Compromised",
            KeyState::Destroyed => "Destroyed",
            KeyState::DestroyedCompromised => "Destroyed Compromised",
        }
    }
}

/// Result reasons a server gives for a failed operation (9.1.3.2.29),
/// those envol tells apart.
pub mod reason {
    #![allow(missing_docs)]
    pub const ITEM_NOT_FOUND: u32 = 0x01;
    pub const AUTHENTICATION_NOT_SUCCESSFUL: u32 = 0x03;
    pub const CRYPTOGRAPHIC_FAILURE: u32 = 0x0A;
    pub const PERMISSION_DENIED: u32 = 0x0C;
    pub const GENERAL_FAILURE: u32 = 0x100;
}

const ENUM_SYMMETRIC_KEY: u32 = 2;
const ENUM_AES: u32 = 3;
const ENUM_GCM: u32 = 9;
const ENUM_NAME_UNINTERPRETED_TEXT: u32 = 1;
const USAGE_ENCRYPT_DECRYPT: i32 = 0x04 | 0x08;
const REVOKE_KEY_COMPROMISE: u32 = 2;
const REVOKE_CESSATION_OF_OPERATION: u32 = 6;
/// GCM tag length envol asks for and requires (the Tag Length sent is 16).
pub const GCM_TAG_LEN: usize = 16;

fn int(tag: u32, v: i32) -> Item {
    Item::new(tag, Value::Integer(v))
}
fn enumeration(tag: u32, v: u32) -> Item {
    Item::new(tag, Value::Enumeration(v))
}
fn text(tag: u32, v: &str) -> Item {
    Item::new(tag, Value::Text(v.into()))
}
fn bytes(tag: u32, v: &[u8]) -> Item {
    Item::new(tag, Value::Bytes(Zeroizing::new(v.to_vec())))
}
fn uid(v: &str) -> Item {
    text(tag::UNIQUE_IDENTIFIER, v)
}
fn attribute(name: &str, value: Value) -> Item {
    Item::structure(
        tag::ATTRIBUTE,
        vec![
            text(tag::ATTRIBUTE_NAME, name),
            Item::new(tag::ATTRIBUTE_VALUE, value),
        ],
    )
}
fn name_attribute(name: &str) -> Item {
    attribute(
        "Name",
        Value::Structure(vec![
            text(tag::NAME_VALUE, name),
            enumeration(tag::NAME_TYPE, ENUM_NAME_UNINTERPRETED_TEXT),
        ]),
    )
}

/// A request message carrying one operation at KMIP 1.4.
pub fn request(op: Operation, payload: Vec<Item>) -> Item {
    let version = Item::structure(
        tag::PROTOCOL_VERSION,
        vec![
            int(tag::PROTOCOL_VERSION_MAJOR, 1),
            int(tag::PROTOCOL_VERSION_MINOR, 4),
        ],
    );
    Item::structure(
        tag::REQUEST_MESSAGE,
        vec![
            Item::structure(tag::REQUEST_HEADER, vec![version, int(tag::BATCH_COUNT, 1)]),
            Item::structure(
                tag::BATCH_ITEM,
                vec![
                    enumeration(tag::OPERATION, op as u32),
                    Item::structure(tag::REQUEST_PAYLOAD, payload),
                ],
            ),
        ],
    )
}

/// Create: an AES-256 symmetric key usable for Encrypt and Decrypt only,
/// named `name`.
pub fn create_aes256(name: &str) -> Vec<Item> {
    vec![
        enumeration(tag::OBJECT_TYPE, ENUM_SYMMETRIC_KEY),
        Item::structure(
            tag::TEMPLATE_ATTRIBUTE,
            vec![
                attribute("Cryptographic Algorithm", Value::Enumeration(ENUM_AES)),
                attribute("Cryptographic Length", Value::Integer(256)),
                attribute(
                    "Cryptographic Usage Mask",
                    Value::Integer(USAGE_ENCRYPT_DECRYPT),
                ),
                name_attribute(name),
            ],
        ),
    ]
}

/// Locate: every object named `name`.
pub fn locate_by_name(name: &str) -> Vec<Item> {
    vec![name_attribute(name)]
}

/// An operation that takes only the object's unique identifier (Activate,
/// Destroy, Get).
pub fn by_uid(id: &str) -> Vec<Item> {
    vec![uid(id)]
}

/// Get Attributes: the object's State.
pub fn get_state(id: &str) -> Vec<Item> {
    vec![uid(id), text(tag::ATTRIBUTE_NAME, "State")]
}

/// Revoke: cessation of operation, or key compromise.
pub fn revoke(id: &str, compromised: bool) -> Vec<Item> {
    let code = if compromised {
        REVOKE_KEY_COMPROMISE
    } else {
        REVOKE_CESSATION_OF_OPERATION
    };
    vec![
        uid(id),
        Item::structure(
            tag::REVOCATION_REASON,
            vec![enumeration(tag::REVOCATION_REASON_CODE, code)],
        ),
    ]
}

fn gcm_parameters() -> Item {
    Item::structure(
        tag::CRYPTOGRAPHIC_PARAMETERS,
        vec![
            enumeration(tag::BLOCK_CIPHER_MODE, ENUM_GCM),
            enumeration(tag::CRYPTOGRAPHIC_ALGORITHM, ENUM_AES),
            int(tag::TAG_LENGTH, 16),
        ],
    )
}

/// Encrypt `data` with AES-GCM under object `id`, with our nonce and
/// associated data.
pub fn encrypt_gcm(id: &str, data: &[u8], nonce: &[u8], aad: &[u8]) -> Vec<Item> {
    vec![
        uid(id),
        gcm_parameters(),
        bytes(tag::DATA, data),
        bytes(tag::IV_COUNTER_NONCE, nonce),
        bytes(tag::AEAD_ADDITIONAL_DATA, aad),
    ]
}

/// Decrypt and verify AES-GCM `ciphertext` and `tag` under object `id`.
pub fn decrypt_gcm(
    id: &str,
    ciphertext: &[u8],
    nonce: &[u8],
    aad: &[u8],
    gcm_tag: &[u8],
) -> Vec<Item> {
    let mut p = encrypt_gcm(id, ciphertext, nonce, aad);
    p.push(bytes(tag::AEAD_TAG, gcm_tag));
    p
}

/// What the server answered to one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Success, with the response payload (an empty structure if none).
    Success(Item),
    /// The operation failed: result status, reason and message.
    Failure {
        /// Result Status (1 failed, 2 pending, 3 undone).
        status: u32,
        /// Result Reason (0 if the server gave none).
        reason: u32,
        /// Result Message (empty if none).
        message: String,
    },
}

/// Why a response is not one envol can use (the server is broken or not
/// speaking KMIP 1.x).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

fn enum_of(item: Option<&Item>) -> Option<u32> {
    match item.map(|i| &i.value) {
        Some(Value::Enumeration(v)) => Some(*v),
        _ => None,
    }
}

/// Reads a response message to a request for `op`: exactly one batch
/// item, for that operation.
pub fn parse_response(msg: &Item, op: Operation) -> Result<Answer, Malformed> {
    if msg.tag != tag::RESPONSE_MESSAGE {
        return Err(Malformed("not a Response Message"));
    }
    let header = msg
        .get(tag::RESPONSE_HEADER)
        .ok_or(Malformed("no Response Header"))?;
    if !matches!(
        header.get(tag::BATCH_COUNT).map(|i| &i.value),
        Some(Value::Integer(1))
    ) {
        return Err(Malformed("batch count is not 1"));
    }
    let mut items = msg.all(tag::BATCH_ITEM);
    let (Some(item), None) = (items.next(), items.next()) else {
        return Err(Malformed("not exactly one Batch Item"));
    };
    // Servers may omit the operation on failures (KMIP 1.4, 7.2).
    if let Some(o) = enum_of(item.get(tag::OPERATION))
        && o != op as u32
    {
        return Err(Malformed("answer for another operation"));
    }
    let status = enum_of(item.get(tag::RESULT_STATUS)).ok_or(Malformed("no Result Status"))?;
    if status == 0 {
        let payload = match item.get(tag::RESPONSE_PAYLOAD) {
            Some(p) if matches!(p.value, Value::Structure(_)) => p.clone(),
            Some(_) => return Err(Malformed("Response Payload is not a structure")),
            None => Item::structure(tag::RESPONSE_PAYLOAD, Vec::new()),
        };
        return Ok(Answer::Success(payload));
    }
    let reason = enum_of(item.get(tag::RESULT_REASON)).unwrap_or(0);
    let message = match item.get(tag::RESULT_MESSAGE).map(|i| &i.value) {
        Some(Value::Text(t)) => t.clone(),
        _ => String::new(),
    };
    Ok(Answer::Failure {
        status,
        reason,
        message,
    })
}

/// The text of the first `tag` item of a payload.
pub fn text_of(payload: &Item, t: u32) -> Option<&str> {
    match payload.get(t).map(|i| &i.value) {
        Some(Value::Text(s)) => Some(s),
        _ => None,
    }
}

/// The bytes of the first `tag` item of a payload.
pub fn bytes_of(payload: &Item, t: u32) -> Option<&[u8]> {
    match payload.get(t).map(|i| &i.value) {
        Some(Value::Bytes(b)) => Some(b),
        _ => None,
    }
}

/// Every unique identifier in a Locate answer.
pub fn located(payload: &Item) -> Vec<&str> {
    payload
        .all(tag::UNIQUE_IDENTIFIER)
        .filter_map(|i| match &i.value {
            Value::Text(s) => Some(s.as_str()),
            _ => None,
        })
        .collect()
}

/// The State attribute in a Get Attributes answer.
pub fn state_of(payload: &Item) -> Option<KeyState> {
    payload.all(tag::ATTRIBUTE).find_map(|a| {
        match (
            a.get(tag::ATTRIBUTE_NAME).map(|i| &i.value),
            a.get(tag::ATTRIBUTE_VALUE).map(|i| &i.value),
        ) {
            (Some(Value::Text(n)), Some(Value::Enumeration(v))) if n == "State" => {
                KeyState::from_code(*v)
            }
            _ => None,
        }
    })
}

/// Names of the result reasons, as the specification spells them, for
/// logs and errors.
pub fn reason_name(reason: u32) -> &'static str {
    match reason {
        0x01 => "Item Not Found",
        0x02 => "Response Too Large",
        0x03 => "Authentication Not Successful",
        0x04 => "Invalid Message",
        0x05 => "Operation Not Supported",
        0x06 => "Missing Data",
        0x07 => "Invalid Field",
        0x08 => "Feature Not Supported",
        0x09 => "Operation Canceled By Requester",
        0x0A => "Cryptographic Failure",
        0x0B => "Illegal Operation",
        0x0C => "Permission Denied",
        0x0D => "Object Archived",
        0x0E => "Index Out of Bounds",
        0x0F => "Application Namespace Not Supported",
        0x10 => "Key Format Type Not Supported",
        0x11 => "Key Compression Type Not Supported",
        0x12 => "Encoding Option Error",
        0x13 => "Key Value Not Present",
        0x14 => "Attestation Required",
        0x15 => "Attestation Failed",
        0x16 => "Sensitive",
        0x17 => "Not Extractable",
        0x18 => "Object Already Exists",
        0x100 => "General Failure",
        _ => "unknown reason",
    }
}

#[cfg(test)]
mod tests;
