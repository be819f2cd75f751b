//! Buffers for requests and responses, and the per-worker pool that recycles
//! them.
//!
//! A connection needs an input buffer only while a request is arriving or
//! being answered, and an output buffer only while a response head is being
//! written. An idle keep-alive connection holds neither: its buffers go back
//! to the worker's [`BufferPool`], so ten thousand idle clients cost ten
//! thousand small slab entries, not ten thousand 8 KiB buffers. Recycling
//! also means a busy worker allocates nothing per request once warm.

use crate::config::MAX_REQUEST_HEAD_BYTES;

/// Most spare buffers of each kind a pool keeps; more are freed. Bounds the
/// memory a worker keeps after a burst of connections has passed.
pub const MAX_POOLED_BUFFERS: usize = 256;

/// Capacity an output buffer starts with: a response head is a few hundred
/// bytes, a status page under a kilobyte.
const OUTPUT_BUFFER_CAPACITY: usize = 1024;

/// Output buffers that grew beyond this (a batch of pipelined responses, a
/// cached file) are freed rather than pooled, so the pool's memory stays
/// bounded by [`MAX_POOLED_BUFFERS`] times this.
const MAX_POOLED_OUTPUT_CAPACITY: usize = 192 * 1024;

/// Bytes received on a connection: `bytes[start..end]` is what has arrived
/// and not been consumed yet. It starts with the current request's head and
/// may continue with the next, pipelined, request.
///
/// The offsets are `u32`, like a [`crate::http::Span`] into the same bytes:
/// the buffer is [`MAX_REQUEST_HEAD_BYTES`] long. That keeps a connection's
/// state within 128 bytes, which the compiler moves with a few inline
/// instructions on every transition instead of a call to `memcpy`.
#[derive(Debug)]
pub struct InputBuffer {
    bytes: Box<[u8]>,
    start: u32,
    end: u32,
}

impl InputBuffer {
    /// An empty buffer of [`MAX_REQUEST_HEAD_BYTES`]: a request head that
    /// does not fit is too large by definition.
    pub fn new() -> InputBuffer {
        InputBuffer {
            bytes: vec![0; MAX_REQUEST_HEAD_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// The received, unconsumed bytes.
    pub fn filled(&self) -> &[u8] {
        &self.bytes[self.start as usize..self.end as usize]
    }

    /// Whether nothing is waiting to be parsed.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Free space to read into. Moves unconsumed bytes to the front first
    /// when that makes room (after a pipelined request was consumed).
    pub fn spare_mut(&mut self) -> &mut [u8] {
        if self.end as usize == self.bytes.len() && self.start > 0 {
            self.bytes
                .copy_within(self.start as usize..self.end as usize, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.bytes[self.end as usize..]
    }

    /// Records that `count` bytes were read into [`Self::spare_mut`].
    pub fn fill(&mut self, count: usize) {
        // At most the buffer's length, which fits a `u32`.
        self.end = (self.end as usize + count).min(self.bytes.len()) as u32;
    }

    /// Drops the first `count` unconsumed bytes (a request that was answered).
    pub fn consume(&mut self, count: usize) {
        self.start = (self.start as usize + count).min(self.end as usize) as u32;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }
}

impl Default for InputBuffer {
    fn default() -> InputBuffer {
        InputBuffer::new()
    }
}

/// A worker's spare buffers.
#[derive(Debug, Default)]
pub struct BufferPool {
    inputs: Vec<InputBuffer>,
    outputs: Vec<Vec<u8>>,
}

impl BufferPool {
    /// An empty input buffer, recycled when possible.
    pub fn take_input(&mut self) -> InputBuffer {
        self.inputs.pop().unwrap_or_default()
    }

    /// Returns an input buffer to the pool.
    pub fn put_input(&mut self, mut buffer: InputBuffer) {
        if self.inputs.len() < MAX_POOLED_BUFFERS {
            buffer.clear();
            self.inputs.push(buffer);
        }
    }

    /// An empty output buffer, recycled when possible.
    pub fn take_output(&mut self) -> Vec<u8> {
        self.outputs
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(OUTPUT_BUFFER_CAPACITY))
    }

    /// How many spare (input, output) buffers the pool holds.
    #[cfg(test)]
    pub fn spare_counts(&self) -> (usize, usize) {
        (self.inputs.len(), self.outputs.len())
    }

    /// Returns an output buffer to the pool.
    pub fn put_output(&mut self, mut buffer: Vec<u8>) {
        if self.outputs.len() < MAX_POOLED_BUFFERS
            && buffer.capacity() <= MAX_POOLED_OUTPUT_CAPACITY
        {
            buffer.clear();
            self.outputs.push(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consuming_a_pipelined_request_keeps_the_next() {
        let mut input = InputBuffer::new();
        let spare = input.spare_mut();
        spare[..6].copy_from_slice(b"AAABBB");
        input.fill(6);
        input.consume(3);
        assert_eq!(input.filled(), b"BBB");
        input.consume(3);
        assert!(input.is_empty());
        assert_eq!(input.spare_mut().len(), MAX_REQUEST_HEAD_BYTES);
    }

    #[test]
    fn a_full_buffer_compacts_to_make_room() {
        let mut input = InputBuffer::new();
        let len = input.spare_mut().len();
        input.fill(len);
        input.consume(len - 2);
        assert_eq!(input.filled().len(), 2);
        assert_eq!(input.spare_mut().len(), MAX_REQUEST_HEAD_BYTES - 2);
    }

    #[test]
    fn the_pool_recycles_cleared_buffers() {
        let mut pool = BufferPool::default();
        let mut output = pool.take_output();
        output.extend_from_slice(b"head");
        let address = output.as_ptr();
        pool.put_output(output);
        let again = pool.take_output();
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), address);
    }
}
