//! Shader sources, the pipeline cache and pipeline creation (`Device::pipeline`).
//!
//! Every WGSL file is embedded in the binary and compiled at most once per device; each
//! combination of entry point and `override` constants becomes one pipeline, built on first
//! use, logged (`Device::built_pipelines`) with its workgroup size (for the grid listings).

use std::collections::HashMap;
use std::sync::Arc;

use super::counters::Counters;
use super::{Device, lock};
use crate::{Error, Result};

/// A WGSL source file, embedded with `include_str!` by the kernel module that owns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShaderSource {
    /// Short name for labels and error messages (the file name without `.wgsl`).
    pub name: &'static str,
    /// The WGSL text.
    pub wgsl: &'static str,
    /// How many storage buffers each entry point binds, which a device must allow per shader
    /// stage (`max_storage_buffers_per_shader_stage`: 8 in WebGPU's defaults, 10 on
    /// SwiftShader). Checked against the WGSL by `tests/contract.rs`.
    pub storage_buffers: &'static [(&'static str, u32)],
}

impl ShaderSource {
    /// The storage buffers `entry_point` binds (0 for an entry point not listed).
    pub fn storage_buffers(&self, entry_point: &str) -> u32 {
        self.storage_buffers
            .iter()
            .find(|(name, _)| *name == entry_point)
            .map_or(0, |&(_, count)| count)
    }
}

/// Identifies one specialised pipeline: shader, entry point and override constants.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PipelineKey {
    pub shader: ModuleKey,
    pub entry_point: String,
    /// Constant names with their values' bit patterns (f64 is not `Eq`).
    pub constants: Vec<(String, u64)>,
}

impl PipelineKey {
    pub fn new(
        shader: &ShaderSource,
        entry_point: &str,
        constants: &[(&str, f64)],
        bounds_checks: bool,
    ) -> Self {
        Self {
            shader: ModuleKey::of(shader, bounds_checks),
            entry_point: entry_point.to_string(),
            constants: constants
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_bits()))
                .collect(),
        }
    }
}

/// Identifies a shader module by name, text and whether wgpu injected bounds checks, so two
/// sources that share a name (a user's shader called like one of the crate's) never share a
/// module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ModuleKey {
    name: &'static str,
    text: u64,
    bounds_checks: bool,
}

impl ModuleKey {
    pub fn of(shader: &ShaderSource, bounds_checks: bool) -> Self {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        shader.wgsl.hash(&mut hasher);
        Self {
            name: shader.name,
            text: hasher.finish(),
            bounds_checks,
        }
    }
}

#[derive(Default)]
pub(crate) struct PipelineCache {
    pub modules: HashMap<ModuleKey, wgpu::ShaderModule>,
    pub pipelines: HashMap<PipelineKey, Arc<wgpu::ComputePipeline>>,
    /// What was built, in order.
    pub built: Vec<BuiltPipeline>,
    /// Each pipeline's workgroup size, by the pipeline's address (pipelines live as long as
    /// the cache).
    pub sizes: HashMap<usize, [u32; 3]>,
}

/// The workgroup size `@workgroup_size(…)` declares for `entry_point` of `wgsl`: numbers, or
/// `override`/`const` names, valued by `constants` or by their declared defaults. `None` when
/// the text does not say (then the grid listing leaves the size out).
pub(crate) fn workgroup_size(
    wgsl: &str,
    entry_point: &str,
    constants: &[(&str, f64)],
) -> Option<[u32; 3]> {
    let at = wgsl.find(&format!("fn {entry_point}("))?;
    let attribute = wgsl[..at].rfind("@workgroup_size(")?;
    let args = &wgsl[attribute + "@workgroup_size(".len()..at];
    let args = &args[..args.find(')')?];
    let value = |arg: &str| -> Option<u32> {
        let arg = arg.trim();
        if let Ok(n) = arg.trim_end_matches(['u', 'i']).parse() {
            return Some(n);
        }
        if let Some((_, v)) = constants.iter().find(|(name, _)| *name == arg) {
            return Some(*v as u32);
        }
        // The declared default: `override NAME: u32 = 64u;` or `const NAME: u32 = 16u;`.
        ["override ", "const "].iter().find_map(|keyword| {
            let declaration = format!("{keyword}{arg}:");
            let start = wgsl.find(&declaration)?;
            let rest = &wgsl[start..];
            let init = &rest[rest.find('=')? + 1..rest.find(';')?];
            init.trim().trim_end_matches(['u', 'i']).parse().ok()
        })
    };
    let mut size = [1; 3];
    for (slot, arg) in size
        .iter_mut()
        .zip(args.split(',').filter(|a| !a.trim().is_empty()))
    {
        *slot = value(arg)?;
    }
    Some(size)
}

/// One pipeline a device built: an entry point of a shader with its `override` values.
#[derive(Clone, Debug, PartialEq)]
pub struct BuiltPipeline {
    /// The shader.
    pub shader: ShaderSource,
    /// The entry point.
    pub entry_point: String,
    /// The `override` constants it was specialised with.
    pub constants: Vec<(String, f64)>,
}

