//! Data keys, encryption contexts and the wrapped-key blob.
//!
//! A data key (DEK) is wrapped with AES-256-GCM under a master key that never
//! leaves the key service. The blob is self-describing (master key id,
//! backing-key version, nonce, ciphertext, tag), so unwrapping needs nothing
//! from the caller but the blob and the encryption context. The associated
//! data is the blob's own header followed by the canonical encoding of the
//! context: a blob moved to another volume, a context edited by one byte, or
//! a header field changed all fail to unwrap, with one error that does not
//! say which.
//!
//! The algorithm byte says who wrapped the key ([`Algorithm`]): envol's own
//! software AES-256-GCM, AES-256-GCM computed inside a PKCS#11 token (same
//! layout and associated data), or an AWS KMS ciphertext carried opaquely
//! (AWS binds it to the same encryption context on its side). A blob handed
//! to a key service of another kind is refused, never misread.
//!
//! Everything here is `no_std` and allocation-free; every parser is total.

use core::fmt;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use crate::bytes::Reader;
use crate::xts::KeySize;

/// Most key/value pairs an encryption context may hold.
pub const MAX_CONTEXT_PAIRS: usize = 16;
/// Longest context key, in bytes.
pub const MAX_CONTEXT_KEY: usize = 128;
/// Longest context value, in bytes.
pub const MAX_CONTEXT_VALUE: usize = 256;
/// Longest canonical context encoding.
pub const MAX_CONTEXT_ENCODED: usize =
    2 + MAX_CONTEXT_PAIRS * (2 + MAX_CONTEXT_KEY + 2 + MAX_CONTEXT_VALUE);
/// Longest master key id, in bytes.
pub const MAX_KEY_ID: usize = 64;
/// Largest secret a blob can carry (data keys are 32 or 64 bytes).
pub const MAX_SECRET: usize = 4096;
/// Fixed bytes of a blob besides key id and ciphertext.
pub const BLOB_OVERHEAD: usize = HEADER_FIXED + 16;
/// Largest blob.
pub const MAX_BLOB: usize = BLOB_OVERHEAD + MAX_KEY_ID + MAX_SECRET;
/// Size of a blob wrapping a data key of `size` under a key id of `id_len` bytes.
pub const fn blob_len(id_len: usize, secret_len: usize) -> usize {
    BLOB_OVERHEAD + id_len + secret_len
}

/// Size of an opaque blob ([`Algorithm::AwsKms`]) carrying `ct_len` bytes
/// of another service's ciphertext under a key id of `id_len` bytes.
pub const fn opaque_blob_len(id_len: usize, ct_len: usize) -> usize {
    OPAQUE_FIXED + id_len + ct_len
}

const MAGIC: [u8; 4] = *b"EVWK";
/// The blob format version this code writes and reads.
pub const BLOB_VERSION: u8 = 1;
/// magic, version, alg, flags (2), id len, backing version (4), nonce (12), ct len (2).
const HEADER_FIXED: usize = 4 + 1 + 1 + 2 + 1 + 4 + 12 + 2;
/// magic, version, alg, flags (2), id len, ct len (2): an opaque blob's fixed part.
const OPAQUE_FIXED: usize = 4 + 1 + 1 + 2 + 1 + 2;
/// Longest associated data of an AES-GCM blob: its header and the context.
pub const MAX_AAD: usize = HEADER_FIXED + MAX_KEY_ID + MAX_CONTEXT_ENCODED;

/// Who wrapped the data key, and so who can unwrap it (the blob's algorithm
/// byte). Codes are part of the on-disk format and never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// AES-256-GCM in software under master key material an envol key
    /// service holds ([`MasterKey`], `LocalKms`). Code 1.
    Aes256Gcm,
    /// AES-256-GCM computed inside a PKCS#11 token under a non-extractable
    /// key; same layout and associated data as [`Algorithm::Aes256Gcm`].
    /// Code 2.
    Pkcs11Aes256Gcm,
    /// An AWS KMS `CiphertextBlob`, carried as is: AWS binds it to the
    /// encryption context, envol adds the key id and framing. Code 3.
    AwsKms,
    /// AES-256-GCM computed by a KMIP key server (its Encrypt and Decrypt
    /// operations) under a key that stays on the server; same layout and
    /// associated data as [`Algorithm::Aes256Gcm`]. Code 4.
    KmipAes256Gcm,
}

