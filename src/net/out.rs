//! A connection's pending output: what was queued but not yet accepted by
//! the kernel.
//!
//! Output is a queue of chunks, either bytes owned by this connection (a
//! response, an echo) or bytes shared by many (a broadcast frame or SSE
//! event, encoded once and reference-counted, so fan-out to 10,000
//! subscribers costs 10,000 pointer copies, not 10,000 encodings). A flush
//! hands up to `MAX_IOVECS` chunks to one vectored `write`.
//!
//! A chunk may carry a stamp: the moment the message in it was accepted
//! (`OutQueue::stamp`). When a flush writes the chunk's last byte, the
//! stamp is handed to the caller, which is how `/metrics` measures
//! publish-to-socket latency without a clock read or an allocation per
//! queued message.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::sync::Arc;
use std::time::Instant;

/// Owned buffers are recycled through a small per-thread pool: a response
/// is written into a buffer that already has room, and a connection that
/// has written everything holds no buffer at all (an idle connection costs
/// no output memory). The pool is per thread because the event loop is one
/// thread; it is bounded in count and in the size of what it keeps.
pub(crate) mod pool {
    use std::cell::RefCell;

    /// A fresh buffer's capacity: a typical response head and body fit.
    const FRESH: usize = 1024;
    /// Buffers larger than this are freed rather than kept. (A buffer that
    /// grew past glibc's mmap threshold and is freed each time costs a page
    /// fault per page on the next use; keeping it avoids that.)
    const KEEP_MAX: usize = 128 * 1024;
    /// The pool keeps at most this many bytes of capacity. (Under load
    /// many buffers are in flight at once; a pool smaller than that churns
    /// malloc and free and faults pages in again.)
    const POOL_BYTES: usize = 16 * 1024 * 1024;

    struct Free {
        bufs: Vec<Vec<u8>>,
        bytes: usize,
    }

    thread_local! {
        static FREE: RefCell<Free> = const { RefCell::new(Free { bufs: Vec::new(), bytes: 0 }) };
    }

    pub fn take() -> Vec<u8> {
        FREE.with(|f| {
            let mut f = f.borrow_mut();
            let v = f.bufs.pop()?;
            f.bytes -= v.capacity();
            Some(v)
        })
        .unwrap_or_else(|| Vec::with_capacity(FRESH))
    }

    pub fn give(mut v: Vec<u8>) {
        if v.capacity() <= KEEP_MAX {
            v.clear();
            FREE.with(|f| {
                let mut f = f.borrow_mut();
                if f.bytes + v.capacity() <= POOL_BYTES {
                    f.bytes += v.capacity();
                    f.bufs.push(v);
                }
            });
        }
    }
}

/// An append at least this large gets its own buffer when it does not fit.
const LARGE_APPEND: usize = 4 * 1024;

/// How many chunks one vectored write takes at most.
const MAX_IOVECS: usize = 64;

/// Owned chunks are appended to while smaller than this, so many small
/// writes (a head, a body, the next pipelined answer) leave in one piece.
const COALESCE_LIMIT: usize = 64 * 1024;

#[derive(Debug)]
enum Data {
    Owned(Vec<u8>),
    Shared(Arc<[u8]>),
}

/// One piece of output, and the stamp to report once its last byte is
/// written (see `OutQueue::stamp`).
#[derive(Debug)]
struct Chunk {
    data: Data,
    stamp: Option<Instant>,
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match &self.data {
            Data::Owned(v) => v,
            Data::Shared(a) => a,
        }
    }
}

#[derive(Debug, Default)]
pub struct OutQueue {
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
    front_written: usize,
    /// Unwritten bytes in all chunks.
    len: usize,
}

