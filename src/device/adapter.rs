//! Adapter discovery and choice.
//!
//! The default is the most capable adapter on any backend (discrete GPU first, a software
//! device last); `WGSL_NN_BACKEND` and `WGSL_NN_ADAPTER` narrow the search without code changes.

use std::fmt;

use crate::{Error, Result};

/// Environment variable naming the backend to use: `vulkan`, `metal`, `dx12` or `gl`.
pub const BACKEND_ENV: &str = "WGSL_NN_BACKEND";
/// Environment variable holding a case-insensitive substring of the adapter's name.
pub const ADAPTER_ENV: &str = "WGSL_NN_ADAPTER";

/// How to choose an adapter. `Default` searches the native backends (Vulkan, Metal, DX12) and
/// prefers high performance.
///
/// OpenGL is searched only when asked for (`WGSL_NN_BACKEND=gl`): wgpu's GL backend is a
/// downlevel one, and silently falling back to it (e.g. to llvmpipe's GL when no Vulkan
/// driver is installed) would hide a missing driver behind a slower, more limited device.
#[derive(Clone, Debug)]
pub struct DeviceOptions {
    /// Backends to search; `None` means the native ones (`wgpu::Backends::PRIMARY`).
    pub backends: Option<wgpu::Backends>,
    /// Keep only adapters whose name contains this (case-insensitive).
    pub adapter_name: Option<String>,
    /// Which kind of adapter to prefer when several match.
    pub power_preference: wgpu::PowerPreference,
}

impl Default for DeviceOptions {
    fn default() -> Self {
        Self {
            backends: None,
            adapter_name: None,
            power_preference: wgpu::PowerPreference::HighPerformance,
        }
    }
}

impl DeviceOptions {
    /// Defaults, overridden by `WGSL_NN_BACKEND` and `WGSL_NN_ADAPTER` when they are set.
    pub fn from_env() -> Result<Self> {
        let mut options = Self::default();
        if let Ok(value) = std::env::var(BACKEND_ENV) {
            if !value.trim().is_empty() {
                options.backends = Some(parse_backend(&value)?);
            }
        }
        if let Ok(value) = std::env::var(ADAPTER_ENV) {
            if !value.trim().is_empty() {
                options.adapter_name = Some(value.trim().to_string());
            }
        }
        Ok(options)
    }

    /// Restricts the search to one backend, by name (see [`parse_backend`]).
    pub fn with_backend(mut self, name: &str) -> Result<Self> {
        self.backends = Some(parse_backend(name)?);
        Ok(self)
    }

    /// Keeps only adapters whose name contains `name` (case-insensitive).
    pub fn with_adapter_name(mut self, name: impl Into<String>) -> Self {
        self.adapter_name = Some(name.into());
        self
    }

    pub(crate) fn backends(&self) -> wgpu::Backends {
        self.backends.unwrap_or(wgpu::Backends::PRIMARY)
    }
}

/// Parses a backend name: `vulkan` (or `vk`), `metal`, `dx12` (or `d3d12`), `gl` (or `opengl`, `gles`).
pub fn parse_backend(name: &str) -> Result<wgpu::Backends> {
    match name.trim().to_ascii_lowercase().as_str() {
        "vulkan" | "vk" => Ok(wgpu::Backends::VULKAN),
        "metal" | "mtl" => Ok(wgpu::Backends::METAL),
        "dx12" | "d3d12" => Ok(wgpu::Backends::DX12),
        "gl" | "gles" | "opengl" => Ok(wgpu::Backends::GL),
        other => Err(Error::InvalidArgument(format!(
            "unknown backend `{other}` (from {BACKEND_ENV} or --backend): \
             expected one of vulkan, metal, dx12, gl"
        ))),
    }
}

/// What an adapter is, in a form fit for printing and logging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterSummary {
    /// The adapter's name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// The API it runs on.
    pub backend: wgpu::Backend,
    /// Discrete, integrated, virtual, CPU or other.
    pub device_type: wgpu::DeviceType,
    /// The driver's name.
    pub driver: String,
    /// The driver's version or description.
    pub driver_info: String,
}