impl Algorithm {
    /// The algorithm byte.
    pub const fn code(self) -> u8 {
        match self {
            Algorithm::Aes256Gcm => 1,
            Algorithm::Pkcs11Aes256Gcm => 2,
            Algorithm::AwsKms => 3,
            Algorithm::KmipAes256Gcm => 4,
        }
    }

    /// The algorithm for a byte, if known.
    pub const fn from_code(code: u8) -> Option<Algorithm> {
        match code {
            1 => Some(Algorithm::Aes256Gcm),
            2 => Some(Algorithm::Pkcs11Aes256Gcm),
            3 => Some(Algorithm::AwsKms),
            4 => Some(Algorithm::KmipAes256Gcm),
            _ => None,
        }
    }

    /// Whether envol computes the AEAD itself (nonce, tag, associated data in
    /// the blob) or carries another service's ciphertext opaquely.
    pub const fn is_opaque(self) -> bool {
        matches!(self, Algorithm::AwsKms)
    }
}

/// Why an envelope operation failed. No variant carries secret bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// The blob does not start with the envelope magic.
    BadMagic,
    /// The blob's format version is not one this code knows.
    UnsupportedVersion(u8),
    /// The blob names an algorithm this code does not know.
    UnsupportedAlgorithm(u8),
    /// The blob sets flags this code does not know.
    UnknownFlags(u16),
    /// The blob is shorter or longer than its own fields say.
    Truncated,
    /// A length field or string is out of bounds or malformed.
    Malformed,
    /// The context breaks a bound, repeats a key or is not canonical.
    BadContext,
    /// A key id is empty, too long or has characters outside `[A-Za-z0-9._:/-]`.
    BadKeyId,
    /// An output buffer is too small.
    BufferTooSmall,
    /// The secret is empty or larger than [`MAX_SECRET`], or a data key has
    /// the wrong length.
    BadLength,
    /// Authentication failed: wrong master key, edited blob, or a context
    /// that is not the one the blob was made with. Deliberately one error.
    Unwrap,
    /// The random number generator failed.
    Rng,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadMagic => f.write_str("not a wrapped-key blob (bad magic)"),
            Error::UnsupportedVersion(v) => write!(f, "unsupported blob version {v}"),
            Error::UnsupportedAlgorithm(a) => write!(f, "unsupported blob algorithm {a}"),
            Error::UnknownFlags(x) => write!(f, "unknown blob flags {x:#06x}"),
            Error::Truncated => f.write_str("blob length does not match its fields"),
            Error::Malformed => f.write_str("malformed field"),
            Error::BadContext => f.write_str("invalid encryption context"),
            Error::BadKeyId => f.write_str("invalid key id"),
            Error::BufferTooSmall => f.write_str("output buffer too small"),
            Error::BadLength => f.write_str("invalid secret length"),
            Error::Unwrap => f.write_str("unwrap failed: invalid ciphertext or context"),
            Error::Rng => f.write_str("random number generator failed"),
        }
    }
}

impl core::error::Error for Error {}

/// A plaintext data key: 32 bytes (XTS-AES-128) or 64 bytes (XTS-AES-256).
/// Zeroized on drop; `Debug` shows only its size.
pub struct DataKey {
    bytes: [u8; 64],
    size: KeySize,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl DataKey {
    /// A fresh random key of `size` from a cryptographic RNG.
    pub fn generate<R: rand_core::TryCryptoRng + ?Sized>(
        size: KeySize,
        rng: &mut R,
    ) -> Result<DataKey, Error> {
        let mut k = DataKey {
            bytes: [0; 64],
            size,
        };
        let n = size.key_len();
        rng.try_fill_bytes(&mut k.bytes[..n])
            .map_err(|_| Error::Rng)?;
        Ok(k)
    }

    /// Copies a key of 32 or 64 bytes.
    pub fn from_bytes(key: &[u8]) -> Result<DataKey, Error> {
        let size = KeySize::from_key_len(key.len()).map_err(|_| Error::BadLength)?;
        let mut k = DataKey {
            bytes: [0; 64],
            size,
        };
        k.bytes[..key.len()].copy_from_slice(key);
        Ok(k)
    }

    /// The key bytes (key1 ‖ key2), for [`crate::xts::Xts::new`].
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.size.key_len()]
    }

    /// The XTS key size.
    pub fn size(&self) -> KeySize {
        self.size
    }
}

