//! The one bounded byte reader every parser in envol uses: wrapped-key
//! blobs, the sealed key store and the audit encoding.
//!
//! Every read checks its length with checked arithmetic and returns `None`
//! past the end, so a parser built on it is total: callers turn `None` into
//! their own typed error. [`Reader::count`] bounds an element count by the
//! bytes left before anything is allocated for it.

/// A cursor over a byte slice.
#[cfg_attr(not(feature = "alloc"), allow(dead_code))]
pub(crate) struct Reader<'b> {
    buf: &'b [u8],
    pos: usize,
}

#[cfg_attr(not(feature = "alloc"), allow(dead_code))]
impl<'b> Reader<'b> {
    /// A reader at the start of `buf`.
    pub(crate) fn new(buf: &'b [u8]) -> Reader<'b> {
        Reader { buf, pos: 0 }
    }

    /// Bytes read so far.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Whether every byte was read.
    pub(crate) fn at_end(&self) -> bool {
        self.pos == self.buf.len()
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Option<&'b [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    /// The next `N` bytes as an array.
    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|b| b[0])
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    /// A u32 count of elements each at least `min` bytes long, refused when
    /// the bytes left could not hold them: no allocation sized by it can
    /// exceed the input.
    pub(crate) fn count(&mut self, min: usize) -> Option<usize> {
        let n = usize::try_from(self.u32()?).ok()?;
        let need = n.checked_mul(min.max(1))?;
        (need <= self.remaining()).then_some(n)
    }

    /// A u32-length-prefixed UTF-8 string, borrowed.
    pub(crate) fn str(&mut self) -> Option<&'b str> {
        let n = usize::try_from(self.u32()?).ok()?;
        core::str::from_utf8(self.take(n)?).ok()
    }

    /// A u32-length-prefixed UTF-8 string, owned.
    #[cfg(feature = "alloc")]
    pub(crate) fn string(&mut self) -> Option<alloc::string::String> {
        self.str().map(alloc::string::String::from)
    }
}

#[cfg(test)]
mod tests {
    use super::Reader;

    #[test]
    fn reads_are_bounded() {
        let mut r = Reader::new(&[1, 0, 2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(r.u16(), Some(1));
        assert_eq!(r.u32(), Some(2));
        assert_eq!(r.remaining(), 4);
        // A count of 2^32 - 1 elements cannot fit in zero bytes.
        assert_eq!(r.count(1), None);
        let mut r = Reader::new(&[3, 0, 0, 0, b'a', b'b']);
        assert_eq!(r.str(), None);
        assert_eq!(Reader::new(&[]).take(usize::MAX), None);
        let mut r = Reader::new(&[2, 0, 0, 0, 9, 9]);
        assert_eq!(r.count(1), Some(2));
        assert!(!r.at_end());
        assert_eq!(r.take(2), Some(&[9u8, 9][..]));
        assert!(r.at_end());
        assert_eq!(r.pos(), 6);
    }
}
