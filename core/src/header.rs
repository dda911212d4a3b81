//! The on-disk volume header: strict parser, encoder, two redundant copies.
//!
//! A volume starts with two header slots of [`SLOT_SIZE`] bytes (copy A at
//! byte 0, copy B at byte 4096); data sectors start at the data offset.
//! Each copy holds the volume parameters, the wrapped data key, a sequence
//! number, a MAC and a checksum:
//!
//! ```text
//!   0  magic "ENVOLHDR"          8   version u16 (1)     10 flags u16 (0)
//!  12  length u32 (whole copy)  16  sequence u64         24 cipher suite u16
//!  26  state u16                28  sector size u32      32 data offset u64
//!  40  volume size u64          48  volume id [16]       64 key id len u8
//!  65  key id (<= 64 bytes)      .  blob len u16, wrapped-key blob
//!   .  MAC [32]: HMAC-SHA256 under a key derived from the data key, over
//!      every byte before it
//!   .  checksum [32]: SHA-256 over every byte before it
//! ```
//!
//! The checksum tells a torn or damaged copy from a good one before any key
//! is known; the newest good copy wins. The MAC is checked after the data
//! key is unwrapped, so a header whose parameters or state were edited (even
//! with the checksum fixed up) is refused. The parameters are also bound
//! into the wrap's encryption context ([`Header::context`]), so a data key
//! does not unwrap under edited parameters in the first place. All integers
//! are little endian; every length and offset is checked with checked
//! arithmetic; the parser is total and allocation-free.

use core::fmt;

use hmac::Mac;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::envelope::{self, Context, WrappedKey, check_key_id};
use crate::xts::KeySize;

/// Size of one header slot; copy A is at 0, copy B at `SLOT_SIZE`.
pub const SLOT_SIZE: usize = 4096;
/// Bytes reserved for the two header copies.
pub const HEADERS_SIZE: u64 = 2 * SLOT_SIZE as u64;
/// The format version this code writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Smallest and largest sector sizes a volume may use.
pub const MIN_SECTOR: u32 = 512;
/// See [`MIN_SECTOR`].
pub const MAX_SECTOR: u32 = 65_536;
/// Default data offset: 1 MiB, aligned for every sector size.
pub const DEFAULT_DATA_OFFSET: u64 = 1 << 20;

const MAGIC: &[u8; 8] = b"ENVOLHDR";
const FIXED: usize = 65;
const MAC_LEN: usize = 32;
const SUM_LEN: usize = 32;

/// The sector cipher of a volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CipherSuite {
    /// AES-256-XTS, `aes-xts-plain64`, 64-byte data key.
    AesXts256Plain64,
    /// AES-128-XTS, `aes-xts-plain64`, 32-byte data key.
    AesXts128Plain64,
}

impl CipherSuite {
    fn code(self) -> u16 {
        match self {
            CipherSuite::AesXts256Plain64 => 1,
            CipherSuite::AesXts128Plain64 => 2,
        }
    }
    fn from_code(c: u16) -> Option<Self> {
        match c {
            1 => Some(CipherSuite::AesXts256Plain64),
            2 => Some(CipherSuite::AesXts128Plain64),
            _ => None,
        }
    }
    /// The XTS key size.
    pub fn key_size(self) -> KeySize {
        match self {
            CipherSuite::AesXts256Plain64 => KeySize::Aes256,
            CipherSuite::AesXts128Plain64 => KeySize::Aes128,
        }
    }
    /// The name used in the encryption context and by cryptsetup.
    pub fn name(self) -> &'static str {
        match self {
            CipherSuite::AesXts256Plain64 => "aes-xts-plain64-512",
            CipherSuite::AesXts128Plain64 => "aes-xts-plain64-256",
        }
    }
}

/// The lifecycle state recorded in the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VolumeState {
    /// In use.
    Active,
    /// Retired by its owner: attaching is refused.
    Retired,
}

