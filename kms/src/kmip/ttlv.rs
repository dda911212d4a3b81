//! KMIP's TTLV encoding (KMIP 1.4, section 9.1): every item is a 3-byte
//! tag, a 1-byte type, a 4-byte big-endian length and a value padded with
//! zeros to a multiple of 8 bytes; a structure's value is its items.
//!
//! Why our own: the crates that encode TTLV either stop at KMIP 1.2 (no
//! authenticated encryption fields) or bring a second TLS stack and an
//! async runtime (see docs/notes/kmip-feasibility.md). This codec is small,
//! strict and total: [`Item::decode`] gives an item or a [`TtlvError`] for
//! any bytes — bounded depth, bounded item count, lengths checked against
//! the type, padding required to be zero, booleans 0 or 1, text UTF-8.
//!
//! Byte strings carry secrets (a data key to wrap, an unwrapped one), so
//! they are zeroized on drop, and [`Item::encode`] writes into a buffer
//! allocated once at its final size, so no reallocation leaves a copy in
//! freed memory.

use std::fmt;

use zeroize::Zeroizing;

/// Largest message this codec reads or writes.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Deepest nesting of structures accepted.
pub const MAX_DEPTH: usize = 16;
/// Most items accepted in one message.
pub const MAX_ITEMS: usize = 1024;

/// Bytes of an item's tag, type and length.
pub const HEADER: usize = 8;

/// One TTLV item.
#[derive(Clone, PartialEq, Eq)]
pub struct Item {
    /// The 24-bit tag (0x42xxxx for KMIP's own).
    pub tag: u32,
    /// The typed value.
    pub value: Value,
}

/// A TTLV value. Byte strings are zeroized on drop; `Debug` never shows
/// their bytes.
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    /// Items in order.
    Structure(Vec<Item>),
    /// A signed 32-bit integer.
    Integer(i32),
    /// A signed 64-bit integer.
    LongInteger(i64),
    /// Two's complement, big-endian, a multiple of 8 bytes.
    BigInteger(Vec<u8>),
    /// An enumeration's 32-bit value.
    Enumeration(u32),
    /// A boolean.
    Boolean(bool),
    /// UTF-8 text.
    Text(String),
    /// Bytes, zeroized on drop.
    Bytes(Zeroizing<Vec<u8>>),
    /// Seconds since the Unix epoch.
    DateTime(i64),
    /// Seconds.
    Interval(u32),
}

/// Why bytes are not a TTLV item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TtlvError {
    /// Fewer bytes than an item's header or its length say.
    Truncated,
    /// Bytes left after the item.
    TrailingBytes,
    /// A type byte KMIP does not define.
    UnknownType(u8),
    /// A length that does not fit the type (an integer not 4 bytes, ...).
    BadLength,
    /// Non-zero padding.
    BadPadding,
    /// A boolean other than 0 or 1.
    BadBoolean,
    /// A text string that is not UTF-8.
    BadText,
    /// A tag that does not fit in 24 bits (encoding only).
    BadTag,
    /// Past [`MAX_MESSAGE`], [`MAX_DEPTH`] or [`MAX_ITEMS`].
    TooLarge,
}

impl fmt::Display for TtlvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TtlvError::Truncated => f.write_str("TTLV item truncated"),
            TtlvError::TrailingBytes => f.write_str("bytes after the TTLV item"),
            TtlvError::UnknownType(t) => write!(f, "unknown TTLV type 0x{t:02x}"),
            TtlvError::BadLength => f.write_str("TTLV length does not fit its type"),
            TtlvError::BadPadding => f.write_str("TTLV padding is not zero"),
            TtlvError::BadBoolean => f.write_str("TTLV boolean is neither 0 nor 1"),
            TtlvError::BadText => f.write_str("TTLV text string is not UTF-8"),
            TtlvError::BadTag => f.write_str("TTLV tag does not fit in 24 bits"),
            TtlvError::TooLarge => f.write_str("TTLV message too large or too deep"),
        }
    }
}

impl std::error::Error for TtlvError {}