impl AdapterSummary {
    pub(crate) fn from_info(info: &wgpu::AdapterInfo) -> Self {
        Self {
            name: info.name.clone(),
            backend: info.backend,
            device_type: info.device_type,
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
        }
    }
}

impl fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{:?}, {:?}] driver: {} {}",
            self.name, self.backend, self.device_type, self.driver, self.driver_info
        )
    }
}

/// An instance on `backends`, with wgpu's own environment variables honoured for everything
/// else (`WGPU_GLES_MINOR_VERSION`, `WGPU_VALIDATION`, …): compute needs OpenGL ES 3.1, and
/// some EGL drivers hand out an older context unless asked (`WGPU_GLES_MINOR_VERSION=2`).
pub(crate) fn new_instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle().with_env();
    descriptor.backends = backends;
    wgpu::Instance::new(descriptor)
}

/// Lists every adapter on the given backends (all when `None`).
pub fn list_adapters(backends: Option<wgpu::Backends>) -> Vec<AdapterSummary> {
    let backends = backends.unwrap_or(wgpu::Backends::all());
    let instance = new_instance(backends);
    pollster::block_on(instance.enumerate_adapters(backends))
        .iter()
        .map(|adapter| AdapterSummary::from_info(&adapter.get_info()))
        .collect()
}

/// Lower is better. Software devices come last for high performance, and native APIs come
/// before GL, which wgpu supports with fewer features.
fn rank(info: &wgpu::AdapterInfo, preference: wgpu::PowerPreference) -> (u8, u8) {
    use wgpu::DeviceType::*;
    let kind = match (preference, info.device_type) {
        (wgpu::PowerPreference::LowPower, IntegratedGpu) => 0,
        (wgpu::PowerPreference::LowPower, DiscreteGpu) => 1,
        (_, DiscreteGpu) => 0,
        (_, IntegratedGpu) => 1,
        (_, VirtualGpu) => 2,
        (_, Other) => 3,
        (_, Cpu) => 4,
    };
    let api = u8::from(info.backend == wgpu::Backend::Gl);
    (kind, api)
}

/// Picks the best adapter that matches `options`, or explains what was tried.
pub(crate) fn choose_adapter(
    instance: &wgpu::Instance,
    options: &DeviceOptions,
) -> Result<wgpu::Adapter> {
    let backends = options.backends();
    let adapters = pollster::block_on(instance.enumerate_adapters(backends));
    let found: Vec<String> = adapters
        .iter()
        .map(|a| AdapterSummary::from_info(&a.get_info()).to_string())
        .collect();
    let wanted = options.adapter_name.as_ref().map(|n| n.to_lowercase());
    let best = adapters
        .into_iter()
        .filter(|a| {
            wanted
                .as_ref()
                .is_none_or(|w| a.get_info().name.to_lowercase().contains(w))
        })
        .min_by_key(|a| rank(&a.get_info(), options.power_preference));
    best.ok_or_else(|| {
        let mut tried = format!("searched backends {backends:?}");
        if let Some(name) = &options.adapter_name {
            tried.push_str(&format!(" for an adapter named like `{name}`"));
        }
        if options.backends.is_none() {
            tried.push_str(&format!(" (OpenGL only when {BACKEND_ENV}=gl)"));
        }
        if found.is_empty() {
            tried.push_str("; no adapter was found at all");
        } else {
            tried.push_str(&format!("; found only: {}", found.join("; ")));
        }
        Error::NoAdapter { tried }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_backend_name_and_rejects_others() {
        assert_eq!(parse_backend("Vulkan").unwrap(), wgpu::Backends::VULKAN);
        assert_eq!(parse_backend(" metal ").unwrap(), wgpu::Backends::METAL);
        assert_eq!(parse_backend("dx12").unwrap(), wgpu::Backends::DX12);
        assert_eq!(parse_backend("gl").unwrap(), wgpu::Backends::GL);
        let err = parse_backend("cuda").unwrap_err().to_string();
        assert!(
            err.contains("cuda") && err.contains("vulkan, metal, dx12, gl"),
            "{err}"
        );
    }
}