/// Why a header could not be read. No variant carries key material.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderError {
    /// Not an envol header.
    BadMagic,
    /// A format version this code does not read.
    UnsupportedVersion(u16),
    /// Flags this code does not know.
    UnknownFlags(u16),
    /// The checksum does not match: a torn or damaged copy.
    Corrupt,
    /// Neither copy is good.
    BothCorrupt,
    /// A field is out of range or inconsistent (names the field).
    Malformed(&'static str),
    /// The MAC does not verify under the unwrapped data key: the header was
    /// edited after it was written.
    Tampered,
    /// The output buffer is too small.
    BufferTooSmall,
    /// Every readable copy names another volume id than the one expected.
    WrongVolume,
}

impl HeaderError {
    /// The C ABI's name for this error (`envol.h`).
    pub fn status_name(self) -> &'static str {
        match self {
            HeaderError::BadMagic => "ENVOL_ERR_HEADER_BAD_MAGIC",
            HeaderError::UnsupportedVersion(_) => "ENVOL_ERR_HEADER_VERSION",
            HeaderError::UnknownFlags(_) => "ENVOL_ERR_HEADER_FLAGS",
            HeaderError::Corrupt => "ENVOL_ERR_HEADER_CORRUPT",
            HeaderError::BothCorrupt => "ENVOL_ERR_HEADER_BOTH_CORRUPT",
            HeaderError::Malformed("volume id") => "ENVOL_ERR_VOLUME_PARAMS",
            HeaderError::Malformed(_) => "ENVOL_ERR_HEADER_MALFORMED",
            HeaderError::Tampered => "ENVOL_ERR_HEADER_TAMPERED",
            HeaderError::BufferTooSmall => "ENVOL_ERR_BUFFER_TOO_SMALL",
            HeaderError::WrongVolume => "ENVOL_ERR_WRONG_VOLUME",
        }
    }
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::BadMagic => f.write_str("not an envol volume header"),
            HeaderError::UnsupportedVersion(v) => write!(f, "unsupported header version {v}"),
            HeaderError::UnknownFlags(x) => write!(f, "unknown header flags {x:#06x}"),
            HeaderError::Corrupt => f.write_str("header copy corrupt (checksum mismatch)"),
            HeaderError::BothCorrupt => f.write_str("both header copies are corrupt"),
            HeaderError::Malformed(field) => write!(f, "malformed header field: {field}"),
            HeaderError::Tampered => f.write_str("header MAC mismatch: header was tampered with"),
            HeaderError::BufferTooSmall => f.write_str("buffer too small for header"),
            HeaderError::WrongVolume => f.write_str("the header names another volume id"),
        }
    }
}

impl core::error::Error for HeaderError {}

/// Volume parameters chosen at creation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// The sector cipher.
    pub suite: CipherSuite,
    /// Sector size in bytes: a power of two in 512..=65536.
    pub sector_size: u32,
    /// Where data sector 0 starts, in bytes: a multiple of the sector size
    /// and of 4096, at least 8192.
    pub data_offset: u64,
    /// Size of the data area in bytes: a multiple of the sector size.
    pub volume_size: u64,
    /// The volume's unique id.
    pub volume_id: [u8; 16],
}

impl Params {
    /// Checks every bound; `Malformed` names the first field out of range.
    pub fn check(&self) -> Result<(), HeaderError> {
        let ss = self.sector_size;
        if !ss.is_power_of_two() || !(MIN_SECTOR..=MAX_SECTOR).contains(&ss) {
            return Err(HeaderError::Malformed("sector size"));
        }
        let ss = u64::from(ss);
        if self.data_offset < HEADERS_SIZE
            || !self.data_offset.is_multiple_of(ss)
            || !self.data_offset.is_multiple_of(4096)
        {
            return Err(HeaderError::Malformed("data offset"));
        }
        if self.volume_size == 0 || !self.volume_size.is_multiple_of(ss) {
            return Err(HeaderError::Malformed("volume size"));
        }
        if self.data_offset.checked_add(self.volume_size).is_none() {
            return Err(HeaderError::Malformed("volume size"));
        }
        Ok(())
    }

    /// Number of data sectors.
    pub fn sectors(&self) -> u64 {
        self.volume_size / u64::from(self.sector_size)
    }

