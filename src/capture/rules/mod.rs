//! The rewrite rules of a capture: each finds a pattern of ops in the captured list and merges
//! it into fewer kernels, only where the merged kernel computes the same values (the same
//! arithmetic in the same order) and moving work earlier changes nothing another op sees.
//!
//! Every rule is a [`Rewrite`], one per file, written as "find this pattern anchored at an op,
//! rewrite it to that"; [`apply`] runs one over the list. What they share, which ops read and
//! write a tensor, whether an op may move earlier, whether a tensor is private to some ops, is
//! `analysis.rs`:
//!
//! - an op may move to an earlier position when no op in between writes what it reads or
//!   touches what it writes (`Op::tensors` says how each op uses each tensor);
//! - an intermediate tensor may disappear only when nothing else reads it and nobody outside
//!   the plan holds it (a tensor the user kept, such as a returned loss, is never dropped).
//!
//! Tensors are compared by id (their storage's, never reused), and every rule has unit tests
//! that build a small op list on wgpu's no-op backend and check the rewrite, with no GPU.

mod analysis;
mod bias_grad;
mod forward;
mod gather;
mod head;
mod head_backward;
mod input_grad;
mod simplify;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod testing;
mod update;

use std::collections::HashMap;

use crate::graph::Op;

/// A rewrite rule of [`capture`](super::capture).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    /// Multiplying by the backward pass's constant seed of 1 is dropped, and a gradient that is
    /// added into a freshly zeroed (or new) `.grad` buffer is written there by its producer.
    Simplify,
    /// A matmul or a convolution's forward pass followed by an activation whose input nothing
    /// else needs: the product's epilogue applies the activation.
    Forward,
    /// A narrow last layer (≤ 32 outputs) with softmax cross-entropy, the correct count and the
    /// loss's running sum: one classifier-head kernel.
    Head,
    /// The head's layer backward: input gradient (with the activation derivative below it),
    /// weight and bias gradients and the optimiser update, inside the head kernel.
    HeadBackward,
    /// A bias gradient (column sums) inside the weight-gradient matmul.
    BiasGrad,
    /// An activation's backward pass in the epilogue of the input-gradient matmul.
    InputGrad,
    /// A gathered batch read by the matmuls straight from the data set's bytes.
    Gather,
    /// The optimiser update of a weight (and its bias) in the weight-gradient matmul.
    Update,
}

impl Rule {
    /// Every rule, in the order they run.
    pub const ALL: [Rule; 8] = [
        Rule::Simplify,
        Rule::Forward,
        Rule::Head,
        Rule::HeadBackward,
        Rule::BiasGrad,
        Rule::InputGrad,
        Rule::Gather,
        Rule::Update,
    ];
}

/// Which rewrite rules a capture applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fusion {
    rules: Vec<Rule>,
}

impl Fusion {
    /// Every rule.
    pub fn all() -> Self {
        Self {
            rules: Rule::ALL.to_vec(),
        }
    }

    /// No rule: the plan runs the ops as eager autograd would.
    pub fn none() -> Self {
        Self { rules: Vec::new() }
    }

    /// Only these rules.
    pub fn only(rules: &[Rule]) -> Self {
        Self {
            rules: rules.to_vec(),
        }
    }

    /// Every rule but `rule`.
    pub fn without(rule: Rule) -> Self {
        Self {
            rules: Rule::ALL.into_iter().filter(|r| *r != rule).collect(),
        }
    }

    /// Whether `rule` applies.
    pub fn has(&self, rule: Rule) -> bool {
        self.rules.contains(&rule)
    }
}

impl Default for Fusion {
    fn default() -> Self {
        Self::all()
    }
}

/// What a rule may consult besides the ops.
pub(crate) struct Context<'a> {
    /// One-element tensors known to hold a constant (the backward pass's seed), by id.
    pub constants: &'a HashMap<usize, f32>,
    /// Storage buffers the device allows per shader stage: fused kernels bind many (the head
    /// up to 16, the fused vector kernels up to 13); devices with fewer run the ops unfused.
    pub max_storage: usize,
}

/// One rewrite rule: a pattern anchored at an op, and what it becomes. (The trait is not
/// called `Rule`: that is the public name of a rule, by which a [`Fusion`] selects it.)
pub(crate) trait Rewrite {
    /// What [`Rewrite::find`] hands [`Rewrite::rewrite`]: where the pattern's other ops are.
    type Match;

    /// The pattern anchored at `ops[at]`, when it is there and rewriting it changes nothing
    /// another op sees. Changes nothing.
    fn find(&self, ops: &mut [Op], at: usize, cx: &Context<'_>) -> Option<Self::Match>;

    /// Rewrites what `find` found at `at`; returns the index the scan goes on from.
    fn rewrite(&self, ops: &mut Vec<Op>, at: usize, found: Self::Match) -> usize;
}

/// Runs `rule` over `ops`, from the first op to the last.
pub(crate) fn apply(rule: &impl Rewrite, ops: &mut Vec<Op>, cx: &Context<'_>) {
    let mut at = 0;
    while at < ops.len() {
        at = match rule.find(ops, at, cx) {
            Some(found) => rule.rewrite(ops, at, found),
            None => at + 1,
        };
    }
}

/// Applies `fusion`'s rules to `ops`, in the order of [`Rule::ALL`].
pub(crate) fn run(ops: &mut Vec<Op>, fusion: &Fusion, cx: &Context<'_>) {
    for rule in Rule::ALL.into_iter().filter(|r| fusion.has(*r)) {
        match rule {
            Rule::Simplify => {
                apply(&simplify::FoldSeed, ops, cx);
                apply(&simplify::RedirectGradient, ops, cx);
            }
            Rule::Forward => apply(&forward::Forward, ops, cx),
            Rule::Head => apply(&head::Head, ops, cx),
            Rule::HeadBackward => apply(&head_backward::HeadBackward, ops, cx),
            Rule::BiasGrad => apply(&bias_grad::BiasGrad, ops, cx),
            Rule::InputGrad => apply(&input_grad::InputGrad, ops, cx),
            Rule::Gather => apply(&gather::Gather, ops, cx),
            Rule::Update => apply(&update::Update, ops, cx),
        }
    }
}
