//! Reading device buffers back to the host: a copy into a staging buffer, one submit, one
//! host sync (natively; the browser completes the map itself), and waiting for a submission.

use super::Device;
use super::counters::Counters;
use crate::{Error, Result};

/// Usage of a staging buffer: mapped for reading, filled by a copy.
const STAGING_USAGE: wgpu::BufferUsages =
    wgpu::BufferUsages::MAP_READ.union(wgpu::BufferUsages::COPY_DST);

impl Device {
    /// Waits for `submission` (or all work) to finish: one host sync.
    #[cfg(not(target_arch = "wasm32"))]
    pub(super) fn wait(&self, submission: Option<wgpu::SubmissionIndex>) -> Result<()> {
        self.check("wait")?;
        Counters::add(&self.inner.counters.host_syncs, 1);
        self.inner
            .device
            .poll(wgpu::PollType::Wait {
                submission_index: submission,
                timeout: None,
            })
            .map_err(|e| Error::DeviceLost(e.to_string()))?;
        self.check("wait")
    }

    /// Reads `bytes` bytes of `source` from `offset` as values of `T` (`bytes` a multiple of
    /// their size): a copy into a staging buffer, one submit and one host sync. The host
    /// memory is reserved first, fallibly, so a tensor too large for the host is an error
    /// before the device does anything, not an abort.
    ///
    /// Natively the map completes inside a poll that waits for the copy (so this future is
    /// ready when first polled); on the web the browser completes it and wakes the future.
    pub(crate) async fn read_buffer_async<T: bytemuck::Pod>(
        &self,
        source: &wgpu::Buffer,
        offset: u64,
        bytes: u64,
    ) -> Result<Vec<T>> {
        let size = std::mem::size_of::<T>() as u64;
        if !bytes.is_multiple_of(size) {
            return Err(Error::Readback(format!(
                "{bytes} bytes are not a whole number of {size}-byte values"
            )));
        }
        let mut values: Vec<T> = Vec::new();
        let count = usize::try_from(bytes / size).map_err(|_| host_memory(bytes, "too large"))?;
        values
            .try_reserve_exact(count)
            .map_err(|e| host_memory(bytes, &e.to_string()))?;
        if bytes == 0 {
            return Ok(values);
        }
        let staging = self.acquire_buffer("readback staging buffer", bytes, STAGING_USAGE)?;
        let mut encoder = self.encoder();
        encoder.copy_buffer(source, offset, &staging, 0, bytes);
        let submission = encoder.submit_indexed()?;

        // Natively the mapping completes inside `poll`; the channel carries its result out of
        // the callback.
        let (sender, receiver) = futures_intrusive::channel::shared::oneshot_channel();
        staging.map_async(wgpu::MapMode::Read, 0..bytes, move |result| {
            let _ = sender.send(result);
        });
        #[cfg(not(target_arch = "wasm32"))]
        if let Err(error) = self.wait(Some(submission)) {
            // The map callback only runs inside a poll; a failed wait may not have polled.
            staging.unmap();
            return Err(error);
        }
        #[cfg(target_arch = "wasm32")]
        {
            let _ = submission;
            Counters::add(&self.inner.counters.host_syncs, 1);
        }
        let mapped = receiver.receive().await;
        #[cfg(target_arch = "wasm32")]
        self.check("readback")?;
        match mapped {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(Error::Readback(e.to_string())),
            None => return Err(Error::Readback("the map callback never ran".into())),
        }
        {
            let view = staging
                .get_mapped_range(0..bytes)
                .map_err(|e| Error::Readback(e.to_string()))?;
            // Within the capacity reserved above: no reallocation.
            values.resize(count, <T as bytemuck::Zeroable>::zeroed());
            bytemuck::cast_slice_mut::<T, u8>(&mut values).copy_from_slice(&view);
        }
        staging.unmap();
        self.release_buffer(staging);
        Counters::add(&self.inner.counters.bytes_read_back, bytes);
        Ok(values)
    }
}

/// The error for a readback whose host memory could not be reserved.
fn host_memory(bytes: u64, reason: &str) -> Error {
    Error::Readback(format!(
        "could not reserve {bytes} bytes of host memory for the data ({reason}); read a \
         smaller tensor, or free host memory"
    ))
}
