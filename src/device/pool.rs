//! Reuse of device buffers.
//!
//! Training allocates the same tensor sizes every step; handing back freed buffers of the same
//! size and usage turns those allocations into hash-map lookups.

use std::collections::HashMap;

/// Idle buffers above this many bytes are released instead of kept.
const MAX_IDLE_BYTES: u64 = 512 << 20;

#[derive(Default)]
pub(crate) struct BufferPool {
    idle: HashMap<(u64, u32), Vec<wgpu::Buffer>>,
    idle_bytes: u64,
}

impl BufferPool {
    pub fn take(&mut self, size: u64, usage: wgpu::BufferUsages) -> Option<wgpu::Buffer> {
        let buffer = self.idle.get_mut(&(size, usage.bits()))?.pop()?;
        self.idle_bytes -= size;
        Some(buffer)
    }

    pub fn give_back(&mut self, buffer: wgpu::Buffer) {
        let size = buffer.size();
        if self.idle_bytes + size > MAX_IDLE_BYTES {
            return; // dropped: wgpu frees it once the GPU is done with it
        }
        self.idle_bytes += size;
        self.idle
            .entry((size, buffer.usage().bits()))
            .or_default()
            .push(buffer);
    }

    pub fn clear(&mut self) {
        self.idle.clear();
        self.idle_bytes = 0;
    }
}