impl OutQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Unwritten bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A buffer to append owned bytes to, at the back of the queue; the
    /// queue's length is updated when the returned guard is dropped.
    /// (Writing straight into the queue saves building each response in a
    /// temporary first.)
    pub fn owned_tail(&mut self) -> OwnedTail<'_> {
        self.owned_tail_for(0)
    }

    /// `owned_tail` when about `additional` bytes are coming. A large
    /// append that does not fit the last buffer gets a new buffer sized for
    /// it (growing the old one would copy everything already in it); small
    /// ones keep coalescing into one buffer, so a burst of small frames
    /// leaves in one piece.
    pub fn owned_tail_for(&mut self, additional: usize) -> OwnedTail<'_> {
        // A stamped chunk is never appended to: its stamp must be reported
        // when *its* bytes are out, not when later ones are.
        let reuse = matches!(self.chunks.back(), Some(Chunk { data: Data::Owned(v), stamp: None })
            if v.len() < COALESCE_LIMIT
                && (additional < LARGE_APPEND || v.capacity() - v.len() >= additional));
        if !reuse {
            let mut v = pool::take();
            v.reserve(additional);
            self.chunks.push_back(Chunk {
                data: Data::Owned(v),
                stamp: None,
            });
        }
        let Some(Chunk {
            data: Data::Owned(buf),
            ..
        }) = self.chunks.back_mut()
        else {
            unreachable!("an owned chunk was just ensured at the back")
        };
        let start = buf.len();
        OwnedTail {
            buf,
            start,
            len: &mut self.len,
        }
    }

    /// Appends a copy of `bytes`.
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.owned_tail_for(bytes.len()).extend_from_slice(bytes);
        }
    }

    /// Appends shared bytes without copying them.
    pub fn push_shared(&mut self, bytes: Arc<[u8]>) {
        if !bytes.is_empty() {
            self.len += bytes.len();
            self.chunks.push_back(Chunk {
                data: Data::Shared(bytes),
                stamp: None,
            });
        }
    }

    /// Stamps what is queued so far with `at` (when the message in it was
    /// accepted): once the last byte of the chunk at the back is written,
    /// the flush hands `at` to its `stamped` callback, exactly once. The
    /// stamped chunk is never appended to afterwards. Nothing happens when
    /// nothing is queued, and a chunk keeps its first stamp (a second one
    /// with no bytes queued in between is dropped: one message, one
    /// observation).
    pub fn stamp(&mut self, at: Instant) {
        if let Some(back) = self.chunks.back_mut() {
            if back.stamp.is_none() && self.len > 0 {
                back.stamp = Some(at);
            }
        }
    }

    /// Writes as much as the socket takes. Returns the bytes written;
    /// `WouldBlock` is not an error here (it just means "later"). Each
    /// stamped chunk whose last byte was written hands its stamp to
    /// `stamped`, in queue order.
    pub fn flush_to<W: Write>(
        &mut self,
        w: &mut W,
        mut stamped: impl FnMut(Instant),
    ) -> io::Result<usize> {
        let mut total = 0;
        while self.len > 0 {
            let result = if self.chunks.len() == 1 {
                // One chunk (the usual HTTP answer): a plain write, which
                // spares the kernel copying in and checking an iovec array.
                match self.chunks.front() {
                    Some(c) => w.write(&c.bytes()[self.front_written..]),
                    None => break,
                }
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let mut n = 0;
                for (i, c) in self.chunks.iter().take(MAX_IOVECS).enumerate() {
                    let b = c.bytes();
                    slices[n] = IoSlice::new(if i == 0 { &b[self.front_written..] } else { b });
                    n += 1;
                }
                w.write_vectored(&slices[..n])
            };
            match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => {
                    total += written;
                    self.advance(written, &mut stamped);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if self.chunks.is_empty() && self.chunks.capacity() > 8 {
            // A burst grew the queue; an idle connection should not keep it.
            self.chunks = VecDeque::new();
        }
        Ok(total)
    }

    fn advance(&mut self, mut n: usize, stamped: &mut impl FnMut(Instant)) {
        self.len -= n;
        while n > 0 {
            let Some(front) = self.chunks.front() else {
                break;
            };
            let left = front.bytes().len() - self.front_written;
            if n >= left {
                n -= left;
                if let Some(done) = self.chunks.pop_front() {
                    if let Some(at) = done.stamp {
                        stamped(at);
                    }
                    if let Data::Owned(v) = done.data {
                        pool::give(v);
                    }
                }
                self.front_written = 0;
            } else {
                self.front_written += n;
                n = 0;
            }
        }
        // An empty chunk (an owned tail nothing was written into) left at
        // the front is done too, so a stamp on it is not held back.
        while self.chunks.front().is_some_and(|c| c.bytes().is_empty()) {
            if let Some(done) = self.chunks.pop_front() {
                if let Some(at) = done.stamp {
                    stamped(at);
                }
                if let Data::Owned(v) = done.data {
                    pool::give(v);
                }
            }
        }
    }

    /// Drops everything not yet written.
    pub fn clear(&mut self) {
        for c in self.chunks.drain(..) {
            if let Data::Owned(v) = c.data {
                pool::give(v);
            }
        }
        self.front_written = 0;
        self.len = 0;
    }
}

/// See `OutQueue::owned_tail`; keeps the queue's length right on drop.
pub struct OwnedTail<'a> {
    buf: &'a mut Vec<u8>,
    start: usize,
    len: &'a mut usize,
}