/// An encryption context: up to 16 UTF-8 key/value pairs, held sorted by key
/// so that equal contexts encode to equal bytes whatever order they came in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Context<'a> {
    pairs: [(&'a str, &'a str); MAX_CONTEXT_PAIRS],
    len: usize,
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a> Context<'a> {
    /// The empty context.
    pub const fn empty() -> Context<'a> {
        Context {
            pairs: [("", ""); MAX_CONTEXT_PAIRS],
            len: 0,
        }
    }

    /// A context from pairs in any order. Refuses more than 16 pairs, empty
    /// or over-long keys, over-long values and repeated keys.
    pub fn new(pairs: &[(&'a str, &'a str)]) -> Result<Context<'a>, Error> {
        if pairs.len() > MAX_CONTEXT_PAIRS {
            return Err(Error::BadContext);
        }
        let mut c = Context::empty();
        for &(k, v) in pairs {
            c.insert(k, v)?;
        }
        Ok(c)
    }

    /// Adds a pair, keeping the order; a repeated key is refused.
    pub fn insert(&mut self, key: &'a str, value: &'a str) -> Result<(), Error> {
        if key.is_empty()
            || key.len() > MAX_CONTEXT_KEY
            || value.len() > MAX_CONTEXT_VALUE
            || self.len == MAX_CONTEXT_PAIRS
        {
            return Err(Error::BadContext);
        }
        let pos = match self.pairs[..self.len]
            .binary_search_by(|(k, _)| k.as_bytes().cmp(key.as_bytes()))
        {
            Ok(_) => return Err(Error::BadContext),
            Err(p) => p,
        };
        self.pairs.copy_within(pos..self.len, pos + 1);
        self.pairs[pos] = (key, value);
        self.len += 1;
        Ok(())
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value for `key`.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.pairs[..self.len]
            .binary_search_by(|(k, _)| k.as_bytes().cmp(key.as_bytes()))
            .ok()
            .map(|i| self.pairs[i].1)
    }

    /// The pairs, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.pairs[..self.len].iter().copied()
    }

    /// Length of the canonical encoding.
    pub fn encoded_len(&self) -> usize {
        2 + self
            .iter()
            .map(|(k, v)| 4 + k.len() + v.len())
            .sum::<usize>()
    }

    /// Writes the canonical encoding: a u16 pair count, then per pair (by key)
    /// a u16 key length, the key, a u16 value length, the value; little endian.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, Error> {
        let n = self.encoded_len();
        let out = out.get_mut(..n).ok_or(Error::BufferTooSmall)?;
        let mut w = Writer { buf: out, pos: 0 };
        // Bounds were checked on insert, so these fit in u16.
        w.put(&le16(self.len));
        for (k, v) in self.iter() {
            w.put(&le16(k.len()));
            w.put(k.as_bytes());
            w.put(&le16(v.len()));
            w.put(v.as_bytes());
        }
        Ok(n)
    }

    /// Parses a canonical encoding; anything else (unsorted, repeated keys,
    /// bad UTF-8, bounds, trailing bytes) is refused.
    pub fn decode(bytes: &'a [u8]) -> Result<Context<'a>, Error> {
        let mut r = Reader::new(bytes);
        let n = usize::from(r.u16().ok_or(Error::BadContext)?);
        if n > MAX_CONTEXT_PAIRS {
            return Err(Error::BadContext);
        }
        let mut c = Context::empty();
        for _ in 0..n {
            let kl = usize::from(r.u16().ok_or(Error::BadContext)?);
            let k = r.take(kl).ok_or(Error::BadContext)?;
            let vl = usize::from(r.u16().ok_or(Error::BadContext)?);
            let v = r.take(vl).ok_or(Error::BadContext)?;
            let k = core::str::from_utf8(k).map_err(|_| Error::BadContext)?;
            let v = core::str::from_utf8(v).map_err(|_| Error::BadContext)?;
            if c.len > 0 && c.pairs[c.len - 1].0.as_bytes() >= k.as_bytes() {
                return Err(Error::BadContext);
            }
            c.insert(k, v)?;
        }
        if !r.at_end() {
            return Err(Error::BadContext);
        }
        Ok(c)
    }
}

