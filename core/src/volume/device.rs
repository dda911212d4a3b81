//! Block devices: the [`BlockDevice`] trait the volume code calls, an
//! in-memory device for tests and fuzzing, and a file device.

/// A device error, as the device reports it (an errno, a status code).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IoError(pub i32);

/// Whole-device byte I/O. Reads and writes are exact: all bytes or an
/// error. Methods take `&self` so that several threads can share one
/// attached volume; a device that is `Sync` must then be safe to call from
/// several threads at once (positional reads and writes are).
pub trait BlockDevice {
    /// Reads `buf.len()` bytes at `offset`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), IoError>;
    /// Writes `buf` at `offset`.
    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<(), IoError>;
    /// Makes earlier writes durable.
    fn flush(&self) -> Result<(), IoError>;
}

impl<D: BlockDevice + ?Sized> BlockDevice for &D {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        (**self).read_at(offset, buf)
    }
    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        (**self).write_at(offset, buf)
    }
    fn flush(&self) -> Result<(), IoError> {
        (**self).flush()
    }
}

/// The contents and fault plan of a [`MemDevice`].
#[cfg(feature = "alloc")]
#[derive(Clone, Debug, Default)]
pub struct MemState {
    /// The bytes of the device.
    pub bytes: alloc::vec::Vec<u8>,
    /// Writes allowed before the device "loses power": further writes fail
    /// and the last one lands only `torn_at` bytes (for crash tests).
    pub fail_after_writes: Option<usize>,
    /// Bytes of the failing write that still land.
    pub torn_at: usize,
    /// Writes so far.
    pub writes: usize,
    /// Flushes so far.
    pub flushes: usize,
}

/// An in-memory device (`alloc`), for tests and fuzzing: one thread at a
/// time (it is not `Sync`).
#[cfg(feature = "alloc")]
#[derive(Clone, Debug, Default)]
pub struct MemDevice {
    state: core::cell::RefCell<MemState>,
}

#[cfg(feature = "alloc")]
impl MemDevice {
    /// A zero-filled device of `len` bytes.
    pub fn new(len: usize) -> MemDevice {
        MemDevice::from_state(MemState {
            bytes: alloc::vec![0; len],
            ..MemState::default()
        })
    }

    /// A device with these contents and fault plan.
    pub fn from_state(state: MemState) -> MemDevice {
        MemDevice {
            state: core::cell::RefCell::new(state),
        }
    }

    /// Its contents and fault plan, to read or change between calls.
    pub fn state(&mut self) -> &mut MemState {
        self.state.get_mut()
    }

    /// Its contents and fault plan.
    pub fn into_state(self) -> MemState {
        self.state.into_inner()
    }

    /// A copy of its bytes.
    pub fn bytes(&self) -> alloc::vec::Vec<u8> {
        self.state.borrow().bytes.clone()
    }

    /// Runs `f` on its contents and fault plan through a shared reference
    /// (as a volume holds it), between calls.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut MemState) -> R) -> R {
        f(&mut self.state.borrow_mut())
    }
}

#[cfg(feature = "alloc")]
impl BlockDevice for MemDevice {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        let s = self.state.borrow();
        let o = usize::try_from(offset).map_err(|_| IoError(22))?;
        let src = o
            .checked_add(buf.len())
            .and_then(|end| s.bytes.get(o..end))
            .ok_or(IoError(5))?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        let mut s = self.state.borrow_mut();
        let o = usize::try_from(offset).map_err(|_| IoError(22))?;
        let end = o.checked_add(buf.len()).ok_or(IoError(22))?;
        if end > s.bytes.len() {
            return Err(IoError(28));
        }
        if let Some(limit) = s.fail_after_writes
            && s.writes >= limit
        {
            if s.writes == limit {
                let n = s.torn_at.min(buf.len());
                s.bytes[o..o + n].copy_from_slice(&buf[..n]);
            }
            s.writes += 1;
            return Err(IoError(5));
        }
        s.bytes[o..end].copy_from_slice(buf);
        s.writes += 1;
        Ok(())
    }
    fn flush(&self) -> Result<(), IoError> {
        self.state.borrow_mut().flushes += 1;
        Ok(())
    }
}

/// A device over a file (`std`): sparse, any size; `flush` is `fsync`;
/// safe to share between threads (positional reads and writes).
#[cfg(all(feature = "std", unix))]
#[derive(Debug)]
pub struct FileDevice(pub std::fs::File);

#[cfg(all(feature = "std", unix))]
impl FileDevice {
    /// Creates (or truncates) a sparse file of `len` bytes.
    pub fn create(path: &std::path::Path, len: u64) -> std::io::Result<FileDevice> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        f.set_len(len)?;
        Ok(FileDevice(f))
    }

    /// Opens an existing file (or block device) read-write.
    pub fn open(path: &std::path::Path) -> std::io::Result<FileDevice> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        Ok(FileDevice(f))
    }
}

#[cfg(all(feature = "std", unix))]
fn io_err(e: &std::io::Error) -> IoError {
    IoError(e.raw_os_error().unwrap_or(5))
}

#[cfg(all(feature = "std", unix))]
impl BlockDevice for FileDevice {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        use std::os::unix::fs::FileExt;
        self.0.read_exact_at(buf, offset).map_err(|e| io_err(&e))
    }
    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        use std::os::unix::fs::FileExt;
        self.0.write_all_at(buf, offset).map_err(|e| io_err(&e))
    }
    fn flush(&self) -> Result<(), IoError> {
        self.0.sync_data().map_err(|e| io_err(&e))
    }
}
