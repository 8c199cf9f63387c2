//! Elementwise arithmetic: `x + y`, `x − y`, `x ⊙ y`, `α·x`, `y ← α·x + y`, and the
//! broadcasts of a one-element tensor `s` (`α·s·x`, `α·x + β·s`, fill with `α·s`) that
//! autograd uses with a scalar that lives on the device.

use super::{Dispatch, Record, Uniform, entry, grid};
use crate::device::{Encoder, ShaderSource};
use crate::tensor::{DType, Tensor};
use crate::{Error, Result};

/// `shaders/elementwise.wgsl`, after the shared `shaders/grid.wgsl`.
pub const SHADER: ShaderSource = ShaderSource {
    name: "elementwise",
    wgsl: concat!(
        include_str!("../../shaders/grid.wgsl"),
        include_str!("../../shaders/elementwise.wgsl")
    ),
    // Storage buffers each entry point binds (tests/contract.rs checks them against naga).
    storage_buffers: &[
        ("binary", 3),
        ("scalar_broadcast", 3),
        ("fill_scalar", 2),
        ("scale", 2),
        ("axpy", 2),
    ],
};

/// The op ids of `shaders/elementwise.wgsl` (its `const`s of the same names).
pub(crate) mod ids {
    pub const BINARY_ADD: u32 = 0;
    pub const BINARY_MUL: u32 = 1;
    pub const BINARY_SUB: u32 = 2;
    pub const SCALAR_MUL: u32 = 0;
    pub const SCALAR_AXPBY: u32 = 1;
}

super::bindings! {
    /// The binding numbers of `shaders/elementwise.wgsl`, by the WGSL variable each names.
    bind:
    X = 0,
    Y = 1,
    OUT = 2,
    P = 3,
}

/// The `ElementwiseParams` uniform of `shaders/elementwise.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct ElementwiseParams {
    pub count: u32,
    pub alpha: f32,
    pub beta: f32,
    pub _pad: u32,
}

/// One elementwise operation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ElementwiseOp {
    /// `out = x + y`.
    Add,
    /// `out = x − y`.
    Sub,
    /// `out = x ⊙ y`.
    Mul,
    /// `out = α·x`.
    Scale(f32),
    /// `out ← α·x + out` (in place, one rounding).
    Axpy(f32),
    /// `out = α·s·x`, where `s` is the one element of `y`.
    MulScalar(f32),
    /// `out = α·x + β·s` (one rounding), where `s` is the one element of `y`.
    AddScalar {
        /// Multiplies `x`.
        alpha: f32,
        /// Multiplies `s`.
        beta: f32,
    },
    /// `out = α·s` in every element, where `s` is the one element of `x`; `out` may have any
    /// shape.
    FillScalar(f32),
}

impl ElementwiseOp {
    fn takes_y(self) -> bool {
        matches!(
            self,
            ElementwiseOp::Add
                | ElementwiseOp::Sub
                | ElementwiseOp::Mul
                | ElementwiseOp::MulScalar(_)
                | ElementwiseOp::AddScalar { .. }
        )
    }
}

/// A prepared elementwise dispatch.
#[derive(Debug)]
pub struct Elementwise {
    dispatch: Dispatch,
}