    /// The volume id as 32 lowercase hex digits.
    pub fn volume_id_hex(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, b) in self.volume_id.iter().enumerate() {
            out[2 * i] = HEX[usize::from(b >> 4)];
            out[2 * i + 1] = HEX[usize::from(b & 15)];
        }
        out
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Decimal digits of a u64 in a fixed buffer.
pub(crate) struct Dec {
    buf: [u8; 20],
    start: usize,
}

impl Dec {
    pub(crate) fn new(mut v: u64) -> Dec {
        let mut buf = [0u8; 20];
        let mut i = 20;
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        Dec { buf, start: i }
    }
    pub(crate) fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[self.start..]).unwrap_or("")
    }
}

/// Text forms of the parameters, owned so a [`Context`] can borrow them.
pub struct ContextStrings {
    volume: [u8; 36],
    sector: Dec,
    offset: Dec,
    size: Dec,
    suite: &'static str,
}

impl ContextStrings {
    /// The encryption context a volume's data key is wrapped under:
    /// `volume` = "vol-<id hex>" (what key policies match on) and the
    /// parameters, so a key wrapped for one geometry does not unwrap for
    /// another.
    pub fn context(&self) -> Context<'_> {
        let vol = core::str::from_utf8(&self.volume).unwrap_or("");
        let mut c = Context::empty();
        // Five fixed, distinct, short keys: insertion cannot fail.
        let _ = c.insert("volume", vol);
        let _ = c.insert("envol:cipher", self.suite);
        let _ = c.insert("envol:sector-size", self.sector.as_str());
        let _ = c.insert("envol:data-offset", self.offset.as_str());
        let _ = c.insert("envol:volume-size", self.size.as_str());
        c
    }
}

/// One header copy, parsed (or about to be written).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The volume parameters.
    pub params: Params,
    /// Lifecycle state.
    pub state: VolumeState,
    /// Incremented on every header write; the newest good copy wins.
    pub sequence: u64,
    /// The wrapped data key (a complete envelope blob).
    pub blob: &'a [u8],
    /// The MAC over the header (all zero until [`Header::seal_mac`]).
    pub mac: [u8; 32],
}

impl fmt::Debug for Header<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Header")
            .field("params", &self.params)
            .field("state", &self.state)
            .field("sequence", &self.sequence)
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

/// The header MAC key, HMAC-SHA256(data key, label): never the data key
/// itself. Zeroized on drop.
pub struct MacKey([u8; 32]);

impl Drop for MacKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl fmt::Debug for MacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MacKey(..)")
    }
}

impl MacKey {
    /// Whether two MAC keys are equal (so their data keys are), in
    /// constant time.
    pub fn ct_eq(&self, other: &MacKey) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    /// Derives the MAC key from a data key.
    pub fn derive(dek: &[u8]) -> MacKey {
        let mut m = crate::envelope::hmac_sha256(dek);
        m.update(b"envol header MAC key v1");
        MacKey(m.finalize().into_bytes().into())
    }
}

/// Whether a slot starts with the header magic, whatever follows: a device
/// that holds (or held) an envol volume.
pub fn has_magic(slot: &[u8]) -> bool {
    slot.starts_with(MAGIC)
}

impl Header<'static> {
    /// A header with no wrapped key, for computing the encryption context
    /// of `params` before there is one.
    pub fn shell(params: Params) -> Header<'static> {
        Header {
            params,
            state: VolumeState::Active,
            sequence: 0,
            blob: &[],
            mac: [0; 32],
        }
    }
}

impl<'a> Header<'a> {
    /// A fresh header (sequence 1, state Active, MAC not yet computed).
    pub fn new(params: Params, blob: &'a [u8]) -> Result<Header<'a>, HeaderError> {
        params.check()?;
        let h = Header {
            params,
            state: VolumeState::Active,
            sequence: 1,
            blob,
            mac: [0; 32],
        };
        h.check_blob()?;
        Ok(h)
    }

    fn check_blob(&self) -> Result<(), HeaderError> {
        let w = WrappedKey::parse(self.blob).map_err(|_| HeaderError::Malformed("wrapped key"))?;
        // Opaque blobs (AWS KMS) do not say; attach checks the unwrapped key.
        if w.secret_len()
            .is_some_and(|n| n != self.params.suite.key_size().key_len())
        {
            return Err(HeaderError::Malformed("wrapped key"));
        }
        Ok(())
    }

    /// The master key the data key is wrapped under.
    pub fn key_id(&self) -> &'a str {
        WrappedKey::parse(self.blob)
            .map(|w| w.key_id())
            .unwrap_or("")
    }