/// A length as u16 little endian. Every caller bounds `n` well below 2^16
/// first; saturating keeps this total regardless.
fn le16(n: usize) -> [u8; 2] {
    u16::try_from(n).unwrap_or(u16::MAX).to_le_bytes()
}

struct Writer<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl Writer<'_> {
    /// Callers size `buf` exactly first, so this never runs past its end.
    fn put(&mut self, b: &[u8]) {
        let end = self.pos + b.len();
        if let Some(dst) = self.buf.get_mut(self.pos..end) {
            dst.copy_from_slice(b);
        }
        self.pos = end;
    }
}

/// Checks a master key id: 1..=64 bytes of `[A-Za-z0-9._:/-]`.
pub fn check_key_id(id: &str) -> Result<(), Error> {
    let ok = !id.is_empty()
        && id.len() <= MAX_KEY_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-'));
    if ok { Ok(()) } else { Err(Error::BadKeyId) }
}

/// A parsed wrapped-key blob, borrowing from its bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct WrappedKey<'a> {
    alg: Algorithm,
    key_id: &'a str,
    backing_version: u32,
    nonce: [u8; 12],
    ciphertext: &'a [u8],
    tag: [u8; 16],
}

impl fmt::Debug for WrappedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedKey")
            .field("alg", &self.alg)
            .field("key_id", &self.key_id)
            .field("backing_version", &self.backing_version)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

impl<'a> WrappedKey<'a> {
    /// Parses a blob. Total: any bytes give a value or a typed error; the
    /// whole input must be exactly one blob.
    pub fn parse(bytes: &'a [u8]) -> Result<WrappedKey<'a>, Error> {
        let mut r = Reader::new(bytes);
        if r.take(4).ok_or(Error::Truncated)? != MAGIC {
            return Err(Error::BadMagic);
        }
        let version = r.u8().ok_or(Error::Truncated)?;
        if version != BLOB_VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let code = r.u8().ok_or(Error::Truncated)?;
        let alg = Algorithm::from_code(code).ok_or(Error::UnsupportedAlgorithm(code))?;
        let flags = r.u16().ok_or(Error::Truncated)?;
        if flags != 0 {
            return Err(Error::UnknownFlags(flags));
        }
        let id_len = usize::from(r.u8().ok_or(Error::Truncated)?);
        let id = r.take(id_len).ok_or(Error::Truncated)?;
        let key_id = core::str::from_utf8(id).map_err(|_| Error::BadKeyId)?;
        check_key_id(key_id)?;
        let mut w = WrappedKey {
            alg,
            key_id,
            backing_version: 0,
            nonce: [0; 12],
            ciphertext: &[],
            tag: [0; 16],
        };
        if !alg.is_opaque() {
            w.backing_version = r.u32().ok_or(Error::Truncated)?;
            w.nonce.copy_from_slice(r.take(12).ok_or(Error::Truncated)?);
        }
        let ct_len = usize::from(r.u16().ok_or(Error::Truncated)?);
        if ct_len == 0 || ct_len > MAX_SECRET {
            return Err(Error::Malformed);
        }
        w.ciphertext = r.take(ct_len).ok_or(Error::Truncated)?;
        if !alg.is_opaque() {
            w.tag.copy_from_slice(r.take(16).ok_or(Error::Truncated)?);
        }
        if !r.at_end() {
            return Err(Error::Truncated);
        }
        Ok(w)
    }

    /// An AES-GCM blob from its parts, for key services that compute the
    /// AEAD elsewhere (a PKCS#11 token). `alg` must not be opaque. Build it
    /// with any tag to get [`WrappedKey::associated_data`], then again with
    /// the tag the token returned.
    pub fn from_gcm_parts(
        alg: Algorithm,
        key_id: &'a str,
        backing_version: u32,
        nonce: [u8; 12],
        ciphertext: &'a [u8],
        tag: [u8; 16],
    ) -> Result<WrappedKey<'a>, Error> {
        if alg.is_opaque() {
            return Err(Error::UnsupportedAlgorithm(alg.code()));
        }
        check_key_id(key_id)?;
        if ciphertext.is_empty() || ciphertext.len() > MAX_SECRET {
            return Err(Error::BadLength);
        }
        Ok(WrappedKey {
            alg,
            key_id,
            backing_version,
            nonce,
            ciphertext,
            tag,
        })
    }

