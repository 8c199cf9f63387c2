//! Reductions in a fixed order: row sums, column sums (the bias gradient), total sum and mean.
//!
//! Each pass sums blocks of at most [`BLOCK`] elements (lavapipe ends any shader loop after
//! 65535 iterations), and passes chain over the partial sums until one block remains: the
//! order of additions depends only on the shape, so results are bit-reproducible.

use super::{Dispatch, Record, Uniform, entry, flag, grid};
use crate::device::{Device, Encoder, ShaderSource};
use crate::tensor::{DType, Tensor};
use crate::{Error, Result};

/// `shaders/reduce.wgsl`, after the shared `shaders/grid.wgsl`.
pub const SHADER: ShaderSource = ShaderSource {
    name: "reduce",
    wgsl: concat!(
        include_str!("../../shaders/grid.wgsl"),
        include_str!("../../shaders/reduce.wgsl")
    ),
    // Storage buffers each entry point binds (tests/contract.rs checks them against naga).
    storage_buffers: &[("sum_rows_blocked", 2), ("sum_columns_blocked", 2)],
};

super::bindings! {
    /// The binding numbers of `shaders/reduce.wgsl`, by the WGSL variable each names.
    bind:
    X = 0,
    OUT = 1,
    P = 2,
}

/// The `ReduceParams` uniform of `shaders/reduce.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct ReduceParams {
    pub rows: u32,
    pub cols: u32,
    pub block: u32,
    pub blocks: u32,
    pub scale: f32,
    pub _pad: [f32; 3],
}

/// Elements one invocation sums: small enough for lavapipe's loop limit, large enough that
/// a million elements take two passes.
pub const BLOCK: usize = 1024;

/// Which axis to sum away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    /// Sum each row: `[rows, cols] → [rows]`.
    Rows,
    /// Sum each column: `[rows, cols] → [cols]`.
    Columns,
}

/// A prepared sum: one or more passes, the last one scaled and optionally accumulating.
#[derive(Debug)]
pub struct Sum {
    steps: Vec<Dispatch>,
    _partials: Vec<Tensor>,
}

impl Sum {
    /// Prepares `out (+)= scale · Σ` of the 2-D `x` along `axis`.
    pub fn new(x: &Tensor, out: &Tensor, axis: Axis, scale: f32, accumulate: bool) -> Result<Self> {
        let op = format!("sum over {axis:?}");
        let (rows, cols) = x.shape().dims2(&op)?;
        let expected = match axis {
            Axis::Rows => rows,
            Axis::Columns => cols,
        };
        if out.numel() != expected {
            return Err(Error::shape(
                &op,
                format!("an output of {expected} elements"),
                out.shape(),
            ));
        }
        Self::build(&op, x, out, axis, rows, cols, scale, accumulate)
    }

    /// Prepares `out[0] (+)= scale · Σ x` over every element of `x`.
    pub fn total(x: &Tensor, out: &Tensor, scale: f32, accumulate: bool) -> Result<Self> {
        let op = "total sum";
        if out.numel() != 1 {
            return Err(Error::shape(op, "a one-element output", out.shape()));
        }
        Self::build(op, x, out, Axis::Rows, 1, x.numel(), scale, accumulate)
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        op: &str,
        x: &Tensor,
        out: &Tensor,
        axis: Axis,
        rows: usize,
        cols: usize,
        scale: f32,
        accumulate: bool,
    ) -> Result<Self> {
        x.expect_dtype(op, DType::F32)?;
        out.expect_dtype(op, DType::F32)?;
        let device = x.device();
        let mut steps = Vec::new();
        let mut partials: Vec<Tensor> = Vec::new();
        let (mut rows, mut cols) = (rows, cols);
        loop {
            let reduced = match axis {
                Axis::Rows => cols,
                Axis::Columns => rows,
            };
            let blocks = reduced.div_ceil(BLOCK).max(1);
            let last = blocks == 1;
            let shape = match axis {
                Axis::Rows => [rows, blocks],
                Axis::Columns => [blocks, cols],
            };
            let target = if last {
                None
            } else {
                Some(Tensor::uninit(device, shape)?)
            };
            let source = partials.last().unwrap_or(x);
            let destination = target.as_ref().unwrap_or(out);
            steps.push(pass(
                device,
                op,
                source,
                destination,
                axis,
                [rows, cols, BLOCK, blocks],
                if last { scale } else { 1.0 },
                last && accumulate,
            )?);
            match target {
                None => break,
                Some(t) => partials.push(t),
            }
            match axis {
                Axis::Rows => cols = blocks,
                Axis::Columns => rows = blocks,
            }
        }
        Ok(Self {
            steps,
            _partials: partials,
        })
    }