    /// The encryption context strings for this header's parameters.
    pub fn context_strings(&self) -> ContextStrings {
        let p = &self.params;
        let mut volume = [0u8; 36];
        volume[..4].copy_from_slice(b"vol-");
        volume[4..].copy_from_slice(&p.volume_id_hex());
        ContextStrings {
            volume,
            sector: Dec::new(u64::from(p.sector_size)),
            offset: Dec::new(p.data_offset),
            size: Dec::new(p.volume_size),
            suite: p.suite.name(),
        }
    }

    /// Length of the encoded copy.
    pub fn encoded_len(&self) -> usize {
        FIXED + self.key_id().len() + 2 + self.blob.len() + MAC_LEN + SUM_LEN
    }

    /// Writes every byte before the MAC; returns its length.
    fn write_body(&self, out: &mut [u8]) -> Result<usize, HeaderError> {
        let total = self.encoded_len();
        if total > SLOT_SIZE {
            return Err(HeaderError::Malformed("wrapped key"));
        }
        let out = out.get_mut(..total).ok_or(HeaderError::BufferTooSmall)?;
        let p = &self.params;
        let id = self.key_id();
        out[0..8].copy_from_slice(MAGIC);
        out[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[10..12].copy_from_slice(&0u16.to_le_bytes());
        out[12..16].copy_from_slice(&u32::try_from(total).unwrap_or(u32::MAX).to_le_bytes());
        out[16..24].copy_from_slice(&self.sequence.to_le_bytes());
        out[24..26].copy_from_slice(&p.suite.code().to_le_bytes());
        let state: u16 = match self.state {
            VolumeState::Active => 0,
            VolumeState::Retired => 1,
        };
        out[26..28].copy_from_slice(&state.to_le_bytes());
        out[28..32].copy_from_slice(&p.sector_size.to_le_bytes());
        out[32..40].copy_from_slice(&p.data_offset.to_le_bytes());
        out[40..48].copy_from_slice(&p.volume_size.to_le_bytes());
        out[48..64].copy_from_slice(&p.volume_id);
        out[64] = u8::try_from(id.len()).unwrap_or(u8::MAX);
        let mut pos = FIXED;
        out[pos..pos + id.len()].copy_from_slice(id.as_bytes());
        pos += id.len();
        let bl =
            u16::try_from(self.blob.len()).map_err(|_| HeaderError::Malformed("wrapped key"))?;
        out[pos..pos + 2].copy_from_slice(&bl.to_le_bytes());
        pos += 2;
        out[pos..pos + self.blob.len()].copy_from_slice(self.blob);
        Ok(pos + self.blob.len())
    }

    /// Computes the MAC with the data key (call before [`Header::encode`]).
    pub fn seal_mac(&mut self, dek: &[u8]) -> Result<(), HeaderError> {
        self.seal_mac_with(&MacKey::derive(dek))
    }

    /// Computes the MAC with an already derived MAC key.
    pub fn seal_mac_with(&mut self, key: &MacKey) -> Result<(), HeaderError> {
        let mut buf = [0u8; SLOT_SIZE];
        let n = self.write_body(&mut buf)?;
        self.mac = compute_mac(key, &buf[..n]);
        Ok(())
    }

    /// Checks the MAC with the unwrapped data key, in constant time.
    pub fn verify_mac(&self, dek: &[u8]) -> Result<(), HeaderError> {
        self.verify_mac_with(&MacKey::derive(dek))
    }

    /// Checks the MAC with an already derived MAC key, in constant time.
    pub fn verify_mac_with(&self, key: &MacKey) -> Result<(), HeaderError> {
        let mut buf = [0u8; SLOT_SIZE];
        let n = self.write_body(&mut buf)?;
        let want = compute_mac(key, &buf[..n]);
        if bool::from(want.ct_eq(&self.mac)) {
            Ok(())
        } else {
            Err(HeaderError::Tampered)
        }
    }

    /// Encodes the copy into `out` (which may be a whole slot; the rest is
    /// left as is). `encode(parse(h)) == h`.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, HeaderError> {
        let n = self.write_body(out)?;
        out[n..n + MAC_LEN].copy_from_slice(&self.mac);
        let sum: [u8; 32] = Sha256::digest(&out[..n + MAC_LEN]).into();
        out[n + MAC_LEN..n + MAC_LEN + SUM_LEN].copy_from_slice(&sum);
        Ok(n + MAC_LEN + SUM_LEN)
    }

