//! Exact counts of the work a device was asked to do.
//!
//! Performance claims such as "a training step does zero host syncs" are asserted on these,
//! so each counter is bumped at exactly one place in the crate.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub submits: AtomicU64,
    pub dispatches: AtomicU64,
    pub host_syncs: AtomicU64,
    pub bytes_read_back: AtomicU64,
    pub host_writes: AtomicU64,
    pub bytes_uploaded: AtomicU64,
    pub pipelines_created: AtomicU64,
    pub buffers_created: AtomicU64,
    pub textures_created: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> CounterSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            submits: get(&self.submits),
            dispatches: get(&self.dispatches),
            host_syncs: get(&self.host_syncs),
            bytes_read_back: get(&self.bytes_read_back),
            host_writes: get(&self.host_writes),
            bytes_uploaded: get(&self.bytes_uploaded),
            pipelines_created: get(&self.pipelines_created),
            buffers_created: get(&self.buffers_created),
            textures_created: get(&self.textures_created),
        }
    }
}

/// The device's counters at one moment. Subtract two snapshots to count what happened between.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Command buffers handed to the queue.
    pub submits: u64,
    /// Compute dispatches in submitted command buffers.
    pub dispatches: u64,
    /// Times the host waited for the device: every blocking poll and every buffer map.
    pub host_syncs: u64,
    /// Bytes copied from the device to the host.
    pub bytes_read_back: u64,
    /// Writes from the host into device buffers (each queued write, however large).
    pub host_writes: u64,
    /// Bytes written from the host to device buffers.
    pub bytes_uploaded: u64,
    /// Compute pipelines compiled (cache misses).
    pub pipelines_created: u64,
    /// Device buffers allocated (buffer-pool misses, uniform and staging buffers included).
    pub buffers_created: u64,
    /// Textures allocated (operand packing of the texture matmul).
    pub textures_created: u64,
}

impl std::ops::Sub for CounterSnapshot {
    type Output = CounterSnapshot;

    fn sub(self, earlier: CounterSnapshot) -> CounterSnapshot {
        CounterSnapshot {
            submits: self.submits - earlier.submits,
            dispatches: self.dispatches - earlier.dispatches,
            host_syncs: self.host_syncs - earlier.host_syncs,
            bytes_read_back: self.bytes_read_back - earlier.bytes_read_back,
            host_writes: self.host_writes - earlier.host_writes,
            bytes_uploaded: self.bytes_uploaded - earlier.bytes_uploaded,
            pipelines_created: self.pipelines_created - earlier.pipelines_created,
            buffers_created: self.buffers_created - earlier.buffers_created,
            textures_created: self.textures_created - earlier.textures_created,
        }
    }
}