    /// An opaque blob carrying another key service's ciphertext (1..=4096
    /// bytes) made under `key_id`. `alg` must be opaque.
    pub fn from_opaque(
        alg: Algorithm,
        key_id: &'a str,
        ciphertext: &'a [u8],
    ) -> Result<WrappedKey<'a>, Error> {
        if !alg.is_opaque() {
            return Err(Error::UnsupportedAlgorithm(alg.code()));
        }
        check_key_id(key_id)?;
        if ciphertext.is_empty() || ciphertext.len() > MAX_SECRET {
            return Err(Error::BadLength);
        }
        Ok(WrappedKey {
            alg,
            key_id,
            backing_version: 0,
            nonce: [0; 12],
            ciphertext,
            tag: [0; 16],
        })
    }

    /// Who wrapped the key.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The master key this blob was wrapped under.
    pub fn key_id(&self) -> &'a str {
        self.key_id
    }

    /// Which backing version of that master key (0 for opaque blobs, whose
    /// service tracks versions itself).
    pub fn backing_version(&self) -> u32 {
        self.backing_version
    }

    /// Length of the wrapped secret, or `None` for an opaque blob (only its
    /// service knows).
    pub fn secret_len(&self) -> Option<usize> {
        if self.alg.is_opaque() {
            None
        } else {
            Some(self.ciphertext.len())
        }
    }

    /// The ciphertext: the encrypted secret (without the tag) for AES-GCM
    /// blobs, the other service's whole ciphertext for opaque ones.
    pub fn ciphertext(&self) -> &'a [u8] {
        self.ciphertext
    }

    /// The AES-GCM nonce (zero for opaque blobs).
    pub fn nonce(&self) -> [u8; 12] {
        self.nonce
    }

    /// The AES-GCM tag (zero for opaque blobs).
    pub fn tag(&self) -> [u8; 16] {
        self.tag
    }

    /// Length of the encoded blob.
    pub fn encoded_len(&self) -> usize {
        if self.alg.is_opaque() {
            opaque_blob_len(self.key_id.len(), self.ciphertext.len())
        } else {
            blob_len(self.key_id.len(), self.ciphertext.len())
        }
    }

    /// Writes the blob; `encode(parse(b)) == b` for every accepted `b`.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, Error> {
        let n = self.encoded_len();
        let out = out.get_mut(..n).ok_or(Error::BufferTooSmall)?;
        let h = self.write_header(out);
        out[h..h + self.ciphertext.len()].copy_from_slice(self.ciphertext);
        if !self.alg.is_opaque() {
            out[h + self.ciphertext.len()..].copy_from_slice(&self.tag);
        }
        Ok(n)
    }

    /// The AES-GCM associated data of this blob: its header (everything
    /// before the ciphertext) followed by the canonical context encoding.
    /// [`MAX_AAD`] bytes always suffice. Not defined for opaque blobs.
    pub fn associated_data(&self, context: &Context<'_>, out: &mut [u8]) -> Result<usize, Error> {
        if self.alg.is_opaque() {
            return Err(Error::UnsupportedAlgorithm(self.alg.code()));
        }
        let mut header = [0u8; HEADER_FIXED + MAX_KEY_ID];
        let h = self.write_header(&mut header);
        let out_h = out.get_mut(..h).ok_or(Error::BufferTooSmall)?;
        out_h.copy_from_slice(&header[..h]);
        let c = context.encode(&mut out[h..])?;
        Ok(h + c)
    }

    /// Decrypts the secret into `out` with the master key material of the
    /// blob's backing version, checking the context. Returns its length.
    /// Only [`Algorithm::Aes256Gcm`] blobs open with software key material.
    pub fn open(
        &self,
        master: &MasterKey,
        context: &Context<'_>,
        out: &mut [u8],
    ) -> Result<usize, Error> {
        if self.alg != Algorithm::Aes256Gcm {
            return Err(Error::UnsupportedAlgorithm(self.alg.code()));
        }
        let n = self.ciphertext.len();
        let out = out.get_mut(..n).ok_or(Error::BufferTooSmall)?;
        let mut aad = [0u8; MAX_AAD];
        let a = self.associated_data(context, &mut aad)?;
        out.copy_from_slice(self.ciphertext);
        let cipher = Aes256Gcm::new(&master.0.into());
        let result = cipher.decrypt_inout_detached(
            &Nonce::from(self.nonce),
            &aad[..a],
            out.into(),
            &Tag::from(self.tag),
        );
        if result.is_err() {
            out.zeroize();
            return Err(Error::Unwrap);
        }
        Ok(n)
    }

    /// Writes the blob header (everything before the ciphertext) into the
    /// start of `out`, which the caller sized; returns its length.
    fn write_header(&self, out: &mut [u8]) -> usize {
        let mut w = Writer { buf: out, pos: 0 };
        w.put(&MAGIC);
        w.put(&[BLOB_VERSION, self.alg.code()]);
        w.put(&0u16.to_le_bytes());
        // Key ids are at most 64 bytes and secrets at most 4096 (checked by
        // every constructor).
        w.put(&[u8::try_from(self.key_id.len()).unwrap_or(u8::MAX)]);
        w.put(self.key_id.as_bytes());
        if !self.alg.is_opaque() {
            w.put(&self.backing_version.to_le_bytes());
            w.put(&self.nonce);
        }
        w.put(&le16(self.ciphertext.len()));
        w.pos
    }
}