impl fmt::Debug for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06x} {:?}", self.tag, self.value)
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Structure(items) => f.debug_list().entries(items).finish(),
            Value::Integer(v) => write!(f, "int {v}"),
            Value::LongInteger(v) => write!(f, "long {v}"),
            Value::BigInteger(v) => write!(f, "bigint ({} bytes)", v.len()),
            Value::Enumeration(v) => write!(f, "enum 0x{v:x}"),
            Value::Boolean(v) => write!(f, "bool {v}"),
            Value::Text(v) => write!(f, "text {v:?}"),
            Value::Bytes(v) => write!(f, "bytes ({} bytes)", v.len()),
            Value::DateTime(v) => write!(f, "time {v}"),
            Value::Interval(v) => write!(f, "interval {v}"),
        }
    }
}

/// `n` rounded up to a multiple of 8 (for lengths this codec made, all
/// below [`MAX_MESSAGE`]).
fn padded(n: usize) -> usize {
    n.div_ceil(8) * 8
}

/// Header plus value of length `len` padded, if addressable.
fn framed(len: usize) -> Option<usize> {
    (len.checked_add(7)? / 8 * 8).checked_add(HEADER)
}

impl Item {
    /// An item.
    pub fn new(tag: u32, value: Value) -> Item {
        Item { tag, value }
    }

    /// A structure of `items`.
    pub fn structure(tag: u32, items: Vec<Item>) -> Item {
        Item::new(tag, Value::Structure(items))
    }

    /// The first item tagged `tag` directly inside this structure.
    pub fn get(&self, tag: u32) -> Option<&Item> {
        match &self.value {
            Value::Structure(items) => items.iter().find(|i| i.tag == tag),
            _ => None,
        }
    }

    /// Every item tagged `tag` directly inside this structure.
    pub fn all(&self, tag: u32) -> impl Iterator<Item = &Item> {
        let items: &[Item] = match &self.value {
            Value::Structure(items) => items,
            _ => &[],
        };
        items.iter().filter(move |i| i.tag == tag)
    }

    /// The length of the encoded item, padding included.
    pub fn encoded_len(&self) -> usize {
        HEADER + padded(self.value_len())
    }

    /// The length field: the value's bytes before padding.
    fn value_len(&self) -> usize {
        match &self.value {
            Value::Structure(items) => items.iter().map(Item::encoded_len).sum(),
            Value::Integer(_) | Value::Enumeration(_) | Value::Interval(_) => 4,
            Value::LongInteger(_) | Value::Boolean(_) | Value::DateTime(_) => 8,
            Value::BigInteger(v) => v.len(),
            Value::Text(v) => v.len(),
            Value::Bytes(v) => v.len(),
        }
    }

    /// Encodes the item into a buffer allocated once at its final size
    /// (zeroized when dropped).
    pub fn encode(&self) -> Result<Zeroizing<Vec<u8>>, TtlvError> {
        let len = self.encoded_len();
        if len > MAX_MESSAGE {
            return Err(TtlvError::TooLarge);
        }
        let mut out = Zeroizing::new(Vec::with_capacity(len));
        self.write(&mut out)?;
        debug_assert_eq!(out.len(), len);
        Ok(out)
    }

    fn write(&self, out: &mut Vec<u8>) -> Result<(), TtlvError> {
        if self.tag > 0xff_ffff {
            return Err(TtlvError::BadTag);
        }
        if let Value::BigInteger(v) = &self.value
            && !v.len().is_multiple_of(8)
        {
            return Err(TtlvError::BadLength);
        }
        let len = self.value_len();
        out.extend_from_slice(&self.tag.to_be_bytes()[1..]);
        out.push(self.type_byte());
        let len32 = u32::try_from(len).map_err(|_| TtlvError::TooLarge)?;
        out.extend_from_slice(&len32.to_be_bytes());
        match &self.value {
            Value::Structure(items) => {
                for i in items {
                    i.write(out)?;
                }
            }
            Value::Integer(v) => out.extend_from_slice(&v.to_be_bytes()),
            Value::Enumeration(v) | Value::Interval(v) => out.extend_from_slice(&v.to_be_bytes()),
            Value::LongInteger(v) | Value::DateTime(v) => out.extend_from_slice(&v.to_be_bytes()),
            Value::Boolean(v) => out.extend_from_slice(&u64::from(*v).to_be_bytes()),
            Value::BigInteger(v) => out.extend_from_slice(v),
            Value::Text(v) => out.extend_from_slice(v.as_bytes()),
            Value::Bytes(v) => out.extend_from_slice(v),
        }
        out.resize(out.len() + padded(len) - len, 0);
        Ok(())
    }