    /// Parses one copy from the start of `bytes` (a slot; bytes after the
    /// copy's length are ignored). Total: never panics, never allocates.
    pub fn parse(bytes: &'a [u8]) -> Result<Header<'a>, HeaderError> {
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return Err(HeaderError::BadMagic);
        }
        let fixed = bytes.get(..FIXED).ok_or(HeaderError::Corrupt)?;
        let total = usize::try_from(u32::from_le_bytes(arr(&fixed[12..16])))
            .map_err(|_| HeaderError::Corrupt)?;
        if !(FIXED + 2 + MAC_LEN + SUM_LEN..=SLOT_SIZE).contains(&total) {
            return Err(HeaderError::Corrupt);
        }
        let copy = bytes.get(..total).ok_or(HeaderError::Corrupt)?;
        // Checksum first: everything after it reads only good bytes.
        let (covered, sum) = copy.split_at(total - SUM_LEN);
        let want: [u8; 32] = Sha256::digest(covered).into();
        if want != *sum {
            return Err(HeaderError::Corrupt);
        }
        let version = u16::from_le_bytes(arr(&copy[8..10]));
        if version != FORMAT_VERSION {
            return Err(HeaderError::UnsupportedVersion(version));
        }
        let flags = u16::from_le_bytes(arr(&copy[10..12]));
        if flags != 0 {
            return Err(HeaderError::UnknownFlags(flags));
        }
        let sequence = u64::from_le_bytes(arr(&copy[16..24]));
        let suite = CipherSuite::from_code(u16::from_le_bytes(arr(&copy[24..26])))
            .ok_or(HeaderError::Malformed("cipher suite"))?;
        let state = match u16::from_le_bytes(arr(&copy[26..28])) {
            0 => VolumeState::Active,
            1 => VolumeState::Retired,
            _ => return Err(HeaderError::Malformed("state")),
        };
        let params = Params {
            suite,
            sector_size: u32::from_le_bytes(arr(&copy[28..32])),
            data_offset: u64::from_le_bytes(arr(&copy[32..40])),
            volume_size: u64::from_le_bytes(arr(&copy[40..48])),
            volume_id: arr(&copy[48..64]),
        };
        params.check()?;
        let id_len = usize::from(copy[64]);
        let mut pos = FIXED;
        let id = copy
            .get(pos..pos + id_len)
            .ok_or(HeaderError::Malformed("key id"))?;
        let id = core::str::from_utf8(id).map_err(|_| HeaderError::Malformed("key id"))?;
        check_key_id(id).map_err(|_| HeaderError::Malformed("key id"))?;
        pos += id_len;
        let bl = copy
            .get(pos..pos + 2)
            .map(|b| usize::from(u16::from_le_bytes(arr(b))))
            .ok_or(HeaderError::Malformed("wrapped key"))?;
        pos += 2;
        let blob = copy
            .get(pos..pos + bl)
            .ok_or(HeaderError::Malformed("wrapped key"))?;
        pos += bl;
        if pos + MAC_LEN + SUM_LEN != total {
            return Err(HeaderError::Malformed("length"));
        }
        let mac = arr(&copy[pos..pos + MAC_LEN]);
        let h = Header {
            params,
            state,
            sequence,
            blob,
            mac,
        };
        h.check_blob()?;
        if h.key_id() != id {
            return Err(HeaderError::Malformed("key id"));
        }
        Ok(h)
    }
}

fn compute_mac(key: &MacKey, body: &[u8]) -> [u8; 32] {
    let mut m = crate::envelope::hmac_sha256(&key.0);
    m.update(body);
    m.finalize().into_bytes().into()
}

fn arr<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    let n = b.len().min(N);
    a[..n].copy_from_slice(&b[..n]);
    a
}

