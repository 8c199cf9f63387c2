//! Elementwise arithmetic: `x + y`, `x ⊙ y`, `α·x` and `y ← α·x + y`.

use super::{Dispatch, entry, grid};
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
};

/// One elementwise operation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ElementwiseOp {
    /// `out = x + y`.
    Add,
    /// `out = x ⊙ y`.
    Mul,
    /// `out = α·x`.
    Scale(f32),
    /// `out ← α·x + out` (in place, one rounding).
    Axpy(f32),
}

/// A prepared elementwise dispatch.
#[derive(Debug)]
pub struct Elementwise {
    dispatch: Dispatch,
}

impl Elementwise {
    /// Prepares `op` on `x` (and `y` for [`ElementwiseOp::Add`] and [`ElementwiseOp::Mul`])
    /// into `out`; every tensor has the same shape.
    pub fn new(op: ElementwiseOp, x: &Tensor, y: Option<&Tensor>, out: &Tensor) -> Result<Self> {
        let name = format!("{op:?}");
        let device = x.device();
        let binary = matches!(op, ElementwiseOp::Add | ElementwiseOp::Mul);
        let y = match (binary, y) {
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
            if t.shape() != x.shape() {
                return Err(Error::shape(&name, x.shape(), t.shape()));
            }
        }
        if y.is_some_and(|y| y.buffer() == out.buffer()) || x.buffer() == out.buffer() {
            return Err(Error::InvalidArgument(format!(
                "{name}: the output must not alias an input"
            )));
        }
        let (entry_point, alpha, constants) = match op {
            ElementwiseOp::Add => ("binary", 0.0, vec![("BINARY_OP", 0.0)]),
            ElementwiseOp::Mul => ("binary", 0.0, vec![("BINARY_OP", 1.0)]),
            ElementwiseOp::Scale(a) => ("scale", a, vec![]),
            ElementwiseOp::Axpy(a) => ("axpy", a, vec![]),
        };
        let count = x.numel();
        let words: [u32; 4] = [count as u32, f32::to_bits(alpha), 0, 0];
        let uniform = device.uniform_buffer("elementwise params", bytemuck::cast_slice(&words));
        let pipeline = device.pipeline(&SHADER, entry_point, &constants)?;
        let mut entries = vec![
            entry(0, x),
            entry(2, out),
            entry(3, uniform.as_entire_binding()),
        ];
        if let Some(y) = y {
            entries.push(entry(1, y));
        }
        let dispatch = Dispatch::new(
            device,
            pipeline,
            &name,
            &entries,
            grid(device, &name, count, 64)?,
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
    let mut encoder = x.device().encoder();
    kernel.record(&mut encoder);
    encoder.submit()?;
    Ok(out)
}

/// `x + y` into a new tensor, submitted.
pub fn add(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    run(ElementwiseOp::Add, x, Some(y))
}

/// `x ⊙ y` into a new tensor, submitted.
pub fn mul(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    run(ElementwiseOp::Mul, x, Some(y))
}

/// `alpha · x` into a new tensor, submitted.
pub fn scale(x: &Tensor, alpha: f32) -> Result<Tensor> {
    run(ElementwiseOp::Scale(alpha), x, None)
}

/// `y ← alpha · x + y` in place, submitted.
pub fn axpy(alpha: f32, x: &Tensor, y: &Tensor) -> Result<()> {
    let kernel = Elementwise::new(ElementwiseOp::Axpy(alpha), x, None, y)?;
    let mut encoder = x.device().encoder();
    kernel.record(&mut encoder);
    encoder.submit()
}
