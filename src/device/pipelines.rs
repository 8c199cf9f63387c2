//! Shader sources and the pipeline cache.
//!
//! Every WGSL file is embedded in the binary and compiled at most once per device; each
//! combination of entry point and `override` constants becomes one pipeline, built on first use.

use std::collections::HashMap;
use std::sync::Arc;

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
