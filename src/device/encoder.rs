//! Command recording: many dispatches, one command buffer, one submit.

use std::sync::atomic::{AtomicU64, Ordering};

use super::Device;
use super::timing::{DispatchTime, TimestampSupport, Timing};
use crate::{Error, Result};

/// The next encoder's id.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Records dispatches and copies for one submit.
///
/// Consecutive dispatches share one compute pass (wgpu inserts the barriers the data
/// dependencies need); a copy closes the pass. Nothing runs until [`Encoder::submit`].
pub struct Encoder {
    device: Device,
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    dispatches: u64,
    /// Storage of the tensors bound by recorded dispatches, held until submit so that none is
    /// recycled (and overwritten by a queued upload) before the commands that read it run.
    bound: Vec<std::sync::Arc<super::Storage>>,
    /// Host writes that must land before this encoder's commands run: made, one queued write
    /// per contiguous run of bytes, just before the submit.
    staged: Vec<(wgpu::Buffer, u64, Vec<u8>)>,
    id: u64,
    /// The grids of the dispatches recorded while a log is open ([`Encoder::open_log`]).
    log: Option<Vec<DispatchGrid>>,
    /// The timestamp queries around each dispatch, while timing ([`Encoder::open_timing`]).
    timing: Option<Timing>,
}

/// One recorded dispatch's grid: how many workgroups, of how many invocations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DispatchGrid {
    /// The entry point (or the kernel's label).
    pub entry_point: String,
    /// Workgroups in x, y and z.
    pub workgroups: [u32; 3],
    /// Invocations per workgroup in x, y and z, as the WGSL declares them (`None` when the
    /// shader's text does not say).
    pub workgroup_size: Option<[u32; 3]>,
}

impl DispatchGrid {
    /// Workgroups in all.
    pub fn workgroup_count(&self) -> u64 {
        self.workgroups.iter().map(|&n| u64::from(n)).product()
    }

    /// Invocations in all, when the workgroup size is known.
    pub fn invocations(&self) -> Option<u64> {
        let size = self.workgroup_size?;
        Some(self.workgroup_count() * size.iter().map(|&n| u64::from(n)).product::<u64>())
    }
}

impl std::fmt::Display for DispatchGrid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [x, y, z] = self.workgroups;
        write!(f, "{}: {x}×{y}×{z} workgroups", self.entry_point)?;
        if let (Some([a, b, c]), Some(total)) = (self.workgroup_size, self.invocations()) {
            write!(f, " of {a}×{b}×{c} = {total} invocations")?;
        }
        Ok(())
    }
}