    /// Records the passes.
    pub fn record(&self, encoder: &mut Encoder) {
        self.steps.iter().for_each(|s| s.record(encoder));
    }
}

/// A kernel that writes terms into a scratch tensor, then their fixed-order sum: the shape of
/// every loss and of PReLU's slope gradient.
#[derive(Debug)]
pub(crate) struct TermsThenSum {
    pub pass: Dispatch,
    pub sum: Sum,
    /// Kept alive: both dispatches' bind groups use its buffer.
    pub _terms: Tensor,
}

impl TermsThenSum {
    pub fn record(&self, encoder: &mut Encoder) {
        self.pass.record(encoder);
        self.sum.record(encoder);
    }
}

#[allow(clippy::too_many_arguments)]
fn pass(
    device: &Device,
    op: &str,
    x: &Tensor,
    out: &Tensor,
    axis: Axis,
    [rows, cols, block, blocks]: [usize; 4],
    scale: f32,
    accumulate: bool,
) -> Result<Dispatch> {
    let params = ReduceParams {
        rows: rows as u32,
        cols: cols as u32,
        block: block as u32,
        blocks: blocks as u32,
        scale,
        _pad: [0.0; 3],
    };
    let uniform = Uniform::new(device, "reduce params", bytemuck::bytes_of(&params))?;
    let (entry_point, items) = match axis {
        Axis::Rows => ("sum_rows_blocked", rows * blocks),
        Axis::Columns => ("sum_columns_blocked", cols * blocks),
    };
    let constants = [("ACCUMULATE", flag(accumulate))];
    let pipeline = device.pipeline(&SHADER, entry_point, &constants)?;
    let entries = [
        entry(bind::X, x),
        entry(bind::OUT, out),
        entry(bind::P, &uniform),
    ];
    Ok(Dispatch::new(
        device,
        pipeline,
        op,
        &entries,
        grid(device, op, items)?,
    ))
}

fn run(x: &Tensor, shape: &[usize], build: impl FnOnce(&Tensor) -> Result<Sum>) -> Result<Tensor> {
    let out = Tensor::uninit(x.device(), shape.to_vec())?;
    let plan = build(&out)?;
    plan.submit(x.device())?;
    Ok(out)
}

/// Row sums of a 2-D tensor, `[rows, cols] → [rows]`, submitted.
pub fn sum_rows(x: &Tensor) -> Result<Tensor> {
    let (rows, _) = x.shape().dims2("sum_rows")?;
    run(x, &[rows], |out| Sum::new(x, out, Axis::Rows, 1.0, false))
}

/// Column sums of a 2-D tensor, `[rows, cols] → [cols]` (a bias gradient), submitted.
pub fn sum_columns(x: &Tensor) -> Result<Tensor> {
    let (_, cols) = x.shape().dims2("sum_columns")?;
    run(x, &[cols], |out| {
        Sum::new(x, out, Axis::Columns, 1.0, false)
    })
}

/// The sum of every element, `[1]`, submitted.
pub fn sum(x: &Tensor) -> Result<Tensor> {
    run(x, &[1], |out| Sum::total(x, out, 1.0, false))
}

/// The mean of every element, `[1]`, submitted.
pub fn mean(x: &Tensor) -> Result<Tensor> {
    let scale = 1.0 / x.numel().max(1) as f32;
    run(x, &[1], |out| Sum::total(x, out, scale, false))
}