impl std::ops::Deref for OwnedTail<'_> {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        self.buf
    }
}

impl std::ops::DerefMut for OwnedTail<'_> {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        self.buf
    }
}

impl Drop for OwnedTail<'_> {
    fn drop(&mut self) {
        *self.len += self.buf.len().saturating_sub(self.start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `cap` bytes per call, then blocks.
    struct Trickle {
        got: Vec<u8>,
        cap: usize,
        calls: usize,
        block_after: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.calls == self.block_after {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.calls += 1;
            let n = b.len().min(self.cap);
            self.got.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn order_is_kept_across_owned_and_shared() {
        let mut q = OutQueue::new();
        q.push_bytes(b"head ");
        q.push_shared(Arc::from(&b"shared "[..]));
        q.owned_tail().extend_from_slice(b"tail");
        assert_eq!(q.len(), 16);
        let mut w = Trickle {
            got: vec![],
            cap: 3,
            calls: 0,
            block_after: 3,
        };
        q.flush_to(&mut w, |_| {}).unwrap();
        // Three writes of at most 3 bytes, each within one chunk.
        assert_eq!(w.got, b"head sha");
        assert_eq!(q.len(), 8);
        w.block_after = usize::MAX;
        q.push_bytes(b"!");
        q.flush_to(&mut w, |_| {}).unwrap();
        assert_eq!(w.got, b"head shared tail!");
        assert!(q.is_empty());
    }

    #[test]
    fn a_stamp_is_reported_once_when_its_chunks_last_byte_is_written() {
        let t0 = Instant::now();
        let t1 = t0 + std::time::Duration::from_millis(1);
        let mut q = OutQueue::new();
        q.push_shared(Arc::from(&b"abcd"[..]));
        q.stamp(t0);
        q.push_shared(Arc::from(&b"efgh"[..]));
        q.stamp(t1);
        let mut w = Trickle {
            got: vec![],
            cap: 3,
            calls: 0,
            block_after: 1,
        };
        let mut seen = Vec::new();
        q.flush_to(&mut w, |at| seen.push(at)).unwrap();
        assert!(seen.is_empty(), "only 3 of 4 bytes were written");
        w.block_after = 2;
        q.flush_to(&mut w, |at| seen.push(at)).unwrap();
        assert_eq!(seen, [t0], "the first chunk is out, the second is not");
        w.block_after = usize::MAX;
        q.flush_to(&mut w, |at| seen.push(at)).unwrap();
        assert_eq!(seen, [t0, t1]);
        q.flush_to(&mut w, |at| seen.push(at)).unwrap();
        assert_eq!(seen, [t0, t1], "reported once");
    }

    #[test]
    fn a_stamped_owned_chunk_is_not_appended_to() {
        let t0 = Instant::now();
        let mut q = OutQueue::new();
        q.push_bytes(b"answer");
        q.stamp(t0);
        q.push_bytes(b" and more");
        let mut w = Trickle {
            got: vec![],
            cap: 6,
            calls: 0,
            block_after: 1,
        };
        let mut seen = Vec::new();
        q.flush_to(&mut w, |at| seen.push(at)).unwrap();
        assert_eq!(w.got, b"answer");
        assert_eq!(seen, [t0], "reported when its own bytes are out");
    }

    #[test]
    fn stamping_an_empty_queue_does_nothing() {
        let mut q = OutQueue::new();
        q.stamp(Instant::now());
        q.push_bytes(b"x");
        let mut seen = 0;
        let mut w = Trickle {
            got: vec![],
            cap: 8,
            calls: 0,
            block_after: usize::MAX,
        };
        q.flush_to(&mut w, |_| seen += 1).unwrap();
        assert_eq!(seen, 0);
    }

    #[test]
    fn appending_after_a_partial_write_keeps_bytes_in_order() {
        let mut q = OutQueue::new();
        q.push_bytes(b"abcdef");
        let mut w = Trickle {
            got: vec![],
            cap: 2,
            calls: 0,
            block_after: 1,
        };
        q.flush_to(&mut w, |_| {}).unwrap();
        q.push_bytes(b"gh");
        w.block_after = usize::MAX;
        q.flush_to(&mut w, |_| {}).unwrap();
        assert_eq!(w.got, b"abcdefgh");
    }
}
