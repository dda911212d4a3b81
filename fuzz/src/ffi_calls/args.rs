//! Arguments as the fuzzer chooses them, and how bytes decode to them.
//! Variant 0 / all-zero bytes is the ordinary, valid choice, so short
//! inputs already walk the happy path. The decoding (derives and the hand
//! written `Arbitrary` impls) is part of the committed seeds' meaning:
//! changing it changes what `fuzz/corpus` and `fuzz/regressions` replay.

use arbitrary::{Arbitrary, Unstructured};
use envol::kms::policy::MAX_POLICY_BYTES;

/// A C string argument.
#[derive(Debug, Clone)]
pub enum S {
    /// The `n`-th string of the argument's pool (principals, key ids, ...).
    Pool(u8),
    Null,
    Empty,
    /// `n % 1100` letters: over every bound somewhere.
    Long(u16),
    NotUtf8,
    /// Readable bytes with no NUL, longer than any bound.
    Unterminated,
    Raw(Vec<u8>),
}

/// Which pool an [`S`] draws from.
#[derive(Clone, Copy)]
pub(super) enum Role {
    Principal,
    KeyId,
    CtxKey,
    CtxVal,
    Action,
}

pub(super) const PRINCIPALS: [&str; 6] = ["hv", "op", "eve", "hv\u{e9}", "*", "a b"];
pub(super) const KEY_IDS: [&str; 8] = [
    "k1",
    "k2",
    "aws-k3",
    "missing",
    "k1 ",
    "k/\u{e4}",
    "a123456789012345678901234567890123456789012345678901234567890123",
    "",
];
pub(super) const CTX_KEYS: [&str; 6] = ["volume", "tenant", "envol:cipher", "k", "", "volume "];
pub(super) const CTX_VALS: [&str; 5] = ["vol-1", "t1", "", "vol-2", "x=y,{z}"];
pub(super) const ACTIONS: [&str; 10] = [
    "kms:Decrypt",
    "kms:GenerateDataKey",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:Encrypt",
    "kms:DescribeKey",
    "kms:RetireGrant",
    "kms:*",
    "Decrypt",
    "kms:ListGrants",
];
pub(super) const POLICIES: [&str; 5] = [
    r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*"}]}"#,
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Envol":["hv","op"]},"Action":"kms:*"},{"Effect":"Deny","Principal":{"Envol":"eve"},"Action":"kms:*"}]}"#,
    r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":["kms:GenerateDataKey*","kms:Decrypt","kms:ReEncrypt*","kms:DescribeKey","kms:CreateGrant","kms:ListGrants"],"Condition":{"StringLike":{"kms:EncryptionContext:volume":"vol-*"}}},{"Effect":"Allow","Principal":{"Envol":"op"},"Action":"kms:*"}]}"#,
    r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"kms:*"}]}"#,
    r#"{"Statement":["#,
];

/// Readable bytes without a NUL, one more than the longest bound
/// (`in_str` reads at most bound + 1 bytes).
pub(super) static UNTERMINATED: [u8; MAX_POLICY_BYTES + 1] = [b'u'; MAX_POLICY_BYTES + 1];

/// A key policy argument.
#[derive(Debug, Clone)]
pub enum PolicyArg {
    Pool(u8),
    Raw(Vec<u8>),
    Null,
    Unterminated,
    /// Over the size limit.
    Huge,
}

/// An encryption context argument: `(const envol_kv *, size_t)`.
#[derive(Debug, Clone)]
pub enum CtxKv {
    Empty,
    Pairs(Vec<(S, S)>),
    /// The context of a volume with these parameters (what volumes use).
    OfParams(ParamsArg),
    /// NULL with this length.
    Null(u8),
    /// A pointer that is not aligned for `envol_kv`.
    Misaligned(Vec<(S, S)>),
    /// A length over the limit (the array is never read).
    Over(u8),
}

/// Capacity of an output buffer.
#[derive(Debug, Clone, Copy)]
pub enum Cap {
    /// The size that always suffices.
    Enough,
    Len(u16),
    /// A capacity past the address space: refused before any write.
    Wild(bool),
}

/// An output buffer.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct OutArg {
    pub(super) cap: Cap,
    #[arbitrary(with = mis)]
    pub(super) misalign: u8,
    #[arbitrary(with = rare)]
    pub(super) null: bool,
}

/// A 32-byte key argument (roots, master keys).
#[derive(Debug, Clone, Copy)]
pub enum Key32 {
    Std,
    Other(u8),
    Null,
}

/// An XTS key or data key argument.
#[derive(Debug, Clone)]
pub enum KeyArg {
    /// A good key: 64 bytes (or 32 if `short`).
    Derived {
        short: bool,
        seed: u8,
    },
    Bytes(Vec<u8>),
    /// Equal halves.
    Weak {
        short: bool,
    },
    /// A data key an earlier call produced.
    Pool(u8),
    Null,
    Wild(bool),
}

