//! Portability without the hardware: every pipeline the engine builds (each entry point with
//! each set of `override` values it specialises with) goes through naga, the shader translator
//! wgpu uses, to SPIR-V (Vulkan), MSL (Metal) and HLSL (Direct3D 12), and must validate and
//! translate. A shader that only lavapipe accepts fails here, not on a user's Mac or Windows
//! machine.
//!
//! The pipelines are the ones a broad workload builds on this machine's adapter, under both
//! device profiles: the kernels check (every matmul family, every elementwise op, loss,
//! activation and reduction against the oracle) and the captured training step of every
//! trainable activation, optimiser and loss, fused and unfused. Every entry point of every
//! shader must be among them.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::dataset;
use naga::back::PipelineConstants;
use naga::valid::{Capabilities, ValidationFlags, Validator};
use naga::{ShaderStage, front::wgsl};
use wgsl_nn::activation::Activation;
use wgsl_nn::capture::Fusion;
use wgsl_nn::kernels::contracts;
use wgsl_nn::loss::{self, CrossEntropyOptions, Labels};
use wgsl_nn::nn::{
    ClassifierLoss, Mlp, MlpConfig, Sequential, SequentialConfig, Trainer, TrainerConfig,
};
use wgsl_nn::optim::OptimizerConfig;
use wgsl_nn::{BuiltPipeline, Device, DeviceOptions, Profile, Tensor, elementwise};

/// The capabilities the engine asks of a device: subgroups where the adapter has them.
fn validator() -> Validator {
    Validator::new(
        ValidationFlags::all(),
        Capabilities::SUBGROUP | Capabilities::SUBGROUP_BARRIER,
    )
}

/// Translates `entry_point` of `wgsl` specialised with `constants` to SPIR-V, MSL and HLSL,
/// each after naga's validation; the first error, named by backend.
fn translate(
    wgsl_text: &str,
    entry_point: &str,
    constants: &[(String, f64)],
) -> Result<(), String> {
    let module =
        wgsl::parse_str(wgsl_text).map_err(|e| format!("WGSL: {}", e.emit_to_string(wgsl_text)))?;
    let info = validator()
        .validate(&module)
        .map_err(|e| format!("validation: {e:?}"))?;
    let mut overrides = PipelineConstants::default();
    for (name, value) in constants {
        overrides.insert(name.clone(), *value);
    }
    let stage = Some((ShaderStage::Compute, entry_point));
    let (module, info) =
        naga::back::pipeline_constants::process_overrides(&module, &info, stage, &overrides)
            .map_err(|e| format!("specialisation: {e:?}"))?;

    let spv = naga::back::spv::PipelineOptions {
        shader_stage: ShaderStage::Compute,
        entry_point: entry_point.to_string(),
    };
    naga::back::spv::write_vec(
        &module,
        &info,
        &naga::back::spv::Options::default(),
        Some(&spv),
    )
    .map_err(|e| format!("SPIR-V: {e:?}"))?;

    let msl_options = naga::back::msl::Options {
        // What wgpu 30 asks for on current macOS and iOS (subgroups need 2.1 or later).
        lang_version: (2, 4),
        ..Default::default()
    };
    let msl_pipeline = naga::back::msl::PipelineOptions {
        entry_point: Some((ShaderStage::Compute, entry_point.to_string())),
        ..Default::default()
    };
    naga::back::msl::write_string(&module, &info, &msl_options, &msl_pipeline)
        .map_err(|e| format!("MSL: {e:?}"))?;

    let hlsl_options = naga::back::hlsl::Options {
        // Wave intrinsics (subgroups) need shader model 6.0.
        shader_model: naga::back::hlsl::ShaderModel::V6_0,
        ..Default::default()
    };
    let hlsl_pipeline = naga::back::hlsl::PipelineOptions {
        entry_point: Some((ShaderStage::Compute, entry_point.to_string())),
    };
    let mut hlsl = String::new();
    naga::back::hlsl::Writer::new(&mut hlsl, &hlsl_options, &hlsl_pipeline)
        .write(&module, &info, None)
        .map_err(|e| format!("HLSL: {e:?}"))?;
    Ok(())
}

