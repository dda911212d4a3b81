//! The `Op` enum: one C ABI call (or a change to the harness's own fakes)
//! per variant. Variant order is the op number inputs encode: new ops go
//! at the end, so committed inputs keep theirs.

use arbitrary::Arbitrary;

use super::args::{
    BlobArg, CtxArg, CtxKv, DekLen, DevArg, DiskSize, FakeAnswer, GrantArg, IdArg, IoArg, IoLen,
    Key32, KeyArg, KmsArg, Layout, LocalArg, Manage, OutArg, ParamsArg, PolicyArg, S, SectorArg,
    SlotArg, StoreArg, VolArg, XtsKind, XtsLen, backend_choice, mask, mis, mostly_some, rare,
    rare_u16,
};

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
