//! The `ffi_calls` harness: arbitrary sequences of C ABI calls (the
//! `envol_*` functions of `ffi/`, linked as an rlib through
//! `ffi-shadow/`) with arbitrary arguments — lengths, sector sizes, NULL
//! and misaligned pointers, overlapping and in-place buffers, wiped,
//! never-initialised and scribbled-on contexts, unknown enum values, key
//! services and block devices that fail or answer nonsense.
//!
//! Properties checked after every call:
//! - it returns a status (never `ENVOL_ERR_INTERNAL`, which is a caught
//!   panic) and ASan sees no bad access;
//! - on a non-OK status every output is byte-for-byte untouched (outputs
//!   are filled with a canary pattern first; the documented exceptions —
//!   the needed size on `ENVOL_ERR_BUFFER_TOO_SMALL` from seal/audit-line,
//!   device data on `ENVOL_ERR_IO` from volume reads — are allowed exactly);
//! - nothing is ever written past a buffer's stated capacity;
//! - real results: XTS through the ABI equals `envol::xts::Xts` (soft) for
//!   the same key, decrypt inverts encrypt, acceptance of keys, lengths and
//!   sector runs agrees with the core checks, envelope seal equals the core
//!   seal and opens again, header parse/check/build agree with the core
//!   parser, volume reads are the XTS decryption of the device bytes and
//!   return what was written, unwrapped keys are the ones wrapped, the
//!   volume state word agrees with the calls made, the audit chain verifies.
//!
//! Everything the library may keep a pointer to (device and key-service
//! `user` data, local key-service handles) outlives its users: volumes are
//! closed before the handle their table names is freed.
#![allow(
    clippy::too_many_arguments,
    clippy::large_enum_variant,
    clippy::type_complexity
)]

use std::collections::VecDeque;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::mem::{align_of, size_of};
use std::ptr::{null, null_mut};

use arbitrary::{Arbitrary, Unstructured};
use envol::envelope::{Algorithm, Context, MAX_BLOB, MasterKey, WrappedKey};
use envol::header::{self, CipherSuite, Header, Params, SLOT_SIZE, VolumeState};
use envol::kms::policy::MAX_POLICY_BYTES;
use envol::xts::{Backend, Xts};
use envol_ffi::{
    ENVOL_GRANT_ID_SIZE, ENVOL_HEADER_CONTEXT_PAIRS, ENVOL_MAX_KEY_ID, ENVOL_VOLUME_SIZE,
    ENVOL_XTS_SIZE, envol_backend, envol_backend_arg, envol_block_device, envol_kms_callbacks,
    envol_kv, envol_local_kms, envol_status, envol_status_arg, envol_volume, envol_volume_params,
    envol_xts,
};

/// Most calls one input makes.
const MAX_OPS: usize = 64;
/// Largest caller buffer (data, outputs) one call gets.
const MAX_BUF: usize = 64 * 1024;
/// Bytes after every output buffer that must never change.
const SLACK: usize = 32;
/// XTS contexts, volumes, local key-service handles, disks.
const N_CTX: usize = 3;
const N_VOL: usize = 2;
const N_KMS: usize = 3;
const N_DISK: usize = 2;
/// Pools of values earlier calls produced.
const POOL: usize = 8;

const OK: envol_status = envol_status::ENVOL_OK;

/// The canary byte at index `i` of a buffer: position-dependent, so a
/// shifted or partial write shows.
fn canary(i: usize) -> u8 {
    (i as u8).wrapping_mul(151) ^ 0x5a
}

/// A length no buffer can have: the library must refuse it before it
/// touches anything.
fn wild(max: bool) -> usize {
    if max {
        usize::MAX
    } else {
        isize::MAX as usize + 1
    }
}

// ---------------------------------------------------------------------------
// Arguments as the fuzzer chooses them. Variant 0 / all-zero bytes is the
// ordinary, valid choice, so short inputs already walk the happy path.
// ---------------------------------------------------------------------------

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
enum Role {
    Principal,
    KeyId,
    CtxKey,
    CtxVal,
    Action,
}

const PRINCIPALS: [&str; 6] = ["hv", "op", "eve", "hv\u{e9}", "*", "a b"];
const KEY_IDS: [&str; 8] = [
    "k1",
    "k2",
    "aws-k3",
    "missing",
    "k1 ",
    "k/\u{e4}",
    "a123456789012345678901234567890123456789012345678901234567890123",
    "",
];
const CTX_KEYS: [&str; 6] = ["volume", "tenant", "envol:cipher", "k", "", "volume "];
const CTX_VALS: [&str; 5] = ["vol-1", "t1", "", "vol-2", "x=y,{z}"];
const ACTIONS: [&str; 10] = [
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
const POLICIES: [&str; 5] = [
    r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*"}]}"#,
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Envol":["hv","op"]},"Action":"kms:*"},{"Effect":"Deny","Principal":{"Envol":"eve"},"Action":"kms:*"}]}"#,
    r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":["kms:GenerateDataKey*","kms:Decrypt","kms:ReEncrypt*","kms:DescribeKey","kms:CreateGrant","kms:ListGrants"],"Condition":{"StringLike":{"kms:EncryptionContext:volume":"vol-*"}}},{"Effect":"Allow","Principal":{"Envol":"op"},"Action":"kms:*"}]}"#,
    r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"kms:*"}]}"#,
    r#"{"Statement":["#,
];

/// Readable bytes without a NUL, one more than the longest bound
/// (`in_str` reads at most bound + 1 bytes).
static UNTERMINATED: [u8; MAX_POLICY_BYTES + 1] = [b'u'; MAX_POLICY_BYTES + 1];

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
    cap: Cap,
    #[arbitrary(with = mis)]
    misalign: u8,
    #[arbitrary(with = rare)]
    null: bool,
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
    src: BlobSrc,
    edits: Vec<(u16, u8)>,
    cut: Option<u16>,
    #[arbitrary(with = rare)]
    null: bool,
    #[arbitrary(with = rare)]
    wild: bool,
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
    src: SlotSrc,
    edits: Vec<(u16, u8)>,
    /// Recompute the checksum after the edits.
    fix: bool,
    #[arbitrary(with = rare)]
    null: bool,
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
    src: KmsSrc,
    /// Bit 0: no generate, bit 1: no decrypt, bit 2: no re-encrypt.
    drop: u8,
    /// Not aligned for the table (1..=7 bytes off).
    #[arbitrary(with = mis)]
    misalign: u8,
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
    slot: u8,
    #[arbitrary(with = rare)]
    null: bool,
    #[arbitrary(with = mis)]
    misalign: u8,
}

/// A block-device table argument.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct DevArg {
    disk: u8,
    /// Bit 0: no read, bit 1: no write, bit 2: no flush.
    drop: u8,
    #[arbitrary(with = mis)]
    misalign: u8,
    #[arbitrary(with = rare)]
    null: bool,
}

/// An `envol_volume` pointer argument.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct VolArg {
    idx: u8,
    #[arbitrary(with = mis)]
    misalign: u8,
    #[arbitrary(with = rare)]
    null: bool,
}

/// An `envol_xts` pointer argument.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct CtxArg {
    idx: u8,
    #[arbitrary(with = mis)]
    misalign: u8,
    #[arbitrary(with = rare)]
    null: bool,
}

/// A caller data buffer for volume I/O.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct IoArg {
    off: u16,
    len: IoLen,
    #[arbitrary(with = rare)]
    null: bool,
    /// Point into the `envol_volume` itself at this offset.
    #[arbitrary(with = rare_u16)]
    inside_vol: Option<u16>,
    fill: u8,
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
    raw: Option<Vec<u8>>,
    edits: Vec<(u16, u8)>,
    #[arbitrary(with = rare)]
    null: bool,
    #[arbitrary(with = rare)]
    wild: bool,
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
    status: FStatus,
    len: FLen,
    dek: FDek,
    /// Write garbage over every output buffer first.
    scribble: bool,
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

/// One C ABI call (or a change to the harness's own fakes).
#[derive(Arbitrary, Debug, Clone)]
pub enum Op {
    KmsNew {
        slot: u8,
        #[arbitrary(with = rare)]
        null: bool,
    },
    KmsCreateKey {
        kms: LocalArg,
        creator: S,
        key_id: S,
        policy: PolicyArg,
    },
    VolCreate {
        vol: VolArg,
        dev: DevArg,
        kms: KmsArg,
        principal: S,
        key_id: S,
        params: ParamsArg,
    },
    VolWrite {
        vol: VolArg,
        first: SectorArg,
        buf: IoArg,
    },
    VolRead {
        vol: VolArg,
        first: SectorArg,
        buf: IoArg,
    },
    VolDetach {
        vol: VolArg,
    },
    VolAttach {
        vol: VolArg,
        principal: S,
    },
    VolOpen {
        vol: VolArg,
        dev: DevArg,
        kms: KmsArg,
    },
    VolClose {
        vol: VolArg,
    },
    VolFlush {
        vol: VolArg,
    },
    VolRewrap {
        vol: VolArg,
        principal: S,
        key_id: S,
    },
    VolRetire {
        vol: VolArg,
    },
    VolInfo {
        vol: VolArg,
        #[arbitrary(with = mask)]
        nulls: u8,
        #[arbitrary(with = mis)]
        misalign: u8,
        /// One output (`o % 4`) inside the volume struct at `o`.
        #[arbitrary(with = rare_u16)]
        into_vol: Option<u16>,
    },
    VolBackend {
        vol: VolArg,
    },
    /// Never-initialised memory in an empty volume struct.
    VolScribble {
        vol: u8,
        bytes: Vec<u8>,
    },
    DiskSetup {
        disk: u8,
        size: DiskSize,
    },
    DiskEdit {
        disk: u8,
        pos: u32,
        bytes: Vec<u8>,
    },
    /// Device callbacks fail where bits of `mask` are set (one bit per call).
    DiskFaults {
        disk: u8,
        mask: u64,
        rc: i32,
        garbage: bool,
    },
    DiskPutSlot {
        disk: u8,
        b: bool,
        slot: SlotArg,
    },
    XtsInit {
        ctx: CtxArg,
        key: KeyArg,
        #[arbitrary(with = backend_choice)]
        backend: Option<u32>,
        #[arbitrary(with = mis)]
        misalign: u8,
    },
    XtsData {
        ctx: CtxArg,
        decrypt: bool,
        kind: XtsKind,
        layout: Layout,
        len: XtsLen,
        fill: u8,
    },
    XtsWipe {
        ctx: CtxArg,
    },
    XtsBackend {
        ctx: CtxArg,
    },
    /// Never-initialised memory in a context that is not live.
    XtsScribble {
        ctx: u8,
        bytes: Vec<u8>,
    },
    XtsInitFromBlob {
        ctx: CtxArg,
        kms: KmsArg,
        principal: S,
        blob: BlobArg,
        enc: CtxKv,
    },
    EnvelopeSeal {
        master: Key32,
        key_id: S,
        version: u32,
        ctx: CtxKv,
        secret: KeyArg,
        #[arbitrary(with = mostly_some)]
        nonce: Option<[u8; 12]>,
        out: OutArg,
        #[arbitrary(with = rare)]
        len_null: bool,
    },
    EnvelopeOpen {
        master: Key32,
        blob: BlobArg,
        ctx: CtxKv,
        out: OutArg,
        #[arbitrary(with = rare)]
        len_null: bool,
    },
    HeaderCheck {
        slot: SlotArg,
    },
    HeaderParse {
        a: SlotArg,
        b: SlotArg,
        blob: OutArg,
        #[arbitrary(with = mask)]
        nulls: u8,
        #[arbitrary(with = mis)]
        misalign: u8,
        /// Put the blob output inside slot A at this offset.
        #[arbitrary(with = rare_u16)]
        overlap: Option<u16>,
    },
    HeaderContext {
        params: ParamsArg,
        strings: OutArg,
        #[arbitrary(with = mask)]
        nulls: u8,
        #[arbitrary(with = rare)]
        overlap: bool,
    },
    HeaderUnwrap {
        ctx: CtxArg,
        kms: KmsArg,
        principal: S,
        a: SlotArg,
        b: SlotArg,
    },
    HeaderBuild {
        params: ParamsArg,
        blob: BlobArg,
        sequence: u64,
        dek: KeyArg,
        out: OutArg,
        /// 1: blob inside the output, 2: key inside the output.
        #[arbitrary(with = mask)]
        overlap: u8,
    },
    KmsFree {
        slot: u8,
    },
    KmsSeal {
        kms: LocalArg,
        root: Key32,
        out: OutArg,
        #[arbitrary(with = rare)]
        len_null: bool,
    },
    KmsUnseal {
        slot: u8,
        root: Key32,
        store: StoreArg,
        #[arbitrary(with = rare)]
        out_null: bool,
    },
    KmsPutPolicy {
        kms: LocalArg,
        principal: S,
        key_id: S,
        policy: PolicyArg,
    },
    KmsManage {
        kms: LocalArg,
        what: Manage,
        principal: S,
        key_id: S,
        #[arbitrary(with = rare)]
        out_null: bool,
    },
    KmsDescribe {
        kms: LocalArg,
        principal: S,
        key_id: S,
        #[arbitrary(with = mask)]
        nulls: u8,
    },
    KmsCreateGrant {
        kms: LocalArg,
        principal: S,
        key_id: S,
        grantee: S,
        ops: Vec<S>,
        n_ops: Option<u8>,
        #[arbitrary(with = rare)]
        ops_misalign: bool,
        kind: i32,
        constraint: CtxKv,
        retiring: Option<S>,
        out: OutArg,
    },
    KmsGrantEnd {
        kms: LocalArg,
        revoke: bool,
        principal: S,
        key_id: S,
        grant: GrantArg,
    },
    KmsCount {
        kms: LocalArg,
        protected: bool,
        principal: S,
        key_id: S,
        #[arbitrary(with = rare)]
        null: bool,
    },
    KmsAudit {
        kms: LocalArg,
        index: u16,
        out: OutArg,
        #[arbitrary(with = rare)]
        len_null: bool,
    },
    KmsGenerate {
        kms: LocalArg,
        principal: S,
        key_id: S,
        dek_len: DekLen,
        ctx: CtxKv,
        dek: OutArg,
        blob: OutArg,
        #[arbitrary(with = rare)]
        len_null: bool,
    },
    KmsDecrypt {
        kms: LocalArg,
        principal: S,
        blob: BlobArg,
        ctx: CtxKv,
        out: OutArg,
        #[arbitrary(with = rare)]
        len_null: bool,
    },
    KmsReEncrypt {
        kms: LocalArg,
        principal: S,
        blob: BlobArg,
        src: CtxKv,
        dest: S,
        dst: CtxKv,
        out: OutArg,
        #[arbitrary(with = rare)]
        len_null: bool,
    },
    KmsCallbacks {
        kms: LocalArg,
        #[arbitrary(with = rare)]
        null: bool,
    },
    /// How the fake key service answers its next callbacks (then honestly).
    FakeScript {
        answers: Vec<FakeAnswer>,
    },
    Misc {
        status: u32,
        backend: u32,
    },
    // -- appended: new op numbers go at the end, so old inputs keep theirs.
    /// `envol_volume_encrypt` / `envol_volume_decrypt` (zero-copy).
    VolCrypt {
        vol: VolArg,
        decrypt: bool,
        first: SectorArg,
        len: IoLen,
        /// `InCtx` puts input, output or both inside the volume struct.
        layout: Layout,
        fill: u8,
    },
    /// `envol_volume_set_lease` on the harness clock (or the system clock).
    LeaseSet {
        vol: VolArg,
        duration: u16,
        renew: u16,
        grace: u16,
        #[arbitrary(with = rare)]
        system_clock: bool,
        #[arbitrary(with = rare)]
        null: bool,
    },
    /// Moves the harness's lease clock forward.
    LeaseAdvance {
        secs: u16,
    },
    VolMaintain {
        vol: VolArg,
        #[arbitrary(with = rare)]
        info_null: bool,
        #[arbitrary(with = mis)]
        misalign: u8,
    },
    VolOpenExpect {
        vol: VolArg,
        dev: DevArg,
        kms: KmsArg,
        id: IdArg,
    },
    VolOverwrite {
        vol: VolArg,
        dev: DevArg,
        kms: KmsArg,
        principal: S,
        key_id: S,
        params: ParamsArg,
    },
    KmsServicePolicy {
        kms: LocalArg,
        principal: S,
        policy: PolicyArg,
    },
    KmsForgetVolume {
        kms: LocalArg,
        principal: S,
        key_id: S,
        ctx: CtxKv,
    },
    KmsAuditHead {
        kms: LocalArg,
        out: OutArg,
        #[arbitrary(with = rare)]
        len_null: bool,
    },
    /// `envol_local_kms_audit_verify_lines` on the last `lines % 64 + 1`
    /// event lines, `mutate`d (one byte XORed) or not; `head` picks the
    /// head argument (below 0xe0: the current head).
    KmsAuditVerifyLines {
        kms: LocalArg,
        lines: u8,
        mutate: Option<(u16, u8)>,
        head: u8,
        from_genesis: bool,
    },
    /// `envol_local_kms_set_audit_sink`: `mode % 4` = 0 a good sink,
    /// 1 a failing sink, 2 none (NULL), 3 toggle the installed sink's
    /// failure flag without a call. `probe`: then make one audited call.
    KmsAuditSink {
        kms: LocalArg,
        mode: u8,
        probe: bool,
    },
    HeaderUnwrapExpect {
        ctx: CtxArg,
        kms: KmsArg,
        principal: S,
        a: SlotArg,
        b: SlotArg,
        id: IdArg,
        #[arbitrary(with = rare)]
        slot_null: bool,
    },
}

// Odd choices (NULL, misaligned, past the address space) are rare, so most
// calls get past their first checks: a selector byte picks the ordinary
// choice for most values and an odd one for the top few.

type Ur<'a, 'b> = &'b mut Unstructured<'a>;

/// A flag set for 1 byte value in 16.
fn rare(u: Ur<'_, '_>) -> arbitrary::Result<bool> {
    Ok(u8::arbitrary(u)? >= 0xf0)
}

/// A misalignment: usually 0, else an odd offset below 64.
fn mis(u: Ur<'_, '_>) -> arbitrary::Result<u8> {
    let b = u8::arbitrary(u)?;
    Ok(if b >= 0xf0 { (b & 0x3f) | 1 } else { 0 })
}

/// Usually nothing, rarely a value.
fn rare_u16(u: Ur<'_, '_>) -> arbitrary::Result<Option<u16>> {
    Ok(if rare(u)? {
        Some(u16::arbitrary(u)?)
    } else {
        None
    })
}

/// Usually a value, rarely nothing (a NULL pointer).
fn mostly_some(u: Ur<'_, '_>) -> arbitrary::Result<Option<[u8; 12]>> {
    Ok(if rare(u)? {
        None
    } else {
        Some(<[u8; 12]>::arbitrary(u)?)
    })
}

/// A backend argument: usually none (`envol_xts_init`), else a known
/// number, rarely any number.
fn backend_choice(u: Ur<'_, '_>) -> arbitrary::Result<Option<u32>> {
    let b = u8::arbitrary(u)?;
    Ok(match b {
        0..0x80 => None,
        0x80..0xf0 => Some(u32::from(b % 6)),
        _ => Some(u32::arbitrary(u)?),
    })
}

