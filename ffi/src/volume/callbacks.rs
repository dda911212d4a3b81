//! The Rust traits over the C tables: [`CallbackDevice`] is the volume's
//! `BlockDevice` when the device is C's, [`CallbackClock`] its lease clock.

use super::*;

/// The `BlockDevice` trait over an [`envol_block_device`] table: what the
/// volume code calls when the device is C's. A non-zero callback result
/// becomes `IoError(result)`; zero-length transfers are not passed on.
pub struct CallbackDevice {
    table: envol_block_device,
}

// SAFETY: the table's contract (`envol_block_device`) lets its callbacks be
// called from any thread, at once; `user` is only passed back to them.
unsafe impl Send for CallbackDevice {}
// SAFETY: as above.
unsafe impl Sync for CallbackDevice {}

impl CallbackDevice {
    /// Wraps a callback table.
    ///
    /// # Safety
    /// For as long as the value is used, every non-NULL function in `table`
    /// must be safe to call with `table.user` and arguments as documented on
    /// [`envol_block_device`] (from any thread, at once), touching only the
    /// `len` bytes at `buf` and not unwinding.
    pub unsafe fn new(table: envol_block_device) -> CallbackDevice {
        CallbackDevice { table }
    }
}

impl core::fmt::Debug for CallbackDevice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CallbackDevice")
            .field("flush", &self.table.flush.is_some())
            .finish_non_exhaustive()
    }
}

/// What a device callback result means.
pub(super) fn io_result(rc: c_int) -> Result<(), IoError> {
    if rc == 0 { Ok(()) } else { Err(IoError(rc)) }
}

/// EIO, for a device table whose required callback is missing.
const EIO: i32 = 5;

impl BlockDevice for CallbackDevice {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        if buf.is_empty() {
            return Ok(());
        }
        let f = self.table.read_at.ok_or(IoError(EIO))?;
        // SAFETY: the table's contract (see `new`); `buf` is a live,
        // writable slice of `buf.len()` bytes.
        io_result(unsafe { f(self.table.user, offset, buf.as_mut_ptr(), buf.len()) })
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        if buf.is_empty() {
            return Ok(());
        }
        let f = self.table.write_at.ok_or(IoError(EIO))?;
        // SAFETY: the table's contract (see `new`); `buf` is a live slice of
        // `buf.len()` bytes.
        io_result(unsafe { f(self.table.user, offset, buf.as_ptr(), buf.len()) })
    }

    fn flush(&self) -> Result<(), IoError> {
        match self.table.flush {
            // SAFETY: the table's contract (see `new`).
            Some(f) => io_result(unsafe { f(self.table.user) }),
            None => Ok(()),
        }
    }
}

/// The `Clock` of a volume's lease: the C callback, or the system clock.
#[derive(Clone, Copy, Debug)]
pub struct CallbackClock {
    pub(super) now: Option<unsafe extern "C" fn(user: *mut c_void) -> u64>,
    pub(super) user: *mut c_void,
}

// SAFETY: `envol_lease` documents that `now` may be called from any thread;
// `user` is only passed back to it.
unsafe impl Send for CallbackClock {}
// SAFETY: as above.
unsafe impl Sync for CallbackClock {}

impl Clock for CallbackClock {
    fn now(&self) -> u64 {
        match self.now {
            // SAFETY: the lease's contract (see `envol_lease`).
            Some(f) => unsafe { f(self.user) },
            #[cfg(feature = "std")]
            None => envol::kms::SystemClock.now(),
            #[cfg(not(feature = "std"))]
            None => 0,
        }
    }
}