impl Elementwise {
    /// Prepares `op` on `x` (and `y` for the ops that take a second operand) into `out`.
    /// `x` and `out` have the same shape, except for [`ElementwiseOp::FillScalar`]; `y` has
    /// that shape too for the binary ops and one element for the scalar broadcasts.
    pub fn new(op: ElementwiseOp, x: &Tensor, y: Option<&Tensor>, out: &Tensor) -> Result<Self> {
        let name = format!("{op:?}");
        let device = x.device();
        let y = match (op.takes_y(), y) {
            (true, Some(y)) => Some(y),
            (true, None) => {
                return Err(Error::InvalidArgument(format!(
                    "{name} needs a second operand"
                )));
            }
            (false, _) => None,
        };
        for t in [x, out].into_iter().chain(y) {
            t.expect_dtype(&name, DType::F32)?;
        }
        let scalar_shape = "a one-element tensor";
        match op {
            ElementwiseOp::FillScalar(_) if x.numel() != 1 => {
                return Err(Error::shape(&name, scalar_shape, x.shape()));
            }
            ElementwiseOp::FillScalar(_) => {}
            _ if out.shape() != x.shape() => {
                return Err(Error::shape(&name, x.shape(), out.shape()));
            }
            ElementwiseOp::MulScalar(_) | ElementwiseOp::AddScalar { .. } => {
                if let Some(y) = y.filter(|y| y.numel() != 1) {
                    return Err(Error::shape(&name, scalar_shape, y.shape()));
                }
            }
            _ => {
                if let Some(y) = y.filter(|y| y.shape() != x.shape()) {
                    return Err(Error::shape(&name, x.shape(), y.shape()));
                }
            }
        }
        if y.is_some_and(|y| y.buffer() == out.buffer()) || x.buffer() == out.buffer() {
            return Err(Error::InvalidArgument(format!(
                "{name}: the output must not alias an input"
            )));
        }
        let binary = |id: u32| vec![("BINARY_OP", f64::from(id))];
        let scalar = |id: u32| vec![("SCALAR_OP", f64::from(id))];
        let (entry_point, alpha, beta, constants) = match op {
            ElementwiseOp::Add => ("binary", 0.0, 0.0, binary(ids::BINARY_ADD)),
            ElementwiseOp::Mul => ("binary", 0.0, 0.0, binary(ids::BINARY_MUL)),
            ElementwiseOp::Sub => ("binary", 0.0, 0.0, binary(ids::BINARY_SUB)),
            ElementwiseOp::Scale(a) => ("scale", a, 0.0, vec![]),
            ElementwiseOp::Axpy(a) => ("axpy", a, 0.0, vec![]),
            ElementwiseOp::MulScalar(a) => ("scalar_broadcast", a, 0.0, scalar(ids::SCALAR_MUL)),
            ElementwiseOp::AddScalar { alpha, beta } => {
                ("scalar_broadcast", alpha, beta, scalar(ids::SCALAR_AXPBY))
            }
            ElementwiseOp::FillScalar(a) => ("fill_scalar", a, 0.0, vec![]),
        };
        let count = out.numel();
        let params = ElementwiseParams {
            count: count as u32,
            alpha,
            beta,
            _pad: 0,
        };
        let uniform = Uniform::new(device, "elementwise params", bytemuck::bytes_of(&params))?;
        let pipeline = device.pipeline(&SHADER, entry_point, &constants)?;
        let mut entries = vec![entry(bind::OUT, out), entry(bind::P, &uniform)];
        match op {
            // The fill reads its scalar through the `y` binding and never touches `x`'s.
            ElementwiseOp::FillScalar(_) => entries.push(entry(bind::Y, x)),
            _ => entries.push(entry(bind::X, x)),
        }
        if let Some(y) = y {
            entries.push(entry(bind::Y, y));
        }
        let dispatch = Dispatch::new(
            device,
            pipeline,
            &name,
            &entries,
            grid(device, &name, count)?,
        );
        Ok(Self { dispatch })
    }

    /// Records the dispatch.
    pub fn record(&self, encoder: &mut Encoder) {
        self.dispatch.record(encoder);
    }
}

fn run(op: ElementwiseOp, x: &Tensor, y: Option<&Tensor>) -> Result<Tensor> {
    let out = Tensor::uninit(x.device(), x.shape().clone())?;
    let kernel = Elementwise::new(op, x, y, &out)?;
    kernel.submit(x.device())?;
    Ok(out)
}

/// `x + y` into a new tensor, submitted.
pub fn add(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    run(ElementwiseOp::Add, x, Some(y))
}

/// `x − y` into a new tensor, submitted.
pub fn sub(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    run(ElementwiseOp::Sub, x, Some(y))
}

/// `x ⊙ y` into a new tensor, submitted.
pub fn mul(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    run(ElementwiseOp::Mul, x, Some(y))
}

/// `alpha · x` into a new tensor, submitted.
pub fn scale(x: &Tensor, alpha: f32) -> Result<Tensor> {
    run(ElementwiseOp::Scale(alpha), x, None)
}

/// `alpha · s · x` into a new tensor, where `s` is the one element of `scalar`, submitted.
pub fn mul_scalar(x: &Tensor, scalar: &Tensor, alpha: f32) -> Result<Tensor> {
    run(ElementwiseOp::MulScalar(alpha), x, Some(scalar))
}

/// `alpha · x + beta · s` into a new tensor, where `s` is the one element of `scalar`,
/// submitted.
pub fn add_scalar(x: &Tensor, scalar: &Tensor, alpha: f32, beta: f32) -> Result<Tensor> {
    run(ElementwiseOp::AddScalar { alpha, beta }, x, Some(scalar))
}

/// A tensor of `shape` filled with `alpha · s`, where `s` is the one element of `scalar`,
/// submitted.
pub fn fill_scalar(scalar: &Tensor, alpha: f32, shape: impl Into<crate::Shape>) -> Result<Tensor> {
    let out = Tensor::uninit(scalar.device(), shape)?;
    let kernel = Elementwise::new(ElementwiseOp::FillScalar(alpha), scalar, None, &out)?;
    kernel.submit(scalar.device())?;
    Ok(out)
}

/// `y ← alpha · x + y` in place, submitted.
pub fn axpy(alpha: f32, x: &Tensor, y: &Tensor) -> Result<()> {
    let kernel = Elementwise::new(ElementwiseOp::Axpy(alpha), x, None, y)?;
    kernel.submit(x.device())
}
