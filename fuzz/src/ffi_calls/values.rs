//! What argument choices turn into: volume parameters, keys, blobs, header
//! slots and volume ids (from pools of earlier results or made up).

use std::mem::size_of;
use std::ptr::null;

use envol::envelope::MAX_BLOB;
use envol::header::{CipherSuite, Header, Params, SLOT_SIZE};
use envol::xts::Backend;
use envol_ffi::envol_volume_params;

use super::args::{
    BlobArg, BlobSrc, CipherArg, IdArg, Key32, KeyArg, OffArg, ParamsArg, SlotArg, SlotSrc, SsArg,
};
use super::buffers::{Hold, wild};
use super::{State, newest};

/// C volume parameters as core ones, if valid.
pub(super) fn rust_params(p: &envol_volume_params) -> Option<Params> {
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

pub(super) fn c_params(p: &Params) -> envol_volume_params {
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
pub(super) fn params_value(
    a: &ParamsArg,
    pool: &[envol_volume_params],
) -> Option<envol_volume_params> {
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

pub(super) fn apply_edits(v: &mut [u8], edits: &[(u16, u8)]) {
    if v.is_empty() {
        return;
    }
    for &(pos, b) in edits.iter().take(32) {
        let n = v.len();
        v[usize::from(pos) % n] = b;
    }
}

/// A good XTS key of `len` bytes (halves differ).
pub(super) fn derived_key(len: usize, seed: u8) -> Vec<u8> {
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
pub(super) fn backend_of(n: u32) -> Option<Backend> {
    Some(match n {
        1 => Backend::Soft,
        2 => Backend::Aesni,
        3 => Backend::Vaes256,
        4 => Backend::Vaes512,
        5 => Backend::Armv8,
        _ => return None,
    })
}

pub(super) fn root_bytes(k: Key32) -> Option<[u8; 32]> {
    match k {
        Key32::Std => Some([7; 32]),
        Key32::Other(n) => Some([n; 32]),
        Key32::Null => None,
    }
}

impl State {
    pub(super) fn params_ptr(
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
    pub(super) fn key(
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
    pub(super) fn blob(
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

    pub(super) fn slot(&mut self, s: &SlotArg) -> Option<Vec<u8>> {
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

    /// An expected volume id argument.
    pub(super) fn id_arg(&mut self, a: IdArg) -> Option<[u8; 16]> {
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
}
