//! Capture and replay: a training step written once through autograd, recorded into a static
//! plan, fused, and replayed with one encoder and one submit (tinygrad's `TinyJit` and JAX's
//! `jit` are the models).
//!
//! While [`capture`] runs its closure, every op that autograd (or an optimiser, or a
//! [`Batch`](crate::autograd::Batch)) would submit is kept instead: its kernel launch is
//! described by the tensors it reads and writes (`op.rs`), nothing runs and nothing can be read
//! back. When the closure returns, rewrite rules ([`Fusion`], `rules/`, one file per rule) merge the ops into
//! fewer kernels, and each remaining op is lowered once into a prepared kernel (pipeline, bind
//! group, uniforms). [`Plan::replay`] then records those kernels into one encoder and submits:
//! no allocation, no pipeline or bind-group creation, no host sync; [`Plan::record`] records one
//! step into an encoder of the caller's, so N steps can share a submit. What changes per step
//! (the batch's offset, RReLU's key, the optimiser's step numbers and learning rate) is set on
//! the host and taken into the step's row of the plan's table when the step is recorded
//! (`table.rs`): one host write per submit, and copies on the device into the uniforms the
//! kernels read, as a TinyJit'd function reads new data through the same input buffers.
//!
//! Every fused kernel computes the same bits as the ops it replaces (the same fma chains in
//! the same order), except the classifier head's loss value, whose terms are summed in a
//! different fixed order: a fused step and an eager autograd step end on identical weights.
//!
//! ```no_run
//! use wgsl_nn::{Device, autograd::{Var, VarOptimizer}, capture::{capture, Fusion}};
//! use wgsl_nn::optim::OptimizerConfig;
//!
//! # fn main() -> wgsl_nn::Result<()> {
//! let device = Device::new()?;
//! let x = Var::from_slice(&device, &[1.0, 2.0, 3.0, 4.0], [4], false)?;
//! let y = Var::from_slice(&device, &[2.0, 4.0, 6.0, 8.0], [4], false)?;
//! let w = Var::scalar(&device, 0.0, true)?;
//! let mut sgd = VarOptimizer::new(OptimizerConfig::sgd(0.01), &[&w])?;
//! let (step, ()) = capture(&device, &Fusion::all(), || {
//!     let loss = w.mul(&x)?.sub(&y)?.square()?.mean()?;
//!     sgd.zero_grad()?;
//!     loss.backward()?;
//!     sgd.step()
//! })?;
//! for _ in 0..100 {
//!     step.replay()?; // one submit, no host sync
//! }
//! assert!((w.item()? - 2.0).abs() < 1e-3);
//! # Ok(())
//! # }
//! ```

mod rules;
mod table;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

pub use rules::{Fusion, Rule};

use crate::device::{Deferral, Device, DispatchGrid, Encoder};
use crate::graph::{self, Op};
use crate::kernels::Record;
use crate::tensor::Tensor;
use crate::{Error, Result};
use table::StepTable;

/// What a capture in progress has collected.
#[derive(Default)]
struct Active {
    ops: Vec<Op>,
    /// One-element tensors known to hold a constant (the backward pass's seed).
    constants: HashMap<usize, f32>,
}

thread_local! {
    static ACTIVE: RefCell<Option<Active>> = const { RefCell::new(None) };
}

/// Whether this thread is inside [`capture`].
pub(crate) fn is_capturing() -> bool {
    ACTIVE.with(|a| a.borrow().is_some())
}

/// Appends `ops` to the capture in progress; gives them back when there is none.
pub(crate) fn append(ops: Vec<Op>) -> Option<Vec<Op>> {
    ACTIVE.with(|a| match a.borrow_mut().as_mut() {
        Some(active) => {
            active.ops.extend(ops);
            None
        }
        None => Some(ops),
    })
}

/// Notes that `tensor` holds the one value `value` for the rest of the capture.
pub(crate) fn note_constant(tensor: &Tensor, value: f32) {
    ACTIVE.with(|a| {
        if let Some(active) = a.borrow_mut().as_mut() {
            active.constants.insert(graph::id(tensor), value);
        }
    });
}

/// Ends the capture on this thread even when the closure panics or fails, and with it the
/// device's recording-only mode (which refuses submits and readbacks meanwhile).
struct Guard {
    _deferral: Deferral,
}

impl Drop for Guard {
    fn drop(&mut self) {
        ACTIVE.with(|a| a.borrow_mut().take());
    }
}

