//! A shard's end of its call-record ring: the shard encodes a finished request into its scratch
//! buffer and pushes the bytes whole, or drops the record (counted) when the ring is full. It never
//! waits: the log writer ([`crate::observe::calllog`]) drains the rings on its own thread.

use super::record::{FIELDS, Fixed, encode};

pub struct Recorder {
    ring: rtrb::Producer<u8>,
    scratch: Vec<u8>,
}

/// A ring of `bytes` bytes: the shard's end and the writer's end.
pub fn ring(bytes: usize) -> (Recorder, rtrb::Consumer<u8>) {
    let (ring, rx) = rtrb::RingBuffer::new(bytes);
    (
        Recorder {
            ring,
            scratch: Vec::with_capacity(1024),
        },
        rx,
    )
}

impl Recorder {
    /// Pushes one record; false when the ring had no room for it (the record is dropped).
    pub fn push(&mut self, fixed: &Fixed, fields: &[&[u8]; FIELDS]) -> bool {
        self.scratch.clear();
        encode(&mut self.scratch, fixed, fields);
        self.ring.push_entire_slice(&self.scratch).is_ok()
    }
}