/// Largest wrapped-key blob a header copy can hold: what is left of a slot
/// after the fixed fields, the length prefix, the MAC and the checksum.
pub const MAX_SLOT_BLOB: usize = SLOT_SIZE - FIXED - 2 - MAC_LEN - SUM_LEN;

/// A header copy held by value, so that a volume keeps the copy it parsed
/// (or wrote) and lends out its [`Header`] view. Fixed-width fields and no
/// padding: a C caller's `envol_volume` holding one has no byte that was
/// never written.
#[derive(Clone, PartialEq, Eq)]
#[repr(C)]
pub struct OwnedHeader {
    sequence: u64,
    data_offset: u64,
    volume_size: u64,
    blob_len: u64,
    sector_size: u32,
    suite: u16,
    state: u16,
    volume_id: [u8; 16],
    mac: [u8; 32],
    blob: [u8; OWNED_BLOB],
}

/// [`MAX_SLOT_BLOB`] rounded up to a multiple of 8 (no padding after it).
const OWNED_BLOB: usize = MAX_SLOT_BLOB.next_multiple_of(8);

impl OwnedHeader {
    /// A copy of `h` (whose blob, having fit a slot, fits here).
    pub fn new(h: &Header<'_>) -> Result<OwnedHeader, HeaderError> {
        let mut blob = [0u8; OWNED_BLOB];
        blob.get_mut(..h.blob.len())
            .filter(|_| h.blob.len() <= MAX_SLOT_BLOB)
            .ok_or(HeaderError::Malformed("wrapped key"))?
            .copy_from_slice(h.blob);
        Ok(OwnedHeader {
            sequence: h.sequence,
            data_offset: h.params.data_offset,
            volume_size: h.params.volume_size,
            blob_len: h.blob.len() as u64,
            sector_size: h.params.sector_size,
            suite: h.params.suite.code(),
            state: match h.state {
                VolumeState::Active => 0,
                VolumeState::Retired => 1,
            },
            volume_id: h.params.volume_id,
            mac: h.mac,
            blob,
        })
    }

    /// All zero: what stands in a slot whose copy is unreadable.
    pub(crate) fn blank() -> OwnedHeader {
        OwnedHeader {
            sequence: 0,
            data_offset: 0,
            volume_size: 0,
            blob_len: 0,
            sector_size: 0,
            suite: 0,
            state: 0,
            volume_id: [0; 16],
            mac: [0; 32],
            blob: [0; OWNED_BLOB],
        }
    }

    /// The header. (Every field was taken from a valid header, so the
    /// decoding below never falls back.)
    pub fn view(&self) -> Header<'_> {
        let len = usize::try_from(self.blob_len).unwrap_or(0);
        Header {
            params: Params {
                suite: CipherSuite::from_code(self.suite).unwrap_or(CipherSuite::AesXts256Plain64),
                sector_size: self.sector_size,
                data_offset: self.data_offset,
                volume_size: self.volume_size,
                volume_id: self.volume_id,
            },
            state: if self.state == 1 {
                VolumeState::Retired
            } else {
                VolumeState::Active
            },
            sequence: self.sequence,
            blob: self.blob.get(..len).unwrap_or(&[]),
            mac: self.mac,
        }
    }

    /// The slot this copy is written as (zero after the copy).
    pub fn encode(&self) -> Result<[u8; SLOT_SIZE], HeaderError> {
        let mut out = [0u8; SLOT_SIZE];
        self.view().encode(&mut out)?;
        Ok(out)
    }
}

const _: () = assert!(
    core::mem::size_of::<OwnedHeader>() == 5 * 8 + 16 + 32 + OWNED_BLOB,
    "OwnedHeader has padding"
);

impl fmt::Debug for OwnedHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.view().fmt(f)
    }
}

/// Which copy won, and what is wrong with the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pick<'a> {
    /// The newest good copy.
    pub header: Header<'a>,
    /// 0 for copy A, 1 for copy B.
    pub slot: usize,
    /// The other copy needs rewriting (damaged, stale or different).
    pub other_needs_repair: bool,
}

