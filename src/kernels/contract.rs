//! The host–WGSL contract of every kernel: the bindings the Rust side binds (by name), the
//! sizes of the uniform structs it writes, and the ids it specialises with. Each entry mirrors
//! one shader as the Rust side builds it (prepended files included); `tests/contract.rs` parses
//! every shader with naga, the WGSL front end wgpu uses, and checks it against these.

use std::mem::size_of;

use super::activation::{self, ActRuntime, Activation, EwParams};
use super::conv::broadcast::{self as conv_broadcast, ConvParams};
use super::dropout::{self, DropoutParams};
use super::elementwise::{self, ElementwiseParams};
use super::gather::{self, GatherParams};
use super::head::{self, HeadParams};
use super::loss::{self, LossParams, PointwiseLoss};
use super::matmul::vector::VectorParams;
use super::matmul::{self, PackParams, Params};
use super::metrics::{self, MetricsParams};
use super::optim::{self, Hyper, OptimizerConfig, Size};
use super::pool::{self, PoolParams};
use super::reduce::{self, ReduceParams};
use crate::device::ShaderSource;

/// One shader's half of the contract, as the Rust side sees it.
#[doc(hidden)]
#[derive(Debug)]
pub struct Contract {
    /// The shader as compiled (prepended files included).
    pub shader: ShaderSource,
    /// Every binding, by its WGSL variable's name in upper case.
    pub bindings: Vec<(&'static str, u32)>,
    /// Every uniform struct the Rust side writes, by WGSL struct name, with its Rust size.
    pub uniforms: Vec<(&'static str, usize)>,
    /// WGSL `const`s whose values the Rust side specialises with.
    pub constants: Vec<(String, u32)>,
}

fn activation_ids() -> Vec<(String, u32)> {
    Activation::ALL
        .iter()
        .map(|a| {
            let (id, _, _) = a.wgsl_id_and_params();
            (format!("ACT_{}", a.name().to_uppercase()), id)
        })
        .collect()
}

fn optimiser_ids() -> Vec<(String, u32)> {
    [
        ("OPTIM_SGD", OptimizerConfig::sgd(0.1)),
        ("OPTIM_MOMENTUM", OptimizerConfig::momentum(0.1, 0.9)),
        ("OPTIM_ADAM", OptimizerConfig::adam(0.1)),
        ("OPTIM_ADAMW", OptimizerConfig::adamw(0.1)),
    ]
    .into_iter()
    .map(|(name, config)| (name.to_string(), config.constants()[0].1 as u32))
    .collect()
}

/// Sizes the Rust side computes with and the shader hard-codes (rows per invocation, blocks
/// of a sum, array bounds), as constants to compare.
fn shape_constants(pairs: &[(&str, usize)]) -> Vec<(String, u32)> {
    pairs
        .iter()
        .map(|&(name, value)| (name.to_string(), value as u32))
        .collect()
}

fn join(parts: &[&[(&'static str, u32)]]) -> Vec<(&'static str, u32)> {
    parts.iter().flat_map(|p| p.iter().copied()).collect()
}

/// Every shader's contract.
#[doc(hidden)]
pub fn contracts() -> Vec<Contract> {
    let act_bind = activation::functions_bind::ALL;
    let optim_bind = optim::functions_bind::ALL;
    let act_runtime = ("ActRuntime", size_of::<ActRuntime>());
    let hyper = ("Hyper", size_of::<Hyper>());
    // The fused matmul families: the vector family's uniform and ids, their own shapes.
    let fused = |shader, bindings, shapes: &[(&str, usize)]| Contract {
        shader,
        bindings: join(&[bindings, act_bind, optim_bind]),
        uniforms: vec![
            ("VectorParams", size_of::<VectorParams>()),
            act_runtime,
            hyper,
        ],
        constants: [
            activation_ids(),
            optimiser_ids(),
            shape_constants(&[shapes, &[("REDUCE_BLOCK", reduce::BLOCK)]].concat()),
        ]
        .concat(),
    };
    // The CPU devices' convolution kernels, with and without subgroups.
    let conv = |shader| Contract {
        shader,
        bindings: join(&[conv_broadcast::bind::ALL, act_bind]),
        uniforms: vec![("ConvParams", size_of::<ConvParams>()), act_runtime],
        constants: [
            activation_ids(),
            shape_constants(&[
                ("LANES", conv_broadcast::LANES),
                ("ROWS", conv_broadcast::ROWS),
                ("MAX_SIDE", conv_broadcast::MAX_SIDE),
            ]),
        ]
        .concat(),
    };
    let mut all = vec![
        Contract {
            shader: activation::SHADER,
            bindings: join(&[activation::bind::ALL, act_bind]),
            uniforms: vec![("EwParams", size_of::<EwParams>()), act_runtime],
            constants: activation_ids(),
        },
        conv(conv_broadcast::SHADER),
        conv(conv_broadcast::SHADER_FETCH),
        Contract {
            shader: dropout::SHADER,
            bindings: join(&[dropout::bind::ALL]),
            uniforms: vec![("DropoutParams", size_of::<DropoutParams>())],
            constants: Vec::new(),
        },
        Contract {
            shader: gather::SHADER,
            bindings: join(&[gather::bind::ALL]),
            uniforms: vec![("GatherParams", size_of::<GatherParams>())],
            constants: Vec::new(),
        },
        Contract {
            shader: elementwise::SHADER,
            bindings: join(&[elementwise::bind::ALL]),
            uniforms: vec![("ElementwiseParams", size_of::<ElementwiseParams>())],
            constants: [
                ("BINARY_ADD", elementwise::ids::BINARY_ADD),
                ("BINARY_MUL", elementwise::ids::BINARY_MUL),
                ("BINARY_SUB", elementwise::ids::BINARY_SUB),
                ("SCALAR_MUL", elementwise::ids::SCALAR_MUL),
                ("SCALAR_AXPBY", elementwise::ids::SCALAR_AXPBY),
            ]
            .map(|(n, v)| (n.to_string(), v))
            .to_vec(),
        },
        Contract {
            shader: head::SHADER,
            bindings: join(&[head::bind::ALL, act_bind, optim_bind]),
            uniforms: vec![("HeadParams", size_of::<HeadParams>()), act_runtime, hyper],
            constants: [
                activation_ids(),
                optimiser_ids(),
                shape_constants(&[
                    ("MAX_CLASSES", head::MAX_CLASSES),
                    ("REDUCE_BLOCK", reduce::BLOCK),
                    ("STAGED_ROWS", head::STAGED_ROWS),
                ]),
            ]
            .concat(),
        },
        Contract {
            shader: loss::SHADER,
            bindings: join(&[loss::bind::ALL]),
            uniforms: vec![("LossParams", size_of::<LossParams>())],
            constants: PointwiseLoss::ALL
                .iter()
                .map(|l| {
                    let name = match l {
                        PointwiseLoss::Mse => "LOSS_MSE",
                        PointwiseLoss::L1 => "LOSS_L1",
                        PointwiseLoss::Bce => "LOSS_BCE",
                        PointwiseLoss::BceWithLogits => "LOSS_BCE_WITH_LOGITS",
                    };
                    (name.to_string(), l.wgsl_id())
                })
                .chain(
                    [
                        ("PHASE_MAX", loss::phase::PHASE_MAX),
                        ("PHASE_SUM", loss::phase::PHASE_SUM),
                        ("PHASE_DOT", loss::phase::PHASE_DOT),
                        ("PHASE_WRITE", loss::phase::PHASE_WRITE),
                    ]
                    .map(|(n, v)| (n.to_string(), v)),
                )
                .collect(),
        },
        Contract {
            shader: matmul::SHADER,
            bindings: join(&[matmul::bind::ALL, act_bind]),
            uniforms: vec![
                ("Params", size_of::<Params>()),
                ("PackParams", size_of::<PackParams>()),
                act_runtime,
            ],
            constants: [
                activation_ids(),
                shape_constants(&[
                    ("TILED_SLOTS", matmul::tiled::SLOTS),
                    ("TILED_MAX_LOADS", matmul::tiled::MAX_LOADS),
                ]),
            ]
            .concat(),
        },
        fused(
            matmul::vector::SHADER,
            matmul::vector::bind::ALL,
            &[("ROWS", matmul::vector::ROWS)],
        ),
        fused(
            matmul::staged::SHADER,
            matmul::vector::bind::ALL,
            &[
                ("TILE_ROWS", matmul::staged::TILE_ROWS),
                ("TILE_COLS4", matmul::staged::TILE_COLS / 4),
                ("TILE_K", matmul::staged::TILE_K),
            ],
        ),
        fused(
            matmul::broadcast::SHADER,
            matmul::broadcast::bind::ALL,
            &[
                ("ROWS", matmul::broadcast::ROWS),
                ("LANES", matmul::broadcast::LANES),
            ],
        ),
        Contract {
            shader: metrics::SHADER,
            bindings: join(&[metrics::bind::ALL]),
            uniforms: vec![("MetricsParams", size_of::<MetricsParams>())],
            constants: Vec::new(),
        },
        Contract {
            shader: optim::SHADER,
            bindings: join(&[optim::bind::ALL, optim_bind]),
            uniforms: vec![("Size", size_of::<Size>()), hyper],
            constants: optimiser_ids(),
        },
        Contract {
            shader: pool::SHADER,
            bindings: join(&[pool::bind::ALL]),
            uniforms: vec![("PoolParams", size_of::<PoolParams>())],
            constants: Vec::new(),
        },
        Contract {
            shader: reduce::SHADER,
            bindings: join(&[reduce::bind::ALL]),
            uniforms: vec![("ReduceParams", size_of::<ReduceParams>())],
            constants: Vec::new(),
        },
    ];
    // Every shader with the grid helper launches WG-wide workgroups that `grid()` counts in
    // WORKGROUP-sized steps.
    for contract in &mut all {
        if contract.shader.wgsl.contains("fn flat_index") {
            contract
                .constants
                .push(("WG".to_string(), super::WORKGROUP as u32));
        }
    }
    all
}