/// HMAC-SHA256 keyed with `key`, built infallibly: HMAC zero-pads keys up
/// to the 64-byte block and hashes longer ones (RFC 2104), so the padded
/// block is the same key.
pub(crate) fn hmac_sha256(key: &[u8]) -> hmac::Hmac<sha2::Sha256> {
    let mut block = [0u8; 64];
    if key.len() <= 64 {
        block[..key.len()].copy_from_slice(key);
    } else {
        let d: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(key).into();
        block[..32].copy_from_slice(&d);
    }
    let m = <hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new(&block.into());
    zeroize::Zeroize::zeroize(&mut block);
    m
}

/// 256-bit master key material of one backing version. Lives only inside a
/// key service; zeroized on drop; never printed.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl PartialEq for MasterKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl MasterKey {
    /// Fresh random key material.
    pub fn generate<R: rand_core::TryCryptoRng + ?Sized>(rng: &mut R) -> Result<MasterKey, Error> {
        let mut k = MasterKey([0; 32]);
        rng.try_fill_bytes(&mut k.0).map_err(|_| Error::Rng)?;
        Ok(k)
    }

    /// Key material from bytes (for sealed stores and key services that
    /// hold their own material).
    pub fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        MasterKey(bytes)
    }

    /// The raw bytes, for sealing a key store. Only key services call this.
    pub fn expose_for_sealing(&self) -> &[u8; 32] {
        &self.0
    }

    /// Wraps `secret` (1..=4096 bytes) into `out`, bound to `context`, with a
    /// fresh random nonce. Returns the blob length.
    pub fn seal<R: rand_core::TryCryptoRng + ?Sized>(
        &self,
        key_id: &str,
        backing_version: u32,
        context: &Context<'_>,
        secret: &[u8],
        rng: &mut R,
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let mut nonce = [0u8; 12];
        rng.try_fill_bytes(&mut nonce).map_err(|_| Error::Rng)?;
        self.seal_with_nonce(key_id, backing_version, context, secret, &nonce, out)
    }

    /// [`MasterKey::seal`] with a caller-chosen nonce, for firmware that has
    /// its own TRNG or a monotonic counter. The nonce must never repeat under
    /// one master key version: a repeat reveals the XOR of two secrets and
    /// lets tags be forged.
    pub fn seal_with_nonce(
        &self,
        key_id: &str,
        backing_version: u32,
        context: &Context<'_>,
        secret: &[u8],
        nonce: &[u8; 12],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let draft = WrappedKey::from_gcm_parts(
            Algorithm::Aes256Gcm,
            key_id,
            backing_version,
            *nonce,
            secret,
            [0; 16],
        )?;
        let total = draft.encoded_len();
        let out = out.get_mut(..total).ok_or(Error::BufferTooSmall)?;
        let mut aad = [0u8; MAX_AAD];
        let a = draft.associated_data(context, &mut aad)?;
        let h = draft.write_header(out);
        let (body, tag_out) = out[h..].split_at_mut(secret.len());
        body.copy_from_slice(secret);
        let cipher = Aes256Gcm::new(&self.0.into());
        let tag = cipher
            .encrypt_inout_detached(&Nonce::from(*nonce), &aad[..a], body.into())
            .map_err(|_| Error::BadLength)?;
        tag_out.copy_from_slice(&tag);
        Ok(total)
    }
}

#[cfg(test)]
mod tests;
