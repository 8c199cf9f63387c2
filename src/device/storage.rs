//! A buffer from the device's pool, shared by the tensors, kernels and encoders that bind it:
//! it goes back to the pool when the last of them lets go, so a recycled buffer is never
//! aliased.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Device;

/// The next storage's id: ids are never reused, unlike addresses.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A tensor's device buffer, shared with the kernels that bind it.
#[derive(Debug)]
pub(crate) struct Storage {
    /// Unique for the process's lifetime: what "the same tensor" means to an op graph.
    id: u64,
    device: Device,
    /// `Some` until drop hands it back to the pool.
    buffer: Option<wgpu::Buffer>,
}

impl Storage {
    /// Wraps a buffer from the pool; it goes back to the pool when the last holder drops.
    pub(crate) fn new(device: &Device, buffer: wgpu::Buffer) -> Arc<Self> {
        Arc::new(Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            device: device.clone(),
            buffer: Some(buffer),
        })
    }

    /// The storage's identity, never reused (every share and reshape of a tensor has it).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The device the buffer belongs to.
    pub(crate) fn device(&self) -> &Device {
        &self.device
    }

    /// The buffer.
    pub(crate) fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("buffer is present until drop")
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        if let Some(buffer) = self.buffer.take() {
            self.device.release_buffer(buffer);
        }
    }
}