/// Picks the newest good copy of two slots. A damaged copy loses to a good
/// one; if both are bad, `BothCorrupt` (or the common error, e.g. an
/// unsupported version, when both say the same).
pub fn pick<'a>(a: &'a [u8], b: &'a [u8]) -> Result<Pick<'a>, HeaderError> {
    let ha = Header::parse(a);
    let hb = Header::parse(b);
    match (ha, hb) {
        (Ok(x), Ok(y)) => {
            let (header, slot) = if y.sequence > x.sequence {
                (y, 1)
            } else {
                (x, 0)
            };
            Ok(Pick {
                header,
                slot,
                other_needs_repair: x != y,
            })
        }
        (Ok(x), Err(_)) => Ok(Pick {
            header: x,
            slot: 0,
            other_needs_repair: true,
        }),
        (Err(_), Ok(y)) => Ok(Pick {
            header: y,
            slot: 1,
            other_needs_repair: true,
        }),
        (Err(e1), Err(e2)) if e1 == e2 && e1 != HeaderError::Corrupt => Err(e1),
        (Err(_), Err(_)) => Err(HeaderError::BothCorrupt),
    }
}

/// The readable copies of a volume's two slots, newest first (by sequence
/// number; slot A first on a tie): what to try, in order, when unwrapping.
/// Nothing here is authenticated yet: a copy is only trusted once its data
/// key unwraps for its context and its MAC verifies.
#[derive(Clone, Copy, Debug)]
pub struct Candidates<'a> {
    /// (slot, copy), newest first; `None` for a slot that does not parse or
    /// names another volume than the expected one.
    pub copies: [Option<(usize, Header<'a>)>; 2],
}

impl<'a> Candidates<'a> {
    /// Parses both slots. With `expected`, copies naming another volume id
    /// are left out (`WrongVolume` if that leaves none while some parsed);
    /// with no readable copy, `BothCorrupt` (or the error both share, e.g.
    /// `BadMagic` for a device that holds no volume).
    pub fn new(
        a: &'a [u8],
        b: &'a [u8],
        expected: Option<&[u8; 16]>,
    ) -> Result<Candidates<'a>, HeaderError> {
        let (ha, hb) = (Header::parse(a), Header::parse(b));
        let keep = |h: &Header<'_>| expected.is_none_or(|id| h.params.volume_id == *id);
        let mut foreign = false;
        let mut ok = |r: &Result<Header<'a>, HeaderError>, slot: usize| match r {
            Ok(h) if keep(h) => Some((slot, *h)),
            Ok(_) => {
                foreign = true;
                None
            }
            Err(_) => None,
        };
        let (x, y) = (ok(&ha, 0), ok(&hb, 1));
        // Two good copies of two different volumes and no word on which is
        // wanted: refuse rather than guess (a copied or torn-over slot).
        if let (Some(x), Some(y), None) = (x, y, expected)
            && x.1.params.volume_id != y.1.params.volume_id
        {
            return Err(HeaderError::WrongVolume);
        }
        let copies = match (x, y) {
            (Some(x), Some(y)) if y.1.sequence > x.1.sequence => [Some(y), Some(x)],
            (Some(x), y) => [Some(x), y],
            (None, y) => [y, None],
        };
        if copies[0].is_some() {
            return Ok(Candidates { copies });
        }
        if foreign {
            return Err(HeaderError::WrongVolume);
        }
        match (ha, hb) {
            (Err(e1), Err(e2)) if e1 == e2 && e1 != HeaderError::Corrupt => Err(e1),
            _ => Err(HeaderError::BothCorrupt),
        }
    }

    /// The newest readable copy.
    pub fn newest(&self) -> Option<(usize, Header<'a>)> {
        self.copies[0]
    }
}

/// Largest blob envol's own AES-GCM formats make for a data key. Opaque
/// blobs (AWS KMS) are larger; a header takes any blob that fits its slot.
pub const MAX_HEADER_BLOB: usize = envelope::blob_len(envelope::MAX_KEY_ID, 64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dec_prints_numbers() {
        assert_eq!(Dec::new(0).as_str(), "0");
        assert_eq!(Dec::new(4096).as_str(), "4096");
        assert_eq!(Dec::new(u64::MAX).as_str(), "18446744073709551615");
    }
}