/// Pipeline creation: compiled once per entry point and `override` values, cached, logged.
impl Device {
    /// The pipeline for `entry_point` of `shader` specialised with `constants`, compiled on
    /// first use and cached for the life of the device.
    pub fn pipeline(
        &self,
        shader: &ShaderSource,
        entry_point: &str,
        constants: &[(&str, f64)],
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        self.pipeline_with(shader, entry_point, constants, true)
    }

    /// [`Device::pipeline`] built without the bounds checks wgpu injects into shaders (its
    /// loops stay bounded and its integer divisions guarded).
    ///
    /// # Safety
    ///
    /// Every index and texel coordinate the shader computes must be in bounds for every input
    /// its callers can give: an out-of-bounds access is undefined behaviour on drivers that do
    /// not check it themselves.
    pub(crate) unsafe fn pipeline_unchecked(
        &self,
        shader: &ShaderSource,
        entry_point: &str,
        constants: &[(&str, f64)],
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        self.pipeline_with(shader, entry_point, constants, false)
    }

    /// Every pipeline this device has built, in order: each entry point with the `override`
    /// values it was specialised with (what `tests/portability.rs` translates for other
    /// backends).
    pub fn built_pipelines(&self) -> Vec<BuiltPipeline> {
        lock(&self.inner.pipelines).built.clone()
    }

    /// Whether the device allows as many storage buffers per shader stage as `entry_point` of
    /// `shader` binds. Kernel choice asks this, so an adapter with a low limit (SwiftShader's
    /// 10, WebGPU's default 8) gets a kernel it can run.
    pub fn binds_enough(&self, shader: &ShaderSource, entry_point: &str) -> bool {
        shader.storage_buffers(entry_point)
            <= self.inner.limits.max_storage_buffers_per_shader_stage
    }

    fn pipeline_with(
        &self,
        shader: &ShaderSource,
        entry_point: &str,
        constants: &[(&str, f64)],
        bounds_checks: bool,
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        self.check("pipeline creation")?;
        if !self.binds_enough(shader, entry_point) {
            return Err(Error::TooLarge {
                what: format!("shader `{}`, entry point `{entry_point}`", shader.name),
                requested: format!("{} storage buffers", shader.storage_buffers(entry_point)),
                limit: format!(
                    "{} per shader stage on this adapter (choose another kernel family)",
                    self.inner.limits.max_storage_buffers_per_shader_stage
                ),
                limit_name: "max_storage_buffers_per_shader_stage",
            });
        }
        let key = PipelineKey::new(shader, entry_point, constants, bounds_checks);
        let mut cache = lock(&self.inner.pipelines);
        if let Some(pipeline) = cache.pipelines.get(&key) {
            return Ok(Arc::clone(pipeline));
        }
        let size = workgroup_size(shader.wgsl, entry_point, constants);
        cache.built.push(BuiltPipeline {
            shader: *shader,
            entry_point: entry_point.to_string(),
            constants: constants.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
        });
        let device = &self.inner.device;
        let context = format!("shader `{}`, entry point `{entry_point}`", shader.name);
        let module = match cache.modules.entry(key.shader) {
            std::collections::hash_map::Entry::Occupied(slot) => slot.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                let descriptor = wgpu::ShaderModuleDescriptor {
                    label: Some(shader.name),
                    source: wgpu::ShaderSource::Wgsl(shader.wgsl.into()),
                };
                let module = self.guarded(&context, false, || {
                    if bounds_checks {
                        device.create_shader_module(descriptor)
                    } else {
                        let checks = wgpu::ShaderRuntimeChecks {
                            bounds_checks: false,
                            ..wgpu::ShaderRuntimeChecks::checked()
                        };
                        // SAFETY: `pipeline_unchecked`'s caller vouches for every index;
                        // loops stay bounded and divisions guarded.
                        unsafe { device.create_shader_module_trusted(descriptor, checks) }
                    }
                })?;
                slot.insert(module)
            }
        };
        let module = &*module;
        let pipeline = self.guarded(&context, false, || {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&context),
                layout: None,
                module,
                entry_point: Some(entry_point),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    // Kernels write every workgroup variable before reading it.
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            })
        })?;
        Counters::add(&self.inner.counters.pipelines_created, 1);
        let pipeline = Arc::new(pipeline);
        if let Some(size) = size {
            cache.sizes.insert(Arc::as_ptr(&pipeline) as usize, size);
        }
        cache.pipelines.insert(key, Arc::clone(&pipeline));
        Ok(pipeline)
    }

    /// The workgroup size of a pipeline this device built, as its WGSL declares it (`None`
    /// when the text does not say).
    pub(crate) fn workgroup_size(&self, pipeline: &Arc<wgpu::ComputePipeline>) -> Option<[u32; 3]> {
        lock(&self.inner.pipelines)
            .sizes
            .get(&(Arc::as_ptr(pipeline) as usize))
            .copied()
    }
}