/// A wrapped-key blob argument.
#[derive(Arbitrary, Debug, Clone)]
pub struct BlobArg {
    pub(super) src: BlobSrc,
    pub(super) edits: Vec<(u16, u8)>,
    pub(super) cut: Option<u16>,
    #[arbitrary(with = rare)]
    pub(super) null: bool,
    #[arbitrary(with = rare)]
    pub(super) wild: bool,
}

#[derive(Arbitrary, Debug, Clone)]
pub enum BlobSrc {
    Pool(u8),
    Raw(Vec<u8>),
    /// The blob in header slot A of a disk.
    Disk(u8),
}

/// One header slot argument (`ENVOL_HEADER_SLOT_SIZE` bytes).
#[derive(Arbitrary, Debug, Clone)]
pub struct SlotArg {
    pub(super) src: SlotSrc,
    pub(super) edits: Vec<(u16, u8)>,
    /// Recompute the checksum after the edits.
    pub(super) fix: bool,
    #[arbitrary(with = rare)]
    pub(super) null: bool,
}

#[derive(Arbitrary, Debug, Clone)]
pub enum SlotSrc {
    DiskA(u8),
    DiskB(u8),
    Built(u8),
    Raw(Vec<u8>),
    Zero,
}

/// Volume parameters.
#[derive(Arbitrary, Debug, Clone)]
pub enum ParamsArg {
    Small {
        cipher: CipherArg,
        ss: SsArg,
        offset: OffArg,
        sectors: u8,
        id: u8,
    },
    Pool(u8),
    Raw {
        cipher: u32,
        ss: u32,
        offset: u64,
        size: u64,
        id: [u8; 16],
    },
    Null,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum CipherArg {
    X256,
    X128,
    Raw(u32),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum SsArg {
    S512,
    S4096,
    S1024,
    S65536,
    Raw(u32),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum OffArg {
    Min,
    Mib,
    Raw(u64),
}

/// A key-service callback table argument.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct KmsArg {
    pub(super) src: KmsSrc,
    /// Bit 0: no generate, bit 1: no decrypt, bit 2: no re-encrypt.
    pub(super) drop: u8,
    /// Not aligned for the table (1..=7 bytes off).
    #[arbitrary(with = mis)]
    pub(super) misalign: u8,
}

#[derive(Debug, Clone, Copy)]
pub enum KmsSrc {
    /// The table of local handle `n` (`envol_local_kms_callbacks`).
    Local(u8),
    /// The scripted fake service.
    Fake,
    Null,
    /// A table with no callbacks.
    Empty,
}

/// A local key-service handle argument.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct LocalArg {
    pub(super) slot: u8,
    #[arbitrary(with = rare)]
    pub(super) null: bool,
    #[arbitrary(with = mis)]
    pub(super) misalign: u8,
}

/// A block-device table argument.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct DevArg {
    pub(super) disk: u8,
    /// Bit 0: no read, bit 1: no write, bit 2: no flush.
    pub(super) drop: u8,
    #[arbitrary(with = mis)]
    pub(super) misalign: u8,
    #[arbitrary(with = rare)]
    pub(super) null: bool,
}

/// An `envol_volume` pointer argument.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct VolArg {
    pub(super) idx: u8,
    #[arbitrary(with = mis)]
    pub(super) misalign: u8,
    #[arbitrary(with = rare)]
    pub(super) null: bool,
}

/// An `envol_xts` pointer argument.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct CtxArg {
    pub(super) idx: u8,
    #[arbitrary(with = mis)]
    pub(super) misalign: u8,
    #[arbitrary(with = rare)]
    pub(super) null: bool,
}

/// A caller data buffer for volume I/O.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct IoArg {
    pub(super) off: u16,
    pub(super) len: IoLen,
    #[arbitrary(with = rare)]
    pub(super) null: bool,
    /// Point into the `envol_volume` itself at this offset.
    #[arbitrary(with = rare_u16)]
    pub(super) inside_vol: Option<u16>,
    pub(super) fill: u8,
}

#[derive(Debug, Clone, Copy)]
pub enum IoLen {
    /// `n % 128 + 1` sectors.
    Sectors(u8),
    Bytes(u32),
    Wild(bool),
}

/// A sector number.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum SectorArg {
    N(u8),
    Raw(u64),
}

/// Sector size of an XTS sector run.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum XtsSize {
    S512,
    S4096,
    /// `16 * (n + 1)`.
    Blocks(u16),
    Raw(u64),
}

/// What an XTS data call does.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum XtsKind {
    Sectors {
        first: u64,
        size: XtsSize,
    },
    Unit {
        tweak: [u8; 16],
        #[arbitrary(with = rare)]
        null_tweak: bool,
    },
}

