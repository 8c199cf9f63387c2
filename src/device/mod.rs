//! The device layer: adapter choice, the logical device and its queue, the pipeline cache,
//! buffer reuse, counters, error capture and readback.
//!
//! `Device` is one handle whose methods share its inner state; the parts that stand alone —
//! adapter choice, the profile, counters, the encoder, pipeline creation and its cache, the
//! pool and its buffers, the recording-only mode — are files of their own.

mod adapter;
mod counters;
mod deferral;
mod encoder;
mod pipelines;
mod pool;
mod profile;
mod readback;
mod storage;
mod subgroups;
mod timing;

use std::sync::{Arc, Mutex, MutexGuard};

#[cfg(not(target_arch = "wasm32"))]
pub use adapter::list_adapters;
pub use adapter::{
    ADAPTER_ENV, AdapterSummary, BACKEND_ENV, DeviceOptions, list_adapters_async, parse_backend,
};
pub use counters::CounterSnapshot;
pub(crate) use deferral::Deferral;
pub use encoder::{DispatchGrid, Encoder};
pub use pipelines::{BuiltPipeline, ShaderSource};
pub use profile::{PROFILE_ENV, Profile};
pub(crate) use storage::Storage;
pub use timing::{DispatchTime, TimestampSupport};

use crate::error::WgpuError;
use crate::{Error, Result};
use counters::Counters;
use pipelines::PipelineCache;
use pool::BufferPool;

/// Usage of every tensor buffer: bound as storage, filled by uploads, copied out for readback.
pub(crate) const TENSOR_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// A GPU device and everything the engine keeps per device. Cheap to clone (shared handle).
#[derive(Clone)]
pub struct Device {
    inner: Arc<Inner>,
}

struct Inner {
    device: wgpu::Device,
    queue: wgpu::Queue,
    summary: AdapterSummary,
    limits: wgpu::Limits,
    counters: Counters,
    pipelines: Mutex<PipelineCache>,
    pool: Mutex<BufferPool>,
    /// Errors wgpu raised outside an error scope (e.g. while encoding commands; on the web,
    /// every error: no scope is awaited there).
    uncaptured: Arc<Mutex<Vec<WgpuError>>>,
    /// Set by the device-lost callback.
    lost: Arc<Mutex<Option<String>>>,
    /// The fewest invocations a subgroup holds, when the device has subgroup operations.
    subgroup_min_size: Option<u32>,
    /// Whether a workgroup of 8 invocations runs as lanes 0–7 of one subgroup (probed when
    /// the device opens, where it has subgroups).
    small_workgroup_one_subgroup: std::sync::OnceLock<bool>,
    profile: Profile,
}

/// Locks a mutex, ignoring poisoning: every critical section here leaves its data consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("adapter", &self.inner.summary)
            .finish_non_exhaustive()
    }
}

/// Runs the async core of a blocking call to completion on this thread. Native only: on the
/// web nothing may block the browser's thread, so only the `_async` forms exist there.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    pollster::block_on(future)
}