    fn type_byte(&self) -> u8 {
        match self.value {
            Value::Structure(_) => 0x01,
            Value::Integer(_) => 0x02,
            Value::LongInteger(_) => 0x03,
            Value::BigInteger(_) => 0x04,
            Value::Enumeration(_) => 0x05,
            Value::Boolean(_) => 0x06,
            Value::Text(_) => 0x07,
            Value::Bytes(_) => 0x08,
            Value::DateTime(_) => 0x09,
            Value::Interval(_) => 0x0a,
        }
    }

    /// Decodes exactly one item from `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Item, TtlvError> {
        if bytes.len() > MAX_MESSAGE {
            return Err(TtlvError::TooLarge);
        }
        let mut budget = MAX_ITEMS;
        let (item, used) = read(bytes, 0, &mut budget)?;
        if used != bytes.len() {
            return Err(TtlvError::TrailingBytes);
        }
        Ok(item)
    }

    /// The total length of the item whose header starts `bytes` (what to
    /// read off a stream), or `None` if fewer than [`HEADER`] bytes (or a
    /// length this machine cannot address).
    pub fn frame_len(bytes: &[u8]) -> Option<usize> {
        let h = bytes.get(..HEADER)?;
        framed(u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize)
    }
}

/// Reads one item at the start of `bytes`; returns it and the bytes used.
fn read(bytes: &[u8], depth: usize, budget: &mut usize) -> Result<(Item, usize), TtlvError> {
    if depth > MAX_DEPTH || *budget == 0 {
        return Err(TtlvError::TooLarge);
    }
    *budget -= 1;
    let h = bytes.get(..HEADER).ok_or(TtlvError::Truncated)?;
    let tag = u32::from_be_bytes([0, h[0], h[1], h[2]]);
    let ty = h[3];
    let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
    let total = framed(len).ok_or(TtlvError::Truncated)?;
    let body = bytes.get(HEADER..total).ok_or(TtlvError::Truncated)?;
    let (v, pad) = body.split_at(len);
    if pad.iter().any(|&b| b != 0) {
        return Err(TtlvError::BadPadding);
    }
    let value = match ty {
        0x01 => {
            let mut items = Vec::new();
            let mut at = 0;
            while at < v.len() {
                let (item, used) = read(&v[at..], depth + 1, budget)?;
                items.push(item);
                at += used;
            }
            Value::Structure(items)
        }
        0x02 => Value::Integer(i32::from_be_bytes(fixed(v)?)),
        0x03 => Value::LongInteger(i64::from_be_bytes(fixed(v)?)),
        0x04 => {
            if len == 0 || !len.is_multiple_of(8) {
                return Err(TtlvError::BadLength);
            }
            Value::BigInteger(v.to_vec())
        }
        0x05 => Value::Enumeration(u32::from_be_bytes(fixed(v)?)),
        0x06 => match u64::from_be_bytes(fixed(v)?) {
            0 => Value::Boolean(false),
            1 => Value::Boolean(true),
            _ => return Err(TtlvError::BadBoolean),
        },
        0x07 => Value::Text(
            std::str::from_utf8(v)
                .map_err(|_| TtlvError::BadText)?
                .to_owned(),
        ),
        0x08 => Value::Bytes(Zeroizing::new(v.to_vec())),
        0x09 => Value::DateTime(i64::from_be_bytes(fixed(v)?)),
        0x0a => Value::Interval(u32::from_be_bytes(fixed(v)?)),
        t => return Err(TtlvError::UnknownType(t)),
    };
    Ok((Item { tag, value }, total))
}

/// `v` as the fixed-size value of its type, if it has exactly `N` bytes.
fn fixed<const N: usize>(v: &[u8]) -> Result<[u8; N], TtlvError> {
    v.try_into().map_err(|_| TtlvError::BadLength)
}

#[cfg(test)]
mod tests;