/// Where input and output of an XTS data call are.
#[derive(Debug, Clone, Copy)]
pub enum Layout {
    Disjoint {
        a: u16,
        b: u16,
    },
    InPlace {
        a: u16,
    },
    /// Output `d % len` bytes after the input (0: in place).
    Overlap {
        a: u16,
        d: u16,
    },
    NullIn,
    NullOut,
    /// Input (`b & 1`), output (`b & 2`) or both inside the context itself
    /// at offset `off`.
    InCtx {
        off: u16,
        which: u8,
    },
}

#[derive(Debug, Clone, Copy)]
pub enum XtsLen {
    /// A few whole sectors, or a unit of a usual length.
    Auto(u8),
    Bytes(u32),
    Wild(bool),
}

/// Data-key length for the local service's generate.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum DekLen {
    L64,
    L32,
    Raw(u16),
    Max,
}

/// Sealed-store argument for unseal.
#[derive(Arbitrary, Debug, Clone)]
pub struct StoreArg {
    pub(super) raw: Option<Vec<u8>>,
    pub(super) edits: Vec<(u16, u8)>,
    #[arbitrary(with = rare)]
    pub(super) null: bool,
    #[arbitrary(with = rare)]
    pub(super) wild: bool,
}

/// A grant id argument.
#[derive(Arbitrary, Debug, Clone)]
pub enum GrantArg {
    Pool(u8),
    Str(S),
}

/// A management call on a local key.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Manage {
    Enable,
    Disable,
    CancelDeletion,
    EnableRotation(u32),
    DisableRotation,
    Rotate,
    ScheduleDeletion { days: u32, force: i32 },
}

/// How the fake key service answers one callback.
#[derive(Arbitrary, Debug, Clone)]
pub struct FakeAnswer {
    pub(super) status: FStatus,
    pub(super) len: FLen,
    pub(super) dek: FDek,
    /// Write garbage over every output buffer first.
    pub(super) scribble: bool,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum FStatus {
    Honest,
    Ok,
    Known(u8),
    Raw(u32),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum FLen {
    Honest,
    Zero,
    Cap,
    CapPlus(u8),
    Max,
    Raw(u16),
    Untouched,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum FDek {
    Honest,
    Flip(u16),
    Pattern(u8),
}

/// Disk sizes.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum DiskSize {
    Default,
    Small,
    Big,
    Mib,
    Raw(u32),
}

/// An expected volume id (`const uint8_t volume_id[16]`).
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum IdArg {
    /// The id in header slot A of a disk (zeros if it does not parse).
    Disk(u8),
    /// The id of parameters an earlier call used.
    Pool(u8),
    Raw([u8; 16]),
    Null,
}

// Odd choices (NULL, misaligned, past the address space) are rare, so most
// calls get past their first checks: a selector byte picks the ordinary
// choice for most values and an odd one for the top few.

type Ur<'a, 'b> = &'b mut Unstructured<'a>;

/// A flag set for 1 byte value in 16.
pub(super) fn rare(u: Ur<'_, '_>) -> arbitrary::Result<bool> {
    Ok(u8::arbitrary(u)? >= 0xf0)
}

/// A misalignment: usually 0, else an odd offset below 64.
pub(super) fn mis(u: Ur<'_, '_>) -> arbitrary::Result<u8> {
    let b = u8::arbitrary(u)?;
    Ok(if b >= 0xf0 { (b & 0x3f) | 1 } else { 0 })
}

/// Usually nothing, rarely a value.
pub(super) fn rare_u16(u: Ur<'_, '_>) -> arbitrary::Result<Option<u16>> {
    Ok(if rare(u)? {
        Some(u16::arbitrary(u)?)
    } else {
        None
    })
}

/// Usually a value, rarely nothing (a NULL pointer).
pub(super) fn mostly_some(u: Ur<'_, '_>) -> arbitrary::Result<Option<[u8; 12]>> {
    Ok(if rare(u)? {
        None
    } else {
        Some(<[u8; 12]>::arbitrary(u)?)
    })
}

/// A backend argument: usually none (`envol_xts_init`), else a known
/// number, rarely any number.
pub(super) fn backend_choice(u: Ur<'_, '_>) -> arbitrary::Result<Option<u32>> {
    let b = u8::arbitrary(u)?;
    Ok(match b {
        0..0x80 => None,
        0x80..0xf0 => Some(u32::from(b % 6)),
        _ => Some(u32::arbitrary(u)?),
    })
}

/// A bit mask of NULL outputs: usually none.
pub(super) fn mask(u: Ur<'_, '_>) -> arbitrary::Result<u8> {
    let b = u8::arbitrary(u)?;
    Ok(if b >= 0xf0 { b & 0x0f } else { 0 })
}

impl<'a> Arbitrary<'a> for S {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let b = u8::arbitrary(u)?;
        Ok(if b < 0xe0 {
            S::Pool(b)
        } else {
            match b & 7 {
                0 => S::Null,
                1 => S::Empty,
                2 => S::Long(u16::arbitrary(u)?),
                3 => S::NotUtf8,
                4 => S::Unterminated,
                _ => S::Raw(Vec::arbitrary(u)?),
            }
        })
    }
}

impl<'a> Arbitrary<'a> for PolicyArg {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let b = u8::arbitrary(u)?;
        Ok(match b {
            0..0xc0 => PolicyArg::Pool(b),
            0xc0..0xf0 => PolicyArg::Raw(Vec::arbitrary(u)?),
            _ => match b & 3 {
                0 => PolicyArg::Null,
                1 => PolicyArg::Unterminated,
                _ => PolicyArg::Huge,
            },
        })
    }
}

