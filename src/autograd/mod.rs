//! Reverse-mode automatic differentiation over GPU tensors: the lecture's computational graph.
//!
//! A [`Var`] is a tensor that remembers how it was computed. Every op on `Var`s runs its
//! forward kernel at once (one submit, no host sync) and, when any input requires a gradient,
//! records a node with the op's local gradient rule: the rule and the forward sit side by side
//! in `ops.rs` and `loss.rs`. [`Var::backward`] walks the recorded graph from a scalar in
//! reverse topological order, applies the chain rule with the same kernels the rest of the
//! engine uses (there is one gradient kernel per op, shared with the layer graph of
//! [`crate::nn`]), and records the whole backward pass into one encoder: one submit, no host
//! sync.
//!
//! PyTorch's rules, as the lecture explains them:
//! - gradients land in the `.grad()` of leaves that require them, and of intermediates that
//!   asked for it with [`Var::retain_grad`];
//! - they **accumulate**: a second `backward` adds to what is there, until
//!   [`Var::zero_grad`] (or [`VarOptimizer::zero_grad`]) clears it;
//! - `backward` frees the graph's saved tensors; going through it again is
//!   [`Error::GraphFreed`] unless the first call kept it
//!   ([`Var::backward_retain_graph`]).
//!
//! ```no_run
//! use wgsl_nn::{Device, autograd::Var};
//!
//! # fn main() -> wgsl_nn::Result<()> {
//! let device = Device::new()?;
//! let x = Var::from_slice(&device, &[1.0, 2.0, 3.0, 4.0], [4], false)?;
//! let y = Var::from_slice(&device, &[2.0, 4.0, 6.0, 8.0], [4], false)?;
//! let w = Var::scalar(&device, 1.0, true)?;
//! let loss = w.mul(&x)?.sub(&y)?.square()?.mean()?; // MSE of y = w·x
//! loss.backward()?;
//! assert_eq!(loss.item()?, 7.5);
//! assert_eq!(w.grad_vec()?, Some(vec![-15.0]));
//! # Ok(())
//! # }
//! ```
//!
//! Values are read by the backward pass when it runs, so an op's inputs must not change
//! between the forward pass and the backward pass through it: a [`VarOptimizer`] step in
//! between makes that backward pass [`Error::ModifiedInPlace`] (PyTorch's version counter).
//! Writes straight into [`Var::value`]'s tensor are not tracked.

mod batch;
mod loss;
mod ops;
mod optim;
mod recording;
mod spatial;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use batch::{Batch, BatchCursor};
pub use loss::{Loss, count_correct, cross_entropy, one_hot};
pub use optim::VarOptimizer;
pub(crate) use recording::Recording;

use crate::device::Device;
use crate::tensor::{DType, Shape, Tensor};
use crate::{Error, Result};

/// A node's local gradient rule: from the gradient of the node's value (and its inputs), the
/// gradient contribution for each input, `None` where an input needs none. Recorded into the
/// backward pass's encoder.
type Backward = Box<dyn Fn(&Tensor, &[Var], &mut Recording) -> Result<Vec<Option<Tensor>>>>;

/// How a value came to be.
enum Origin {
    /// Made by the user (a leaf), or computed from values none of which needs a gradient.
    Leaf,
    /// Computed by an op whose gradient may be needed.
    Op {
        name: &'static str,
        inputs: Vec<Var>,
        /// Each input's [`Node::version`] when the op read it.
        versions: Vec<u64>,
        backward: Backward,
    },
    /// Computed by an op whose saved tensors a backward pass has freed.
    Freed { name: &'static str },
}

struct Node {
    /// Unique for the life of the process (a pointer could be reused), to key gradients.
    id: u64,
    value: Tensor,
    requires_grad: bool,
    retains_grad: Cell<bool>,
    grad: RefCell<Option<Tensor>>,
    origin: RefCell<Origin>,
    /// Bumped by every in-place update through autograd (an optimiser step), so a backward
    /// pass can refuse to use a value that changed after an op read it (PyTorch's version
    /// counter).
    version: Cell<u64>,
}

impl Drop for Node {
    /// Unlinks the graph behind this node iteratively: the default, recursive drop of a long
    /// chain of ops (a loss summed over many batches, say) would overflow the stack.
    fn drop(&mut self) {
        let mut orphans = match self.origin.get_mut() {
            Origin::Op { inputs, .. } => std::mem::take(inputs),
            _ => return,
        };
        while let Some(var) = orphans.pop() {
            if let Ok(mut node) = Rc::try_unwrap(var.node)
                && let Origin::Op { inputs, .. } = node.origin.get_mut()
            {
                orphans.append(inputs);
            }
        }
    }
}

/// A GPU tensor in the computational graph: its value, how it was computed, and (for leaves
/// and retained intermediates) its accumulated gradient. Cloning a `Var` is cheap and shares
/// the node, like a second Python name for one `torch.Tensor`.
#[derive(Clone)]
pub struct Var {
    node: Rc<Node>,
}

impl fmt::Debug for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Var")
            .field("shape", self.shape())
            .field("requires_grad", &self.requires_grad())
            .field("grad_fn", &self.grad_fn())
            .finish_non_exhaustive()
    }
}

fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Var {
    fn with_origin(value: Tensor, requires_grad: bool, origin: Origin) -> Self {
        Self {
            node: Rc::new(Node {
                id: next_id(),
                value,
                requires_grad,
                retains_grad: Cell::new(false),
                grad: RefCell::new(None),
                origin: RefCell::new(origin),
                version: Cell::new(0),
            }),
        }
    }

    /// A leaf holding `value` (an f32 tensor); with `requires_grad`, backward passes
    /// accumulate its gradient.
    pub fn leaf(value: Tensor, requires_grad: bool) -> Result<Self> {
        value.expect_dtype("Var::leaf", DType::F32)?;
        Ok(Self::with_origin(value, requires_grad, Origin::Leaf))
    }

    /// A leaf that requires a gradient: a trainable parameter.
    pub fn parameter(value: Tensor) -> Result<Self> {
        Self::leaf(value, true)
    }

    /// A leaf that needs no gradient: an input or a target.
    pub fn constant(value: Tensor) -> Result<Self> {
        Self::leaf(value, false)
    }

    /// Uploads `data` as a leaf of `shape`.
    pub fn from_slice(
        device: &Device,
        data: &[f32],
        shape: impl Into<Shape>,
        requires_grad: bool,
    ) -> Result<Self> {
        Self::leaf(Tensor::from_slice(device, data, shape)?, requires_grad)
    }

    /// A one-element leaf, shape `[1]`.
    pub fn scalar(device: &Device, value: f32, requires_grad: bool) -> Result<Self> {
        Self::from_slice(device, &[value], [1], requires_grad)
    }

    /// The result of an op: a graph node when some input requires a gradient, else a plain
    /// value (PyTorch records nothing for those either).
    pub(crate) fn from_op(
        name: &'static str,
        value: Tensor,
        inputs: &[&Var],
        backward: Backward,
    ) -> Self {
        if inputs.iter().any(|v| v.requires_grad()) {
            let versions = inputs.iter().map(|v| v.node.version.get()).collect();
            let inputs = inputs.iter().map(|v| (*v).clone()).collect();
            Self::with_origin(
                value,
                true,
                Origin::Op {
                    name,
                    inputs,
                    versions,
                    backward,
                },
            )
        } else {
            Self::with_origin(value, false, Origin::Leaf)
        }
    }

    /// The value.
    pub fn value(&self) -> &Tensor {
        &self.node.value
    }

    /// The value's shape.
    pub fn shape(&self) -> &Shape {
        self.node.value.shape()
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.node.value.numel()
    }

    /// The device the value lives on.
    pub fn device(&self) -> &Device {
        self.node.value.device()
    }

    /// Whether a gradient flows to this value.
    pub fn requires_grad(&self) -> bool {
        self.node.requires_grad
    }

    /// Whether this value was made by the user (or needs no gradient), rather than computed
    /// by a recorded op.
    pub fn is_leaf(&self) -> bool {
        matches!(*self.node.origin.borrow(), Origin::Leaf)
    }

    /// The name of the op that computed this value (`"mul"`, `"sigmoid"`, …), `None` for a
    /// leaf. Still answers after a backward pass has freed the op's saved tensors.
    pub fn grad_fn(&self) -> Option<&'static str> {
        match *self.node.origin.borrow() {
            Origin::Leaf => None,
            Origin::Op { name, .. } | Origin::Freed { name } => Some(name),
        }
    }

    /// The accumulated gradient: another handle on the gradient's device buffer (later
    /// backward passes add into it), or `None` until a backward pass reaches this value (or a
    /// [`VarOptimizer`] binds it, which starts it at zero).
    pub fn grad(&self) -> Option<Tensor> {
        self.node.grad.borrow().as_ref().map(Tensor::share)
    }

    /// The accumulated gradient, read back.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn grad_vec(&self) -> Result<Option<Vec<f32>>> {
        self.grad().map(|g| g.to_vec()).transpose()
    }

    /// Keeps this intermediate's gradient in [`grad`](Self::grad) during backward passes
    /// (leaves keep theirs anyway).
    pub fn retain_grad(&self) -> Result<()> {
        if !self.requires_grad() {
            return Err(Error::InvalidArgument(
                "retain_grad() on a value that does not require a gradient: none of the values \
                 it was computed from requires one (make a leaf with Var::parameter)"
                    .into(),
            ));
        }
        self.node.retains_grad.set(true);
        Ok(())
    }

    /// Zeroes the accumulated gradient in place (PyTorch's `x.grad.zero_()`); the buffer stays
    /// the same, so optimisers bound to it keep working. Does nothing without a gradient.
    pub fn zero_grad(&self) -> Result<()> {
        if let Some(grad) = self.node.grad.borrow().as_ref() {
            let mut recording = Recording::new(self.device());
            recording.clear(grad);
            recording.submit()?;
        }
        Ok(())
    }

    /// A leaf sharing this value, cut off from the graph and needing no gradient.
    pub fn detach(&self) -> Var {
        Self::with_origin(self.node.value.share(), false, Origin::Leaf)
    }

    /// The value, read back.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        self.node.value.to_vec()
    }

    /// `Var::to_vec` without blocking the thread.
    pub async fn to_vec_async(&self) -> Result<Vec<f32>> {
        self.node.value.to_vec_async().await
    }

    /// The one element of a one-element value, read back.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn item(&self) -> Result<f32> {
        if self.numel() != 1 {
            return Err(Error::shape("item()", "a one-element value", self.shape()));
        }
        Ok(self.to_vec()?[0])
    }

    /// Back-propagates from this scalar: adds `d self / d leaf` to the gradient of every leaf
    /// (and retained intermediate) it was computed from, then frees the graph's saved tensors.
    pub fn backward(&self) -> Result<()> {
        self.run_backward(false)
    }

    /// [`backward`](Self::backward), keeping the graph for another pass through it
    /// (PyTorch's `backward(retain_graph=True)`).
    pub fn backward_retain_graph(&self) -> Result<()> {
        self.run_backward(true)
    }

    fn run_backward(&self, retain_graph: bool) -> Result<()> {
        if !self.requires_grad() {
            return Err(Error::InvalidArgument(
                "backward() on a value that does not require a gradient: none of the values it \
                 was computed from requires one (make the leaves with Var::parameter)"
                    .into(),
            ));
        }
        if self.numel() != 1 {
            return Err(Error::InvalidArgument(format!(
                "backward() needs a scalar (one-element) value, this one has shape {}: reduce it \
                 with sum() or mean() first",
                self.shape()
            )));
        }
        // Everything is checked before anything is recorded, and gradients are published
        // only after the submit: a failed backward pass changes nothing.
        let order = self.topological_order()?;
        let device = self.device().clone();
        let mut recording = Recording::new(&device);
        let seed = Tensor::from_slice(&device, &[1.0], self.shape().clone())?;
        // A capture folds multiplications by the seed away.
        crate::capture::note_constant(&seed, 1.0);
        let mut pending: HashMap<u64, Tensor> = HashMap::from([(self.node.id, seed)]);
        let mut new_grads = Vec::new();
        for var in &order {
            let node = &var.node;
            let Some(grad) = pending.remove(&node.id) else {
                continue;
            };
            let origin = node.origin.borrow();
            let keeps_grad = matches!(*origin, Origin::Leaf) || node.retains_grad.get();
            if keeps_grad {
                match node.grad.borrow().as_ref() {
                    Some(total) => recording.add_into(&grad, total)?,
                    None => new_grads.push((var, recording.copy(&grad)?)),
                }
            }
            if let Origin::Op {
                name,
                inputs,
                backward,
                ..
            } = &*origin
            {
                let contributions = backward(&grad, inputs, &mut recording)?;
                for (input, contribution) in inputs.iter().zip(contributions) {
                    let Some(contribution) = contribution else {
                        continue;
                    };
                    if contribution.shape() != input.shape() {
                        return Err(Error::shape(
                            &format!("the gradient rule of `{name}`"),
                            input.shape(),
                            contribution.shape(),
                        ));
                    }
                    let sum = match pending.remove(&input.node.id) {
                        Some(earlier) => recording.elementwise(
                            crate::elementwise::ElementwiseOp::Add,
                            &earlier,
                            Some(&contribution),
                        )?,
                        None => contribution,
                    };
                    pending.insert(input.node.id, sum);
                }
            }
        }
        recording.submit()?;
        for (var, grad) in new_grads {
            *var.node.grad.borrow_mut() = Some(grad);
        }
        if !retain_graph {
            for var in &order {
                let mut origin = var.node.origin.borrow_mut();
                if let Origin::Op { name, .. } = *origin {
                    *origin = Origin::Freed { name };
                }
            }
        }
        Ok(())
    }

    /// The nodes that need a gradient, consumers before producers (iterative: graphs can be
    /// deeper than the stack). A freed node on the way is the lecture's second-backward error.
    fn topological_order(&self) -> Result<Vec<Var>> {
        let mut seen = std::collections::HashSet::new();
        let mut post_order = Vec::new();
        let mut stack = vec![(self.clone(), false)];
        while let Some((var, expanded)) = stack.pop() {
            if expanded {
                post_order.push(var);
                continue;
            }
            if !seen.insert(var.node.id) {
                continue;
            }
            stack.push((var.clone(), true));
            match &*var.node.origin.borrow() {
                Origin::Leaf => {}
                Origin::Freed { name } => {
                    return Err(Error::GraphFreed {
                        op: name.to_string(),
                    });
                }
                Origin::Op {
                    name,
                    inputs,
                    versions,
                    ..
                } => {
                    if let Some(input) = inputs
                        .iter()
                        .zip(versions)
                        .position(|(input, &version)| input.node.version.get() != version)
                    {
                        return Err(Error::ModifiedInPlace {
                            op: name.to_string(),
                            input,
                        });
                    }
                    for input in inputs.iter().filter(|i| i.requires_grad()) {
                        if !seen.contains(&input.node.id) {
                            stack.push((input.clone(), false));
                        }
                    }
                }
            }
        }
        post_order.reverse();
        Ok(post_order)
    }
}