/// Runs `f` without executing anything, keeps every op it records, fuses them by `fusion`'s
/// rules and builds the plan. `f`'s own result comes back beside the plan (often the loss, to
/// read after a replay). Inside `f`, reading a tensor back or submitting anything directly is
/// an error: nothing has run yet.
pub fn capture<T>(
    device: &Device,
    fusion: &Fusion,
    f: impl FnOnce() -> Result<T>,
) -> Result<(Plan, T)> {
    // The device's recording-only mode is the one "capturing" flag: entering it twice is a
    // nested capture.
    let Some(deferral) = Deferral::begin() else {
        return Err(Error::InvalidArgument(
            "capture() inside another capture on the same thread".into(),
        ));
    };
    ACTIVE.with(|a| *a.borrow_mut() = Some(Active::default()));
    let guard = Guard {
        _deferral: deferral,
    };
    let value = f()?;
    let Active { mut ops, constants } = ACTIVE
        .with(|a| a.borrow_mut().take())
        .expect("capture in progress");
    drop(guard);
    let captured = ops.len();
    let cx = rules::Context {
        constants: &constants,
        max_storage: device.limits().max_storage_buffers_per_shader_stage as usize,
    };
    rules::run(&mut ops, fusion, &cx);
    let labels = ops.iter().map(Op::label).collect();
    let kernels = ops.iter().map(Op::lower).collect::<Result<Vec<_>>>()?;
    let table = StepTable::new(kernels.iter().flat_map(|k| k.step_inputs()).collect());
    Ok((
        Plan {
            device: device.clone(),
            kernels,
            labels,
            captured,
            dispatches: Cell::new(None),
            table,
            rng: Cell::new((0, 0)),
            grids: Default::default(),
        },
        value,
    ))
}

/// A captured, fused and lowered sequence of kernels: replayed with one encoder and one
/// submit.
pub struct Plan {
    device: Device,
    kernels: Vec<Box<dyn Record>>,
    labels: Vec<String>,
    captured: usize,
    dispatches: Cell<Option<u64>>,
    /// The per-step inputs, filled on the device from one row per step.
    table: StepTable,
    /// RReLU's key for the next recording.
    rng: Cell<(u32, u32)>,
    /// The grid of each dispatch, noted at the first recording.
    grids: std::cell::RefCell<Option<Vec<DispatchGrid>>>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("steps", &self.labels)
            .field("captured_ops", &self.captured)
            .finish_non_exhaustive()
    }
}

impl Plan {
    /// Records one step of the plan into one encoder and submits it (no host sync).
    pub fn replay(&self) -> Result<()> {
        let mut encoder = self.device.encoder();
        self.record(&mut encoder)?;
        encoder.submit()
    }

    /// Records one step of the plan into `encoder`; record it several times for several steps
    /// in one submit. The step's inputs are taken now, from the host-side state: the batch's
    /// offset (as [`BatchCursor::set_offset`](crate::autograd::BatchCursor::set_offset) left
    /// it), the RNG key ([`Plan::set_rng`]), and each optimiser's next step (counted now, at
    /// its learning rate now). They become the step's row in the plan's table, written with
    /// the encoder's submit (the rows of one encoder in one write), and reach the kernels by
    /// copies on the device. Record a plan into one encoder at a time.
    pub fn record(&self, encoder: &mut Encoder) -> Result<()> {
        self.table.record(encoder, self.rng.get())?;
        let before = encoder.dispatch_count();
        let first = self.grids.borrow().is_none();
        let logging = encoder.is_logging();
        let from = if first { encoder.open_log() } else { 0 };
        for kernel in &self.kernels {
            kernel.record_into(encoder);
        }
        if first {
            *self.grids.borrow_mut() = Some(encoder.log_since(from));
            if !logging {
                encoder.take_log();
            }
        }
        self.dispatches.set(Some(encoder.dispatch_count() - before));
        Ok(())
    }

    /// Each dispatch of a step with its grid (workgroups × invocations), known after the first
    /// recording.
    pub fn grids(&self) -> Option<Vec<DispatchGrid>> {
        self.grids.borrow().clone()
    }

    /// Makes room for `steps` recordings per submit, so that recording them allocates
    /// nothing (the table grows by itself otherwise).
    pub fn reserve_steps(&self, steps: usize) -> Result<()> {
        self.table.reserve(&self.device, steps)
    }

    /// What the plan runs, one line per step (a fused kernel lists what it absorbed).
    pub fn steps(&self) -> &[String] {
        &self.labels
    }

    /// Ops the capture recorded, before fusion.
    pub fn captured_ops(&self) -> usize {
        self.captured
    }

    /// Dispatches one replay records (known after the first replay).
    pub fn dispatches(&self) -> Option<u64> {
        self.dispatches.get()
    }

    /// Keys every RReLU in the plan to `(seed, step)` from the next recording on.
    pub fn set_rng(&self, seed: u32, step: u32) {
        self.rng.set((seed, step));
    }
}