impl<'a> Arbitrary<'a> for CtxKv {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let b = u8::arbitrary(u)?;
        Ok(match b {
            0..0x40 => CtxKv::Empty,
            0x40..0x90 => CtxKv::Pairs(Vec::arbitrary(u)?),
            0x90..0xe0 => CtxKv::OfParams(ParamsArg::arbitrary(u)?),
            _ => match b & 3 {
                0 => CtxKv::Null(u8::arbitrary(u)?),
                1 => CtxKv::Misaligned(Vec::arbitrary(u)?),
                2 => CtxKv::Over(u8::arbitrary(u)?),
                _ => CtxKv::Pairs(Vec::arbitrary(u)?),
            },
        })
    }
}

impl<'a> Arbitrary<'a> for Cap {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let b = u8::arbitrary(u)?;
        Ok(match b {
            0..0xa0 => Cap::Enough,
            0xa0..0xf0 => Cap::Len(u16::arbitrary(u)?),
            _ => Cap::Wild(b & 1 == 1),
        })
    }
}

impl<'a> Arbitrary<'a> for Key32 {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let b = u8::arbitrary(u)?;
        Ok(match b {
            0..0xc0 => Key32::Std,
            0xc0..0xf0 => Key32::Other(b),
            _ => Key32::Null,
        })
    }
}

impl<'a> Arbitrary<'a> for KeyArg {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let b = u8::arbitrary(u)?;
        let derived = |u: Ur<'a, '_>| -> arbitrary::Result<KeyArg> {
            Ok(KeyArg::Derived {
                short: b & 1 == 1,
                seed: u8::arbitrary(u)?,
            })
        };
        Ok(match b {
            0..0x80 => derived(u)?,
            0x80..0xb0 => KeyArg::Pool(u8::arbitrary(u)?),
            0xb0..0xe0 => KeyArg::Bytes(Vec::arbitrary(u)?),
            _ => match b & 3 {
                0 => KeyArg::Weak { short: b & 4 != 0 },
                1 => KeyArg::Null,
                2 => KeyArg::Wild(b & 4 != 0),
                _ => derived(u)?,
            },
        })
    }
}

impl<'a> Arbitrary<'a> for KmsSrc {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let b = u8::arbitrary(u)?;
        Ok(match b {
            0..0x70 => KmsSrc::Local(b),
            0x70..0xe0 => KmsSrc::Fake,
            _ if b & 1 == 0 => KmsSrc::Null,
            _ => KmsSrc::Empty,
        })
    }
}

impl<'a> Arbitrary<'a> for XtsLen {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let b = u8::arbitrary(u)?;
        Ok(match b {
            0..0xa0 => XtsLen::Auto(b),
            0xa0..0xf0 => XtsLen::Bytes(u32::arbitrary(u)?),
            _ => XtsLen::Wild(b & 1 == 1),
        })
    }
}

impl<'a> Arbitrary<'a> for IoLen {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let b = u8::arbitrary(u)?;
        Ok(match b {
            0..0xa0 => IoLen::Sectors(b),
            0xa0..0xf0 => IoLen::Bytes(u32::arbitrary(u)?),
            _ => IoLen::Wild(b & 1 == 1),
        })
    }
}

impl<'a> Arbitrary<'a> for Layout {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let b = u8::arbitrary(u)?;
        Ok(match b {
            0..0x60 => Layout::Disjoint {
                a: u16::arbitrary(u)?,
                b: u16::arbitrary(u)?,
            },
            0x60..0xa0 => Layout::InPlace {
                a: u16::arbitrary(u)?,
            },
            0xa0..0xd8 => Layout::Overlap {
                a: u16::arbitrary(u)?,
                d: u16::arbitrary(u)?,
            },
            0xd8..0xe0 => Layout::InCtx {
                off: u16::arbitrary(u)?,
                which: b,
            },
            _ if b & 1 == 0 => Layout::NullIn,
            _ => Layout::NullOut,
        })
    }
}