impl Encoder {
    pub(crate) fn new(device: &Device) -> Self {
        let encoder =
            device
                .wgpu_device()
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("wgsl-nn encoder"),
                });
        Self {
            device: device.clone(),
            encoder: Some(encoder),
            pass: None,
            dispatches: 0,
            bound: Vec::new(),
            staged: Vec::new(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            log: None,
            timing: None,
        }
    }

    /// The device this encoder records for.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Unique among the encoders of the process: what a plan recorded several times into one
    /// encoder tells its recordings apart by.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Queues `data` for `buffer` at `offset`, written just before this encoder's submit (so
    /// before any of its commands run). Bytes staged right after the previous staged bytes of
    /// the same buffer join their write: a plan recorded N times into one encoder writes its
    /// table of per-step inputs once.
    pub(crate) fn stage_write(&mut self, buffer: &wgpu::Buffer, offset: u64, data: &[u8]) {
        if let Some((last, at, bytes)) = self.staged.last_mut()
            && last == buffer
            && *at + bytes.len() as u64 == offset
        {
            bytes.extend_from_slice(data);
            return;
        }
        self.staged.push((buffer.clone(), offset, data.to_vec()));
    }

    /// Starts noting the grid of every dispatch recorded from now on; returns how many are
    /// noted already (a log stays open, and keeps what it has, if it was).
    pub(crate) fn open_log(&mut self) -> usize {
        self.log.get_or_insert_with(Vec::new).len()
    }

    /// The grids noted since [`Encoder::open_log`], and stops noting.
    pub(crate) fn take_log(&mut self) -> Vec<DispatchGrid> {
        self.log.take().unwrap_or_default()
    }

    /// Whether a log is open.
    pub(crate) fn is_logging(&self) -> bool {
        self.log.is_some()
    }

    /// The grids noted from the `from`-th on, leaving the log open.
    pub(crate) fn log_since(&self, from: usize) -> Vec<DispatchGrid> {
        self.log
            .as_ref()
            .map(|log| log.get(from..).unwrap_or_default().to_vec())
            .unwrap_or_default()
    }

    /// Times every dispatch recorded from now on (up to 2,048) with GPU
    /// timestamps, and notes its grid; [`Encoder::submit_timed`] submits and reads them.
    /// An error when the device has no timestamp queries ([`Device::timestamps`]).
    pub fn open_timing(&mut self) -> Result<()> {
        let support = self.device.timestamps();
        if support == TimestampSupport::None {
            return Err(Error::InvalidArgument(format!(
                "{} has no timestamp queries, so dispatches cannot be timed on it",
                self.device.adapter().name
            )));
        }
        if self.timing.is_none() {
            let capacity = Timing::MAX_DISPATCHES;
            let query_set = self
                .device
                .wgpu_device()
                .create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("wgsl-nn dispatch timestamps"),
                    ty: wgpu::QueryType::Timestamp,
                    count: 2 * capacity,
                });
            self.timing = Some(Timing {
                query_set,
                support,
                capacity,
                timed: 0,
            });
        }
        self.open_log();
        Ok(())
    }

    /// Notes a dispatch's grid, when a log is open.
    pub(crate) fn note(&mut self, grid: impl FnOnce() -> DispatchGrid) {
        if let Some(log) = &mut self.log {
            log.push(grid());
        }
    }

    /// Dispatches recorded so far.
    pub fn dispatch_count(&self) -> u64 {
        self.dispatches
    }

    fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        self.pass = None; // a pass borrows the encoder until it ends
        self.encoder
            .as_mut()
            .expect("encoder is present until submit")
    }

    /// Records one dispatch of `pipeline` with `bind_group` at group 0.
    pub fn dispatch(
        &mut self,
        pipeline: &wgpu::ComputePipeline,
        bind_group: &wgpu::BindGroup,
        workgroups: [u32; 3],
    ) {
        if workgroups.contains(&0) {
            return;
        }
        let queries = self.timing.as_mut().and_then(Timing::next);
        let own_pass = queries.is_some()
            && self.timing.as_ref().map(|t| t.support) == Some(TimestampSupport::PassBoundaries);
        if own_pass {
            self.pass = None;
        }
        if self.pass.is_none() {
            let encoder = self
                .encoder
                .as_mut()
                .expect("encoder is present until submit");
            let timestamp_writes = match (&self.timing, queries) {
                (Some(timing), Some((before, after))) if own_pass => {
                    Some(wgpu::ComputePassTimestampWrites {
                        query_set: &timing.query_set,
                        beginning_of_pass_write_index: Some(before),
                        end_of_pass_write_index: Some(after),
                    })
                }
                _ => None,
            };
            let pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("wgsl-nn pass"),
                timestamp_writes,
            });
            self.pass = Some(pass.forget_lifetime());
        }
        let pass = self.pass.as_mut().expect("pass was just opened");
        let inside = match (&self.timing, queries) {
            (Some(timing), Some(pair)) if !own_pass => Some((&timing.query_set, pair)),
            _ => None,
        };
        if let Some((set, (before, _))) = inside {
            pass.write_timestamp(set, before);
        }
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, bind_group, &[]);
        pass.dispatch_workgroups(workgroups[0], workgroups[1], workgroups[2]);
        if let Some((set, (_, after))) = inside {
            pass.write_timestamp(set, after);
        }
        if own_pass {
            self.pass = None; // ends the pass, which writes its end timestamp
        }
        self.dispatches += 1;
    }

    pub(crate) fn keep_alive(&mut self, storage: &[std::sync::Arc<super::Storage>]) {
        self.bound.extend(storage.iter().cloned());
    }

    /// Records a buffer-to-buffer copy (offsets and size multiples of 4).
    pub fn copy_buffer(
        &mut self,
        source: &wgpu::Buffer,
        source_offset: u64,
        destination: &wgpu::Buffer,
        destination_offset: u64,
        bytes: u64,
    ) {
        if bytes == 0 {
            return;
        }
        self.encoder().copy_buffer_to_buffer(
            source,
            source_offset,
            destination,
            destination_offset,
            bytes,
        );
    }

    /// Records a copy of `size` texels from a buffer into a texture.
    pub(crate) fn copy_buffer_to_texture(
        &mut self,
        source: wgpu::TexelCopyBufferInfo<'_>,
        destination: wgpu::TexelCopyTextureInfo<'_>,
        size: wgpu::Extent3d,
    ) {
        self.encoder()
            .copy_buffer_to_texture(source, destination, size);
    }

    /// Records filling `bytes` bytes of `buffer` from `offset` with zeros.
    pub fn clear_buffer(&mut self, buffer: &wgpu::Buffer, offset: u64, bytes: u64) {
        if bytes == 0 {
            return;
        }
        self.encoder().clear_buffer(buffer, offset, Some(bytes));
    }

    /// Submits everything recorded, without waiting for it to finish.
    pub fn submit(self) -> Result<()> {
        self.submit_indexed().map(drop)
    }

    /// Submits everything recorded and waits for it, then reads back the GPU time of each
    /// dispatch timed since [`Encoder::open_timing`], with its grid, in recording order.
    pub async fn submit_timed(mut self) -> Result<Vec<DispatchTime>> {
        let Some(timing) = self.timing.take() else {
            return Err(Error::InvalidArgument(
                "submit_timed: the encoder was not timing (call open_timing first)".into(),
            ));
        };
        let grids = self.take_log();
        let device = self.device.clone();
        let queries = 2 * timing.timed;
        let bytes = u64::from(queries) * 8;
        let resolved = (queries > 0)
            .then(|| {
                device.acquire_buffer(
                    "timestamps",
                    bytes,
                    wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                )
            })
            .transpose()?;
        if let Some(buffer) = &resolved {
            self.encoder()
                .resolve_query_set(&timing.query_set, 0..queries, buffer, 0);
        }
        self.submit_indexed()?;
        let ticks: Vec<u64> = match &resolved {
            Some(buffer) => device.read_buffer_async(buffer, 0, bytes).await?,
            None => Vec::new(),
        };
        if let Some(buffer) = resolved {
            device.release_buffer(buffer);
        }
        let period = device.wgpu_queue().get_timestamp_period();
        let mut times = super::timing::durations(&ticks, period).into_iter();
        Ok(grids
            .into_iter()
            .map(|grid| DispatchTime {
                grid,
                nanoseconds: times.next(),
            })
            .collect())
    }

    pub(crate) fn submit_indexed(mut self) -> Result<wgpu::SubmissionIndex> {
        self.pass = None;
        for (buffer, offset, bytes) in std::mem::take(&mut self.staged) {
            self.device.write_buffer(&buffer, offset, &bytes);
        }
        let commands = self
            .encoder
            .take()
            .expect("encoder is present until submit")
            .finish();
        self.device.submit(commands, self.dispatches)
    }
}
