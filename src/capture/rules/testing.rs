//! What the rules' unit tests build op lists with: real tensors and ops on wgpu's no-op
//! backend (buffers exist, nothing runs), so every rule is tested on any machine.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use super::{Context, Rewrite, apply};
use crate::device::Device;
use crate::graph::{Access, MatmulOp, Op, id};
use crate::kernels::activation::{Activation, ActivationState};
use crate::kernels::matmul::{MatmulForm, MatmulOptions};
use crate::kernels::optim::{OptimStep, Optimizer, OptimizerConfig};
use crate::kernels::reduce::Axis;
use crate::tensor::{Shape, Tensor};

/// The no-op device every test shares.
pub(super) fn device() -> &'static Device {
    static DEVICE: OnceLock<Device> = OnceLock::new();
    DEVICE.get_or_init(|| Device::noop(wgpu::DeviceType::Cpu).expect("the no-op backend"))
}

/// A tensor of `shape` on the no-op device (its contents are never read).
pub(super) fn tensor(shape: impl Into<Shape>) -> Tensor {
    Tensor::uninit(device(), shape).expect("a no-op buffer")
}

/// `out = op(a)·op(b)` (+ `bias`), as autograd records it.
pub(super) fn matmul(
    form: MatmulForm,
    a: &Tensor,
    b: &Tensor,
    out: &Tensor,
    bias: Option<&Tensor>,
) -> Op {
    let options = MatmulOptions {
        form,
        bias,
        activation_state: ActivationState::default(),
        ..MatmulOptions::form(form)
    };
    Op::Matmul(Box::new(MatmulOp::new(a, b, out, &options)))
}

/// `out = Σ x` over columns (a bias gradient).
pub(super) fn column_sums(x: &Tensor, out: &Tensor) -> Op {
    Op::Sum {
        x: x.share(),
        out: out.share(),
        axis: Some(Axis::Columns),
        scale: 1.0,
    }
}

/// `dx = dy · f′(y)`, the derivative taken from the activation's output `y`.
pub(super) fn activation_backward(y: &Tensor, dy: &Tensor, dx: &Tensor, f: Activation) -> Op {
    Op::ActivationBackward {
        saved: y.share(),
        dy: dy.share(),
        dx: dx.share(),
        activation: f,
        slopes: None,
        training: true,
        from_output: true,
    }
}

/// An SGD optimiser over `(parameter, gradient)` pairs, and one update op per pair.
pub(super) fn sgd(pairs: &[(&Tensor, &Tensor)]) -> (Optimizer, Vec<OptimStep>) {
    let optimizer = Optimizer::new(OptimizerConfig::sgd(0.1), pairs).expect("an optimiser");
    let steps = optimizer.steps();
    (optimizer, steps)
}

/// An op list under test, with the constants and the device limit the rules consult.
pub(super) struct Ops {
    ops: Vec<Op>,
    constants: HashMap<usize, f32>,
    max_storage: usize,
}

impl Ops {
    pub fn new() -> Self {
        Self {
            ops: Vec::new(),
            constants: HashMap::new(),
            max_storage: device().limits().max_storage_buffers_per_shader_stage as usize,
        }
    }

    pub fn op(mut self, op: Op) -> Self {
        self.ops.push(op);
        self
    }

    /// `y = f(x)`.
    pub fn activation(self, x: &Tensor, y: &Tensor, f: Activation) -> Self {
        self.op(Op::Activation {
            x: x.share(),
            y: y.share(),
            activation: f,
            slopes: None,
            training: true,
        })
    }

    /// Notes that `t` holds the constant `value` (the backward pass's seed).
    pub fn constant(mut self, t: &Tensor, value: f32) -> Self {
        self.constants.insert(id(t), value);
        self
    }

    /// A device allowing only `n` storage buffers per shader stage.
    pub fn max_storage(mut self, n: usize) -> Self {
        self.max_storage = n;
        self
    }

    pub fn apply(&mut self, rule: &impl Rewrite) {
        let cx = Context {
            constants: &self.constants,
            max_storage: self.max_storage,
        };
        apply(rule, &mut self.ops, &cx);
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn labels(&self) -> Vec<String> {
        self.ops.iter().map(Op::label).collect()
    }

    pub fn get(&self, i: usize) -> &Op {
        &self.ops[i]
    }

    /// Whether op `i` reads `t` (as `Op::tensors` lists it).
    pub fn reads(&mut self, i: usize, t: &Tensor) -> bool {
        let t = id(t);
        self.ops[i]
            .tensors()
            .iter()
            .any(|(x, a)| id(x) == t && *a != Access::Write)
    }

    /// Whether op `i` writes `t`.
    pub fn writes(&mut self, i: usize, t: &Tensor) -> bool {
        let t = id(t);
        self.ops[i]
            .tensors()
            .iter()
            .any(|(x, a)| id(x) == t && *a != Access::Read)
    }
}

/// Whether `a` and `b` are the same tensor.
pub(super) fn same(a: &Tensor, b: &Tensor) -> bool {
    Arc::ptr_eq(a.storage(), b.storage())
}

/// A gather of `rows` examples of `features` bytes, and its images and labels tensors.
pub(super) fn batch(rows: usize, features: usize) -> (Op, Tensor, Tensor) {
    use crate::kernels::gather::{BatchSource, GatherOp};
    use crate::tensor::DType;
    let words = |n: usize| Tensor::uninit_of(device(), [n], DType::U32).expect("a no-op buffer");
    let len = 2 * rows;
    let source = Arc::new(BatchSource {
        pixels: words(len * features / 4),
        labels: words(len),
        order: words(len),
        len,
        features,
        classes: 10,
        rows,
        scale: 1.0,
        shift: 0.0,
        offset: Default::default(),
        pixel_texels: Default::default(),
    });
    let (x, y) = (tensor([rows, features]), words(rows));
    let op = Op::Gather(GatherOp {
        source,
        x: x.share(),
        y: y.share(),
    });
    (op, x, y)
}