/// Builds (without running) what a broad use of the engine builds: the kernels check, and the
/// captured training step of every trainable activation, every optimiser and every loss,
/// fused and unfused.
fn exercise(device: &Device) {
    let rows = pollster::block_on(wgsl_nn::conformance::run(device, |_| {}));
    assert!(
        !rows.iter().any(|r| r.failed()),
        "the kernels check fails here"
    );
    let build = |activation, optimizer, loss, fusion: Fusion| {
        let model = Mlp::new(
            device,
            MlpConfig {
                widths: vec![784, 32, 10],
                activation,
                seed: 0,
            },
        )
        .unwrap();
        let config = TrainerConfig {
            optimizer,
            loss,
            fusion,
            ..TrainerConfig::lecture()
        };
        Trainer::new(model, dataset(device, true, 100), config).unwrap();
    };
    for activation in Activation::ALL.into_iter().filter(|a| a.has_gradient()) {
        build(
            activation,
            OptimizerConfig::sgd(0.1),
            ClassifierLoss::CrossEntropy,
            Fusion::all(),
        );
    }
    let nesterov = OptimizerConfig::Sgd {
        lr: 0.1,
        momentum: 0.9,
        dampening: 0.0,
        nesterov: true,
        weight_decay: 0.01,
    };
    for optimizer in [
        OptimizerConfig::momentum(0.1, 0.9),
        nesterov,
        OptimizerConfig::adam(0.01),
        OptimizerConfig::adamw(0.01),
    ] {
        build(
            Activation::Relu,
            optimizer,
            ClassifierLoss::CrossEntropy,
            Fusion::all(),
        );
    }
    for loss in [ClassifierLoss::Mse, ClassifierLoss::BceWithLogits] {
        build(
            Activation::Relu,
            OptimizerConfig::sgd(0.1),
            loss,
            Fusion::all(),
        );
    }
    build(
        Activation::Gelu,
        OptimizerConfig::adam(0.01),
        ClassifierLoss::CrossEntropy,
        Fusion::none(),
    );
    // A CNN's captured step: the convolutions with their fused activations, pooling, dropout.
    let cnn = SequentialConfig::parse(
        "conv(4,3,pad=1)-relu-maxpool(2)-conv(6,3,stride=2)-tanh-avgpool(2)-flatten-\
         dropout(0.5)-linear(10)",
        &[1, 28, 28],
        0,
    )
    .unwrap();
    let model = Sequential::new(device, cnn).unwrap();
    Trainer::new(model, dataset(device, true, 100), TrainerConfig::lecture()).unwrap();
    // What only eager use builds: elementwise ops, softmax's backward, class weights.
    let x = Tensor::from_slice(device, &[0.5, -1.0, 2.0, 0.25, 1.5, -0.5], [2, 3]).unwrap();
    let one = Tensor::from_slice(device, &[1.0], [1]).unwrap();
    elementwise::add(&x, &x).unwrap();
    elementwise::sub(&x, &x).unwrap();
    elementwise::mul(&x, &x).unwrap();
    elementwise::scale(&x, 3.0).unwrap();
    elementwise::fill_scalar(&one, 2.0, [2, 3]).unwrap();
    let y = loss::softmax(&x, false).unwrap();
    loss::softmax_backward(&y, &x, false).unwrap();
    let labels = Labels::new(device, &[2, 0], 3).unwrap();
    let weights = Tensor::from_slice(device, &[1.0, 2.0, 0.5], [3]).unwrap();
    let options = CrossEntropyOptions {
        weights: Some(&weights),
        ..CrossEntropyOptions::default()
    };
    loss::softmax_cross_entropy(&x, &labels, &options).unwrap();
    device.synchronize().unwrap();
}

#[test]
fn every_pipeline_the_engine_builds_translates_to_spirv_msl_and_hlsl() {
    // Under both profiles: each chooses other kernels for the same work; and without
    // subgroups, as a browser may be (the convolutions' fetching variant).
    let mut built: Vec<BuiltPipeline> = Vec::new();
    let options = |profile| DeviceOptions::from_env().unwrap().with_profile(profile);
    for options in [
        options(Profile::Cpu),
        options(Profile::Gpu),
        options(Profile::Cpu).without_subgroups(),
    ] {
        let device = Device::with_options(&options).unwrap();
        exercise(&device);
        for pipeline in device.built_pipelines() {
            if !built.contains(&pipeline) {
                built.push(pipeline);
            }
        }
    }
    let mut failures = Vec::new();
    let mut per_shader: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for pipeline in &built {
        per_shader
            .entry(pipeline.shader.name)
            .or_default()
            .insert(pipeline.entry_point.clone());
        if let Err(e) = translate(
            pipeline.shader.wgsl,
            &pipeline.entry_point,
            &pipeline.constants,
        ) {
            failures.push(format!(
                "{} {} {:?}: {e}",
                pipeline.shader.name, pipeline.entry_point, pipeline.constants
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} pipelines fail:\n{}",
        failures.len(),
        built.len(),
        failures.join("\n")
    );
    // Every compute entry point of every shader was among them.
    let mut missing = Vec::new();
    for contract in contracts() {
        let module = wgsl::parse_str(contract.shader.wgsl).unwrap();
        let built = per_shader
            .get(contract.shader.name)
            .cloned()
            .unwrap_or_default();
        for entry in module
            .entry_points
            .iter()
            .filter(|e| e.stage == ShaderStage::Compute)
        {
            if !built.contains(&entry.name) {
                missing.push(format!("{} {}", contract.shader.name, entry.name));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "never built, so never translated (exercise them): {missing:?}"
    );
    eprintln!(
        "{} pipelines of {} shaders translated to SPIR-V, MSL and HLSL",
        built.len(),
        per_shader.len()
    );
}

#[test]
fn a_broken_shader_or_specialisation_fails_translation() {
    let good = "override D: u32 = 1u;\noverride Q: u32 = 4u / D;\n\
                @group(0) @binding(0) var<storage, read_write> out: array<u32>;\n\
                @compute @workgroup_size(1) fn main() { out[0] = Q; }";
    translate(good, "main", &[]).unwrap();
    // A specialisation the shader cannot take: Q = 4 / 0.
    let error = translate(good, "main", &[("D".into(), 0.0)]).unwrap_err();
    assert!(error.starts_with("specialisation"), "{error}");
    // A shader no front end accepts.
    let broken = good.replace("out[0] = Q;", "out[0] = Q +;");
    assert!(
        translate(&broken, "main", &[])
            .unwrap_err()
            .starts_with("WGSL")
    );
    // A shader that parses but does not validate: a float stored into a u32 array.
    let invalid = good.replace("out[0] = Q;", "out[0] = 1.5;");
    assert!(translate(&invalid, "main", &[]).is_err());
}