/// A bit mask of NULL outputs: usually none.
fn mask(u: Ur<'_, '_>) -> arbitrary::Result<u8> {
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

// ---------------------------------------------------------------------------
// Buffers.
// ---------------------------------------------------------------------------

/// A canary-filled caller buffer: `len` usable bytes at `off`, slack after.
struct Buf {
    mem: Vec<u8>,
    off: usize,
    len: usize,
    null: bool,
}

impl Buf {
    /// `len` bytes whose pointer is `misalign` bytes past an address
    /// aligned to `align`.
    fn new(len: usize, align: usize, misalign: usize, null: bool) -> Buf {
        let mut mem: Vec<u8> = (0..len + align + misalign + SLACK).map(canary).collect();
        let base = mem.as_mut_ptr() as usize;
        let off = (align - base % align) % align + misalign;
        Buf {
            mem,
            off,
            len,
            null,
        }
    }

    /// An aligned output of one `T`.
    fn typed<T>(null: bool) -> Buf {
        Buf::new(size_of::<T>(), align_of::<T>(), 0, null)
    }

    fn ptr(&mut self) -> *mut u8 {
        if self.null {
            null_mut()
        } else {
            // SAFETY: `off` is inside `mem`.
            unsafe { self.mem.as_mut_ptr().add(self.off) }
        }
    }

    fn cast<T>(&mut self) -> *mut T {
        self.ptr().cast()
    }

    fn bytes(&self) -> &[u8] {
        &self.mem[self.off..self.off + self.len]
    }

    /// Nothing written at all.
    fn intact(&self) -> bool {
        self.mem.iter().enumerate().all(|(i, &b)| b == canary(i))
    }

    /// Nothing written outside the usable bytes.
    fn slack_intact(&self) -> bool {
        self.mem
            .iter()
            .enumerate()
            .filter(|(i, _)| *i < self.off || *i >= self.off + self.len)
            .all(|(i, &b)| b == canary(i))
    }

    /// Nothing written after the first `n` usable bytes.
    fn intact_after(&self, n: usize) -> bool {
        self.mem
            .iter()
            .enumerate()
            .filter(|(i, _)| *i < self.off || *i >= self.off + n)
            .all(|(i, &b)| b == canary(i))
    }

    fn read<T: Copy>(&self) -> T {
        // SAFETY: `len >= size_of::<T>()` for typed buffers, and every use
        // reads plain integers.
        unsafe { self.mem.as_ptr().add(self.off).cast::<T>().read_unaligned() }
    }
}

/// An output buffer as the fuzzer described it; `natural` is the size that
/// always suffices. Returns the buffer and the capacity to pass.
fn out_buf(a: OutArg, natural: usize) -> (Buf, usize) {
    let cap = match a.cap {
        Cap::Enough => natural,
        Cap::Len(n) => usize::from(n) % (MAX_BUF + 1),
        Cap::Wild(m) => wild(m),
    };
    // Past the address space the library must refuse before writing; the
    // real room is what the library could ever write.
    let real = if cap > MAX_BUF {
        MAX_BUF.max(natural)
    } else {
        cap
    };
    (
        Buf::new(real, 16, usize::from(a.misalign % 16), a.null),
        cap,
    )
}

/// Keeps what the pointers of one call point to alive until it returns.
/// Inner vectors never move when the outer ones grow.
#[derive(Default)]
struct Hold {
    bytes: Vec<Vec<u8>>,
    kvs: Vec<Vec<envol_kv>>,
    ptrs: Vec<Vec<*const c_char>>,
}

impl Hold {
    fn keep(&mut self, v: Vec<u8>) -> *mut u8 {
        self.bytes.push(v);
        self.bytes.last_mut().map_or(null_mut(), |v| v.as_mut_ptr())
    }

    /// `s` NUL-terminated.
    fn c(&mut self, s: &[u8]) -> *const c_char {
        let mut v = s.to_vec();
        v.push(0);
        self.keep(v).cast_const().cast()
    }

    /// A string argument, and the Rust string it is if it is one.
    fn s(&mut self, s: &S, role: Role) -> (*const c_char, Option<String>) {
        let pool: &[&str] = match role {
            Role::Principal => &PRINCIPALS,
            Role::KeyId => &KEY_IDS,
            Role::CtxKey => &CTX_KEYS,
            Role::CtxVal => &CTX_VALS,
            Role::Action => &ACTIONS,
        };
        let bytes: Vec<u8> = match s {
            S::Pool(i) => pool[usize::from(*i) % pool.len()].as_bytes().to_vec(),
            S::Null => return (null(), None),
            S::Empty => Vec::new(),
            S::Long(n) => vec![b'x'; usize::from(*n) % 1100],
            S::NotUtf8 => return (self.c(b"k\xff\xfe"), None),
            S::Unterminated => return (UNTERMINATED.as_ptr().cast(), None),
            S::Raw(v) => v
                .iter()
                .copied()
                .take_while(|&b| b != 0)
                .take(300)
                .collect(),
        };
        let p = self.c(&bytes);
        (p, String::from_utf8(bytes).ok())
    }

    fn policy(&mut self, p: &PolicyArg) -> *const c_char {
        match p {
            PolicyArg::Pool(i) => self.c(POLICIES[usize::from(*i) % POLICIES.len()].as_bytes()),
            PolicyArg::Raw(v) => {
                let b: Vec<u8> = v.iter().copied().take_while(|&b| b != 0).collect();
                self.c(&b)
            }
            PolicyArg::Null => null(),
            PolicyArg::Unterminated => UNTERMINATED.as_ptr().cast(),
            PolicyArg::Huge => {
                let mut s = POLICIES[0].as_bytes().to_vec();
                s.resize(MAX_POLICY_BYTES + 10, b' ');
                self.c(&s)
            }
        }
    }

    /// A context argument; with the pairs as Rust strings when they all are.
    fn ctx(
        &mut self,
        c: &CtxKv,
        params: &[envol_volume_params],
    ) -> (*const envol_kv, usize, Option<Vec<(String, String)>>) {
        let pairs_of = |h: &mut Hold, list: &[(S, S)]| {
            let mut kv = Vec::new();
            let mut rust = Some(Vec::new());
            for (k, v) in list.iter().take(17) {
                let (kp, ks) = h.s(k, Role::CtxKey);
                let (vp, vs) = h.s(v, Role::CtxVal);
                match (ks, vs, rust.as_mut()) {
                    (Some(ks), Some(vs), Some(r)) => r.push((ks, vs)),
                    _ => rust = None,
                }
                kv.push(envol_kv { key: kp, value: vp });
            }
            (kv, rust)
        };
        match c {
            CtxKv::Empty => (null(), 0, Some(Vec::new())),
            CtxKv::Pairs(list) => {
                let (kv, rust) = pairs_of(self, list);
                let n = kv.len();
                self.kvs.push(kv);
                let p = self.kvs.last().map_or(null(), |v| v.as_ptr());
                (p, n, rust)
            }
            CtxKv::OfParams(pa) => {
                let Some(p) = params_value(pa, params).and_then(|p| rust_params(&p)) else {
                    return (null(), 0, Some(Vec::new()));
                };
                let shell = Header {
                    params: p,
                    state: VolumeState::Active,
                    sequence: 0,
                    blob: &[],
                    mac: [0; 32],
                };
                let strings = shell.context_strings();
                let ctx = strings.context();
                let rust: Vec<(String, String)> = ctx
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                let kv: Vec<envol_kv> = rust
                    .iter()
                    .map(|(k, v)| envol_kv {
                        key: self.c(k.as_bytes()),
                        value: self.c(v.as_bytes()),
                    })
                    .collect();
                let n = kv.len();
                self.kvs.push(kv);
                let p = self.kvs.last().map_or(null(), |v| v.as_ptr());
                (p, n, Some(rust))
            }
            // NULL is the empty context when the length is 0.
            CtxKv::Null(n) => (null(), usize::from(*n), (*n == 0).then(Vec::new)),
            CtxKv::Misaligned(list) => {
                let (kv, _) = pairs_of(self, list);
                let n = kv.len().max(1);
                let mut raw = vec![0u8; n * size_of::<envol_kv>() + 16];
                let base = raw.as_mut_ptr() as usize;
                let off = (8 - base % 8) % 8 + 1 + (n % 7);
                for (i, p) in kv.iter().enumerate() {
                    // SAFETY: inside `raw` (16 bytes of room for `off`).
                    unsafe {
                        raw.as_mut_ptr()
                            .add(off + i * size_of::<envol_kv>())
                            .cast::<envol_kv>()
                            .write_unaligned(*p);
                    }
                }
                let p = self.keep(raw);
                // SAFETY: inside the kept buffer.
                (unsafe { p.add(off) }.cast_const().cast(), n, None)
            }
            CtxKv::Over(n) => {
                let (kv, _) = pairs_of(self, &[(S::Pool(0), S::Pool(0))]);
                self.kvs.push(kv);
                let p = self.kvs.last().map_or(null(), |v| v.as_ptr());
                (p, 17 + usize::from(*n), None)
            }
        }
    }
}

/// C volume parameters as core ones, if valid.
fn rust_params(p: &envol_volume_params) -> Option<Params> {
    let suite = match p.cipher {
        1 => CipherSuite::AesXts256Plain64,
        2 => CipherSuite::AesXts128Plain64,
        _ => return None,
    };
    let r = Params {
        suite,
        sector_size: p.sector_size,
        data_offset: p.data_offset,
        volume_size: p.volume_size,
        volume_id: p.volume_id,
    };
    r.check().ok().map(|()| r)
}

fn c_params(p: &Params) -> envol_volume_params {
    envol_volume_params {
        cipher: match p.suite {
            CipherSuite::AesXts256Plain64 => 1,
            CipherSuite::AesXts128Plain64 => 2,
        },
        sector_size: p.sector_size,
        data_offset: p.data_offset,
        volume_size: p.volume_size,
        volume_id: p.volume_id,
    }
}

/// The parameters an argument describes (`None`: a NULL pointer).
fn params_value(a: &ParamsArg, pool: &[envol_volume_params]) -> Option<envol_volume_params> {
    Some(match a {
        ParamsArg::Small {
            cipher,
            ss,
            offset,
            sectors,
            id,
        } => {
            let cipher = match cipher {
                CipherArg::X256 => 1,
                CipherArg::X128 => 2,
                CipherArg::Raw(c) => *c,
            };
            let ss = match ss {
                SsArg::S512 => 512,
                SsArg::S4096 => 4096,
                SsArg::S1024 => 1024,
                SsArg::S65536 => 65536,
                SsArg::Raw(r) => *r,
            };
            let data_offset = match offset {
                OffArg::Min => 8192u64.max(u64::from(ss)),
                OffArg::Mib => 1 << 20,
                OffArg::Raw(o) => *o,
            };
            let n = if *sectors == 0 {
                16
            } else {
                u64::from(*sectors)
            };
            envol_volume_params {
                cipher,
                sector_size: ss,
                data_offset,
                volume_size: n.wrapping_mul(u64::from(ss)),
                // Byte 0 (the ordinary choice) is a valid, non-zero id; one
                // value still gives the refused all-zero id.
                volume_id: [*id ^ 0x5a; 16],
            }
        }
        ParamsArg::Pool(i) => {
            if pool.is_empty() {
                return params_value(
                    &ParamsArg::Small {
                        cipher: CipherArg::X256,
                        ss: SsArg::S512,
                        offset: OffArg::Min,
                        sectors: 0,
                        id: *i,
                    },
                    pool,
                );
            }
            *newest(pool, *i)?
        }
        ParamsArg::Raw {
            cipher,
            ss,
            offset,
            size,
            id,
        } => envol_volume_params {
            cipher: *cipher,
            sector_size: *ss,
            data_offset: *offset,
            volume_size: *size,
            volume_id: *id,
        },
        ParamsArg::Null => return None,
    })
}

/// Recomputes the checksum of a header slot (length at 12..16, SHA-256 of
/// everything before the last 32 bytes), as `header_parse_fixed` does.
fn fix_checksum(slot: &mut [u8]) {
    use sha2::Digest;
    let len = u32::from_le_bytes([slot[12], slot[13], slot[14], slot[15]]) as usize;
    if (100..=SLOT_SIZE).contains(&len) {
        let sum: [u8; 32] = sha2::Sha256::digest(&slot[..len - 32]).into();
        slot[len - 32..len].copy_from_slice(&sum);
    }
}

fn apply_edits(v: &mut [u8], edits: &[(u16, u8)]) {
    if v.is_empty() {
        return;
    }
    for &(pos, b) in edits.iter().take(32) {
        let n = v.len();
        v[usize::from(pos) % n] = b;
    }
}

/// A good XTS key of `len` bytes (halves differ).
fn derived_key(len: usize, seed: u8) -> Vec<u8> {
    let mut k: Vec<u8> = (0..len)
        .map(|i| seed.wrapping_add(i as u8).wrapping_mul(0x9d) ^ (i as u8))
        .collect();
    let half = len / 2;
    if k[..half] == k[half..] {
        k[0] ^= 1;
    }
    k
}

/// The backend a C backend number names (`ENVOL_BACKEND_*`, 1..=5).
fn backend_of(n: u32) -> Option<Backend> {
    Some(match n {
        1 => Backend::Soft,
        2 => Backend::Aesni,
        3 => Backend::Vaes256,
        4 => Backend::Vaes512,
        5 => Backend::Armv8,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// The fake key service: honest by default (real AES-GCM blobs under a fixed
// master key, or AWS-style opaque blobs for key ids starting with "aws"),
// scripted to fail or lie by `FakeScript`.
// ---------------------------------------------------------------------------

const FAKE_MASTER: [u8; 32] = [0x42; 32];

struct Fake {
    script: VecDeque<FakeAnswer>,
    counter: u64,
    /// The data key the last generate callback that reported success left
    /// in envol's buffer (the key envol then uses).
    last_gen: Option<Vec<u8>>,
    /// Likewise for decrypt (the first `*dek_len` bytes, if 32 or 64).
    last_dec: Option<Vec<u8>>,
}

/// A C context as Rust pairs.
///
/// # Safety
/// `ctx` valid for `n` pairs of NUL-terminated strings (the table's
/// contract: envol passes its own copies).
unsafe fn c_pairs(ctx: *const envol_kv, n: usize) -> Option<Vec<(String, String)>> {
    if n == 0 {
        return Some(Vec::new());
    }
    if ctx.is_null() {
        return None;
    }
    // SAFETY: forwarded contract.
    let kv = unsafe { std::slice::from_raw_parts(ctx, n) };
    let mut out = Vec::new();
    for p in kv {
        if p.key.is_null() || p.value.is_null() {
            return None;
        }
        // SAFETY: forwarded contract.
        let (k, v) = unsafe { (CStr::from_ptr(p.key), CStr::from_ptr(p.value)) };
        out.push((k.to_str().ok()?.to_owned(), v.to_str().ok()?.to_owned()));
    }
    Some(out)
}

/// # Safety
/// `p` NULL or NUL-terminated.
unsafe fn c_string(p: *const c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: forwarded contract.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .ok()
        .map(str::to_owned)
}

/// An 8-byte digest of a context, for the opaque fake blobs.
fn ctx_hash(pairs: &[(String, String)]) -> [u8; 8] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for (k, v) in pairs {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    let d: [u8; 32] = h.finalize().into();
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    out
}

fn status_code(s: envol_status) -> u32 {
    s as u32
}

impl Fake {
    fn next_answer(&mut self) -> Option<FakeAnswer> {
        self.script.pop_front()
    }

    /// Wraps `dek` honestly under `key_id` for `pairs`.
    fn wrap(
        &mut self,
        key_id: &str,
        pairs: &[(String, String)],
        dek: &[u8],
    ) -> Result<Vec<u8>, u32> {
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let ctx = Context::new(&refs).map_err(|_| status_code(envol_status::ENVOL_ERR_CONTEXT))?;
        if key_id == "missing" {
            return Err(status_code(envol_status::ENVOL_ERR_KEY_NOT_FOUND));
        }
        let mut out = vec![0u8; MAX_BLOB];
        let n = if key_id.starts_with("aws") {
            let mut ct: Vec<u8> = dek.iter().map(|b| b ^ 0x36).collect();
            ct.extend_from_slice(&ctx_hash(pairs));
            let w = WrappedKey::from_opaque(Algorithm::AwsKms, key_id, &ct)
                .map_err(|_| status_code(envol_status::ENVOL_ERR_KEY_ID))?;
            w.encode(&mut out)
                .map_err(|_| status_code(envol_status::ENVOL_ERR_KEY_ID))?
        } else {
            self.counter += 1;
            let mut nonce = [0u8; 12];
            nonce[..8].copy_from_slice(&self.counter.to_le_bytes());
            MasterKey::from_bytes(FAKE_MASTER)
                .seal_with_nonce(key_id, 1, &ctx, dek, &nonce, &mut out)
                .map_err(|_| status_code(envol_status::ENVOL_ERR_KEY_ID))?
        };
        out.truncate(n);
        Ok(out)
    }

    /// Unwraps an honest blob.
    fn unwrap(blob: &[u8], pairs: &[(String, String)]) -> Result<Vec<u8>, u32> {
        let bad = status_code(envol_status::ENVOL_ERR_INVALID_CIPHERTEXT);
        let w = WrappedKey::parse(blob).map_err(|_| bad)?;
        match w.algorithm() {
            Algorithm::Aes256Gcm => {
                let refs: Vec<(&str, &str)> = pairs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let ctx = Context::new(&refs).map_err(|_| bad)?;
                let mut out = vec![0u8; envol::envelope::MAX_SECRET];
                let n = w
                    .open(&MasterKey::from_bytes(FAKE_MASTER), &ctx, &mut out)
                    .map_err(|_| bad)?;
                out.truncate(n);
                Ok(out)
            }
            Algorithm::AwsKms => {
                let ct = w.ciphertext();
                if ct.len() < 8 || ct[ct.len() - 8..] != ctx_hash(pairs) {
                    return Err(bad);
                }
                Ok(ct[..ct.len() - 8].iter().map(|b| b ^ 0x36).collect())
            }
            _ => Err(bad),
        }
    }

    fn fresh_dek(&mut self, len: usize) -> Vec<u8> {
        self.counter += 1;
        derived_key(len, self.counter as u8 ^ (self.counter >> 8) as u8)
    }
}

/// Writes `src` (at most `cap` bytes of it) to `dst`.
///
/// # Safety
/// `dst` valid for `cap` writes.
unsafe fn put(dst: *mut u8, cap: usize, src: &[u8]) {
    let n = src.len().min(cap);
    // SAFETY: forwarded contract.
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, n) };
}

/// # Safety
/// `dst` valid for `cap` writes.
unsafe fn scribble(dst: *mut u8, cap: usize) {
    // SAFETY: forwarded contract.
    unsafe { std::ptr::write_bytes(dst, 0xee, cap) };
}

/// Applies an answer's key edits to the key in `dek` (`n` bytes).
///
/// # Safety
/// `dek` valid for `n` reads and writes.
unsafe fn edit_dek(dek: *mut u8, n: usize, how: FDek) {
    if n == 0 {
        return;
    }
    match how {
        FDek::Honest => {}
        // SAFETY: index below `n`.
        FDek::Flip(bit) => unsafe {
            let i = (usize::from(bit) / 8) % n;
            *dek.add(i) ^= 1 << (bit % 8);
        },
        // SAFETY: forwarded contract.
        FDek::Pattern(p) => unsafe { std::ptr::write_bytes(dek, p, n) },
    }
}

fn answer_status(a: &FakeAnswer, honest: u32) -> u32 {
    match a.status {
        FStatus::Honest => honest,
        FStatus::Ok => 0,
        FStatus::Known(k) => u32::from(k) % 40,
        FStatus::Raw(r) => r,
    }
}

fn answer_len(a: &FakeAnswer, honest: usize, cap: usize) -> Option<usize> {
    Some(match a.len {
        FLen::Honest => honest,
        FLen::Zero => 0,
        FLen::Cap => cap,
        FLen::CapPlus(k) => cap.saturating_add(1 + usize::from(k)),
        FLen::Max => usize::MAX,
        FLen::Raw(n) => usize::from(n),
        FLen::Untouched => return None,
    })
}

unsafe extern "C" fn fake_generate(
    user: *mut c_void,
    principal: *const c_char,
    key_id: *const c_char,
    dek_len: usize,
    ctx: *const envol_kv,
    ctx_len: usize,
    dek_out: *mut u8,
    blob_out: *mut u8,
    blob_cap: usize,
    blob_len: *mut usize,
) -> envol_status_arg {
    // SAFETY: `user` is the harness's `Fake`, reached only through this
    // pointer while a call runs; the rest is the table's contract.
    unsafe {
        let f = &mut *user.cast::<Fake>();
        f.last_gen = None;
        let answer = f.next_answer();
        let p = c_string(principal);
        let id = c_string(key_id);
        let pairs = c_pairs(ctx, ctx_len);
        let room = dek_len.min(64);
        let honest: Result<(Vec<u8>, Vec<u8>), u32> = match (p, id, pairs) {
            (Some(p), _, _) if p == "eve" => {
                Err(status_code(envol_status::ENVOL_ERR_ACCESS_DENIED))
            }
            (Some(_), Some(id), Some(pairs)) if dek_len == 32 || dek_len == 64 => {
                let dek = f.fresh_dek(dek_len);
                f.wrap(&id, &pairs, &dek).and_then(|blob| {
                    if blob.len() > blob_cap {
                        Err(status_code(envol_status::ENVOL_ERR_BUFFER_TOO_SMALL))
                    } else {
                        Ok((dek, blob))
                    }
                })
            }
            _ => Err(status_code(envol_status::ENVOL_ERR_INVALID_ARGUMENT)),
        };
        let a = answer.unwrap_or(FakeAnswer {
            status: FStatus::Honest,
            len: FLen::Honest,
            dek: FDek::Honest,
            scribble: false,
        });
        if a.scribble {
            scribble(dek_out, room);
            scribble(blob_out, blob_cap.min(MAX_BLOB));
        }
        let (status, n) = match &honest {
            Ok((dek, blob)) => {
                put(dek_out, room, dek);
                put(blob_out, blob_cap, blob);
                (0, blob.len())
            }
            Err(s) => (*s, 0),
        };
        edit_dek(dek_out, room, a.dek);
        if let Some(len) = answer_len(&a, n, blob_cap) {
            blob_len.write(len);
        }
        let status = answer_status(&a, status);
        if status == 0 {
            f.last_gen = Some(std::slice::from_raw_parts(dek_out, room).to_vec());
        }
        envol_status_arg(status)
    }
}

unsafe extern "C" fn fake_decrypt(
    user: *mut c_void,
    principal: *const c_char,
    blob: *const u8,
    blob_len: usize,
    ctx: *const envol_kv,
    ctx_len: usize,
    dek_out: *mut u8,
    dek_cap: usize,
    dek_len: *mut usize,
) -> envol_status_arg {
    // SAFETY: as for `fake_generate`.
    unsafe {
        let f = &mut *user.cast::<Fake>();
        f.last_dec = None;
        let answer = f.next_answer();
        let p = c_string(principal);
        let pairs = c_pairs(ctx, ctx_len);
        let blob = std::slice::from_raw_parts(blob, blob_len);
        let honest = match (p, pairs) {
            (Some(p), _) if p == "eve" => Err(status_code(envol_status::ENVOL_ERR_ACCESS_DENIED)),
            (Some(_), Some(pairs)) => Fake::unwrap(blob, &pairs).and_then(|dek| {
                if dek.len() > dek_cap {
                    Err(status_code(envol_status::ENVOL_ERR_BUFFER_TOO_SMALL))
                } else {
                    Ok(dek)
                }
            }),
            _ => Err(status_code(envol_status::ENVOL_ERR_INVALID_ARGUMENT)),
        };
        let a = answer.unwrap_or(FakeAnswer {
            status: FStatus::Honest,
            len: FLen::Honest,
            dek: FDek::Honest,
            scribble: false,
        });
        if a.scribble {
            scribble(dek_out, dek_cap);
        }
        let (status, n) = match &honest {
            Ok(dek) => {
                put(dek_out, dek_cap, dek);
                (0, dek.len())
            }
            Err(s) => (*s, 0),
        };
        edit_dek(dek_out, n.min(dek_cap), a.dek);
        let reported = answer_len(&a, n, dek_cap);
        if let Some(len) = reported {
            dek_len.write(len);
        }
        let status = answer_status(&a, status);
        if status == 0
            && let Some(len @ (32 | 64)) = reported
            && len <= dek_cap
        {
            f.last_dec = Some(std::slice::from_raw_parts(dek_out, len).to_vec());
        }
        envol_status_arg(status)
    }
}

unsafe extern "C" fn fake_re_encrypt(
    user: *mut c_void,
    principal: *const c_char,
    blob: *const u8,
    blob_len: usize,
    src_ctx: *const envol_kv,
    src_len: usize,
    dest_key_id: *const c_char,
    dst_ctx: *const envol_kv,
    dst_len: usize,
    blob_out: *mut u8,
    blob_cap: usize,
    out_len: *mut usize,
) -> envol_status_arg {
    // SAFETY: as for `fake_generate`.
    unsafe {
        let f = &mut *user.cast::<Fake>();
        let answer = f.next_answer();
        let p = c_string(principal);
        let id = c_string(dest_key_id);
        let src = c_pairs(src_ctx, src_len);
        let dst = c_pairs(dst_ctx, dst_len);
        let blob = std::slice::from_raw_parts(blob, blob_len);
        let honest = match (p, id, src, dst) {
            (Some(p), ..) if p == "eve" => Err(status_code(envol_status::ENVOL_ERR_ACCESS_DENIED)),
            (Some(_), Some(id), Some(src), Some(dst)) => Fake::unwrap(blob, &src)
                .and_then(|dek| f.wrap(&id, &dst, &dek))
                .and_then(|b| {
                    if b.len() > blob_cap {
                        Err(status_code(envol_status::ENVOL_ERR_BUFFER_TOO_SMALL))
                    } else {
                        Ok(b)
                    }
                }),
            _ => Err(status_code(envol_status::ENVOL_ERR_INVALID_ARGUMENT)),
        };
        let a = answer.unwrap_or(FakeAnswer {
            status: FStatus::Honest,
            len: FLen::Honest,
            dek: FDek::Honest,
            scribble: false,
        });
        if a.scribble {
            scribble(blob_out, blob_cap.min(MAX_BLOB));
        }
        let (status, n) = match &honest {
            Ok(b) => {
                put(blob_out, blob_cap, b);
                (0, b.len())
            }
            Err(s) => (*s, 0),
        };
        if let Some(len) = answer_len(&a, n, blob_cap) {
            out_len.write(len);
        }
        envol_status_arg(answer_status(&a, status))
    }
}

// ---------------------------------------------------------------------------
// The in-memory block device.
// ---------------------------------------------------------------------------

struct Disk {
    bytes: Vec<u8>,
    /// One bit per callback call: set means that call fails.
    mask: u64,
    rc: c_int,
    /// Failed reads scribble the buffer, failed writes tear.
    garbage: bool,
}

impl Disk {
    fn fault(&mut self) -> Option<c_int> {
        let f = self.mask & 1 == 1;
        self.mask >>= 1;
        f.then_some(if self.rc == 0 { 5 } else { self.rc })
    }

    fn range(&self, off: u64, len: usize) -> Option<std::ops::Range<usize>> {
        let o = usize::try_from(off).ok()?;
        let end = o.checked_add(len)?;
        (end <= self.bytes.len()).then_some(o..end)
    }
}

const DEFAULT_DISK: usize = 64 * 1024;

unsafe extern "C" fn disk_read(user: *mut c_void, off: u64, buf: *mut u8, len: usize) -> c_int {
    // SAFETY: `user` is a live `Disk` reached only through this pointer
    // while a call runs; `buf` is valid for `len` writes (the contract).
    unsafe {
        let d = &mut *user.cast::<Disk>();
        if let Some(rc) = d.fault() {
            if d.garbage {
                std::ptr::write_bytes(buf, 0xdd, len);
            }
            return rc;
        }
        let Some(r) = d.range(off, len) else {
            return 22;
        };
        std::ptr::copy_nonoverlapping(d.bytes[r].as_ptr(), buf, len);
        0
    }
}

unsafe extern "C" fn disk_write(user: *mut c_void, off: u64, buf: *const u8, len: usize) -> c_int {
    // SAFETY: as for `disk_read`; `buf` is valid for `len` reads.
    unsafe {
        let d = &mut *user.cast::<Disk>();
        let Some(r) = d.range(off, len) else {
            return 22;
        };
        if let Some(rc) = d.fault() {
            if d.garbage {
                // A torn write: the first half lands.
                let half = len / 2;
                d.bytes[r.start..r.start + half]
                    .copy_from_slice(std::slice::from_raw_parts(buf, half));
            }
            return rc;
        }
        d.bytes[r].copy_from_slice(std::slice::from_raw_parts(buf, len));
        0
    }
}

unsafe extern "C" fn disk_flush(user: *mut c_void) -> c_int {
    // SAFETY: as for `disk_read`.
    unsafe {
        let d = &mut *user.cast::<Disk>();
        d.fault().unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------
// Harness state.
// ---------------------------------------------------------------------------

/// What an XTS context holds, as far as the harness knows.
#[derive(Clone, Debug)]
enum XState {
    /// Zero bytes, or garbage that is not a live state word.
    Dead,
    Live {
        key: Option<Vec<u8>>,
        backend: Backend,
    },
}

/// Which key service a volume's stored table calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Svc {
    Local(usize),
    Fake,
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VState {
    Empty,
    Detached,
    Attached,
}

#[derive(Clone, Debug)]
struct VolRec {
    state: VState,
    disk: usize,
    svc: Svc,
    params: Option<envol_volume_params>,
    /// The data key while attached, when the harness knows it.
    dek: Option<Vec<u8>>,
    /// The key the header MAC is under, when known.
    header_dek: Option<Vec<u8>>,
    /// The lease `envol_volume_set_lease` set (kept across detach/attach).
    lease: Option<LeaseRec>,
    /// Attached, but the key was wiped by a lost lease.
    wiped: bool,
}

#[derive(Clone, Copy, Debug)]
struct LeaseRec {
    duration: u64,
    grace: u64,
    /// On the harness clock (else the system clock).
    harness: bool,
}

/// Where the harness's lease clock starts.
const CLOCK_START: u64 = 1_000_000;

unsafe extern "C" fn lease_now(user: *mut c_void) -> u64 {
    // SAFETY: `user` is the harness's clock, alive while any volume is,
    // changed only between calls.
    unsafe { *user.cast::<u64>() }
}

/// A harness audit sink: keeps the lines it gets, or fails when told to.
struct Sink {
    installed: bool,
    fail: bool,
    lines: Vec<Vec<u8>>,
}

unsafe extern "C" fn audit_sink(user: *mut c_void, line: *const c_char, len: usize) -> c_int {
    // SAFETY: `user` is a live `Sink` reached only through this pointer
    // while a call runs; `line` is valid for `len + 1` reads (the contract).
    unsafe {
        let s = &mut *user.cast::<Sink>();
        if s.fail {
            return 5;
        }
        let l = std::slice::from_raw_parts(line.cast::<u8>(), len + 1);
        assert_eq!(l[len], 0, "sink line not NUL-terminated");
        assert!(!l[..len].contains(&0) && !l[..len].contains(&b'\n'));
        if s.lines.len() >= 64 {
            s.lines.remove(0);
        }
        s.lines.push(l[..len].to_vec());
        0
    }
}

/// 64-byte aligned room for the XTS contexts, plus room to misalign.
#[repr(C, align(64))]
struct XtsArena([u8; N_CTX * ENVOL_XTS_SIZE + 64]);

/// One `envol_volume` plus room to misalign.
#[repr(C, align(64))]
struct VolBox([u8; ENVOL_VOLUME_SIZE + 64]);

/// A blob an earlier call produced, with its data key when known.
#[derive(Clone)]
struct PoolBlob {
    bytes: Vec<u8>,
    dek: Option<Vec<u8>>,
}

/// Room for caller data: two maximal buffers side by side.
const IO_ARENA: usize = 2 * MAX_BUF + 256;

struct State {
    xts: Box<XtsArena>,
    xst: [XState; N_CTX],
    vols: Vec<Box<VolBox>>,
    vrec: [VolRec; N_VOL],
    kms: [*mut envol_local_kms; N_KMS],
    fake: *mut Fake,
    disks: [*mut Disk; N_DISK],
    io: Vec<u8>,
    blobs: Vec<PoolBlob>,
    deks: Vec<Vec<u8>>,
    params: Vec<envol_volume_params>,
    built: Vec<Vec<u8>>,
    grants: Vec<Vec<u8>>,
    store: Option<Vec<u8>>,
    /// The lease clock (seconds) and the audit sink of each handle slot.
    clock: *mut u64,
    sinks: [*mut Sink; N_KMS],
}

/// The `i`-th newest entry of a pool (0: the last one pushed).
fn newest<T>(pool: &[T], i: u8) -> Option<&T> {
    let n = pool.len();
    (n > 0).then(|| &pool[n - 1 - usize::from(i) % n])
}

fn push_pool<T>(pool: &mut Vec<T>, v: T) {
    if pool.len() >= POOL {
        pool.remove(0);
    }
    pool.push(v);
}

/// Every status a call returns goes through here: a known value, never a
/// caught panic, and its name is the stable one.
fn st(s: envol_status) -> envol_status {
    if trace() {
        eprintln!("    -> {s:?}");
    }
    assert_ne!(
        s,
        envol_status::ENVOL_ERR_INTERNAL,
        "a bug caught at the boundary"
    );
    let name = unsafe { CStr::from_ptr(envol_ffi::envol_status_name(envol_status_arg(s as u32))) };
    assert_eq!(name.to_str().ok(), Some(format!("{s:?}").as_str()));
    s
}

/// A refused argument of create/open (a NULL, misaligned or incomplete
/// table, a bad string, unknown cipher, parameters out of range): these
/// are checked before the volume's state, in no documented order.
fn table_error(s: envol_status) -> bool {
    matches!(
        s,
        envol_status::ENVOL_ERR_NULL_POINTER
            | envol_status::ENVOL_ERR_ALIGNMENT
            | envol_status::ENVOL_ERR_INVALID_ARGUMENT
            | envol_status::ENVOL_ERR_VOLUME_PARAMS
            | envol_status::ENVOL_ERR_KEY_ID
    )
}

/// A failed create/open left the volume struct as it was — except that a
/// never-zeroed struct (`VolScribble`; the contract asks for a zeroed one)
/// may get its garbage state word reset to 0 when the call lets go of it.
fn unchanged_vol(before: &[u8], after: &[u8]) -> bool {
    before == after || (after[..8] == [0; 8] && before[8..] == after[8..])
}

fn root_bytes(k: Key32) -> Option<[u8; 32]> {
    match k {
        Key32::Std => Some([7; 32]),
        Key32::Other(n) => Some([n; 32]),
        Key32::Null => None,
    }
}

impl State {
    fn new() -> State {
        let fake = Box::into_raw(Box::new(Fake {
            script: VecDeque::new(),
            counter: 0,
            last_gen: None,
            last_dec: None,
        }));
        let disk = || {
            Box::into_raw(Box::new(Disk {
                bytes: Vec::new(),
                mask: 0,
                rc: 5,
                garbage: false,
            }))
        };
        let rec = VolRec {
            state: VState::Empty,
            disk: 0,
            svc: Svc::None,
            params: None,
            dek: None,
            header_dek: None,
            lease: None,
            wiped: false,
        };
        let sink = || {
            Box::into_raw(Box::new(Sink {
                installed: false,
                fail: false,
                lines: Vec::new(),
            }))
        };
        State {
            clock: Box::into_raw(Box::new(CLOCK_START)),
            sinks: [sink(), sink(), sink()],
            xts: Box::new(XtsArena([0; N_CTX * ENVOL_XTS_SIZE + 64])),
            xst: [XState::Dead, XState::Dead, XState::Dead],
            vols: Vec::new(),
            vrec: [rec.clone(), rec],
            kms: [null_mut(); N_KMS],
            fake,
            disks: [disk(), disk()],
            io: vec![0; IO_ARENA],
            blobs: Vec::new(),
            deks: Vec::new(),
            params: Vec::new(),
            built: Vec::new(),
            grants: Vec::new(),
            store: None,
        }
    }

    /// Every input starts with local handle 0 holding keys `k1` and `k2`
    /// that anyone may use, so volumes can be made at once.
    fn setup(&mut self) {
        let mut h = null_mut();
        // SAFETY: a writable handle pointer, then the live handle and
        // NUL-terminated strings.
        unsafe {
            assert_eq!(st(envol_ffi::envol_local_kms_new(&mut h)), OK);
            let policy = std::ffi::CString::new(POLICIES[0]).expect("no NUL");
            let s =
                envol_ffi::envol_local_kms_set_service_policy(h, c"op".as_ptr(), policy.as_ptr());
            assert_eq!(st(s), OK);
            for id in [c"k1", c"k2"] {
                let policy = std::ffi::CString::new(POLICIES[0]).expect("no NUL");
                let s = envol_ffi::envol_local_kms_create_key(
                    h,
                    c"op".as_ptr(),
                    id.as_ptr(),
                    policy.as_ptr(),
                );
                assert_eq!(st(s), OK);
            }
        }
        self.kms[0] = h;
    }

    fn fake(&mut self) -> &mut Fake {
        // SAFETY: made by `Box::into_raw`, freed only in `drop`; no call is
        // running, so no callback holds it.
        unsafe { &mut *self.fake }
    }

    fn sink(&mut self, i: usize) -> &mut Sink {
        // SAFETY: as for `fake`.
        unsafe { &mut *self.sinks[i % N_KMS] }
    }

    fn disk(&mut self, i: usize) -> &mut Disk {
        // SAFETY: as for `fake`.
        let d = unsafe { &mut *self.disks[i % N_DISK] };
        if d.bytes.is_empty() {
            d.bytes = vec![0; DEFAULT_DISK];
        }
        d
    }

    // -- pointers ----------------------------------------------------------

    fn xts_ptr(&mut self, c: CtxArg) -> (*mut envol_xts, usize) {
        let i = usize::from(c.idx) % N_CTX;
        if c.null {
            return (null_mut(), i);
        }
        let off = i * ENVOL_XTS_SIZE + usize::from(c.misalign % 64);
        // SAFETY: inside the arena (64 bytes of room past the last context).
        (unsafe { self.xts.0.as_mut_ptr().add(off) }.cast(), i)
    }

    fn xts_aligned(c: CtxArg) -> bool {
        !c.null && c.misalign.is_multiple_of(64)
    }

    fn vol_base(&mut self, i: usize) -> *mut u8 {
        while self.vols.len() <= i {
            // SAFETY: all-zero bytes are a valid `VolBox` (and an empty volume).
            self.vols
                .push(unsafe { Box::<VolBox>::new_zeroed().assume_init() });
        }
        self.vols[i].0.as_mut_ptr()
    }

    fn vol_ptr(&mut self, v: VolArg) -> (*mut envol_volume, usize) {
        let i = usize::from(v.idx) % N_VOL;
        let base = self.vol_base(i);
        if v.null {
            return (null_mut(), i);
        }
        // SAFETY: inside the box (64 bytes of room).
        (unsafe { base.add(usize::from(v.misalign % 64)) }.cast(), i)
    }

    fn vol_ok_ptr(v: VolArg) -> bool {
        !v.null && v.misalign.is_multiple_of(64)
    }

    fn local(&self, a: LocalArg) -> *mut envol_local_kms {
        let h = self.kms[usize::from(a.slot) % N_KMS];
        if a.null || h.is_null() {
            return null_mut();
        }
        let m = usize::from(a.misalign % 8);
        h.cast::<u8>().wrapping_add(m).cast()
    }

    fn local_ok(&self, a: LocalArg) -> bool {
        !a.null && a.misalign.is_multiple_of(8) && !self.kms[usize::from(a.slot) % N_KMS].is_null()
    }

    /// A key-service table; the service it names.
    fn kms_table(&mut self, a: KmsArg, hold: &mut Hold) -> (*const envol_kms_callbacks, Svc) {
        let mut t = envol_kms_callbacks {
            user: null_mut(),
            generate_data_key: None,
            decrypt_data_key: None,
            re_encrypt: None,
            retire_context: None,
        };
        let svc = match a.src {
            KmsSrc::Local(i) => {
                let i = usize::from(i) % N_KMS;
                let h = self.kms[i];
                if h.is_null() {
                    return (null(), Svc::None);
                }
                let mut raw = Buf::typed::<envol_kms_callbacks>(false);
                // SAFETY: a live handle and a writable, aligned table.
                let s = st(unsafe {
                    envol_ffi::envol_local_kms_callbacks(h, raw.cast::<envol_kms_callbacks>())
                });
                assert_eq!(s, OK);
                t = raw.read();
                assert!(t.user == h.cast() && t.decrypt_data_key.is_some());
                Svc::Local(i)
            }
            KmsSrc::Fake => {
                t.user = self.fake.cast();
                t.generate_data_key = Some(fake_generate);
                t.decrypt_data_key = Some(fake_decrypt);
                t.re_encrypt = Some(fake_re_encrypt);
                Svc::Fake
            }
            KmsSrc::Null => return (null(), Svc::None),
            KmsSrc::Empty => Svc::None,
        };
        if a.drop & 1 != 0 {
            t.generate_data_key = None;
        }
        if a.drop & 2 != 0 {
            t.decrypt_data_key = None;
        }
        if a.drop & 4 != 0 {
            t.re_encrypt = None;
        }
        let m = usize::from(a.misalign % 8);
        let mut raw = vec![0u8; size_of::<envol_kms_callbacks>() + 16];
        let base = raw.as_mut_ptr() as usize;
        let off = (8 - base % 8) % 8 + m;
        // SAFETY: inside `raw`.
        unsafe {
            raw.as_mut_ptr()
                .add(off)
                .cast::<envol_kms_callbacks>()
                .write_unaligned(t)
        };
        let p = hold.keep(raw);
        // SAFETY: inside the kept buffer.
        (unsafe { p.add(off) }.cast_const().cast(), svc)
    }

    fn dev_table(&mut self, a: DevArg, hold: &mut Hold) -> (*const envol_block_device, usize) {
        let i = usize::from(a.disk) % N_DISK;
        self.disk(i);
        if a.null {
            return (null(), i);
        }
        let t = envol_block_device {
            user: self.disks[i].cast(),
            read_at: (a.drop & 1 == 0).then_some(disk_read as _),
            write_at: (a.drop & 2 == 0).then_some(disk_write as _),
            flush: (a.drop & 4 == 0).then_some(disk_flush as _),
        };
        let m = usize::from(a.misalign % 8);
        let mut raw = vec![0u8; size_of::<envol_block_device>() + 16];
        // SAFETY: inside `raw`.
        unsafe {
            raw.as_mut_ptr()
                .add(m)
                .cast::<envol_block_device>()
                .write_unaligned(t)
        };
        let p = hold.keep(raw);
        // SAFETY: inside the kept buffer.
        (unsafe { p.add(m) }.cast_const().cast(), i)
    }

    fn params_ptr(
        &self,
        a: &ParamsArg,
        hold: &mut Hold,
    ) -> (*const envol_volume_params, Option<envol_volume_params>) {
        let Some(p) = params_value(a, &self.params) else {
            return (null(), None);
        };
        let mut raw = vec![0u8; size_of::<envol_volume_params>() + 1];
        // SAFETY: inside `raw`; deliberately unaligned by one byte.
        unsafe {
            raw.as_mut_ptr()
                .add(1)
                .cast::<envol_volume_params>()
                .write_unaligned(p)
        };
        let ptr = hold.keep(raw);
        // SAFETY: inside the kept buffer.
        (unsafe { ptr.add(1) }.cast_const().cast(), Some(p))
    }

    /// A key argument: pointer, length, and the bytes when they are real.
    fn key(
        &self,
        k: &KeyArg,
        hold: &mut Hold,
        misalign: u8,
    ) -> (*const u8, usize, Option<Vec<u8>>) {
        let bytes = match k {
            KeyArg::Derived { short, seed } => derived_key(if *short { 32 } else { 64 }, *seed),
            KeyArg::Bytes(v) => v.iter().copied().take(80).collect(),
            KeyArg::Weak { short } => vec![0x11; if *short { 32 } else { 64 }],
            KeyArg::Pool(i) => {
                if self.deks.is_empty() {
                    derived_key(64, *i)
                } else {
                    newest(&self.deks, *i).cloned().unwrap_or_default()
                }
            }
            KeyArg::Null => return (null(), 32, None),
            KeyArg::Wild(m) => {
                let p = hold.keep(vec![0; 64]);
                return (p, wild(*m), None);
            }
        };
        let m = usize::from(misalign % 8);
        let mut raw = vec![0u8; m];
        raw.extend_from_slice(&bytes);
        let n = bytes.len();
        let p = hold.keep(raw);
        // SAFETY: inside the kept buffer.
        (unsafe { p.add(m) }, n, Some(bytes))
    }

    /// A blob argument: pointer, length, bytes, and the data key when the
    /// bytes are exactly a pool blob's.
    fn blob(
        &mut self,
        b: &BlobArg,
        hold: &mut Hold,
    ) -> (*const u8, usize, Vec<u8>, Option<Vec<u8>>) {
        let (mut bytes, dek) = match &b.src {
            BlobSrc::Pool(i) => match newest(&self.blobs, *i) {
                Some(p) => (p.bytes.clone(), p.dek.clone()),
                None => (Vec::new(), None),
            },
            BlobSrc::Raw(v) => (v.iter().copied().take(MAX_BLOB + 16).collect(), None),
            BlobSrc::Disk(d) => {
                let disk = self.disk(usize::from(*d));
                let slot = disk.bytes[..SLOT_SIZE].to_vec();
                match Header::parse(&slot) {
                    Ok(h) => (h.blob.to_vec(), None),
                    Err(_) => (Vec::new(), None),
                }
            }
        };
        let orig = bytes.clone();
        apply_edits(&mut bytes, &b.edits);
        if let Some(c) = b.cut {
            bytes.truncate(usize::from(c));
        }
        let dek = if bytes == orig { dek } else { None };
        if b.null {
            return (null(), bytes.len(), bytes, None);
        }
        let n = bytes.len();
        let p = hold.keep(bytes.clone());
        (p, if b.wild { wild(n % 2 == 0) } else { n }, bytes, dek)
    }

    fn slot(&mut self, s: &SlotArg) -> Option<Vec<u8>> {
        if s.null {
            return None;
        }
        let mut v = match &s.src {
            SlotSrc::DiskA(d) => self.disk(usize::from(*d)).bytes[..SLOT_SIZE].to_vec(),
            SlotSrc::DiskB(d) => {
                self.disk(usize::from(*d)).bytes[SLOT_SIZE..2 * SLOT_SIZE].to_vec()
            }
            SlotSrc::Built(i) => newest(&self.built, *i).cloned().unwrap_or_default(),
            SlotSrc::Raw(r) => r.clone(),
            SlotSrc::Zero => Vec::new(),
        };
        v.resize(SLOT_SIZE, 0);
        apply_edits(&mut v, &s.edits);
        if s.fix {
            fix_checksum(&mut v);
        }
        Some(v)
    }

    // -- volume bookkeeping ------------------------------------------------

    /// Closes every volume whose table calls local handle `i`.
    fn close_users_of(&mut self, i: usize) {
        for v in 0..N_VOL {
            if self.vrec[v].svc == Svc::Local(i) && self.vrec[v].state != VState::Empty {
                let base = self.vol_base(v);
                // SAFETY: our aligned volume struct.
                unsafe { envol_ffi::envol_volume_close(base.cast()) };
                self.vrec[v].state = VState::Empty;
                self.vrec[v].svc = Svc::None;
                self.vrec[v].lease = None;
                self.vrec[v].wiped = false;
            }
        }
    }

    /// Frees local handle `i` (its volumes closed first).
    fn free_local(&mut self, i: usize) {
        self.close_users_of(i);
        let h = std::mem::replace(&mut self.kms[i], null_mut());
        // SAFETY: NULL or a live handle from new/unseal, freed once.
        unsafe { envol_ffi::envol_local_kms_free(h) };
        // A new handle in this slot starts without a sink.
        let sink = self.sink(i);
        sink.installed = false;
        sink.fail = false;
        sink.lines.clear();
    }

    /// The volume's state word agrees with the harness's record.
    fn check_vol(&mut self, i: usize) {
        let base = self.vol_base(i);
        let mut p = Buf::typed::<envol_volume_params>(false);
        let mut seq = Buf::typed::<u64>(false);
        let mut id = Buf::new(ENVOL_MAX_KEY_ID + 1, 1, 0, false);
        let mut att = Buf::typed::<c_int>(false);
        // SAFETY: our volume and writable outputs.
        let s = st(unsafe {
            envol_ffi::envol_volume_info(base.cast(), p.cast(), seq.cast(), id.cast(), att.cast())
        });
        let rec = &mut self.vrec[i];
        match rec.state {
            VState::Empty => {
                assert_eq!(s, envol_status::ENVOL_ERR_NOT_INITIALIZED);
                assert!(p.intact() && seq.intact() && id.intact() && att.intact());
            }
            VState::Detached | VState::Attached => {
                assert_eq!(s, OK);
                let attached: c_int = att.read();
                assert_eq!(attached, c_int::from(rec.state == VState::Attached));
                let params: envol_volume_params = p.read();
                assert!(
                    rust_params(&params).is_some(),
                    "a live volume has valid parameters"
                );
                if let Some(known) = rec.params {
                    assert_eq!(known, params);
                }
                rec.params = Some(params);
                let idb = id.bytes();
                let nul = idb
                    .iter()
                    .position(|&b| b == 0)
                    .expect("key id NUL-terminated");
                assert!(std::str::from_utf8(&idb[..nul]).is_ok());
                assert!(id.intact_after(nul + 1));
            }
        }
        // SAFETY: our volume.
        let b = unsafe { envol_ffi::envol_volume_backend(base.cast()) };
        if rec.state != VState::Attached {
            assert_eq!(b, envol_backend::ENVOL_BACKEND_AUTO);
        } else if b == envol_backend::ENVOL_BACKEND_AUTO {
            // Only a lease can take an attached volume's key away.
            assert!(
                rec.lease.is_some() || rec.wiped,
                "attached volume without a key"
            );
            rec.wiped = true;
        } else {
            assert!(!rec.wiped, "a wiped key came back");
        }
    }

    // -- ops ---------------------------------------------------------------

    /// For every handle whose sink fails: the handle and its next audit
    /// sequence number.
    fn failing_sinks(&mut self) -> Vec<(usize, *mut envol_local_kms, u64)> {
        let mut v = Vec::new();
        for i in 0..N_KMS {
            let h = self.kms[i];
            if h.is_null() || !(self.sink(i).installed && self.sink(i).fail) {
                continue;
            }
            let (mut first, mut next) = (0u64, 0u64);
            // SAFETY: a live handle; writable outputs.
            let r = st(unsafe { envol_ffi::envol_local_kms_audit_range(h, &mut first, &mut next) });
            assert_eq!(r, OK);
            v.push((i, h, next));
        }
        v
    }

    fn run(&mut self, op: &Op) {
        let failing = self.failing_sinks();
        self.run_op(op);
        // A failing sink makes every audited call fail and change nothing:
        // no event is ever added behind its back.
        for (i, h, next) in failing {
            if self.kms[i] != h || !self.sink(i).fail {
                continue;
            }
            let (mut first, mut now) = (0u64, 0u64);
            // SAFETY: as above.
            let r = st(unsafe { envol_ffi::envol_local_kms_audit_range(h, &mut first, &mut now) });
            assert_eq!(r, OK);
            assert_eq!(now, next, "an event was recorded past a failing sink");
        }
    }

    fn run_op(&mut self, op: &Op) {
        let mut hold = Hold::default();
        match op {
            Op::KmsNew { slot, null } => {
                let i = usize::from(*slot) % N_KMS;
                let mut out = Buf::typed::<*mut envol_local_kms>(*null);
                // SAFETY: NULL or a writable pointer slot.
                let s = st(unsafe { envol_ffi::envol_local_kms_new(out.cast()) });
                if *null {
                    assert_eq!(s, envol_status::ENVOL_ERR_NULL_POINTER);
                } else {
                    assert_eq!(s, OK);
                    self.free_local(i);
                    self.kms[i] = out.read();
                    assert!(!self.kms[i].is_null());
                }
            }
            Op::KmsFree { slot } => self.free_local(usize::from(*slot) % N_KMS),
            Op::KmsCreateKey {
                kms,
                creator,
                key_id,
                policy,
            } => {
                let k = self.local(*kms);
                let (c, _) = hold.s(creator, Role::Principal);
                let (id, _) = hold.s(key_id, Role::KeyId);
                let p = hold.policy(policy);
                // SAFETY: every pointer is NULL or valid as documented.
                let s = st(unsafe { envol_ffi::envol_local_kms_create_key(k, c, id, p) });
                if !self.local_ok(*kms) {
                    assert_ne!(s, OK);
                }
            }
            Op::KmsPutPolicy {
                kms,
                principal,
                key_id,
                policy,
            } => {
                let k = self.local(*kms);
                let (p, _) = hold.s(principal, Role::Principal);
                let (id, _) = hold.s(key_id, Role::KeyId);
                let pol = hold.policy(policy);
                // SAFETY: as above.
                let s = st(unsafe { envol_ffi::envol_local_kms_put_key_policy(k, p, id, pol) });
                if !self.local_ok(*kms) {
                    assert_ne!(s, OK);
                }
            }
            Op::KmsManage {
                kms,
                what,
                principal,
                key_id,
                out_null,
            } => self.kms_manage(*kms, *what, principal, key_id, *out_null, &mut hold),
            Op::KmsDescribe {
                kms,
                principal,
                key_id,
                nulls,
            } => {
                let k = self.local(*kms);
                let (p, _) = hold.s(principal, Role::Principal);
                let (id, _) = hold.s(key_id, Role::KeyId);
                let mut state = Buf::typed::<u32>(nulls & 1 != 0);
                let mut vers = Buf::typed::<u32>(nulls & 2 != 0);
                // SAFETY: as above; `envol_key_state` is a C enum of `int` size.
                let s = st(unsafe {
                    envol_ffi::envol_local_kms_describe_key(k, p, id, state.cast(), vers.cast())
                });
                if s == OK {
                    assert!(state.read::<u32>() <= 3);
                } else {
                    assert!(state.intact() && vers.intact());
                }
            }
            Op::KmsCreateGrant {
                kms,
                principal,
                key_id,
                grantee,
                ops,
                n_ops,
                ops_misalign,
                kind,
                constraint,
                retiring,
                out,
            } => {
                let k = self.local(*kms);
                let (p, _) = hold.s(principal, Role::Principal);
                let (id, _) = hold.s(key_id, Role::KeyId);
                let (g, _) = hold.s(grantee, Role::Principal);
                let names: Vec<*const c_char> = ops
                    .iter()
                    .take(40)
                    .map(|o| hold.s(o, Role::Action).0)
                    .collect();
                let mut n = names.len();
                if let Some(claimed) = n_ops
                    && usize::from(*claimed) > 32
                {
                    n = usize::from(*claimed);
                }
                let ops_ptr: *const *const c_char = if names.is_empty() {
                    null()
                } else if *ops_misalign {
                    let mut raw = vec![0u8; names.len() * 8 + 16];
                    let base = raw.as_mut_ptr() as usize;
                    let off = (8 - base % 8) % 8 + 3;
                    for (i, q) in names.iter().enumerate() {
                        // SAFETY: inside `raw`.
                        unsafe {
                            raw.as_mut_ptr()
                                .add(off + i * 8)
                                .cast::<*const c_char>()
                                .write_unaligned(*q)
                        };
                    }
                    let q = hold.keep(raw);
                    // SAFETY: inside the kept buffer.
                    unsafe { q.add(off) }.cast_const().cast()
                } else {
                    hold.ptrs.push(names);
                    hold.ptrs.last().map_or(null(), |v| v.as_ptr())
                };
                let (cp, cn, _) = hold.ctx(constraint, &self.params);
                let r = retiring
                    .as_ref()
                    .map_or(null(), |r| hold.s(r, Role::Principal).0);
                let (mut buf, cap) = out_buf(*out, ENVOL_GRANT_ID_SIZE);
                // SAFETY: every pointer NULL or valid as documented; `n`
                // over 32 is refused before the array is read.
                let s = st(unsafe {
                    envol_ffi::envol_local_kms_create_grant(
                        k,
                        p,
                        id,
                        g,
                        ops_ptr,
                        n,
                        *kind,
                        cp,
                        cn,
                        r,
                        buf.cast(),
                        cap,
                    )
                });
                if s == OK {
                    let b = buf.bytes();
                    let nul = b
                        .iter()
                        .position(|&c| c == 0)
                        .expect("grant id NUL-terminated");
                    assert!(nul < ENVOL_GRANT_ID_SIZE && nul > 0);
                    assert!(buf.intact_after(nul + 1));
                    let gid = b[..nul].to_vec();
                    push_pool(&mut self.grants, gid);
                } else {
                    assert!(buf.intact(), "grant id written on {s:?}");
                }
            }
            Op::KmsGrantEnd {
                kms,
                revoke,
                principal,
                key_id,
                grant,
            } => {
                let k = self.local(*kms);
                let (p, _) = hold.s(principal, Role::Principal);
                let (id, _) = hold.s(key_id, Role::KeyId);
                let g = match grant {
                    GrantArg::Pool(i) => match newest(&self.grants, *i) {
                        Some(g) => hold.c(&g.clone()),
                        None => hold.c(b"g-none"),
                    },
                    GrantArg::Str(s) => hold.s(s, Role::Principal).0,
                };
                // SAFETY: as above.
                let s = st(unsafe {
                    if *revoke {
                        envol_ffi::envol_local_kms_revoke_grant(k, p, id, g)
                    } else {
                        envol_ffi::envol_local_kms_retire_grant(k, p, id, g)
                    }
                });
                if !self.local_ok(*kms) {
                    assert_ne!(s, OK);
                }
            }
            Op::KmsCount {
                kms,
                protected,
                principal,
                key_id,
                null,
            } => {
                let k = self.local(*kms);
                let (p, _) = hold.s(principal, Role::Principal);
                let (id, _) = hold.s(key_id, Role::KeyId);
                let mut c = Buf::typed::<usize>(*null);
                // SAFETY: as above.
                let s = st(unsafe {
                    if *protected {
                        envol_ffi::envol_local_kms_protected_volume_count(k, p, id, c.cast())
                    } else {
                        envol_ffi::envol_local_kms_grant_count(k, p, id, c.cast())
                    }
                });
                if s != OK {
                    assert!(c.intact());
                } else {
                    assert!(c.read::<usize>() < 10_000);
                }
            }
            Op::KmsAudit {
                kms,
                index,
                out,
                len_null,
            } => self.kms_audit(*kms, usize::from(*index), *out, *len_null),
            Op::KmsSeal {
                kms,
                root,
                out,
                len_null,
            } => self.kms_seal(*kms, *root, *out, *len_null, &mut hold),
            Op::KmsUnseal {
                slot,
                root,
                store,
                out_null,
            } => {
                let i = usize::from(*slot) % N_KMS;
                let r = root_bytes(*root).map_or(null(), |r| hold.keep(r.to_vec()).cast_const());
                let mut bytes = match &store.raw {
                    Some(v) => v.clone(),
                    None => self.store.clone().unwrap_or_default(),
                };
                apply_edits(&mut bytes, &store.edits);
                let n = bytes.len();
                let p = if store.null {
                    null()
                } else {
                    hold.keep(bytes).cast_const()
                };
                let len = if store.wild { wild(n % 2 == 1) } else { n };
                let mut out = Buf::typed::<*mut envol_local_kms>(*out_null);
                // SAFETY: as above.
                let s = st(unsafe { envol_ffi::envol_local_kms_unseal(r, p, len, out.cast()) });
                if s == OK {
                    assert!(!store.wild && !store.null && !r.is_null());
                    self.free_local(i);
                    self.kms[i] = out.read();
                    // A handle that opens keeps a verifying audit chain.
                    // SAFETY: the live handle.
                    assert_eq!(
                        st(unsafe { envol_ffi::envol_local_kms_audit_verify(self.kms[i]) }),
                        OK
                    );
                } else {
                    assert!(out.intact());
                }
            }
            Op::KmsGenerate {
                kms,
                principal,
                key_id,
                dek_len,
                ctx,
                dek,
                blob,
                len_null,
            } => self.kms_generate(
                *kms, principal, key_id, *dek_len, ctx, *dek, *blob, *len_null, &mut hold,
            ),
            Op::KmsDecrypt {
                kms,
                principal,
                blob,
                ctx,
                out,
                len_null,
            } => {
                let k = self.local(*kms);
                let (p, _) = hold.s(principal, Role::Principal);
                let (bp, bl, _, known) = self.blob(blob, &mut hold);
                let (cp, cn, _) = hold.ctx(ctx, &self.params);
                let (mut buf, cap) = out_buf(*out, 64);
                let mut len = Buf::typed::<usize>(*len_null);
                // SAFETY: as above.
                let s = st(unsafe {
                    envol_ffi::envol_local_kms_decrypt_data_key(
                        k,
                        p,
                        bp,
                        bl,
                        cp,
                        cn,
                        buf.cast(),
                        cap,
                        len.cast(),
                    )
                });
                if s == OK {
                    let n: usize = len.read();
                    assert!(n == 32 || n == 64);
                    assert!(buf.intact_after(n));
                    if let Some(d) = known {
                        assert_eq!(&buf.bytes()[..n], &d[..], "unwrapped a different key");
                    }
                    push_pool(&mut self.deks, buf.bytes()[..n].to_vec());
                } else {
                    assert!(buf.intact() && len.intact(), "output written on {s:?}");
                }
            }
            Op::KmsReEncrypt {
                kms,
                principal,
                blob,
                src,
                dest,
                dst,
                out,
                len_null,
            } => {
                let k = self.local(*kms);
                let (p, pname) = hold.s(principal, Role::Principal);
                let (bp, bl, _, known) = self.blob(blob, &mut hold);
                let (sp, sn, _) = hold.ctx(src, &self.params);
                let (d, _) = hold.s(dest, Role::KeyId);
                let (dp, dn, _) = hold.ctx(dst, &self.params);
                let (mut buf, cap) = out_buf(*out, MAX_BLOB);
                let mut len = Buf::typed::<usize>(*len_null);
                // SAFETY: as above.
                let s = st(unsafe {
                    envol_ffi::envol_local_kms_re_encrypt(
                        k,
                        p,
                        bp,
                        bl,
                        sp,
                        sn,
                        d,
                        dp,
                        dn,
                        buf.cast(),
                        cap,
                        len.cast(),
                    )
                });
                if s == OK {
                    let n: usize = len.read();
                    assert!(n > 0 && n <= cap.min(MAX_BLOB));
                    assert!(buf.intact_after(n));
                    let new = buf.bytes()[..n].to_vec();
                    // The new blob holds the same key: check when allowed.
                    if pname.is_some() {
                        let mut dek = Buf::new(64, 8, 0, false);
                        let mut dl = Buf::typed::<usize>(false);
                        // SAFETY: as above.
                        let s2 = st(unsafe {
                            envol_ffi::envol_local_kms_decrypt_data_key(
                                k,
                                p,
                                new.as_ptr(),
                                new.len(),
                                dp,
                                dn,
                                dek.cast(),
                                64,
                                dl.cast(),
                            )
                        });
                        if s2 == OK
                            && let Some(d) = &known
                        {
                            let n2: usize = dl.read();
                            assert_eq!(&dek.bytes()[..n2], &d[..], "re-encrypt changed the key");
                        }
                    }
                    push_pool(
                        &mut self.blobs,
                        PoolBlob {
                            bytes: new,
                            dek: known,
                        },
                    );
                } else {
                    assert!(buf.intact() && len.intact(), "output written on {s:?}");
                }
            }
            Op::KmsCallbacks { kms, null } => {
                let k = self.local(*kms);
                let mut t = Buf::typed::<envol_kms_callbacks>(*null);
                // SAFETY: as above.
                let s = st(unsafe { envol_ffi::envol_local_kms_callbacks(k, t.cast()) });
                if s == OK {
                    let table: envol_kms_callbacks = t.read();
                    assert_eq!(table.user, k.cast());
                } else {
                    assert!(t.intact());
                }
            }
            Op::FakeScript { answers } => {
                let f = self.fake();
                f.script = answers.iter().take(16).cloned().collect();
            }
            Op::Misc { status, backend } => self.misc(*status, *backend),
            Op::XtsInit {
                ctx,
                key,
                backend,
                misalign,
            } => self.xts_init(*ctx, key, *backend, *misalign, &mut hold),
            Op::XtsData {
                ctx,
                decrypt,
                kind,
                layout,
                len,
                fill,
            } => self.xts_data(*ctx, *decrypt, *kind, *layout, *len, *fill),
            Op::XtsWipe { ctx } => {
                let (p, i) = self.xts_ptr(*ctx);
                let before = self.xts.0.to_vec();
                // SAFETY: NULL, misaligned (ignored) or our context.
                unsafe { envol_ffi::envol_xts_wipe(p) };
                if Self::xts_aligned(*ctx) {
                    let r = i * ENVOL_XTS_SIZE..(i + 1) * ENVOL_XTS_SIZE;
                    assert!(self.xts.0[r].iter().all(|&b| b == 0), "wipe left bytes");
                    self.xst[i] = XState::Dead;
                } else {
                    assert_eq!(self.xts.0.to_vec(), before, "ignored wipe wrote");
                }
            }
            Op::XtsBackend { ctx } => {
                let (p, i) = self.xts_ptr(*ctx);
                // SAFETY: NULL, misaligned or our context.
                let b = unsafe { envol_ffi::envol_xts_backend(p) };
                match (&self.xst[i], Self::xts_aligned(*ctx)) {
                    (XState::Live { backend, .. }, true) => {
                        assert_eq!(b, envol_backend::from(*backend));
                    }
                    _ => assert_eq!(b, envol_backend::ENVOL_BACKEND_AUTO),
                }
            }
            Op::XtsScribble { ctx, bytes } => {
                let i = usize::from(*ctx) % N_CTX;
                if matches!(self.xst[i], XState::Dead) && !bytes.is_empty() {
                    let r = &mut self.xts.0[i * ENVOL_XTS_SIZE..(i + 1) * ENVOL_XTS_SIZE];
                    for (j, b) in r.iter_mut().enumerate() {
                        *b = bytes[j % bytes.len()];
                    }
                    // Never the live state word (a context C never wrote
                    // could hold it by chance only, and then nothing can tell).
                    if r[..8] == *b"envolXTS" {
                        r[0] ^= 1;
                    }
                }
            }
            Op::XtsInitFromBlob {
                ctx,
                kms,
                principal,
                blob,
                enc,
            } => {
                let (cp, i) = self.xts_ptr(*ctx);
                let (t, svc) = self.kms_table(*kms, &mut hold);
                let (p, _) = hold.s(principal, Role::Principal);
                let (bp, bl, _, known) = self.blob(blob, &mut hold);
                let (ep, en, _) = hold.ctx(enc, &self.params);
                let before = self.xts.0.to_vec();
                // SAFETY: as above; the table's callbacks keep its contract.
                let s =
                    st(unsafe { envol_ffi::envol_xts_init_from_blob(cp, t, p, bp, bl, ep, en) });
                if s == OK {
                    assert!(Self::xts_aligned(*ctx));
                    let key = match svc {
                        Svc::Fake => self.fake().last_dec.clone(),
                        _ => known,
                    };
                    self.xst[i] = XState::Live {
                        key,
                        backend: Backend::detect(),
                    };
                } else {
                    assert_eq!(self.xts.0.to_vec(), before, "context changed on {s:?}");
                }
            }
            Op::EnvelopeSeal {
                master,
                key_id,
                version,
                ctx,
                secret,
                nonce,
                out,
                len_null,
            } => self.envelope_seal(
                *master, key_id, *version, ctx, secret, *nonce, *out, *len_null, &mut hold,
            ),
            Op::EnvelopeOpen {
                master,
                blob,
                ctx,
                out,
                len_null,
            } => {
                let m = root_bytes(*master).map_or(null(), |r| hold.keep(r.to_vec()).cast_const());
                let (bp, bl, _, _) = self.blob(blob, &mut hold);
                let (cp, cn, _) = hold.ctx(ctx, &self.params);
                let (mut buf, cap) = out_buf(*out, envol::envelope::MAX_SECRET);
                let mut len = Buf::typed::<usize>(*len_null);
                // SAFETY: as above.
                let s = st(unsafe {
                    envol_ffi::envol_envelope_open(m, bp, bl, cp, cn, buf.cast(), cap, len.cast())
                });
                if s == OK {
                    let n: usize = len.read();
                    assert!(n >= 1 && n <= cap);
                    assert!(buf.intact_after(n));
                } else {
                    assert!(buf.intact() && len.intact(), "output written on {s:?}");
                }
            }
            Op::HeaderCheck { slot } => {
                let sl = self.slot(slot);
                let p = sl.as_ref().map_or(null(), |v| v.as_ptr());
                // SAFETY: NULL or 4096 readable bytes.
                let s = st(unsafe { envol_ffi::envol_header_check(p) });
                match &sl {
                    Some(v) => assert_eq!(s == OK, Header::parse(v).is_ok()),
                    None => assert_eq!(s, envol_status::ENVOL_ERR_NULL_POINTER),
                }
            }
            Op::HeaderParse {
                a,
                b,
                blob,
                nulls,
                misalign,
                overlap,
            } => self.header_parse(a, b, *blob, *nulls, *misalign, *overlap),
            Op::HeaderContext {
                params,
                strings,
                nulls,
                overlap,
            } => self.header_context(params, *strings, *nulls, *overlap, &mut hold),
            Op::HeaderUnwrap {
                ctx,
                kms,
                principal,
                a,
                b,
            } => {
                let (cp, i) = self.xts_ptr(*ctx);
                let (t, svc) = self.kms_table(*kms, &mut hold);
                let (p, _) = hold.s(principal, Role::Principal);
                let sa = self.slot(a);
                let sb = self.slot(b);
                let before = self.xts.0.to_vec();
                // SAFETY: as above; slots NULL or 4096 readable bytes.
                let s = st(unsafe {
                    envol_ffi::envol_header_unwrap(
                        cp,
                        t,
                        p,
                        sa.as_ref().map_or(null(), |v| v.as_ptr()),
                        sb.as_ref().map_or(null(), |v| v.as_ptr()),
                    )
                });
                if s == OK {
                    assert!(Self::xts_aligned(*ctx));
                    let (sa, sb) = (sa.expect("slot a"), sb.expect("slot b"));
                    let pick = header::pick(&sa, &sb).expect("unwrapped header parses");
                    assert_eq!(pick.header.state, VolumeState::Active);
                    let key = match svc {
                        Svc::Fake => self.fake().last_dec.clone(),
                        _ => None,
                    };
                    if let Some(k) = &key {
                        assert!(pick.header.verify_mac(k).is_ok(), "MAC not under the key");
                        assert_eq!(k.len(), pick.header.params.suite.key_size().key_len());
                    }
                    self.xst[i] = XState::Live {
                        key,
                        backend: Backend::detect(),
                    };
                } else {
                    assert_eq!(self.xts.0.to_vec(), before, "context changed on {s:?}");
                }
            }
            Op::HeaderBuild {
                params,
                blob,
                sequence,
                dek,
                out,
                overlap,
            } => self.header_build(params, blob, *sequence, dek, *out, *overlap, &mut hold),
            Op::DiskSetup { disk, size } => {
                let n = match size {
                    DiskSize::Default => DEFAULT_DISK,
                    DiskSize::Small => 16 * 1024,
                    DiskSize::Big => 136 * 1024,
                    DiskSize::Mib => (1 << 20) + 64 * 1024,
                    DiskSize::Raw(r) => (*r as usize) % (256 * 1024),
                };
                let d = self.disk(usize::from(*disk));
                d.bytes.resize(n.max(2 * SLOT_SIZE), 0);
            }
            Op::DiskEdit { disk, pos, bytes } => {
                let d = self.disk(usize::from(*disk));
                let n = d.bytes.len();
                let start = (*pos as usize) % n;
                for (j, b) in bytes.iter().take(64).enumerate() {
                    d.bytes[(start + j) % n] = *b;
                }
                // Data the harness knew is gone.
                for v in 0..N_VOL {
                    if self.vrec[v].disk == usize::from(*disk) % N_DISK {
                        self.vrec[v].header_dek = None;
                    }
                }
            }
            Op::DiskFaults {
                disk,
                mask,
                rc,
                garbage,
            } => {
                let d = self.disk(usize::from(*disk));
                d.mask = *mask;
                d.rc = *rc;
                d.garbage = *garbage;
            }
            Op::DiskPutSlot { disk, b, slot } => {
                if let Some(s) = self.slot(slot) {
                    let d = self.disk(usize::from(*disk));
                    let o = if *b { SLOT_SIZE } else { 0 };
                    d.bytes[o..o + SLOT_SIZE].copy_from_slice(&s);
                }
            }
            Op::VolScribble { vol, bytes } => {
                let i = usize::from(*vol) % N_VOL;
                if self.vrec[i].state == VState::Empty && !bytes.is_empty() {
                    let base = self.vol_base(i);
                    // SAFETY: our box, holding no live volume.
                    let r = unsafe { std::slice::from_raw_parts_mut(base, ENVOL_VOLUME_SIZE) };
                    for (j, b) in r.iter_mut().enumerate().step_by(61) {
                        *b = bytes[j % bytes.len()];
                    }
                    for (j, b) in bytes.iter().take(64).enumerate() {
                        r[j] = *b;
                    }
                    // Never a live volume's state word (or a held gate's):
                    // scribbled memory must read as an empty struct.
                    let word = usize::from_le_bytes(r[..8].try_into().expect("8 bytes"));
                    if [0x564F_4C44, 0x564F_4C41, 0x4255_5359].contains(&word) {
                        r[0] ^= 1;
                    }
                }
            }
            Op::VolCreate {
                vol,
                dev,
                kms,
                principal,
                key_id,
                params,
            } => self.vol_create_or_overwrite(
                *vol, *dev, *kms, principal, key_id, params, false, &mut hold,
            ),
            Op::VolOpen { vol, dev, kms } => {
                let (vp, i) = self.vol_ptr(*vol);
                let (dp, disk) = self.dev_table(*dev, &mut hold);
                let (kp, svc) = self.kms_table(*kms, &mut hold);
                let before = self.vol_bytes(i);
                // SAFETY: as above; tables keep their contracts while the
                // volume lives (disks and the fake live as long as the
                // harness; volumes on a local handle close before it frees).
                let s = st(unsafe { envol_ffi::envol_volume_open(vp, dp, kp) });
                if s == OK {
                    assert!(Self::vol_ok_ptr(*vol));
                    assert_eq!(self.vrec[i].state, VState::Empty);
                    self.vrec[i] = VolRec {
                        state: VState::Detached,
                        disk,
                        svc,
                        params: None,
                        dek: None,
                        header_dek: None,
                        lease: None,
                        wiped: false,
                    };
                } else {
                    assert!(
                        unchanged_vol(&before, &self.vol_bytes(i)),
                        "volume changed on {s:?}"
                    );
                    // The tables are checked before the volume's state.
                    if Self::vol_ok_ptr(*vol) && !table_error(s) {
                        match self.vrec[i].state {
                            VState::Detached => {
                                assert_eq!(s, envol_status::ENVOL_ERR_VOLUME_DETACHED)
                            }
                            VState::Attached => {
                                assert_eq!(s, envol_status::ENVOL_ERR_VOLUME_ATTACHED)
                            }
                            VState::Empty => {}
                        }
                    }
                }
                self.check_vol(i);
            }
            Op::VolAttach { vol, principal } => {
                let (vp, i) = self.vol_ptr(*vol);
                let (p, _) = hold.s(principal, Role::Principal);
                if self.vrec[i].svc == Svc::Fake {
                    self.fake().last_dec = None;
                }
                // SAFETY: as above.
                let s = st(unsafe { envol_ffi::envol_volume_attach(vp, p) });
                if s == OK {
                    assert!(Self::vol_ok_ptr(*vol));
                    assert_eq!(self.vrec[i].state, VState::Detached);
                    self.vrec[i].state = VState::Attached;
                    self.vrec[i].wiped = false;
                    let key = if self.vrec[i].svc == Svc::Fake {
                        self.fake().last_dec.clone()
                    } else {
                        None
                    };
                    if let (Some(k), Some(h)) = (&key, &self.vrec[i].header_dek) {
                        assert_eq!(k, h, "attached with a key the header is not under");
                    }
                    if key.is_some() {
                        self.vrec[i].header_dek.clone_from(&key);
                    }
                    self.vrec[i].dek = key;
                } else if Self::vol_ok_ptr(*vol) {
                    self.expect_state_error(i, s, VState::Detached);
                }
                self.check_vol(i);
            }
            Op::VolDetach { vol } => {
                let (vp, i) = self.vol_ptr(*vol);
                // SAFETY: as above.
                let s = st(unsafe { envol_ffi::envol_volume_detach(vp) });
                if s == OK {
                    assert_eq!(self.vrec[i].state, VState::Attached);
                    self.vrec[i].state = VState::Detached;
                    self.vrec[i].dek = None;
                    self.vrec[i].wiped = false;
                } else if s == envol_status::ENVOL_ERR_IO {
                    // The flush failed: still attached, nothing lost.
                    assert_eq!(self.vrec[i].state, VState::Attached);
                } else if Self::vol_ok_ptr(*vol) {
                    self.expect_state_error(i, s, VState::Attached);
                }
                self.check_vol(i);
            }
            Op::VolClose { vol } => {
                let (vp, i) = self.vol_ptr(*vol);
                let before = self.vol_bytes(i);
                // SAFETY: NULL, misaligned (ignored) or our volume.
                unsafe { envol_ffi::envol_volume_close(vp) };
                if Self::vol_ok_ptr(*vol) {
                    assert!(
                        self.vol_bytes(i).iter().all(|&b| b == 0),
                        "close left bytes"
                    );
                    self.vrec[i].state = VState::Empty;
                    self.vrec[i].svc = Svc::None;
                    self.vrec[i].dek = None;
                    self.vrec[i].params = None;
                    self.vrec[i].lease = None;
                    self.vrec[i].wiped = false;
                } else {
                    assert_eq!(self.vol_bytes(i), before, "ignored close wrote");
                }
                self.check_vol(i);
            }
            Op::VolFlush { vol } => {
                let (vp, i) = self.vol_ptr(*vol);
                // SAFETY: as above.
                let s = st(unsafe { envol_ffi::envol_volume_flush(vp) });
                if s == OK {
                    assert_ne!(self.vrec[i].state, VState::Empty);
                }
                self.check_vol(i);
            }
            Op::VolRewrap {
                vol,
                principal,
                key_id,
            } => {
                let (vp, i) = self.vol_ptr(*vol);
                let (p, _) = hold.s(principal, Role::Principal);
                let (id, _) = hold.s(key_id, Role::KeyId);
                // SAFETY: as above.
                let s = st(unsafe { envol_ffi::envol_volume_rewrap(vp, p, id) });
                if s == OK {
                    assert_eq!(self.vrec[i].state, VState::Attached);
                } else if Self::vol_ok_ptr(*vol) {
                    self.expect_state_error(i, s, VState::Attached);
                }
                // Attached or not, it stays as it was.
                self.check_vol(i);
            }
            Op::VolRetire { vol } => {
                let (vp, i) = self.vol_ptr(*vol);
                // SAFETY: as above.
                let s = st(unsafe { envol_ffi::envol_volume_retire(vp, c"op".as_ptr()) });
                if s == OK {
                    assert_eq!(self.vrec[i].state, VState::Attached);
                    self.vrec[i].state = VState::Detached;
                    self.vrec[i].dek = None;
                    self.vrec[i].wiped = false;
                    // Attaching is refused from now on.
                    let p = hold.s(&S::Pool(0), Role::Principal).0;
                    // SAFETY: our volume.
                    let s2 = st(unsafe { envol_ffi::envol_volume_attach(vp, p) });
                    // (A table without decrypt is refused before the header
                    // is looked at.)
                    assert!(
                        s2 == envol_status::ENVOL_ERR_VOLUME_RETIRED
                            || s2 == envol_status::ENVOL_ERR_NULL_POINTER,
                        "retired volume: attach gave {s2:?}"
                    );
                } else if Self::vol_ok_ptr(*vol) {
                    self.expect_state_error(i, s, VState::Attached);
                }
                self.check_vol(i);
            }
            Op::VolInfo {
                vol,
                nulls,
                misalign,
                into_vol,
            } => {
                let (vp, i) = self.vol_ptr(*vol);
                let m = usize::from(misalign % 8);
                let mut p = Buf::new(size_of::<envol_volume_params>(), 8, m, nulls & 1 != 0);
                let mut seq = Buf::new(8, 8, m, nulls & 2 != 0);
                let mut id = Buf::new(ENVOL_MAX_KEY_ID + 1, 1, m, nulls & 4 != 0);
                let mut att = Buf::new(4, 4, m, nulls & 8 != 0);
                let mut outs = (
                    p.cast::<envol_volume_params>(),
                    seq.cast::<u64>(),
                    id.cast::<c_char>(),
                    att.cast::<c_int>(),
                );
                let vol_before = self.vol_bytes(i);
                if let Some(o) = into_vol {
                    // Inside the volume box (the outputs are written
                    // unaligned, and at most 65 bytes long).
                    let base = self.vol_base(i);
                    let at = usize::from(*o) % ENVOL_VOLUME_SIZE;
                    let q = base.wrapping_add(at);
                    match o % 4 {
                        0 => outs.0 = q.cast(),
                        1 => outs.1 = q.cast(),
                        2 => outs.2 = q.cast(),
                        _ => outs.3 = q.cast(),
                    }
                }
                // SAFETY: as above (the library writes these unaligned).
                let s =
                    st(unsafe { envol_ffi::envol_volume_info(vp, outs.0, outs.1, outs.2, outs.3) });
                if into_vol.is_some() {
                    assert_ne!(s, OK, "wrote volume info into the volume");
                    assert_eq!(self.vol_bytes(i), vol_before, "volume changed on {s:?}");
                }
                if s == OK {
                    assert!(p.slack_intact() && seq.slack_intact() && att.slack_intact());
                    assert!(id.slack_intact());
                } else {
                    assert!(p.intact() && seq.intact() && id.intact() && att.intact());
                }
                self.check_vol(i);
            }
            Op::VolBackend { vol } => {
                let (vp, i) = self.vol_ptr(*vol);
                // SAFETY: NULL, misaligned or our volume.
                let b = unsafe { envol_ffi::envol_volume_backend(vp) };
                if !Self::vol_ok_ptr(*vol) || self.vrec[i].state != VState::Attached {
                    assert_eq!(b, envol_backend::ENVOL_BACKEND_AUTO);
                }
            }
            Op::VolRead { vol, first, buf } => self.vol_io(*vol, *first, *buf, false),
            Op::VolWrite { vol, first, buf } => self.vol_io(*vol, *first, *buf, true),
            Op::VolCrypt {
                vol,
                decrypt,
                first,
                len,
                layout,
                fill,
            } => self.vol_crypt(*vol, *decrypt, *first, *len, *layout, *fill),
            Op::LeaseSet {
                vol,
                duration,
                renew,
                grace,
                system_clock,
                null,
            } => self.lease_set(*vol, *duration, *renew, *grace, *system_clock, *null),
            Op::LeaseAdvance { secs } => {
                // SAFETY: the harness's clock; no call is running.
                unsafe { *self.clock += u64::from(*secs) };
            }
            Op::VolMaintain {
                vol,
                info_null,
                misalign,
            } => self.vol_maintain(*vol, *info_null, *misalign),
            Op::VolOpenExpect { vol, dev, kms, id } => {
                self.vol_open_expect(*vol, *dev, *kms, *id, &mut hold)
            }
            Op::VolOverwrite {
                vol,
                dev,
                kms,
                principal,
                key_id,
                params,
            } => self.vol_create_or_overwrite(
                *vol, *dev, *kms, principal, key_id, params, true, &mut hold,
            ),
            Op::KmsServicePolicy {
                kms,
                principal,
                policy,
            } => {
                let k = self.local(*kms);
                let (p, _) = hold.s(principal, Role::Principal);
                let pol = hold.policy(policy);
                // SAFETY: every pointer NULL or valid as documented.
                let s = st(unsafe { envol_ffi::envol_local_kms_set_service_policy(k, p, pol) });
                if !self.local_ok(*kms) {
                    assert_ne!(s, OK);
                }
            }
            Op::KmsForgetVolume {
                kms,
                principal,
                key_id,
                ctx,
            } => {
                let k = self.local(*kms);
                let (p, _) = hold.s(principal, Role::Principal);
                let (id, _) = hold.s(key_id, Role::KeyId);
                let (cp, cn, _) = hold.ctx(ctx, &self.params);
                let count = |k| {
                    let mut c = 0usize;
                    // SAFETY: a live handle (or NULL), strings, an output.
                    let s = st(unsafe {
                        envol_ffi::envol_local_kms_protected_volume_count(
                            k,
                            c"op".as_ptr(),
                            id,
                            &mut c,
                        )
                    });
                    (s == OK).then_some(c)
                };
                let before = count(k);
                // SAFETY: as above.
                let s = st(unsafe { envol_ffi::envol_local_kms_forget_volume(k, p, id, cp, cn) });
                if !self.local_ok(*kms) {
                    assert_ne!(s, OK);
                }
                let after = count(k);
                if let (Some(b), Some(a)) = (before, after) {
                    if s == OK {
                        assert!(a <= b, "forgetting added a protected volume");
                    } else {
                        assert_eq!(a, b, "a refused forget changed the count");
                    }
                }
            }
            Op::KmsAuditHead { kms, out, len_null } => self.kms_audit_head(*kms, *out, *len_null),
            Op::KmsAuditVerifyLines {
                kms,
                lines,
                mutate,
                head,
                from_genesis,
            } => self.kms_audit_verify_lines(*kms, *lines, *mutate, *head, *from_genesis),
            Op::KmsAuditSink { kms, mode, probe } => self.kms_audit_sink(*kms, *mode, *probe),
            Op::HeaderUnwrapExpect {
                ctx,
                kms,
                principal,
                a,
                b,
                id,
                slot_null,
            } => {
                let (cp, i) = self.xts_ptr(*ctx);
                let (t, svc) = self.kms_table(*kms, &mut hold);
                let (p, _) = hold.s(principal, Role::Principal);
                let sa = self.slot(a);
                let sb = self.slot(b);
                let want = self.id_arg(*id);
                let idp = want.map_or(null(), |w| hold.keep(w.to_vec()).cast_const());
                let mut vs = Buf::typed::<c_int>(*slot_null);
                let before = self.xts.0.to_vec();
                if svc == Svc::Fake {
                    self.fake().last_dec = None;
                }
                // SAFETY: as for `HeaderUnwrap`; the id NULL or 16 bytes.
                let s = st(unsafe {
                    envol_ffi::envol_header_unwrap_expect(
                        cp,
                        t,
                        p,
                        sa.as_ref().map_or(null(), |v| v.as_ptr()),
                        sb.as_ref().map_or(null(), |v| v.as_ptr()),
                        idp,
                        vs.cast(),
                    )
                });
                let id_of = |v: &Option<Vec<u8>>| {
                    v.as_ref()
                        .and_then(|v| Header::parse(v).ok().map(|h| h.params.volume_id))
                };
                let ids = [id_of(&sa), id_of(&sb)];
                if let Some(w) = want
                    && !ids.contains(&Some(w))
                {
                    assert_ne!(s, OK, "unwrapped a header of another volume");
                }
                if s == OK {
                    assert!(Self::xts_aligned(*ctx));
                    let slot: c_int = if *slot_null { 0 } else { vs.read() };
                    assert!(slot == 0 || slot == 1, "verified slot {slot}");
                    assert!(vs.slack_intact());
                    let v = if slot == 0 { &sa } else { &sb };
                    let h = Header::parse(v.as_ref().expect("verified slot given"))
                        .expect("the verified copy parses");
                    assert_eq!(h.state, VolumeState::Active);
                    if let Some(w) = want {
                        assert_eq!(h.params.volume_id, w, "verified a copy of another volume");
                    }
                    let key = match svc {
                        Svc::Fake => self.fake().last_dec.clone(),
                        _ => None,
                    };
                    if let Some(k) = &key {
                        assert!(h.verify_mac(k).is_ok(), "MAC not under the key");
                    }
                    self.xst[i] = XState::Live {
                        key,
                        backend: Backend::detect(),
                    };
                } else {
                    assert_eq!(self.xts.0.to_vec(), before, "context changed on {s:?}");
                    assert!(vs.intact(), "verified slot written on {s:?}");
                }
            }
        }
        drop(hold);
    }

    /// An expected volume id argument.
    fn id_arg(&mut self, a: IdArg) -> Option<[u8; 16]> {
        match a {
            IdArg::Disk(d) => {
                let slot = self.disk(usize::from(d)).bytes[..SLOT_SIZE].to_vec();
                Some(Header::parse(&slot).map_or([0; 16], |h| h.params.volume_id))
            }
            IdArg::Pool(i) => Some(newest(&self.params, i).map_or([0; 16], |p| p.volume_id)),
            IdArg::Raw(r) => Some(r),
            IdArg::Null => None,
        }
    }

    fn vol_open_expect(
        &mut self,
        vol: VolArg,
        dev: DevArg,
        kms: KmsArg,
        id: IdArg,
        hold: &mut Hold,
    ) {
        let (vp, i) = self.vol_ptr(vol);
        let (dp, disk) = self.dev_table(dev, hold);
        let (kp, svc) = self.kms_table(kms, hold);
        let want = self.id_arg(id);
        let idp = want.map_or(null(), |w| hold.keep(w.to_vec()).cast_const());
        let before = self.vol_bytes(i);
        let disk_before = self.disk(disk).bytes.clone();
        // SAFETY: as for `VolOpen`; the id NULL or 16 readable bytes.
        let s = st(unsafe { envol_ffi::envol_volume_open_expect(vp, dp, kp, idp) });
        // Opening writes nothing to the device (torn writes aside: none).
        assert!(
            self.disk(disk).bytes == disk_before,
            "open wrote to the device"
        );
        let ids: Vec<[u8; 16]> = [0, SLOT_SIZE]
            .iter()
            .filter_map(|&o| {
                Header::parse(&disk_before[o..o + SLOT_SIZE])
                    .ok()
                    .map(|h| h.params.volume_id)
            })
            .collect();
        if let Some(w) = want
            && !ids.contains(&w)
        {
            assert_ne!(s, OK, "opened a volume with another id");
        }
        if s == OK {
            assert!(Self::vol_ok_ptr(vol));
            assert_eq!(self.vrec[i].state, VState::Empty);
            self.vrec[i] = VolRec {
                state: VState::Detached,
                disk,
                svc,
                params: None,
                dek: None,
                header_dek: None,
                lease: None,
                wiped: false,
            };
            self.check_vol(i);
            if let (Some(w), Some(p)) = (want, self.vrec[i].params) {
                assert_eq!(p.volume_id, w, "opened a volume with another id");
            }
        } else {
            assert!(
                unchanged_vol(&before, &self.vol_bytes(i)),
                "volume changed on {s:?}"
            );
            if Self::vol_ok_ptr(vol) && self.vrec[i].state != VState::Empty && !table_error(s) {
                self.expect_state_error(i, s, VState::Empty);
            }
            self.check_vol(i);
        }
    }

    fn lease_set(
        &mut self,
        vol: VolArg,
        duration: u16,
        renew: u16,
        grace: u16,
        system_clock: bool,
        null: bool,
    ) {
        let (vp, i) = self.vol_ptr(vol);
        // On the system clock, leases long enough never to run out while
        // an input runs (reproducible inputs).
        let duration = if system_clock && duration != 0 {
            u64::from(duration) + 86_400
        } else {
            u64::from(duration)
        };
        let lease = envol_ffi::envol_lease {
            duration_s: duration,
            renew_before_s: u64::from(renew),
            grace_s: u64::from(grace),
            now: (!system_clock).then_some(lease_now as _),
            user: self.clock.cast(),
        };
        let lp: *const envol_ffi::envol_lease = if null { std::ptr::null() } else { &lease };
        let before = self.vol_bytes(i);
        // SAFETY: our volume (or NULL/misaligned); the lease readable, its
        // clock alive as long as the harness.
        let s = st(unsafe { envol_ffi::envol_volume_set_lease(vp, lp) });
        if s == OK {
            assert!(Self::vol_ok_ptr(vol) && !null);
            assert_ne!(self.vrec[i].state, VState::Empty);
            self.vrec[i].lease = (duration != 0).then_some(LeaseRec {
                duration,
                grace: u64::from(grace),
                harness: !system_clock,
            });
        } else {
            assert_eq!(self.vol_bytes(i), before, "volume changed on {s:?}");
            if null {
                if Self::vol_ok_ptr(vol) {
                    assert_eq!(s, envol_status::ENVOL_ERR_NULL_POINTER);
                }
            } else if Self::vol_ok_ptr(vol) {
                assert_eq!(self.vrec[i].state, VState::Empty, "set_lease gave {s:?}");
                assert_eq!(s, envol_status::ENVOL_ERR_NOT_INITIALIZED);
            }
        }
        self.check_vol(i);
    }

    fn vol_maintain(&mut self, vol: VolArg, info_null: bool, misalign: u8) {
        let (vp, i) = self.vol_ptr(vol);
        let rec = self.vrec[i].clone();
        let mut info = Buf::new(
            size_of::<envol_ffi::envol_lease_info>(),
            8,
            usize::from(misalign % 8),
            info_null,
        );
        // SAFETY: the harness's clock, read between calls.
        let now = unsafe { *self.clock };
        // SAFETY: our volume (or NULL/misaligned); the output NULL or
        // writable (written unaligned).
        let s = st(unsafe { envol_ffi::envol_volume_maintain(vp, info.cast()) });
        if s == OK {
            assert!(Self::vol_ok_ptr(vol));
            assert_eq!(rec.state, VState::Attached);
            assert!(info.slack_intact());
            if !info_null {
                let li: envol_ffi::envol_lease_info = info.read();
                assert!(li.state <= 3, "lease state {}", li.state);
                if li.state == 0 {
                    assert_eq!((li.expires_at, li.deadline), (0, 0));
                } else {
                    assert!(li.deadline >= li.expires_at);
                }
                match rec.lease {
                    None => assert_eq!(li.state, 0, "a lease nobody set"),
                    Some(l) => {
                        assert_ne!(li.state, 0, "the lease set is off");
                        if l.harness {
                            match li.state {
                                1 => assert!(now < li.expires_at),
                                2 => assert_eq!(li.expires_at, now + l.duration),
                                _ => assert!(now < li.deadline),
                            }
                            if li.state != 3 {
                                assert_eq!(li.deadline, li.expires_at + l.grace);
                            }
                        }
                    }
                }
            }
            if rec.lease.is_some() {
                assert!(!rec.wiped, "maintain of a wiped key gave OK");
            }
        } else {
            assert!(info.intact(), "lease info written on {s:?}");
            if Self::vol_ok_ptr(vol) && rec.state == VState::Attached {
                // A refusal or a lost lease: the key is gone, data calls
                // say so from now on.
                assert!(rec.lease.is_some() || rec.wiped, "no lease, yet {s:?}");
                self.vrec[i].wiped = true;
                let ss = rec.params.map_or(512, |p| p.sector_size as usize);
                let mut buf = vec![0u8; ss];
                // SAFETY: our volume and buffer.
                let r = st(unsafe { envol_ffi::envol_volume_read(vp, 0, buf.as_mut_ptr(), ss) });
                assert_eq!(r, envol_status::ENVOL_ERR_LEASE_EXPIRED, "after {s:?}");
            } else if Self::vol_ok_ptr(vol) {
                self.expect_state_error(i, s, VState::Attached);
            }
        }
        self.check_vol(i);
    }

    fn vol_crypt(
        &mut self,
        vol: VolArg,
        decrypt: bool,
        first: SectorArg,
        len: IoLen,
        layout: Layout,
        fill: u8,
    ) {
        let (vp, i) = self.vol_ptr(vol);
        let rec = self.vrec[i].clone();
        let ss = rec.params.map_or(512, |p| p.sector_size as usize);
        let first = match first {
            SectorArg::N(n) => u64::from(n),
            SectorArg::Raw(r) => r,
        };
        let mut wild_len = false;
        let mut n = match len {
            IoLen::Sectors(k) => ss * (usize::from(k % 128) + 1),
            IoLen::Bytes(b) => b as usize,
            IoLen::Wild(m) => {
                wild_len = true;
                wild(m)
            }
        };
        if !wild_len {
            n = n.min(MAX_BUF);
        }
        for (j, b) in self.io.iter_mut().enumerate() {
            *b = fill ^ canary(j);
        }
        let base = self.io.as_mut_ptr();
        let vb = self.vol_base(i);
        // Offsets into the arena (None: NULL or inside the volume).
        let (mut ino, mut outo) = (None, None);
        let (mut inside_in, mut inside_out) = (false, false);
        let at = |o: usize| base.wrapping_add(o);
        let (ip, op): (*const u8, *mut u8) = match layout {
            Layout::Disjoint { a, b } => {
                let (x, y) = (usize::from(a) % 128, MAX_BUF + 128 + usize::from(b) % 128);
                ino = Some(x);
                outo = Some(y);
                (at(x), at(y))
            }
            Layout::InPlace { a } => {
                let x = usize::from(a) % 256;
                ino = Some(x);
                outo = Some(x);
                (at(x), at(x))
            }
            Layout::Overlap { a, d } => {
                let dd = if wild_len {
                    16
                } else {
                    usize::from(d & 0x7fff) % n.max(1)
                };
                let (mut x, mut y) = (usize::from(a) % 128, usize::from(a) % 128 + dd);
                if d & 0x8000 != 0 {
                    std::mem::swap(&mut x, &mut y);
                }
                ino = Some(x);
                outo = Some(y);
                (at(x), at(y))
            }
            Layout::NullIn => {
                outo = Some(0);
                (null(), at(0))
            }
            Layout::NullOut => {
                ino = Some(0);
                (at(0), null_mut())
            }
            Layout::InCtx { off, which } => {
                let o = usize::from(off) % ENVOL_VOLUME_SIZE;
                if !wild_len {
                    n = n.min(ENVOL_VOLUME_SIZE + 64 - o);
                }
                let q = vb.wrapping_add(o);
                let mut ip = at(0).cast_const();
                let mut op = at(MAX_BUF + 128);
                ino = Some(0);
                outo = Some(MAX_BUF + 128);
                if which & 1 != 0 || which & 3 == 0 {
                    ip = q;
                    ino = None;
                    inside_in = true;
                }
                if which & 2 != 0 {
                    op = q;
                    outo = None;
                    inside_out = true;
                }
                (ip, op)
            }
        };
        let partial = !ip.is_null()
            && !op.is_null()
            && !wild_len
            && ip != op.cast_const()
            && n != 0
            && (ip as usize) < op as usize + n
            && (op as usize) < ip as usize + n;
        let before = self.io.clone();
        let vol_before = self.vol_bytes(i);
        // SAFETY: `ip`/`op` NULL or valid for `n` bytes (inside the arena or
        // the volume box), or `n` is refused before either is touched.
        let s = st(unsafe {
            if decrypt {
                envol_ffi::envol_volume_decrypt(vp, first, ip, op, n)
            } else {
                envol_ffi::envol_volume_encrypt(vp, first, ip, op, n)
            }
        });
        if inside_in || inside_out {
            assert!(s != OK || n == 0, "data through the volume struct");
        }
        if partial {
            assert_ne!(s, OK, "partially overlapping buffers accepted");
            if Self::vol_ok_ptr(vol) && rec.state == VState::Attached && !inside_in && !inside_out {
                assert_eq!(s, envol_status::ENVOL_ERR_OVERLAP);
            }
        }
        if s != OK {
            assert!(self.io == before, "output written on {s:?}");
            if s != envol_status::ENVOL_ERR_LEASE_EXPIRED {
                assert_eq!(self.vol_bytes(i), vol_before, "volume changed on {s:?}");
            }
            if Self::vol_ok_ptr(vol) && rec.state != VState::Attached {
                self.expect_state_error(i, s, VState::Attached);
            }
            if s == envol_status::ENVOL_ERR_LEASE_EXPIRED {
                assert!(rec.lease.is_some() || rec.wiped, "no lease, yet expired");
            }
            self.check_vol(i);
            return;
        }
        if Self::vol_ok_ptr(vol) && rec.state == VState::Attached && rec.wiped {
            assert_eq!(n, 0, "data call on a wiped key succeeded");
        }
        assert_eq!(rec.state, VState::Attached);
        assert!(!ip.is_null() && !op.is_null() && !wild_len && !partial);
        let p = rec.params.expect("attached volume parameters known");
        let ss = p.sector_size as usize;
        assert!(n % ss == 0);
        assert!(
            first
                .checked_add((n / ss) as u64)
                .is_some_and(|e| e <= p.volume_size / ss as u64)
        );
        if n == 0 {
            return;
        }
        let (ino, outo) = (
            ino.expect("input in the arena"),
            outo.expect("output in the arena"),
        );
        let input = before[ino..ino + n].to_vec();
        let output = self.io[outo..outo + n].to_vec();
        // Nothing written outside the output.
        for (j, (&x, &y)) in self.io.iter().zip(&before).enumerate() {
            if !(outo..outo + n).contains(&j) {
                assert_eq!(x, y, "wrote outside the output at {j}");
            }
        }
        // The engine reference, when the harness knows the key.
        if let Some(key) = &rec.dek {
            let mut want = input.clone();
            let x = Xts::with_backend(key, Backend::Soft).expect("volume key");
            if decrypt {
                x.decrypt_sectors(first, ss, &mut want)
                    .expect("core decrypts");
            } else {
                x.encrypt_sectors(first, ss, &mut want)
                    .expect("core encrypts");
            }
            assert_eq!(output, want, "differs from the XTS reference");
        }
        // The inverse call gives the input back.
        let mut back = vec![0u8; n];
        // SAFETY: our volume and two disjoint buffers of `n` bytes.
        let s2 = st(unsafe {
            if decrypt {
                envol_ffi::envol_volume_encrypt(vp, first, output.as_ptr(), back.as_mut_ptr(), n)
            } else {
                envol_ffi::envol_volume_decrypt(vp, first, output.as_ptr(), back.as_mut_ptr(), n)
            }
        });
        assert_eq!(s2, OK, "the inverse call failed");
        assert_eq!(back, input, "decrypt(encrypt(x)) != x");
        if !decrypt {
            // What `envol_volume_write` puts on the device is this ciphertext.
            // SAFETY: our volume and buffer.
            let s3 = st(unsafe { envol_ffi::envol_volume_write(vp, first, input.as_ptr(), n) });
            if s3 == OK {
                let at = p.data_offset as usize + first as usize * ss;
                let disk = self.disk(rec.disk);
                assert_eq!(
                    disk.bytes[at..at + n],
                    output[..],
                    "write differs from encrypt"
                );
            } else {
                assert_eq!(s3, envol_status::ENVOL_ERR_IO);
            }
        }
        self.check_vol(i);
    }

    fn kms_audit_head(&mut self, kms: LocalArg, out: OutArg, len_null: bool) {
        let k = self.local(kms);
        let (mut buf, cap) = out_buf(out, envol_ffi::ENVOL_AUDIT_HEAD_SIZE);
        let mut len = Buf::typed::<usize>(len_null);
        // SAFETY: as in `run`.
        let s =
            st(unsafe { envol_ffi::envol_local_kms_audit_head(k, buf.cast(), cap, len.cast()) });
        match s {
            OK => {
                assert!(self.local_ok(kms));
                let l: usize = len.read();
                assert!(l < cap && l < envol_ffi::ENVOL_AUDIT_HEAD_SIZE);
                let head = &buf.bytes()[..=l];
                assert_eq!(head[l], 0);
                assert!(buf.intact_after(l + 1));
                let (mut first, mut next) = (0u64, 0u64);
                // SAFETY: as above.
                let r =
                    st(unsafe { envol_ffi::envol_local_kms_audit_range(k, &mut first, &mut next) });
                assert_eq!(r, OK);
                if next == 0 {
                    assert_eq!(l, 0, "a head before any event");
                } else {
                    let text = std::str::from_utf8(&head[..l]).expect("ASCII head");
                    assert!(
                        text.starts_with(&format!("seq={} hash=", next - 1)),
                        "head {text:?} is not event {}",
                        next - 1
                    );
                    let h: envol::kms::audit::AuditHead = text.parse().expect("head parses");
                    assert_eq!(h.to_string(), text);
                }
            }
            envol_status::ENVOL_ERR_BUFFER_TOO_SMALL => {
                assert!(buf.intact());
                let need: usize = len.read();
                assert!(need > cap && need <= envol_ffi::ENVOL_AUDIT_HEAD_SIZE);
            }
            _ => assert!(buf.intact() && len.intact(), "output written on {s:?}"),
        }
        if !self.local_ok(kms) {
            assert_ne!(s, OK);
        }
    }

    /// The current head of a live handle, NUL-terminated.
    fn audit_head(k: *mut envol_local_kms) -> Vec<u8> {
        let mut b = vec![0u8; envol_ffi::ENVOL_AUDIT_HEAD_SIZE];
        let mut l = 0usize;
        // SAFETY: a live handle and a buffer of the size that suffices.
        let s = st(unsafe {
            envol_ffi::envol_local_kms_audit_head(k, b.as_mut_ptr().cast(), b.len(), &mut l)
        });
        assert_eq!(s, OK);
        b.truncate(l + 1);
        b
    }

    fn kms_audit_verify_lines(
        &mut self,
        kms: LocalArg,
        lines: u8,
        mutate: Option<(u16, u8)>,
        head: u8,
        from_genesis: bool,
    ) {
        let k = self.local(kms);
        if !self.local_ok(kms) {
            // SAFETY: NULL or misaligned: refused before anything is read.
            let s = st(unsafe {
                envol_ffi::envol_local_kms_audit_verify_lines(k, c"".as_ptr(), 0, null(), 0)
            });
            assert_ne!(s, OK);
            return;
        }
        let (mut first, mut next) = (0u64, 0u64);
        // SAFETY: a live handle.
        let r = st(unsafe { envol_ffi::envol_local_kms_audit_range(k, &mut first, &mut next) });
        assert_eq!(r, OK);
        let cur = Self::audit_head(k);
        let want = (u64::from(lines) % 64 + 1).min(next - first);
        let start = next - want;
        let mut text = Vec::new();
        for seq in start..next {
            let mut b = vec![0u8; 4096];
            let mut l = 0usize;
            // SAFETY: as above.
            let s = st(unsafe {
                envol_ffi::envol_local_kms_audit_event_line(
                    k,
                    seq,
                    b.as_mut_ptr().cast(),
                    b.len(),
                    &mut l,
                )
            });
            assert_eq!(s, OK, "event {seq} of the window");
            if !text.is_empty() {
                text.push(b'\n');
            }
            text.extend_from_slice(&b[..l]);
        }
        let mutated = match mutate {
            Some((pos, x)) if !text.is_empty() => {
                let j = usize::from(pos) % text.len();
                // Never a newline (that only splits or joins lines) and
                // never an ASCII case flip.
                if text[j] != b'\n' {
                    text[j] ^= x | 1;
                    true
                } else {
                    false
                }
            }
            _ => false,
        };
        let hp: *const c_char = match head {
            0..0xe0 => cur.as_ptr().cast(),
            0xe0..0xf0 => null(),
            _ => c"seq=1 hash=zz".as_ptr(),
        };
        let genesis = from_genesis && head & 1 == 0;
        // SAFETY: a live handle, `text` readable, the head NUL-terminated.
        let s = st(unsafe {
            envol_ffi::envol_local_kms_audit_verify_lines(
                k,
                text.as_ptr().cast(),
                text.len(),
                hp,
                c_int::from(genesis),
            )
        });
        if head >= 0xf0 {
            assert_ne!(s, OK, "a bad head");
        } else if mutated {
            assert_ne!(s, OK, "a mutated trail verified");
        } else if want > 0 && (!genesis || start == 0) {
            assert_eq!(s, OK, "the handle's own trail does not verify");
        } else if genesis && start != 0 {
            assert_ne!(s, OK, "a trail not from event 0 verified as from genesis");
        }
        if s == OK && head < 0xe0 && cur.len() > 1 {
            // A head to reach: an empty trail does not.
            assert!(!mutated && want > 0);
        }
        // The handle's own chain still verifies.
        // SAFETY: a live handle.
        assert_eq!(
            st(unsafe { envol_ffi::envol_local_kms_audit_verify(k) }),
            OK
        );
    }

    fn kms_audit_sink(&mut self, kms: LocalArg, mode: u8, probe: bool) {
        let k = self.local(kms);
        let i = usize::from(kms.slot) % N_KMS;
        let sp = self.sinks[i];
        let mode = mode % 4;
        if mode == 3 {
            let sink = self.sink(i);
            sink.fail = !sink.fail;
        } else {
            let f: envol_ffi::envol_audit_sink_fn = (mode != 2).then_some(audit_sink as _);
            // SAFETY: NULL, misaligned or a live handle; the sink keeps its
            // contract and `sp` lives as long as the harness.
            let s = st(unsafe { envol_ffi::envol_local_kms_set_audit_sink(k, f, sp.cast()) });
            if self.local_ok(kms) {
                assert_eq!(s, OK);
                let sink = self.sink(i);
                sink.installed = mode != 2;
                sink.fail = mode == 1;
                sink.lines.clear();
            } else {
                assert_ne!(s, OK);
            }
        }
        if !probe || !self.local_ok(kms) {
            return;
        }
        // One audited call (a describe of `k1` by `op`).
        let (mut first, mut next) = (0u64, 0u64);
        // SAFETY: a live handle.
        let r = st(unsafe { envol_ffi::envol_local_kms_audit_range(k, &mut first, &mut next) });
        assert_eq!(r, OK);
        let head = Self::audit_head(k);
        let mut state = Buf::typed::<u32>(false);
        let mut vers = Buf::typed::<u32>(false);
        // SAFETY: a live handle, strings, writable outputs.
        let s = st(unsafe {
            envol_ffi::envol_local_kms_describe_key(
                k,
                c"op".as_ptr(),
                c"k1".as_ptr(),
                state.cast(),
                vers.cast(),
            )
        });
        let (mut first2, mut next2) = (0u64, 0u64);
        // SAFETY: as above.
        let r = st(unsafe { envol_ffi::envol_local_kms_audit_range(k, &mut first2, &mut next2) });
        assert_eq!(r, OK);
        let sink = self.sink(i);
        let (installed, fail) = (sink.installed, sink.fail);
        let last = sink.lines.last().cloned();
        if installed && fail {
            assert_eq!(s, envol_status::ENVOL_ERR_AUDIT_FAILED, "failing sink");
            assert!(state.intact() && vers.intact(), "output written on {s:?}");
            assert_eq!(next2, next, "an event recorded past a failing sink");
            assert_eq!(Self::audit_head(k), head, "head moved past a failing sink");
        } else {
            assert_ne!(s, envol_status::ENVOL_ERR_AUDIT_FAILED);
            assert!(next2 > next, "describe was not audited");
            if installed {
                // The sink got exactly the line the window holds.
                let mut b = vec![0u8; 4096];
                let mut l = 0usize;
                // SAFETY: as above.
                let s = st(unsafe {
                    envol_ffi::envol_local_kms_audit_event_line(
                        k,
                        next2 - 1,
                        b.as_mut_ptr().cast(),
                        b.len(),
                        &mut l,
                    )
                });
                assert_eq!(s, OK);
                assert_eq!(last.as_deref(), Some(&b[..l]), "the sink got another line");
            }
        }
        // SAFETY: a live handle.
        assert_eq!(
            st(unsafe { envol_ffi::envol_local_kms_audit_verify(k) }),
            OK
        );
    }

    fn vol_bytes(&mut self, i: usize) -> Vec<u8> {
        let base = self.vol_base(i);
        // SAFETY: our box.
        unsafe { std::slice::from_raw_parts(base, ENVOL_VOLUME_SIZE + 64) }.to_vec()
    }

    /// A call that needs state `want` failed on an aligned volume: if the
    /// volume was in another state, the status says which.
    fn expect_state_error(&self, i: usize, s: envol_status, want: VState) {
        let got = self.vrec[i].state;
        // Arguments (strings, tables, parameters) may be refused first.
        if got != want && !table_error(s) {
            let expect = match got {
                VState::Empty => envol_status::ENVOL_ERR_NOT_INITIALIZED,
                VState::Detached => envol_status::ENVOL_ERR_VOLUME_DETACHED,
                VState::Attached => envol_status::ENVOL_ERR_VOLUME_ATTACHED,
            };
            assert_eq!(s, expect, "state {got:?}, call wants {want:?}");
        }
    }

    fn misc(&mut self, status: u32, backend: u32) {
        // SAFETY: returns a static NUL-terminated string.
        let name =
            unsafe { CStr::from_ptr(envol_ffi::envol_status_name(envol_status_arg(status))) };
        let name = name.to_str().expect("ASCII name");
        if status <= 43 {
            assert!(name.starts_with("ENVOL_") && name != "ENVOL_ERR_UNKNOWN");
        } else {
            assert_eq!(name, "ENVOL_ERR_UNKNOWN");
        }
        // SAFETY: as above.
        let v = unsafe { CStr::from_ptr(envol_ffi::envol_version()) };
        assert!(v.to_bytes().first().is_some_and(u8::is_ascii_digit));
        let b = envol_backend_arg(backend);
        // SAFETY: as above.
        let bname = unsafe { CStr::from_ptr(envol_ffi::envol_backend_name(b)) }
            .to_str()
            .expect("ASCII name")
            .to_owned();
        let avail = envol_ffi::envol_backend_available(b);
        match backend {
            0 => assert!(avail == 1 && bname == "auto"),
            1..=5 => {
                let core = backend_of(backend).expect("known backend");
                assert_eq!(avail == 1, core.is_available());
                assert_eq!(bname, core.to_string());
            }
            _ => assert!(avail == 0 && bname == "unknown"),
        }
        let d = envol_ffi::envol_backend_detect();
        assert_eq!(d, envol_backend::from(Backend::detect()));
        assert_eq!(
            envol_ffi::envol_backend_available(envol_backend_arg(d as u32)),
            1
        );
        assert_eq!(envol_ffi::envol_xts_size(), ENVOL_XTS_SIZE);
        assert_eq!(envol_ffi::envol_volume_size(), ENVOL_VOLUME_SIZE);
    }

    fn kms_manage(
        &mut self,
        kms: LocalArg,
        what: Manage,
        principal: &S,
        key_id: &S,
        out_null: bool,
        hold: &mut Hold,
    ) {
        let k = self.local(kms);
        let (p, _) = hold.s(principal, Role::Principal);
        let (id, _) = hold.s(key_id, Role::KeyId);
        let mut out = Buf::typed::<u64>(out_null);
        // SAFETY: as in `run`.
        let s = st(unsafe {
            match what {
                Manage::Enable => envol_ffi::envol_local_kms_enable_key(k, p, id),
                Manage::Disable => envol_ffi::envol_local_kms_disable_key(k, p, id),
                Manage::CancelDeletion => envol_ffi::envol_local_kms_cancel_key_deletion(k, p, id),
                Manage::EnableRotation(d) => {
                    envol_ffi::envol_local_kms_enable_key_rotation(k, p, id, d)
                }
                Manage::DisableRotation => {
                    envol_ffi::envol_local_kms_disable_key_rotation(k, p, id)
                }
                Manage::Rotate => envol_ffi::envol_local_kms_rotate_key(k, p, id, out.cast()),
                Manage::ScheduleDeletion { days, force } => {
                    envol_ffi::envol_local_kms_schedule_key_deletion(
                        k,
                        p,
                        id,
                        days,
                        force,
                        out.cast(),
                    )
                }
            }
        });
        if s != OK {
            assert!(out.intact(), "output written on {s:?}");
        } else {
            match what {
                Manage::Rotate => assert!(out.intact_after(4) && out.read::<u32>() >= 2),
                Manage::ScheduleDeletion { days, .. } => {
                    assert!((7..=30).contains(&days));
                    assert!(out.read::<u64>() > 0);
                }
                _ => assert!(out.intact()),
            }
        }
        if !self.local_ok(kms) {
            assert_ne!(s, OK);
        }
    }

    fn kms_audit(&mut self, kms: LocalArg, index: usize, out: OutArg, len_null: bool) {
        let k = self.local(kms);
        // SAFETY: NULL, misaligned or a live handle.
        let n = unsafe { envol_ffi::envol_local_kms_audit_len(k) };
        if !self.local_ok(kms) {
            assert_eq!(n, 0);
        }
        let (mut first, mut next) = (0u64, 0u64);
        // SAFETY: as above; valid outputs.
        let r = st(unsafe { envol_ffi::envol_local_kms_audit_range(k, &mut first, &mut next) });
        if r == OK {
            assert_eq!(next - first, n as u64);
        }
        let index = if n > 0 && index.is_multiple_of(2) {
            index % n
        } else {
            index
        };
        let seq = first.wrapping_add(index as u64);
        let (mut buf, cap) = out_buf(out, 2048);
        let mut len = Buf::typed::<usize>(len_null);
        // SAFETY: as in `run`.
        let s = st(unsafe {
            envol_ffi::envol_local_kms_audit_event_line(k, seq, buf.cast(), cap, len.cast())
        });
        match s {
            OK => {
                let l: usize = len.read();
                assert!(index < n && l < cap);
                let line = &buf.bytes()[..=l];
                assert_eq!(line[l], 0);
                assert!(!line[..l].contains(&0) && line.starts_with(b"seq="));
                assert!(buf.intact_after(l + 1));
            }
            envol_status::ENVOL_ERR_BUFFER_TOO_SMALL => {
                // The one output allowed: the size needed.
                assert!(buf.intact());
                assert!(len.read::<usize>() > cap);
            }
            _ => assert!(buf.intact() && len.intact(), "output written on {s:?}"),
        }
        // SAFETY: as above.
        let v = st(unsafe { envol_ffi::envol_local_kms_audit_verify(k) });
        if self.local_ok(kms) {
            assert_eq!(v, OK, "the audit chain does not verify");
        } else {
            assert_ne!(v, OK);
        }
    }

    fn kms_seal(
        &mut self,
        kms: LocalArg,
        root: Key32,
        out: OutArg,
        len_null: bool,
        hold: &mut Hold,
    ) {
        let k = self.local(kms);
        let r = root_bytes(root);
        let rp = r.map_or(null(), |r| hold.keep(r.to_vec()).cast_const());
        let (mut buf, cap) = out_buf(out, MAX_BUF);
        let mut len = Buf::typed::<usize>(len_null);
        // SAFETY: as in `run`.
        let s = st(unsafe { envol_ffi::envol_local_kms_seal(k, rp, buf.cast(), cap, len.cast()) });
        match s {
            OK => {
                let n: usize = len.read();
                assert!(n > 0 && n <= cap);
                assert!(buf.intact_after(n));
                let bytes = buf.bytes()[..n].to_vec();
                // What seals, unseals under the same root.
                let mut h = Buf::typed::<*mut envol_local_kms>(false);
                // SAFETY: valid pointers.
                let s2 = st(unsafe {
                    envol_ffi::envol_local_kms_unseal(rp, bytes.as_ptr(), bytes.len(), h.cast())
                });
                assert_eq!(s2, OK, "own store does not unseal");
                // SAFETY: the new handle, freed once.
                unsafe { envol_ffi::envol_local_kms_free(h.read()) };
                self.store = Some(bytes);
            }
            envol_status::ENVOL_ERR_BUFFER_TOO_SMALL => {
                assert!(buf.intact());
                assert!(len.read::<usize>() > cap);
            }
            _ => assert!(buf.intact() && len.intact(), "output written on {s:?}"),
        }
    }

    fn kms_generate(
        &mut self,
        kms: LocalArg,
        principal: &S,
        key_id: &S,
        dek_len: DekLen,
        ctx: &CtxKv,
        dek: OutArg,
        blob: OutArg,
        len_null: bool,
        hold: &mut Hold,
    ) {
        let k = self.local(kms);
        let (p, _) = hold.s(principal, Role::Principal);
        let (id, _) = hold.s(key_id, Role::KeyId);
        let (cp, cn, _) = hold.ctx(ctx, &self.params);
        let dl = match dek_len {
            DekLen::L64 => 64,
            DekLen::L32 => 32,
            DekLen::Raw(n) => usize::from(n),
            DekLen::Max => usize::MAX,
        };
        // The key buffer is always 64 bytes: the library writes `dek_len`
        // bytes only once it is 32 or 64.
        let mut d = Buf::new(64, 16, usize::from(dek.misalign % 16), dek.null);
        let (mut b, cap) = out_buf(blob, MAX_BLOB);
        let mut len = Buf::typed::<usize>(len_null);
        // SAFETY: as in `run`.
        let s = st(unsafe {
            envol_ffi::envol_local_kms_generate_data_key(
                k,
                p,
                id,
                dl,
                cp,
                cn,
                d.cast(),
                b.cast(),
                cap,
                len.cast(),
            )
        });
        if s == OK {
            let n: usize = len.read();
            assert!(dl == 32 || dl == 64);
            assert!(n > 0 && n <= cap);
            assert!(d.intact_after(dl) && b.intact_after(n));
            let key = d.bytes()[..dl].to_vec();
            let bytes = b.bytes()[..n].to_vec();
            // What was wrapped unwraps to the same key, when allowed.
            let mut back = Buf::new(64, 8, 0, false);
            let mut bl = Buf::typed::<usize>(false);
            // SAFETY: as above.
            let s2 = st(unsafe {
                envol_ffi::envol_local_kms_decrypt_data_key(
                    k,
                    p,
                    bytes.as_ptr(),
                    n,
                    cp,
                    cn,
                    back.cast(),
                    64,
                    bl.cast(),
                )
            });
            if s2 == OK {
                assert_eq!(bl.read::<usize>(), dl);
                assert_eq!(&back.bytes()[..dl], &key[..], "generate/decrypt disagree");
            }
            push_pool(&mut self.deks, key.clone());
            push_pool(
                &mut self.blobs,
                PoolBlob {
                    bytes,
                    dek: Some(key),
                },
            );
        } else {
            assert!(
                d.intact() && b.intact() && len.intact(),
                "output written on {s:?}"
            );
        }
    }

    fn envelope_seal(
        &mut self,
        master: Key32,
        key_id: &S,
        version: u32,
        ctx: &CtxKv,
        secret: &KeyArg,
        nonce: Option<[u8; 12]>,
        out: OutArg,
        len_null: bool,
        hold: &mut Hold,
    ) {
        let m = root_bytes(master);
        let mp = m.map_or(null(), |r| hold.keep(r.to_vec()).cast_const());
        let (id, id_s) = hold.s(key_id, Role::KeyId);
        let (cp, cn, pairs) = hold.ctx(ctx, &self.params);
        let (sp, sl, secret_bytes) = self.key(secret, hold, 1);
        let np = nonce.map_or(null(), |n| hold.keep(n.to_vec()).cast_const());
        let (mut buf, cap) = out_buf(out, MAX_BLOB);
        let mut len = Buf::typed::<usize>(len_null);
        // SAFETY: as in `run`.
        let s = st(unsafe {
            envol_ffi::envol_envelope_seal(
                mp,
                id,
                version,
                cp,
                cn,
                sp,
                sl,
                np,
                buf.cast(),
                cap,
                len.cast(),
            )
        });
        if s != OK {
            assert!(buf.intact() && len.intact(), "output written on {s:?}");
            return;
        }
        let n: usize = len.read();
        assert!(n > 0 && n <= cap);
        assert!(buf.intact_after(n));
        let blob = buf.bytes()[..n].to_vec();
        let (m, id_s, pairs, secret_bytes, nonce) = (
            m.expect("master"),
            id_s.expect("key id"),
            pairs.expect("context"),
            secret_bytes.expect("secret"),
            nonce.expect("nonce"),
        );
        // The same bytes as the core's seal.
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let context = Context::new(&refs).expect("accepted context");
        let mut expect = vec![0u8; MAX_BLOB];
        let en = MasterKey::from_bytes(m)
            .seal_with_nonce(&id_s, version, &context, &secret_bytes, &nonce, &mut expect)
            .expect("core seals what the ABI sealed");
        assert_eq!(&expect[..en], &blob[..], "ABI seal differs from core seal");
        // And it opens again to the secret.
        let mut plain = Buf::new(envol::envelope::MAX_SECRET, 1, 0, false);
        let mut pl = Buf::typed::<usize>(false);
        // SAFETY: valid pointers.
        let s2 = st(unsafe {
            envol_ffi::envol_envelope_open(
                mp,
                blob.as_ptr(),
                n,
                cp,
                cn,
                plain.cast(),
                envol::envelope::MAX_SECRET,
                pl.cast(),
            )
        });
        assert_eq!(s2, OK);
        let pn: usize = pl.read();
        assert_eq!(&plain.bytes()[..pn], &secret_bytes[..]);
        push_pool(
            &mut self.blobs,
            PoolBlob {
                bytes: blob,
                dek: None,
            },
        );
    }

    fn xts_init(
        &mut self,
        ctx: CtxArg,
        key: &KeyArg,
        backend: Option<u32>,
        misalign: u8,
        hold: &mut Hold,
    ) {
        let (cp, i) = self.xts_ptr(ctx);
        let (kp, kl, kb) = self.key(key, hold, misalign);
        let before = self.xts.0.to_vec();
        // SAFETY: as in `run`.
        let s = st(unsafe {
            match backend {
                None => envol_ffi::envol_xts_init(cp, kp, kl),
                Some(b) => envol_ffi::envol_xts_init_with_backend(cp, kp, kl, envol_backend_arg(b)),
            }
        });
        let want = match backend {
            None | Some(0) => Some(Backend::detect()),
            Some(b) => backend_of(b),
        };
        // What the core says about the same key and backend.
        let core = match (&kb, want) {
            (Some(k), Some(b)) => Some(Xts::with_backend(k, b).is_ok()),
            _ => None,
        };
        if s == OK {
            assert!(Self::xts_aligned(ctx) && core == Some(true));
            self.xst[i] = XState::Live {
                key: kb,
                backend: want.expect("known backend"),
            };
        } else {
            assert_eq!(self.xts.0.to_vec(), before, "context changed on {s:?}");
            if Self::xts_aligned(ctx) && core == Some(true) {
                panic!("the core accepts what the ABI refused ({s:?})");
            }
        }
    }

    fn xts_data(
        &mut self,
        ctx: CtxArg,
        decrypt: bool,
        kind: XtsKind,
        layout: Layout,
        len: XtsLen,
        fill: u8,
    ) {
        let (cp, i) = self.xts_ptr(ctx);
        for (j, b) in self.io.iter_mut().enumerate() {
            *b = fill ^ canary(j);
        }
        let (sector_size, unit) = match kind {
            XtsKind::Sectors { size, .. } => (
                match size {
                    XtsSize::S512 => 512,
                    XtsSize::S4096 => 4096,
                    XtsSize::Blocks(n) => 16 * (usize::from(n) + 1),
                    XtsSize::Raw(r) => r as usize,
                },
                false,
            ),
            XtsKind::Unit { .. } => (0, true),
        };
        let mut wild_len = false;
        let mut n = match len {
            XtsLen::Auto(k) => {
                if unit {
                    [512, 16, 17, 31, 4096, 4111, 65536][usize::from(k) % 7]
                } else {
                    sector_size.saturating_mul(usize::from(k % 8) + 1)
                }
            }
            XtsLen::Bytes(b) => b as usize,
            XtsLen::Wild(m) => {
                wild_len = true;
                wild(m)
            }
        };
        if !wild_len {
            n = n.min(MAX_BUF);
        }
        let room = IO_ARENA - MAX_BUF - 64;
        let (a, b, null_in, null_out) = match layout {
            Layout::Disjoint { a, b } => (
                usize::from(a) % room,
                MAX_BUF + 64 + usize::from(b) % 64,
                false,
                false,
            ),
            Layout::InPlace { a } => (usize::from(a) % room, usize::from(a) % room, false, false),
            Layout::Overlap { a, d } => {
                let a = usize::from(a) % room;
                let d = if wild_len || n == 0 {
                    0
                } else {
                    usize::from(d) % n
                };
                (a, (a + d).min(IO_ARENA - MAX_BUF), false, false)
            }
            Layout::NullIn => (0, MAX_BUF + 64, true, false),
            Layout::NullOut => (0, MAX_BUF + 64, false, true),
            Layout::InCtx { .. } => (0, MAX_BUF + 64, false, false),
        };
        let base = self.io.as_mut_ptr();
        // SAFETY: both offsets leave at least `MAX_BUF` bytes in the arena.
        let (mut ip, mut op) = unsafe {
            (
                if null_in {
                    null()
                } else {
                    base.add(a).cast_const()
                },
                if null_out { null_mut() } else { base.add(b) },
            )
        };
        // A buffer inside the context: the key schedule it is running on.
        let mut in_ctx = false;
        if let Layout::InCtx { off, which } = layout {
            let at = i * ENVOL_XTS_SIZE + usize::from(off) % ENVOL_XTS_SIZE;
            if !wild_len {
                n = n.min(self.xts.0.len() - at);
            }
            // SAFETY: inside the context arena.
            let p = unsafe { self.xts.0.as_mut_ptr().add(at) };
            if which & 1 != 0 {
                ip = p.cast_const();
            }
            if which & 2 != 0 || which & 3 == 0 {
                op = p;
            }
            in_ctx = n > 0 && !wild_len;
        }
        let ctx_before = self.xts.0.to_vec();
        let before = self.io.clone();
        let call = |ip: *const u8, op: *mut u8, dec: bool| -> envol_status {
            // SAFETY: `ip`/`op` NULL or valid for `n` bytes inside the arena
            // (or `n` is past the address space and refused unread).
            st(unsafe {
                match (kind, dec) {
                    (XtsKind::Sectors { first, .. }, false) => {
                        envol_ffi::envol_xts_encrypt_sectors(cp, first, sector_size, ip, op, n)
                    }
                    (XtsKind::Sectors { first, .. }, true) => {
                        envol_ffi::envol_xts_decrypt_sectors(cp, first, sector_size, ip, op, n)
                    }
                    (XtsKind::Unit { tweak, null_tweak }, d) => {
                        let t = if null_tweak { null() } else { tweak.as_ptr() };
                        if d {
                            envol_ffi::envol_xts_decrypt_unit(cp, t, ip, op, n)
                        } else {
                            envol_ffi::envol_xts_encrypt_unit(cp, t, ip, op, n)
                        }
                    }
                }
            })
        };
        let s = call(ip, op, decrypt);
        if in_ctx {
            assert_ne!(s, OK, "ran with a buffer inside the context");
            assert_eq!(self.xts.0.to_vec(), ctx_before, "context changed on {s:?}");
            assert!(self.io == before, "buffer changed on {s:?}");
            return;
        }
        let partial = a != b && !wild_len && n != 0 && a < b + n && b < a + n;
        let live = match &self.xst[i] {
            XState::Live { key, .. } if Self::xts_aligned(ctx) => Some(key.clone()),
            _ => None,
        };
        let null_tweak = matches!(
            kind,
            XtsKind::Unit {
                null_tweak: true,
                ..
            }
        );
        let core_ok = match kind {
            XtsKind::Sectors { first, .. } => Xts::check_sectors(first, sector_size, n).is_ok(),
            XtsKind::Unit { .. } => Xts::check_unit(n).is_ok(),
        };
        let valid = live.is_some()
            && !null_in
            && !null_out
            && !null_tweak
            && !wild_len
            && !partial
            && core_ok;
        if s != OK {
            assert!(!valid, "valid call refused: {s:?}");
            assert!(self.io == before, "buffer changed on {s:?}");
            if live.is_none() && !null_tweak && !ctx.null && ctx.misalign.is_multiple_of(64) {
                assert_eq!(s, envol_status::ENVOL_ERR_NOT_INITIALIZED);
            }
            return;
        }
        assert!(valid, "invalid call accepted");
        let input = before[a..a + n].to_vec();
        let output = self.io[b..b + n].to_vec();
        // Nothing outside the output changed.
        for (j, (x, y)) in self.io.iter().zip(&before).enumerate() {
            if !(b..b + n).contains(&j) {
                assert_eq!(x, y, "byte {j} outside the output changed");
            }
        }
        // The core, on the portable backend, agrees.
        if let Some(Some(key)) = &live {
            let x = Xts::with_backend(key, Backend::Soft).expect("live key is valid");
            let mut expect = input.clone();
            match (kind, decrypt) {
                (XtsKind::Sectors { first, .. }, false) => {
                    x.encrypt_sectors(first, sector_size, &mut expect)
                }
                (XtsKind::Sectors { first, .. }, true) => {
                    x.decrypt_sectors(first, sector_size, &mut expect)
                }
                (XtsKind::Unit { tweak, .. }, false) => x.encrypt_unit(&tweak, &mut expect),
                (XtsKind::Unit { tweak, .. }, true) => x.decrypt_unit(&tweak, &mut expect),
            }
            .expect("core accepts");
            assert_eq!(output, expect, "ABI XTS differs from core XTS");
        }
        // The inverse call, in place, gives the input back.
        let mut back = output;
        let s2 = call(back.as_ptr(), back.as_mut_ptr(), !decrypt);
        assert_eq!(s2, OK);
        assert_eq!(back, input, "decrypt(encrypt(x)) != x");
    }

    fn header_parse(
        &mut self,
        a: &SlotArg,
        b: &SlotArg,
        blob: OutArg,
        nulls: u8,
        misalign: u8,
        overlap: Option<u16>,
    ) {
        let mut sa = self.slot(a);
        let sb = self.slot(b);
        let m = usize::from(misalign % 8);
        let mut p = Buf::new(size_of::<envol_volume_params>(), 8, m, nulls & 1 != 0);
        let mut seq = Buf::new(8, 8, m, nulls & 2 != 0);
        let (mut bo, mut cap) = out_buf(blob, MAX_BLOB);
        let mut bl = Buf::new(8, 8, m, nulls & 4 != 0);
        let mut rep = Buf::new(4, 4, m, nulls & 8 != 0);
        let before_a = sa.clone();
        let mut bp = bo.ptr();
        if let (Some(o), Some(s)) = (overlap, sa.as_mut()) {
            let o = usize::from(o) % SLOT_SIZE;
            // SAFETY: inside slot A.
            bp = unsafe { s.as_mut_ptr().add(o) };
            cap = cap.min(SLOT_SIZE - o);
        }
        // SAFETY: slots NULL or 4096 readable bytes; outputs NULL or valid.
        let s = st(unsafe {
            envol_ffi::envol_header_parse(
                sa.as_ref().map_or(null(), |v| v.as_ptr()),
                sb.as_ref().map_or(null(), |v| v.as_ptr()),
                p.cast(),
                seq.cast(),
                bp,
                cap,
                bl.cast(),
                rep.cast(),
            )
        });
        assert_eq!(sa, before_a, "slot A changed");
        let core = match (&sa, &sb) {
            (Some(x), Some(y)) => header::pick(x, y).ok().map(|pk| {
                (
                    c_params(&pk.header.params),
                    pk.header.sequence,
                    pk.header.blob.to_vec(),
                    if pk.other_needs_repair {
                        1 - pk.slot as c_int
                    } else {
                        -1
                    },
                )
            }),
            _ => None,
        };
        if s == OK {
            let (cpar, cseq, cblob, crep) = core.expect("the core parses what the ABI parsed");
            assert_eq!(p.read::<envol_volume_params>(), cpar);
            assert_eq!(seq.read::<u64>(), cseq);
            let n: usize = bl.read();
            assert_eq!(n, cblob.len());
            assert_eq!(rep.read::<c_int>(), crep);
            assert!(overlap.is_none());
            assert_eq!(&bo.bytes()[..n], &cblob[..]);
            assert!(bo.intact_after(n));
            push_pool(&mut self.params, cpar);
            push_pool(
                &mut self.blobs,
                PoolBlob {
                    bytes: cblob,
                    dek: None,
                },
            );
        } else {
            assert!(p.intact() && seq.intact() && bo.intact() && bl.intact() && rep.intact());
            if nulls & 15 == 0
                && !matches!(blob.cap, Cap::Wild(_))
                && overlap.is_none()
                && !blob.null
                && let Some((_, _, cblob, _)) = &core
            {
                assert!(cblob.len() > cap, "refused a header the core picks: {s:?}");
            }
        }
    }

    fn header_context(
        &mut self,
        params: &ParamsArg,
        strings: OutArg,
        nulls: u8,
        overlap: bool,
        hold: &mut Hold,
    ) {
        let (pp, pv) = self.params_ptr(params, hold);
        let (mut sbuf, cap) = out_buf(strings, 256);
        let mut pairs = Buf::new(
            ENVOL_HEADER_CONTEXT_PAIRS * size_of::<envol_kv>(),
            8,
            usize::from(strings.misalign % 8),
            nulls & 1 != 0,
        );
        let mut n = Buf::new(8, 8, 1, nulls & 2 != 0);
        let pairs_ptr: *mut envol_kv = if overlap && !sbuf.null && sbuf.len >= 160 {
            // Inside the strings buffer.
            sbuf.ptr().wrapping_add(sbuf.len / 2).cast()
        } else {
            pairs.cast()
        };
        // SAFETY: as in `run`.
        let s = st(unsafe {
            envol_ffi::envol_header_context(pp, pairs_ptr, sbuf.cast(), cap, n.cast())
        });
        if s != OK {
            assert!(
                sbuf.intact() && pairs.intact() && n.intact(),
                "output written on {s:?}"
            );
            return;
        }
        assert!(!overlap || sbuf.null || sbuf.len < 160);
        let params = rust_params(&pv.expect("params")).expect("accepted params are valid");
        assert_eq!(n.read::<usize>(), ENVOL_HEADER_CONTEXT_PAIRS);
        let shell = Header {
            params,
            state: VolumeState::Active,
            sequence: 0,
            blob: &[],
            mac: [0; 32],
        };
        let strs = shell.context_strings();
        let expect: Vec<(&str, &str)> = strs.context().iter().collect();
        let lo = sbuf.ptr() as usize;
        let hi = lo + cap.min(sbuf.len);
        for (j, (k, v)) in expect.iter().enumerate() {
            // SAFETY: inside `pairs`.
            let kv = unsafe {
                pairs
                    .ptr()
                    .add(j * size_of::<envol_kv>())
                    .cast::<envol_kv>()
                    .read_unaligned()
            };
            for (ptr, want) in [(kv.key, k), (kv.value, v)] {
                let a = ptr as usize;
                assert!(a >= lo && a < hi, "pair points outside the strings");
                // SAFETY: inside the strings buffer, NUL-terminated.
                let got = unsafe { CStr::from_ptr(ptr) };
                assert_eq!(got.to_str().ok(), Some(*want));
            }
        }
    }

    fn header_build(
        &mut self,
        params: &ParamsArg,
        blob: &BlobArg,
        sequence: u64,
        dek: &KeyArg,
        out: OutArg,
        overlap: u8,
        hold: &mut Hold,
    ) {
        let (pp, pv) = self.params_ptr(params, hold);
        let (mut bp, bl, bbytes, _) = self.blob(blob, hold);
        let (mut dp, dl, dbytes) = self.key(dek, hold, 3);
        // The slot output is always a whole slot (its size is fixed).
        let mut o = Buf::new(SLOT_SIZE, 16, usize::from(out.misalign % 16), out.null);
        let overlapping = !overlap.is_multiple_of(3) && !o.null;
        if overlapping {
            let inside = o.ptr().wrapping_add(SLOT_SIZE / 2);
            if overlap % 3 == 1 && !bp.is_null() && bl <= SLOT_SIZE / 2 {
                // SAFETY: `bl` bytes fit in the second half of the slot.
                unsafe { std::ptr::copy_nonoverlapping(bp, inside, bl) };
                bp = inside.cast_const();
            } else if overlap % 3 == 2 && !dp.is_null() && dl <= SLOT_SIZE / 2 {
                // SAFETY: as above.
                unsafe { std::ptr::copy_nonoverlapping(dp, inside, dl) };
                dp = inside.cast_const();
            }
        }
        let before = o.mem.clone();
        // SAFETY: as in `run`.
        let s = st(unsafe { envol_ffi::envol_header_build(pp, bp, bl, sequence, dp, dl, o.ptr()) });
        if s != OK {
            assert_eq!(o.mem, before, "slot written on {s:?}");
            return;
        }
        assert!(o.slack_intact());
        let slot = o.bytes().to_vec();
        let h = Header::parse(&slot).expect("a built header parses");
        let want = rust_params(&pv.expect("params")).expect("valid");
        assert_eq!(h.params, want);
        assert_eq!(h.sequence, sequence);
        assert_eq!(h.state, VolumeState::Active);
        assert_eq!(h.blob, &bbytes[..]);
        let key = dbytes.expect("key");
        assert!(h.verify_mac(&key).is_ok(), "built MAC does not verify");
        // SAFETY: 4096 readable bytes.
        assert_eq!(
            st(unsafe { envol_ffi::envol_header_check(slot.as_ptr()) }),
            OK
        );
        push_pool(&mut self.built, slot);
    }

    fn vol_create_or_overwrite(
        &mut self,
        vol: VolArg,
        dev: DevArg,
        kms: KmsArg,
        principal: &S,
        key_id: &S,
        params: &ParamsArg,
        overwrite: bool,
        hold: &mut Hold,
    ) {
        let (vp, i) = self.vol_ptr(vol);
        let (dp, disk) = self.dev_table(dev, hold);
        let (kp, svc) = self.kms_table(kms, hold);
        let (p, _) = hold.s(principal, Role::Principal);
        let (id, _) = hold.s(key_id, Role::KeyId);
        let (pp, pv) = self.params_ptr(params, hold);
        let before = self.vol_bytes(i);
        self.fake().last_gen = None;
        // SAFETY: as for `VolOpen`.
        let s = st(unsafe {
            if overwrite {
                envol_ffi::envol_volume_overwrite(vp, dp, kp, p, id, pp)
            } else {
                envol_ffi::envol_volume_create(vp, dp, kp, p, id, pp)
            }
        });
        if overwrite {
            assert_ne!(
                s,
                envol_status::ENVOL_ERR_VOLUME_EXISTS,
                "overwrite refused"
            );
        }
        if s == OK {
            assert!(Self::vol_ok_ptr(vol));
            assert_eq!(self.vrec[i].state, VState::Empty);
            let key = if svc == Svc::Fake {
                self.fake().last_gen.clone()
            } else {
                None
            };
            self.vrec[i] = VolRec {
                state: VState::Attached,
                disk,
                svc,
                params: pv,
                dek: key.clone(),
                header_dek: key,
                lease: None,
                wiped: false,
            };
            // The header on the device is the one the volume holds.
            let d = self.disk(disk);
            let (a, b) = (
                d.bytes[..SLOT_SIZE].to_vec(),
                d.bytes[SLOT_SIZE..2 * SLOT_SIZE].to_vec(),
            );
            if let Ok(pk) = header::pick(&a, &b) {
                assert_eq!(Some(c_params(&pk.header.params)), pv);
            }
            push_pool(&mut self.params, pv.expect("params"));
        } else {
            assert!(
                unchanged_vol(&before, &self.vol_bytes(i)),
                "volume changed on {s:?}"
            );
            if Self::vol_ok_ptr(vol) && self.vrec[i].state != VState::Empty && !table_error(s) {
                self.expect_state_error(i, s, VState::Empty);
            }
        }
        self.check_vol(i);
    }

    fn vol_io(&mut self, vol: VolArg, first: SectorArg, io: IoArg, write: bool) {
        let (vp, i) = self.vol_ptr(vol);
        let rec = self.vrec[i].clone();
        let ss = rec.params.map_or(512, |p| p.sector_size as usize);
        let first = match first {
            SectorArg::N(n) => u64::from(n),
            SectorArg::Raw(r) => r,
        };
        let mut wild_len = false;
        let mut n = match io.len {
            IoLen::Sectors(k) => ss * (usize::from(k % 128) + 1),
            IoLen::Bytes(b) => b as usize,
            IoLen::Wild(m) => {
                wild_len = true;
                wild(m)
            }
        };
        if !wild_len {
            n = n.min(MAX_BUF);
        }
        for (j, b) in self.io.iter_mut().enumerate() {
            *b = io.fill ^ canary(j);
        }
        let off = usize::from(io.off) % (IO_ARENA - MAX_BUF);
        let base = self.io.as_mut_ptr();
        let mut inside = false;
        let bp: *mut u8 = if io.null {
            null_mut()
        } else if let Some(o) = io.inside_vol {
            let vb = self.vol_base(i);
            let o = usize::from(o) % ENVOL_VOLUME_SIZE;
            if !wild_len {
                n = n.min(ENVOL_VOLUME_SIZE + 64 - o);
            }
            inside = true;
            // SAFETY: inside the volume box.
            unsafe { vb.add(o) }
        } else {
            // SAFETY: `off + MAX_BUF` is inside the arena.
            unsafe { base.add(off) }
        };
        let before = self.io.clone();
        let vol_before = self.vol_bytes(i);
        // SAFETY: `bp` NULL or valid for `n` bytes (or `n` is refused unread).
        let s = st(unsafe {
            if write {
                envol_ffi::envol_volume_write(vp, first, bp, n)
            } else {
                envol_ffi::envol_volume_read(vp, first, bp, n)
            }
        });
        if inside {
            // Never through a buffer inside the volume itself (an empty one
            // is a no-op).
            assert!(s != OK || n == 0);
            assert_eq!(self.vol_bytes(i), vol_before);
        }
        if !(write || s == OK || s == envol_status::ENVOL_ERR_IO) {
            assert!(self.io == before, "read buffer changed on {s:?}");
        }
        if write {
            assert!(self.io == before, "write changed the caller's data");
        }
        if Self::vol_ok_ptr(vol) && s != OK && rec.state != VState::Attached {
            self.expect_state_error(i, s, VState::Attached);
        }
        if Self::vol_ok_ptr(vol) && rec.state == VState::Attached && rec.wiped {
            assert!(s != OK || n == 0, "data call on a wiped key gave {s:?}");
        }
        if s == envol_status::ENVOL_ERR_LEASE_EXPIRED {
            assert!(rec.lease.is_some() || rec.wiped, "no lease, yet expired");
        }
        if s != OK {
            self.check_vol(i);
            return;
        }
        assert_eq!(rec.state, VState::Attached);
        assert!(!io.null && !wild_len && (!inside || n == 0));
        let p = rec.params.expect("attached volume parameters known");
        let ss = p.sector_size as usize;
        assert!(n % ss == 0);
        let sectors = (n / ss) as u64;
        assert!(
            first
                .checked_add(sectors)
                .is_some_and(|e| e <= p.volume_size / ss as u64)
        );
        if n == 0 {
            return;
        }
        let data = self.io[off..off + n].to_vec();
        // The device holds the XTS encryption of the plaintext, sector
        // numbers counted from the data area.
        if let Some(key) = &rec.dek {
            let at = p.data_offset as usize + first as usize * ss;
            let disk = self.disk(rec.disk);
            let mut raw = disk.bytes[at..at + n].to_vec();
            Xts::with_backend(key, Backend::Soft)
                .expect("volume key")
                .decrypt_sectors(first, ss, &mut raw)
                .expect("core decrypts");
            assert_eq!(raw, data, "device bytes are not the XTS of the data");
        }
        if write {
            // Reading back gives what was written.
            let mut back = vec![0u8; n];
            // SAFETY: our volume and buffer.
            let s2 = st(unsafe { envol_ffi::envol_volume_read(vp, first, back.as_mut_ptr(), n) });
            if s2 == OK {
                assert_eq!(back, data, "read-back differs from write");
            } else {
                assert_eq!(s2, envol_status::ENVOL_ERR_IO);
            }
        }
    }
}

impl Drop for State {
    fn drop(&mut self) {
        for i in 0..self.vols.len() {
            let base = self.vol_base(i);
            // SAFETY: our aligned volume struct; its tables' users are alive.
            unsafe { envol_ffi::envol_volume_close(base.cast()) };
        }
        for i in 0..N_CTX {
            // SAFETY: our aligned context.
            unsafe {
                envol_ffi::envol_xts_wipe(self.xts.0.as_mut_ptr().add(i * ENVOL_XTS_SIZE).cast())
            };
        }
        for h in self.kms {
            // SAFETY: NULL or a live handle, freed once.
            unsafe { envol_ffi::envol_local_kms_free(h) };
        }
        // SAFETY: made by `Box::into_raw`, nothing refers to them any more.
        unsafe {
            drop(Box::from_raw(self.fake));
            for d in self.disks {
                drop(Box::from_raw(d));
            }
            drop(Box::from_raw(self.clock));
            for k in self.sinks {
                drop(Box::from_raw(k));
            }
        }
    }
}

/// The ops an input encodes: at most [`MAX_OPS`].
pub fn decode(data: &[u8]) -> Vec<Op> {
    let mut u = Unstructured::new(data);
    let mut ops = Vec::new();
    while !u.is_empty() && ops.len() < MAX_OPS {
        match Op::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    ops
}

/// Arbitrary sequences of C ABI calls: see the module documentation.
pub fn ffi_calls(data: &[u8]) {
    let ops = decode(data);
    let mut state = State::new();
    state.setup();
    for op in &ops {
        if trace() {
            eprintln!("{op:?}");
        }
        state.run(op);
    }
}

/// `ENVOL_FUZZ_TRACE=1` prints every op and status (to read a crash input).
fn trace() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("ENVOL_FUZZ_TRACE").is_some())
}

// ---------------------------------------------------------------------------
// Seeds: inputs that decode to given op sequences. Ops are written as their
// variant tag, some leading bytes, and zeros for the rest (zero is the
// ordinary choice everywhere).
// ---------------------------------------------------------------------------

/// Encodes op number `variant` (declaration order) followed by `prefix`,
/// zero-padded to exactly the bytes that op then consumes.
fn encode_op(variant: u32, prefix: &[u8]) -> Vec<u8> {
    const VARIANTS: u64 = 60;
    // The derive maps a u32 `t` to variant `(t * count) >> 32`.
    let t = ((u64::from(variant) << 32).div_ceil(VARIANTS)) as u32;
    let mut probe = t.to_le_bytes().to_vec();
    probe.extend_from_slice(prefix);
    probe.extend(std::iter::repeat_n(0u8, 4096));
    let mut u = Unstructured::new(&probe);
    Op::arbitrary(&mut u).expect("probe decodes");
    let used = probe.len() - u.len();
    probe.truncate(used.max(4 + prefix.len()));
    probe
}

/// Op numbers, in declaration order (checked by `seeds_decode`).
mod v {
    pub const KMS_NEW: u32 = 0;
    pub const KMS_CREATE_KEY: u32 = 1;
    pub const VOL_CREATE: u32 = 2;
    pub const VOL_WRITE: u32 = 3;
    pub const VOL_READ: u32 = 4;
    pub const VOL_DETACH: u32 = 5;
    pub const VOL_ATTACH: u32 = 6;
    pub const VOL_OPEN: u32 = 7;
    pub const VOL_REWRAP: u32 = 10;
    pub const VOL_INFO: u32 = 12;
    pub const XTS_INIT: u32 = 19;
    pub const XTS_DATA: u32 = 20;
    pub const XTS_WIPE: u32 = 21;
    pub const XTS_INIT_FROM_BLOB: u32 = 24;
    pub const ENVELOPE_SEAL: u32 = 25;
    pub const HEADER_PARSE: u32 = 28;
    pub const HEADER_CONTEXT: u32 = 29;
    pub const HEADER_UNWRAP: u32 = 30;
    pub const KMS_SEAL: u32 = 33;
    pub const KMS_CREATE_GRANT: u32 = 38;
    pub const KMS_AUDIT: u32 = 41;
    pub const KMS_GENERATE: u32 = 42;
    pub const KMS_DECRYPT: u32 = 43;
    pub const MISC: u32 = 47;
    pub const VOL_CRYPT: u32 = 48;
    pub const LEASE_SET: u32 = 49;
    pub const LEASE_ADVANCE: u32 = 50;
    pub const VOL_MAINTAIN: u32 = 51;
    pub const VOL_OPEN_EXPECT: u32 = 52;
    pub const VOL_OVERWRITE: u32 = 53;
    pub const KMS_SERVICE_POLICY: u32 = 54;
    pub const KMS_FORGET_VOLUME: u32 = 55;
    pub const KMS_AUDIT_HEAD: u32 = 56;
    pub const KMS_AUDIT_VERIFY_LINES: u32 = 57;
    pub const KMS_AUDIT_SINK: u32 = 58;
    pub const HEADER_UNWRAP_EXPECT: u32 = 59;
}

/// Named seed inputs for `fuzz/corpus/ffi_calls/`, with the op names each
/// must decode to.
pub fn seed_inputs() -> Vec<(&'static str, Vec<u8>, Vec<&'static str>)> {
    let cat = |ops: &[Vec<u8>]| ops.concat();
    // A fake-service table: KmsArg { src: Fake }.
    let fake_kms = [0x80u8];
    // VolCreate: vol, dev (VolArg 3 bytes, DevArg 4 bytes), then kms.
    let mut create_fake = vec![0u8; 3 + 4];
    create_fake.extend_from_slice(&fake_kms);
    // VolOpen of volume 1 on disk 0 with the fake service.
    let mut open_fake = vec![1u8, 0, 0, 0, 0, 0, 0];
    open_fake.extend_from_slice(&fake_kms);
    // VolAttach of volume 1; reads and writes on volume 1.
    let vol1 = [1u8, 0, 0];
    // XtsInitFromBlob / HeaderUnwrap: ctx (3 bytes), then kms.
    let mut unwrap_fake = vec![0u8; 3];
    unwrap_fake.extend_from_slice(&fake_kms);
    // KmsCreateGrant: handle, principal, key id, grantee, then one
    // operation ("kms:Decrypt").
    let mut grant = vec![0u8; 3 + 1 + 1 + 1];
    grant.extend_from_slice(&[1, 0, 0]);
    // EnvelopeSeal: master, key id, version, context, secret, then a nonce.
    // VolCrypt: vol, decrypt, first sector (tag, n), length, layout.
    let crypt_in_place = [0u8, 0, 0, 1, 0, 0, 0, 0, 3, 4, 0x60];
    // Two sectors, output 16 bytes into the input: ENVOL_ERR_OVERLAP.
    let crypt_overlap = [0u8, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xa0, 0, 0, 0x10, 0];
    // VolOpenExpect of volume 1 expecting a raw id nobody has.
    let mut open_wrong = open_fake.clone();
    open_wrong.extend_from_slice(&[0, 0, 0, 0, 0, 0x80]);
    open_wrong.extend_from_slice(&[0x42; 16]);
    let mut seal = vec![0u8; 1 + 1 + 4 + 1 + 2];
    seal.push(1);
    seal.extend_from_slice(&[9; 12]);
    vec![
        (
            "local-volume",
            cat(&[
                encode_op(v::KMS_NEW, &[]),
                encode_op(v::KMS_CREATE_KEY, &[]),
                encode_op(v::VOL_CREATE, &[]),
                encode_op(v::VOL_WRITE, &[]),
                encode_op(v::VOL_READ, &[]),
                encode_op(v::VOL_DETACH, &[]),
                encode_op(v::VOL_ATTACH, &[]),
                encode_op(v::VOL_REWRAP, &[]),
                encode_op(v::VOL_INFO, &[]),
                encode_op(v::KMS_AUDIT, &[]),
                encode_op(v::KMS_SEAL, &[]),
            ]),
            vec![
                "KmsNew",
                "KmsCreateKey",
                "VolCreate",
                "VolWrite",
                "VolRead",
                "VolDetach",
                "VolAttach",
                "VolRewrap",
                "VolInfo",
                "KmsAudit",
                "KmsSeal",
            ],
        ),
        (
            "fake-volume",
            cat(&[
                encode_op(v::VOL_CREATE, &create_fake),
                encode_op(v::VOL_WRITE, &[]),
                encode_op(v::VOL_OPEN, &open_fake),
                encode_op(v::VOL_ATTACH, &vol1),
                encode_op(v::VOL_READ, &vol1),
                encode_op(v::HEADER_PARSE, &[]),
                encode_op(v::HEADER_UNWRAP, &unwrap_fake),
                encode_op(v::XTS_DATA, &[]),
                encode_op(v::HEADER_CONTEXT, &[]),
            ]),
            vec![
                "VolCreate",
                "VolWrite",
                "VolOpen",
                "VolAttach",
                "VolRead",
                "HeaderParse",
                "HeaderUnwrap",
                "XtsData",
                "HeaderContext",
            ],
        ),
        (
            "xts",
            cat(&[
                encode_op(v::XTS_INIT, &[]),
                encode_op(v::XTS_DATA, &[]),
                encode_op(v::XTS_DATA, &[0, 0, 0, 1]),
                encode_op(v::XTS_WIPE, &[]),
                encode_op(v::XTS_WIPE, &[]),
                encode_op(v::XTS_DATA, &[]),
                encode_op(v::MISC, &[]),
            ]),
            vec![
                "XtsInit", "XtsData", "XtsData", "XtsWipe", "XtsWipe", "XtsData", "Misc",
            ],
        ),
        (
            "lease",
            cat(&[
                encode_op(v::VOL_CREATE, &create_fake),
                encode_op(v::LEASE_SET, &[0, 0, 0, 10, 0]),
                encode_op(v::VOL_CRYPT, &[]),
                encode_op(v::VOL_CRYPT, &crypt_in_place),
                encode_op(v::VOL_CRYPT, &crypt_overlap),
                encode_op(v::VOL_MAINTAIN, &[]),
                encode_op(v::LEASE_ADVANCE, &[6, 0]),
                encode_op(v::VOL_MAINTAIN, &[]),
                encode_op(v::VOL_CRYPT, &[]),
                encode_op(v::LEASE_ADVANCE, &[100, 0]),
                encode_op(v::VOL_MAINTAIN, &[]),
                encode_op(v::VOL_CRYPT, &[]),
                encode_op(v::VOL_READ, &[]),
                encode_op(v::VOL_DETACH, &[]),
                encode_op(v::VOL_ATTACH, &[]),
                encode_op(v::VOL_CRYPT, &crypt_in_place),
                encode_op(v::VOL_MAINTAIN, &[]),
            ]),
            vec![
                "VolCreate",
                "LeaseSet",
                "VolCrypt",
                "VolCrypt",
                "VolCrypt",
                "VolMaintain",
                "LeaseAdvance",
                "VolMaintain",
                "VolCrypt",
                "LeaseAdvance",
                "VolMaintain",
                "VolCrypt",
                "VolRead",
                "VolDetach",
                "VolAttach",
                "VolCrypt",
                "VolMaintain",
            ],
        ),
        (
            "local-lease-audit",
            cat(&[
                encode_op(v::VOL_CREATE, &[]),
                encode_op(v::VOL_CRYPT, &[]),
                encode_op(v::VOL_CRYPT, &crypt_in_place),
                encode_op(v::LEASE_SET, &[0, 0, 0, 10, 0]),
                encode_op(v::VOL_MAINTAIN, &[]),
                encode_op(v::KMS_AUDIT_SINK, &[0, 0, 0, 0, 1]),
                encode_op(v::KMS_AUDIT_HEAD, &[]),
                encode_op(v::KMS_AUDIT_VERIFY_LINES, &[0, 0, 0, 8, 0]),
                encode_op(v::KMS_AUDIT_VERIFY_LINES, &[0, 0, 0, 8, 1, 5, 0, 0x40]),
                encode_op(v::KMS_AUDIT_SINK, &[0, 0, 0, 1, 1]),
                encode_op(v::LEASE_ADVANCE, &[6, 0]),
                encode_op(v::VOL_MAINTAIN, &[]),
                encode_op(v::VOL_CRYPT, &[]),
                encode_op(v::KMS_AUDIT_SINK, &[0, 0, 0, 3, 1]),
                encode_op(v::KMS_SERVICE_POLICY, &[]),
                encode_op(v::KMS_FORGET_VOLUME, &[]),
                encode_op(v::VOL_OVERWRITE, &[1, 0, 0, 1]),
            ]),
            vec![
                "VolCreate",
                "VolCrypt",
                "VolCrypt",
                "LeaseSet",
                "VolMaintain",
                "KmsAuditSink",
                "KmsAuditHead",
                "KmsAuditVerifyLines",
                "KmsAuditVerifyLines",
                "KmsAuditSink",
                "LeaseAdvance",
                "VolMaintain",
                "VolCrypt",
                "KmsAuditSink",
                "KmsServicePolicy",
                "KmsForgetVolume",
                "VolOverwrite",
            ],
        ),
        (
            "expect",
            cat(&[
                encode_op(v::VOL_CREATE, &create_fake),
                encode_op(v::HEADER_UNWRAP_EXPECT, &unwrap_fake),
                encode_op(v::XTS_DATA, &[]),
                encode_op(v::VOL_OPEN_EXPECT, &open_wrong),
                encode_op(v::VOL_OPEN_EXPECT, &open_fake),
                encode_op(v::VOL_ATTACH, &vol1),
                encode_op(v::VOL_READ, &vol1),
            ]),
            vec![
                "VolCreate",
                "HeaderUnwrapExpect",
                "XtsData",
                "VolOpenExpect",
                "VolOpenExpect",
                "VolAttach",
                "VolRead",
            ],
        ),
        (
            "local-keys",
            cat(&[
                encode_op(v::KMS_NEW, &[]),
                encode_op(v::KMS_CREATE_KEY, &[]),
                encode_op(v::KMS_GENERATE, &[]),
                encode_op(v::KMS_DECRYPT, &[]),
                encode_op(v::XTS_INIT_FROM_BLOB, &[]),
                encode_op(v::XTS_DATA, &[]),
                encode_op(v::KMS_CREATE_GRANT, &grant),
                encode_op(v::ENVELOPE_SEAL, &seal),
            ]),
            vec![
                "KmsNew",
                "KmsCreateKey",
                "KmsGenerate",
                "KmsDecrypt",
                "XtsInitFromBlob",
                "XtsData",
                "KmsCreateGrant",
                "EnvelopeSeal",
            ],
        ),
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn seeds_decode() {
        for (name, bytes, want) in super::seed_inputs() {
            let ops = super::decode(&bytes);
            let got: Vec<String> = ops
                .iter()
                .map(|o| {
                    format!("{o:?}")
                        .split([' ', '{', '('])
                        .next()
                        .unwrap_or("")
                        .to_owned()
                })
                .collect();
            assert_eq!(got, want, "seed {name}");
        }
    }
}
