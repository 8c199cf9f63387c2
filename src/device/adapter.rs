//! Adapter discovery and choice.
//!
//! The default is the most capable adapter on any backend (discrete GPU first, a software
//! device last); `WGSL_NN_BACKEND` and `WGSL_NN_ADAPTER` narrow the search without code changes.

use std::fmt;

use super::profile::{PROFILE_ENV, Profile};
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
    /// The device profile; `None` takes the adapter's ([`Profile::of`]).
    pub profile: Option<Profile>,
    /// Request the adapter's subgroup operations (true by default); without them the device
    /// runs the kernels a browser without subgroups gets.
    pub subgroups: bool,
}

impl Default for DeviceOptions {
    fn default() -> Self {
        Self {
            backends: None,
            adapter_name: None,
            power_preference: wgpu::PowerPreference::HighPerformance,
            profile: None,
            subgroups: true,
        }
    }
}

impl DeviceOptions {
    /// Defaults, overridden by `WGSL_NN_BACKEND`, `WGSL_NN_ADAPTER` and `WGSL_NN_PROFILE` when
    /// they are set.
    pub fn from_env() -> Result<Self> {
        let mut options = Self::default();
        if let Ok(value) = std::env::var(BACKEND_ENV)
            && !value.trim().is_empty()
        {
            options.backends = Some(parse_backend(&value)?);
        }
        if let Ok(value) = std::env::var(ADAPTER_ENV)
            && !value.trim().is_empty()
        {
            options.adapter_name = Some(value.trim().to_string());
        }
        if let Ok(value) = std::env::var(PROFILE_ENV)
            && !value.trim().is_empty()
        {
            options.profile = Some(Profile::from_name(&value)?);
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

    /// Forces the device profile, whatever the adapter.
    pub fn with_profile(mut self, profile: Profile) -> Self {
        self.profile = Some(profile);
        self
    }

    /// Opens the device without subgroup operations, even where the adapter has them: the
    /// kernels of a device without them (as a browser's may be) on this one.
    pub fn without_subgroups(mut self) -> Self {
        self.subgroups = false;
        self
    }

    pub(crate) fn backends(&self) -> wgpu::Backends {
        self.backends.unwrap_or(wgpu::Backends::PRIMARY)
    }
}

/// Parses a backend name: `vulkan` (or `vk`), `metal`, `dx12` (or `d3d12`), `gl` (or `opengl`,
/// `gles`), `webgpu` (or `browser`: the browser's WebGPU, on wasm32).
pub fn parse_backend(name: &str) -> Result<wgpu::Backends> {
    match name.trim().to_ascii_lowercase().as_str() {
        "vulkan" | "vk" => Ok(wgpu::Backends::VULKAN),
        "metal" | "mtl" => Ok(wgpu::Backends::METAL),
        "dx12" | "d3d12" => Ok(wgpu::Backends::DX12),
        "gl" | "gles" | "opengl" => Ok(wgpu::Backends::GL),
        "webgpu" | "browser" => Ok(wgpu::Backends::BROWSER_WEBGPU),
        other => Err(Error::InvalidArgument(format!(
            "unknown backend `{other}` (from {BACKEND_ENV} or DeviceOptions::with_backend): \
             expected one of vulkan, metal, dx12, gl, webgpu"
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
#[cfg(not(target_arch = "wasm32"))]
pub fn list_adapters(backends: Option<wgpu::Backends>) -> Vec<AdapterSummary> {
    super::block_on(list_adapters_async(backends))
}

/// `list_adapters` without blocking (on the web: the one adapter the browser offers).
pub async fn list_adapters_async(backends: Option<wgpu::Backends>) -> Vec<AdapterSummary> {
    let backends = backends.unwrap_or(wgpu::Backends::all());
    let instance = new_instance(backends);
    instance
        .enumerate_adapters(backends)
        .await
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

/// Whether an adapter's name contains `wanted` (already lower case).
fn name_matches(name: &str, wanted: Option<&str>) -> bool {
    wanted.is_none_or(|w| name.to_lowercase().contains(w))
}

/// The index of the best adapter in `adapters` that matches `options`' name filter, if any.
fn pick(adapters: &[wgpu::AdapterInfo], options: &DeviceOptions) -> Option<usize> {
    let wanted = options.adapter_name.as_ref().map(|n| n.to_lowercase());
    adapters
        .iter()
        .enumerate()
        .filter(|(_, info)| name_matches(&info.name, wanted.as_deref()))
        .min_by_key(|(_, info)| rank(info, options.power_preference))
        .map(|(i, _)| i)
}

/// Picks the best adapter that matches `options`, or explains what was found and what to do.
pub(crate) async fn choose_adapter(
    instance: &wgpu::Instance,
    options: &DeviceOptions,
) -> Result<wgpu::Adapter> {
    let backends = options.backends();
    let mut adapters = instance.enumerate_adapters(backends).await;
    let infos: Vec<wgpu::AdapterInfo> = adapters.iter().map(|a| a.get_info()).collect();
    if let Some(best) = pick(&infos, options) {
        return Ok(adapters.swap_remove(best));
    }
    let found: Vec<AdapterSummary> = infos.iter().map(AdapterSummary::from_info).collect();
    // Only now, to explain the failure: what the backends that were not searched have.
    let others = wgpu::Backends::all().difference(backends);
    let elsewhere = if others.is_empty() {
        Vec::new()
    } else {
        list_adapters_async(Some(others)).await
    };
    let icd = ["VK_ICD_FILENAMES", "VK_DRIVER_FILES"]
        .into_iter()
        .find_map(|var| {
            std::env::var(var)
                .ok()
                .map(|value| format!("{var}={value}"))
        });
    Err(Error::NoAdapter {
        tried: no_adapter_message(options, backends, &found, &elsewhere, icd.as_deref()),
    })
}

/// The `WGSL_NN_BACKEND` value that selects `backend`, if there is one.
fn backend_name(backend: wgpu::Backend) -> Option<&'static str> {
    match backend {
        wgpu::Backend::Vulkan => Some("vulkan"),
        wgpu::Backend::Metal => Some("metal"),
        wgpu::Backend::Dx12 => Some("dx12"),
        wgpu::Backend::Gl => Some("gl"),
        wgpu::Backend::BrowserWebGpu => Some("webgpu"),
        _ => None,
    }
}

/// `vulkan, metal, dx12` for a set of backends.
fn backend_names(backends: wgpu::Backends) -> String {
    let names: Vec<&str> = [
        (wgpu::Backends::VULKAN, "vulkan"),
        (wgpu::Backends::METAL, "metal"),
        (wgpu::Backends::DX12, "dx12"),
        (wgpu::Backends::GL, "gl"),
        (wgpu::Backends::BROWSER_WEBGPU, "webgpu"),
    ]
    .into_iter()
    .filter(|(b, _)| backends.contains(*b))
    .map(|(_, name)| name)
    .collect();
    if names.is_empty() {
        format!("{backends:?}")
    } else {
        names.join(", ")
    }
}

fn list(adapters: &[&AdapterSummary]) -> String {
    adapters
        .iter()
        .map(|a| format!("`{a}`"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// How to select the backend of each adapter in `adapters`: `WGSL_NN_BACKEND=gl`, ….
fn backend_choices(adapters: &[&AdapterSummary]) -> String {
    let mut names: Vec<&str> = adapters
        .iter()
        .filter_map(|a| backend_name(a.backend))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
        .iter()
        .map(|name| format!("{BACKEND_ENV}={name} (DeviceOptions::with_backend(\"{name}\"))"))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Why no adapter was chosen and what to do, given the adapters `found` on the `searched`
/// backends and those `elsewhere` (on every other backend); `icd` names a Vulkan-loader
/// variable that restricts the Vulkan drivers, when one is set.
pub(crate) fn no_adapter_message(
    options: &DeviceOptions,
    searched: wgpu::Backends,
    found: &[AdapterSummary],
    elsewhere: &[AdapterSummary],
    icd: Option<&str>,
) -> String {
    let backends = backend_names(searched);
    let default_search = if options.backends.is_none() {
        format!(" (the default; OpenGL is searched only when {BACKEND_ENV}=gl)")
    } else {
        String::new()
    };
    let wanted = options.adapter_name.as_ref().map(|n| n.to_lowercase());
    let named_elsewhere: Vec<&AdapterSummary> = elsewhere
        .iter()
        .filter(|a| name_matches(&a.name, wanted.as_deref()))
        .collect();
    let found_refs: Vec<&AdapterSummary> = found.iter().collect();

    if let (Some(name), false) = (&options.adapter_name, found.is_empty()) {
        // Adapters exist, but the name filter excludes them all.
        let mut message = format!(
            "no adapter on the backends searched ({backends}){default_search} has a name \
             containing `{name}` (the filter from {ADAPTER_ENV} or \
             DeviceOptions::with_adapter_name). The adapters there are: {}. To use one, set \
             {ADAPTER_ENV} to a part of its name, or leave it unset to take the best one",
            list(&found_refs)
        );
        if !named_elsewhere.is_empty() {
            message.push_str(&format!(
                ". On other backends {} matches `{name}`: select its backend with {}",
                list(&named_elsewhere),
                backend_choices(&named_elsewhere)
            ));
        }
        return message;
    }

    // From here on the searched backends have no adapter at all.
    let icd_note = match icd {
        Some(setting) if searched.contains(wgpu::Backends::VULKAN) => {
            format!(" ({setting} is set: the Vulkan loader reads only the drivers it names)")
        }
        _ => String::new(),
    };
    if !named_elsewhere.is_empty() {
        // Nothing on the searched backends, but another backend has a usable adapter.
        return format!(
            "no adapter was found on the backends searched ({backends}){default_search}\
             {icd_note}, but other backends have: {}. Select one with {}, or install or repair \
             the driver for {backends}",
            list(&named_elsewhere),
            backend_choices(&named_elsewhere)
        );
    }
    if let (Some(name), false) = (&options.adapter_name, elsewhere.is_empty()) {
        // Nothing on the searched backends, and nothing elsewhere matches the name.
        let others: Vec<&AdapterSummary> = elsewhere.iter().collect();
        return format!(
            "no adapter was found on the backends searched ({backends}){default_search}\
             {icd_note}, and none on other backends has a name containing `{name}` (the filter \
             from {ADAPTER_ENV} or DeviceOptions::with_adapter_name). Other backends have: {}. \
             To use one, set {ADAPTER_ENV} to a part of its name (or leave it unset) and select \
             its backend with {}",
            list(&others),
            backend_choices(&others)
        );
    }
    format!(
        "no adapter was found on any backend (searched first: {backends}{default_search})\
         {icd_note}. Install a GPU driver with Vulkan, Metal or DX12 support; on a headless \
         Linux machine `apt-get install mesa-vulkan-drivers libvulkan1` provides a software \
         Vulkan device (lavapipe)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(
        name: &str,
        device_type: wgpu::DeviceType,
        backend: wgpu::Backend,
    ) -> wgpu::AdapterInfo {
        wgpu::AdapterInfo {
            name: name.into(),
            ..wgpu::AdapterInfo::new(device_type, backend)
        }
    }

    fn summary(
        name: &str,
        device_type: wgpu::DeviceType,
        backend: wgpu::Backend,
    ) -> AdapterSummary {
        AdapterSummary::from_info(&info(name, device_type, backend))
    }

    #[test]
    fn the_name_filter_selects_an_adapter_the_ranking_would_not() {
        use wgpu::{Backend::*, DeviceType::*};
        let adapters = [
            info("NVIDIA GeForce RTX 4090", DiscreteGpu, Vulkan),
            info("llvmpipe (LLVM 15.0.6, 256 bits)", Cpu, Vulkan),
            info("Intel(R) UHD Graphics 770", IntegratedGpu, Vulkan),
        ];
        let best = DeviceOptions::default();
        assert_eq!(
            pick(&adapters, &best),
            Some(0),
            "the discrete GPU ranks first"
        );
        // Ignoring the filter would pick the discrete GPU again.
        let llvmpipe = DeviceOptions::default().with_adapter_name("LLVMPIPE");
        assert_eq!(pick(&adapters, &llvmpipe), Some(1));
        let intel = DeviceOptions::default().with_adapter_name("uhd");
        assert_eq!(pick(&adapters, &intel), Some(2));
        let none = DeviceOptions::default().with_adapter_name("radeon");
        assert_eq!(pick(&adapters, &none), None);
    }

    #[test]
    fn a_name_that_matches_nothing_lists_the_adapters_instead_of_asking_for_a_driver() {
        let options = DeviceOptions::default().with_adapter_name("nonexistent");
        let found = [summary(
            "llvmpipe (LLVM 15.0.6, 256 bits)",
            wgpu::DeviceType::Cpu,
            wgpu::Backend::Vulkan,
        )];
        let message = no_adapter_message(&options, wgpu::Backends::PRIMARY, &found, &[], None);
        assert!(message.contains("`nonexistent`"), "{message}");
        assert!(
            message.contains("llvmpipe (LLVM 15.0.6, 256 bits)"),
            "{message}"
        );
        assert!(
            message.contains(ADAPTER_ENV),
            "says how to pick one: {message}"
        );
        assert!(
            !message.contains("Install") && !message.contains("mesa-vulkan-drivers"),
            "an adapter exists; no driver is missing: {message}"
        );
    }

    #[test]
    fn a_name_matching_only_on_another_backend_names_that_backend() {
        let options = DeviceOptions::default().with_adapter_name("llvmpipe");
        let found = [summary(
            "NVIDIA GeForce RTX 4090",
            wgpu::DeviceType::DiscreteGpu,
            wgpu::Backend::Vulkan,
        )];
        let elsewhere = [summary(
            "llvmpipe (LLVM 15.0.6, 256 bits)",
            wgpu::DeviceType::Cpu,
            wgpu::Backend::Gl,
        )];
        let message =
            no_adapter_message(&options, wgpu::Backends::PRIMARY, &found, &elsewhere, None);
        assert!(message.contains("NVIDIA GeForce RTX 4090"), "{message}");
        assert!(message.contains(&format!("{BACKEND_ENV}=gl")), "{message}");
    }

    #[test]
    fn no_adapter_on_the_searched_backends_but_one_on_another_names_the_backend() {
        // What `VK_ICD_FILENAMES=/nonexistent.json` gives on a machine with Mesa: no Vulkan
        // driver, but llvmpipe through OpenGL.
        let elsewhere = [summary(
            "llvmpipe (LLVM 15.0.6, 256 bits)",
            wgpu::DeviceType::Cpu,
            wgpu::Backend::Gl,
        )];
        let message = no_adapter_message(
            &DeviceOptions::default(),
            wgpu::Backends::PRIMARY,
            &[],
            &elsewhere,
            Some("VK_ICD_FILENAMES=/nonexistent.json"),
        );
        assert!(
            !message.contains("at all") && !message.contains("any backend"),
            "{message}"
        );
        assert!(
            message.contains("llvmpipe (LLVM 15.0.6, 256 bits)"),
            "{message}"
        );
        assert!(message.contains(&format!("{BACKEND_ENV}=gl")), "{message}");
        assert!(
            message.contains("vulkan, metal, dx12"),
            "names what was searched: {message}"
        );
        assert!(
            message.contains("VK_ICD_FILENAMES=/nonexistent.json"),
            "{message}"
        );
    }

    #[test]
    fn no_adapter_anywhere_asks_for_a_driver() {
        let message = no_adapter_message(
            &DeviceOptions::default(),
            wgpu::Backends::PRIMARY,
            &[],
            &[],
            None,
        );
        assert!(message.contains("any backend"), "{message}");
        assert!(message.contains("mesa-vulkan-drivers"), "{message}");
    }

    #[test]
    fn adapter_messages_name_no_example_flags() {
        let elsewhere = [summary(
            "llvmpipe",
            wgpu::DeviceType::Cpu,
            wgpu::Backend::Gl,
        )];
        let found = [summary(
            "llvmpipe",
            wgpu::DeviceType::Cpu,
            wgpu::Backend::Vulkan,
        )];
        let named = DeviceOptions::default().with_adapter_name("x");
        let messages = [
            no_adapter_message(&named, wgpu::Backends::PRIMARY, &found, &elsewhere, None),
            no_adapter_message(&named, wgpu::Backends::PRIMARY, &[], &elsewhere, None),
            no_adapter_message(
                &DeviceOptions::default(),
                wgpu::Backends::PRIMARY,
                &[],
                &elsewhere,
                None,
            ),
            no_adapter_message(
                &DeviceOptions::default(),
                wgpu::Backends::PRIMARY,
                &[],
                &[],
                None,
            ),
            parse_backend("cuda").unwrap_err().to_string(),
        ];
        for message in messages {
            assert!(
                !message.contains("--"),
                "a library message names a CLI flag: {message}"
            );
        }
    }

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
