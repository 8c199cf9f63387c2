//! The device profile: how the engine shapes its work for a device. Kernel choice, fusion
//! shapes and steps per submit follow it, for plain and fused products alike.
//!
//! The two kinds of device run the same WGSL very differently:
//! - **Software adapters** (lavapipe, SwiftShader, WARP) run a workgroup's invocations as the
//!   SIMD lanes of a few CPU threads: a workgroup barrier is a switch between invocations, and
//!   on lavapipe every storage-buffer or workgroup-memory load is a loop over the lanes, where a
//!   texel fetch is one gather and a subgroup broadcast a register shuffle. Few, long
//!   invocations with operands in registers win.
//! - **GPUs** hold tens of thousands of invocations at once and hide memory latency by switching
//!   between them: many short invocations reusing operands from workgroup memory win.
//!
//! The profile defaults to the adapter's type and can be forced (`WGSL_NN_PROFILE=cpu|gpu`,
//! [`DeviceOptions::with_profile`](super::DeviceOptions::with_profile)), which is how the GPU
//! paths are tested on a software adapter: every family computes the same bits, so a plan
//! under either profile ends on the same weights.

use crate::{Error, Result};

/// Environment variable forcing the device profile: `cpu` or `gpu`.
pub const PROFILE_ENV: &str = "WGSL_NN_PROFILE";

/// How the engine shapes its work for a device (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Software adapters: few long invocations, texel fetches and subgroup broadcasts.
    Cpu,
    /// GPUs: many short invocations, operands staged in workgroup memory.
    Gpu,
}

impl Profile {
    /// The profile of an adapter of type `device_type`: [`Profile::Cpu`] for software
    /// adapters, [`Profile::Gpu`] for the rest.
    pub fn of(device_type: wgpu::DeviceType) -> Self {
        match device_type {
            wgpu::DeviceType::Cpu => Profile::Cpu,
            _ => Profile::Gpu,
        }
    }

    /// Parses `cpu` or `gpu` (any case).
    pub fn from_name(name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Profile::Cpu),
            "gpu" => Ok(Profile::Gpu),
            other => Err(Error::InvalidArgument(format!(
                "unknown device profile `{other}` (from {PROFILE_ENV} or \
                 DeviceOptions::with_profile): expected cpu or gpu"
            ))),
        }
    }

    /// `cpu` or `gpu`.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Cpu => "cpu",
            Profile::Gpu => "gpu",
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_follow_the_adapter_type_and_parse_by_name() {
        assert_eq!(Profile::of(wgpu::DeviceType::Cpu), Profile::Cpu);
        for gpu in [
            wgpu::DeviceType::DiscreteGpu,
            wgpu::DeviceType::IntegratedGpu,
            wgpu::DeviceType::VirtualGpu,
            wgpu::DeviceType::Other,
        ] {
            assert_eq!(Profile::of(gpu), Profile::Gpu);
        }
        assert_eq!(Profile::from_name(" GPU ").unwrap(), Profile::Gpu);
        assert_eq!(Profile::from_name("cpu").unwrap().to_string(), "cpu");
        let error = Profile::from_name("tpu").unwrap_err().to_string();
        assert!(
            error.contains("WGSL_NN_PROFILE") && error.contains("cpu or gpu"),
            "{error}"
        );
    }
}