impl Device {
    /// Opens the best adapter, honouring `WGSL_NN_BACKEND` and `WGSL_NN_ADAPTER`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new() -> Result<Self> {
        Self::with_options(&DeviceOptions::from_env()?)
    }

    /// Opens the best adapter that matches `options`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn with_options(options: &DeviceOptions) -> Result<Self> {
        block_on(Self::with_options_async(options))
    }

    /// `Device::new` without blocking: the form the browser needs (and the one the
    /// blocking form runs). On the web there are no environment variables; it opens the
    /// browser's adapter.
    pub async fn new_async() -> Result<Self> {
        Self::with_options_async(&DeviceOptions::from_env()?).await
    }

    /// `Device::with_options` without blocking.
    pub async fn with_options_async(options: &DeviceOptions) -> Result<Self> {
        let instance = adapter::new_instance(options.backends());
        let adapter = adapter::choose_adapter(&instance, options).await?;
        Self::from_adapter(&adapter, options.profile, options.subgroups).await
    }

    /// A device on wgpu's no-op backend, reporting `device_type` and WebGPU's default limits (but 16 storage buffers per stage): buffers
    /// and pipelines are created, nothing runs. For unit tests of host-side logic (the fusion
    /// rules, kernel choice) on any machine, GPU or not.
    #[cfg(all(test, not(target_arch = "wasm32")))]
    pub(crate) fn noop(device_type: wgpu::DeviceType) -> Result<Self> {
        let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle();
        descriptor.backends = wgpu::Backends::NOOP;
        // WebGPU's defaults but lavapipe's 16 storage buffers per stage (enough for every
        // fused kernel); wgpu-core's maximal limits overflow its own validation tables.
        let limits = wgpu::Limits {
            max_storage_buffers_per_shader_stage: 16,
            ..wgpu::Limits::default()
        };
        descriptor.backend_options.noop = wgpu::NoopBackendOptions {
            device_type: Some(device_type),
            limits: Some(limits),
            ..wgpu::NoopBackendOptions::enabled()
        };
        let instance = wgpu::Instance::new(descriptor);
        let adapter = block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
            .map_err(|e| Error::InvalidArgument(format!("no noop adapter: {e}")))?;
        block_on(Self::from_adapter(&adapter, None, true))
    }

    /// Opens `adapter`'s device with the adapter's own limits and (with `subgroups`) its
    /// subgroup operations, under `profile` (`None`: the adapter's).
    async fn from_adapter(
        adapter: &wgpu::Adapter,
        profile: Option<Profile>,
        subgroups: bool,
    ) -> Result<Self> {
        let info = adapter.get_info();
        let profile = profile.unwrap_or(Profile::of(info.device_type));
        let summary = AdapterSummary::from_info(&info);
        // The adapter's own limits: `Limits::default()` caps storage bindings at 128 MiB and
        // workgroups at 256 invocations, far below what most adapters offer.
        // Subgroup operations where the adapter has them (the broadcast matmul family).
        // Timestamp queries where the adapter has them (`Trainer::profile_step`).
        let subgroup = if subgroups {
            wgpu::Features::SUBGROUP
        } else {
            wgpu::Features::empty()
        };
        let features =
            adapter.features() & subgroup | timing::TimestampSupport::features(adapter.features());
        let subgroup_min_size = features
            .contains(wgpu::Features::SUBGROUP)
            .then_some(info.subgroup_min_size);
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("wgsl-nn"),
            required_features: features,
            required_limits: adapter.limits(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) =
            adapter
                .request_device(&descriptor)
                .await
                .map_err(|e| Error::RequestDevice {
                    adapter: summary.name.clone(),
                    reason: e.to_string(),
                })?;
        // What the device was actually given, which every size check goes by.
        let limits = device.limits();

        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&uncaptured);
        device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
            log::error!("wgpu: {error}");
            lock(&sink).push(WgpuError::from(error));
        }));
        let lost = Arc::new(Mutex::new(None));
        let lost_flag = Arc::clone(&lost);
        device.set_device_lost_callback(move |reason, message| {
            *lock(&lost_flag) = Some(format!("{reason:?}: {message}"));
        });
        log::info!("wgsl-nn device: {summary}, profile {profile}");

        let device = Self {
            inner: Arc::new(Inner {
                device,
                queue,
                summary,
                limits,
                counters: Counters::default(),
                pipelines: Mutex::default(),
                pool: Mutex::default(),
                uncaptured,
                lost,
                subgroup_min_size,
                small_workgroup_one_subgroup: std::sync::OnceLock::new(),
                profile,
            }),
        };
        // The broadcast matmul family's placement of lanes, checked before anything needs it.
        let one_subgroup = subgroup_min_size.is_some()
            && !cfg!(target_arch = "wasm32")
            && subgroups::probe(&device).await?;
        let _ = device.inner.small_workgroup_one_subgroup.set(one_subgroup);
        Ok(device)
    }

    /// How the engine shapes its work for this device (kernel choice, fusion shapes, steps per
    /// submit): the adapter's type, unless forced.
    pub fn profile(&self) -> Profile {
        self.inner.profile
    }

    /// Whether a workgroup of 8 invocations runs as lanes 0–7 of one subgroup, as the
    /// broadcast matmul family needs: checked by one dispatch when the device opens (Vulkan
    /// and WebGPU leave it to the driver); `false` without subgroup operations.
    pub fn small_workgroups_are_one_subgroup(&self) -> bool {
        self.inner
            .small_workgroup_one_subgroup
            .get()
            .copied()
            .unwrap_or(false)
    }

    /// Where the device can write GPU timestamps ([`Encoder::open_timing`]).
    pub fn timestamps(&self) -> TimestampSupport {
        TimestampSupport::of(self.inner.device.features())
    }

    /// The fewest invocations one subgroup holds, or `None` when the device has no subgroup
    /// operations.
    pub fn subgroup_min_size(&self) -> Option<u32> {
        self.inner.subgroup_min_size
    }

    /// The adapter this device runs on.
    pub fn adapter(&self) -> &AdapterSummary {
        &self.inner.summary
    }

    /// The limits the device was created with: the adapter's own, as the device reports them.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }

    /// The counters since the device was created.
    pub fn counters(&self) -> CounterSnapshot {
        self.inner.counters.snapshot()
    }

    /// The underlying wgpu device, for interoperation.
    pub fn wgpu_device(&self) -> &wgpu::Device {
        &self.inner.device
    }

    /// The underlying wgpu queue, for interoperation.
    pub fn wgpu_queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }

    /// Starts recording commands; see [`Encoder`].
    pub fn encoder(&self) -> Encoder {
        Encoder::new(self)
    }

    /// Blocks until the device has finished all submitted work.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn synchronize(&self) -> Result<()> {
        self.wait(None)
    }

    /// Waits, without blocking the thread, until the device has finished all submitted work:
    /// on the web the queue's completion callback, natively `Device::synchronize`.
    pub async fn synchronize_async(&self) -> Result<()> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.wait(None)
        }
        #[cfg(target_arch = "wasm32")]
        {
            self.check("wait")?;
            Counters::add(&self.inner.counters.host_syncs, 1);
            let (sender, receiver) = futures_intrusive::channel::shared::oneshot_channel();
            self.inner.queue.on_submitted_work_done(move || {
                let _ = sender.send(());
            });
            receiver.receive().await;
            self.check("wait")
        }
    }

    /// Runs `create` inside validation (and, with `out_of_memory`, out-of-memory) error
    /// scopes and turns what they caught into an error naming `what`. On the web a scope's
    /// result is a promise this thread may not block on, so no scope is pushed there: wgpu
    /// reports the error to the uncaptured handler, and the next [`Device::check`] (every
    /// submit and readback makes one) returns it.
    fn guarded<T>(&self, what: &str, out_of_memory: bool, create: impl FnOnce() -> T) -> Result<T> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let device = &self.inner.device;
            let oom =
                out_of_memory.then(|| device.push_error_scope(wgpu::ErrorFilter::OutOfMemory));
            let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
            let created = create();
            let invalid = block_on(validation.pop());
            let exhausted = oom.and_then(|scope| block_on(scope.pop()));
            match exhausted.or(invalid) {
                Some(error) => Err(WgpuError::from(error).into_error(what)),
                None => Ok(created),
            }
        }
        #[cfg(target_arch = "wasm32")]
        {
            let _ = (what, out_of_memory);
            Ok(create())
        }
    }

    /// Destroys the device: every later operation returns [`Error::DeviceLost`].
    pub fn destroy(&self) {
        self.inner.device.destroy();
        let mut lost = lock(&self.inner.lost);
        lost.get_or_insert_with(|| "Destroyed: Device::destroy was called".to_string());
    }

    /// Drops every idle pooled buffer.
    pub fn clear_buffer_pool(&self) {
        lock(&self.inner.pool).clear();
    }

    /// Fails if the device was lost or wgpu reported an error since the last check.
    pub fn check(&self, context: &str) -> Result<()> {
        if let Some(reason) = lock(&self.inner.lost).clone() {
            return Err(Error::DeviceLost(reason));
        }
        let mut errors = lock(&self.inner.uncaptured);
        if errors.is_empty() {
            return Ok(());
        }
        let first = errors.remove(0);
        errors.clear();
        Err(first.into_error(context))
    }

    /// Checks that a buffer of `bytes` bytes fits the device: [`Error::TooLarge`] naming `what`
    /// and the limit (`max_buffer_size`, or `max_storage_buffer_binding_size` for a buffer
    /// kernels bind as `storage` when that is the smaller one). Nothing is allocated.
    pub fn check_buffer_size(&self, what: &str, bytes: u64, storage: bool) -> Result<()> {
        let limits = &self.inner.limits;
        let (limit, name) =
            if storage && limits.max_storage_buffer_binding_size < limits.max_buffer_size {
                (
                    limits.max_storage_buffer_binding_size,
                    "max_storage_buffer_binding_size",
                )
            } else {
                (limits.max_buffer_size, "max_buffer_size")
            };
        if bytes > limit {
            return Err(Error::TooLarge {
                what: what.to_string(),
                requested: format!("{bytes} bytes"),
                limit: format!("{limit} bytes"),
                limit_name: name,
            });
        }
        Ok(())
    }

    /// A buffer of at least `bytes` (rounded up to 16) with `usage`, from the pool when one is idle.
    pub(crate) fn acquire_buffer(
        &self,
        what: &str,
        bytes: u64,
        usage: wgpu::BufferUsages,
    ) -> Result<wgpu::Buffer> {
        self.check(what)?;
        let size = buffer_size(bytes);
        self.check_buffer_size(what, size, usage.contains(wgpu::BufferUsages::STORAGE))?;
        if let Some(buffer) = lock(&self.inner.pool).take(size, usage) {
            return Ok(buffer);
        }
        let device = &self.inner.device;
        let buffer = self.guarded(what, true, || {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(what),
                size,
                usage,
                mapped_at_creation: false,
            })
        })?;
        Counters::add(&self.inner.counters.buffers_created, 1);
        Ok(buffer)
    }

    /// An rgba32float texture of `width`×`height` texels that kernels read (`texture_2d<f32>`)
    /// and write (`texture_storage_2d<rgba32float, write>`).
    pub(crate) fn create_texture_2d(
        &self,
        what: &str,
        width: u32,
        height: u32,
        format: wgpu::TextureFormat,
        usage: wgpu::TextureUsages,
    ) -> Result<wgpu::Texture> {
        self.check(what)?;
        let limit = self.inner.limits.max_texture_dimension_2d;
        if width.max(height) > limit {
            return Err(Error::TooLarge {
                what: what.to_string(),
                requested: format!("a {width}×{height} texture"),
                limit: format!("{limit} texels per side"),
                limit_name: "max_texture_dimension_2d",
            });
        }
        let device = &self.inner.device;
        let texture = self.guarded(what, true, || {
            device.create_texture(&wgpu::TextureDescriptor {
                label: Some(what),
                size: wgpu::Extent3d {
                    width,
                    height,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format,
                usage,
                view_formats: &[],
            })
        })?;
        Counters::add(&self.inner.counters.textures_created, 1);
        Ok(texture)
    }

    pub(crate) fn release_buffer(&self, buffer: wgpu::Buffer) {
        lock(&self.inner.pool).give_back(buffer);
    }

    /// A small uniform buffer holding `data`, for a kernel's fixed parameters.
    pub(crate) fn uniform_buffer(&self, label: &str, data: &[u8]) -> wgpu::Buffer {
        use wgpu::util::DeviceExt;
        Counters::add(&self.inner.counters.buffers_created, 1);
        self.inner
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: data,
                // COPY_DST: some (optimiser steps, RNG keys) are rewritten between submits.
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            })
    }

    /// Copies `data` into `buffer` at `offset` (queued; no host sync).
    pub(crate) fn write_buffer(&self, buffer: &wgpu::Buffer, offset: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.inner.queue.write_buffer(buffer, offset, data);
        Counters::add(&self.inner.counters.host_writes, 1);
        Counters::add(&self.inner.counters.bytes_uploaded, data.len() as u64);
    }

    /// A buffer of `bytes` that is only copied into (from the host) and out of (into the
    /// buffers kernels bind): a plan's table of per-step inputs.
    pub(crate) fn table_buffer(&self, label: &str, bytes: u64) -> Result<wgpu::Buffer> {
        self.check_buffer_size(label, bytes, false)?;
        Counters::add(&self.inner.counters.buffers_created, 1);
        Ok(self.inner.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(4),
            usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }))
    }

    pub(crate) fn submit(
        &self,
        commands: wgpu::CommandBuffer,
        dispatches: u64,
    ) -> Result<wgpu::SubmissionIndex> {
        if Deferral::active() {
            return Err(Error::InvalidArgument(
                "work was submitted (or a tensor read back) while capturing: inside capture() \
                 nothing runs until the plan is replayed; record through autograd, optimisers \
                 and batches only, and read results after a replay"
                    .into(),
            ));
        }
        self.check("command recording")?;
        let index = self.inner.queue.submit([commands]);
        Counters::add(&self.inner.counters.submits, 1);
        Counters::add(&self.inner.counters.dispatches, dispatches);
        self.check("submit")?;
        Ok(index)
    }
}

/// The size of the buffer that holds `bytes` bytes: at least 16, a multiple of 16 (so pooled
/// buffers can be reused for nearby sizes).
pub(crate) fn buffer_size(bytes: u64) -> u64 {
    bytes.max(16).next_multiple_of(16)
}
