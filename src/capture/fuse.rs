//! (Over 600 lines: eight rules that share one scan and one read/write analysis; one file per
//! rule behind a `Rule` trait, with GPU-free tests, is issue 20's part 3, still open.)
//!
//! The rewrite rules of a capture: each finds a pattern of ops in the captured list and merges
//! it into fewer kernels, only where the merged kernel computes the same values (the same
//! arithmetic in the same order) and moving work earlier changes nothing another op sees.
//!
//! Ops are checked by the tensors they read and write (`Op::tensors`): an op may move to an
//! earlier position when no op in between writes what it reads or touches what it writes, and
//! an intermediate tensor may disappear only when nothing else reads it and nobody outside the
//! plan holds it (a tensor the user kept, such as a returned loss, is never dropped).

use std::collections::HashMap;
use std::sync::Arc;

use crate::device::Device;
use crate::graph::{Access, MatmulOp, Op, id};
use crate::kernels::activation::Activation;
use crate::kernels::elementwise::ElementwiseOp;
use crate::kernels::gather::GatherOp;
use crate::kernels::head::{self, HeadBackward, HeadOp};
use crate::kernels::matmul;
use crate::kernels::matmul::{MatmulDims, MatmulForm};
use crate::kernels::reduce::Axis;
use crate::tensor::Tensor;

/// A rewrite rule of [`capture`](super::capture).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    /// Multiplying by the backward pass's constant seed of 1 is dropped, and a gradient that is
    /// added into a freshly zeroed (or new) `.grad` buffer is written there by its producer.
    Simplify,
    /// A matmul followed by an activation whose derivative comes from its output: the matmul's
    /// epilogue applies the activation.
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

pub(super) fn run(
    ops: &mut Vec<Op>,
    constants: &HashMap<usize, f32>,
    fusion: &Fusion,
    device: &Device,
) {
    let max_storage = device.limits().max_storage_buffers_per_shader_stage as usize;
    if fusion.has(Rule::Simplify) {
        fold_seed(ops, constants);
        redirect_gradients(ops);
    }
    if fusion.has(Rule::Forward) {
        fuse_forward(ops);
    }
    // The head binds up to 16 storage buffers; devices with fewer run it unfused.
    if fusion.has(Rule::Head) && max_storage >= 16 {
        fuse_head(ops);
        if fusion.has(Rule::HeadBackward) {
            fuse_head_backward(ops);
        }
    }
    if fusion.has(Rule::BiasGrad) {
        fuse_bias_grad(ops);
    }
    if fusion.has(Rule::InputGrad) {
        fuse_input_grad(ops);
    }
    // The fused vector kernels bind up to 13 storage buffers.
    if fusion.has(Rule::Gather) && max_storage >= 13 {
        fuse_gather(ops);
    }
    if fusion.has(Rule::Update) && max_storage >= 13 {
        fuse_update(ops);
    }
}

// ---------------------------------------------------------------------------------------------
// Analysis

fn reads(op: &mut Op, t: usize) -> bool {
    op.tensors()
        .iter()
        .any(|(x, a)| id(x) == t && *a != Access::Write)
}

fn touches(op: &mut Op, t: usize) -> bool {
    op.tensors().iter().any(|(x, _)| id(x) == t)
}

/// Whether `a` and `b` may not swap: one writes what the other reads or writes.
fn conflict(a: &mut Op, b: &mut Op) -> bool {
    let (ra, wa) = a.reads_writes();
    let (rb, wb) = b.reads_writes();
    !wa.is_disjoint(&rb) || !wa.is_disjoint(&wb) || !wb.is_disjoint(&ra)
}

/// Whether op `from` may run at position `to` < `from` instead (nothing in between conflicts).
fn can_hoist(ops: &mut [Op], from: usize, to: usize) -> bool {
    let (before, rest) = ops.split_at_mut(from);
    let moving = &mut rest[0];
    before[to + 1..].iter_mut().all(|op| !conflict(op, moving))
}

/// How many references the ops hold on `t`'s storage: those `Op::tensors` lists, and those a
/// gathered matmul keeps only for shapes (its `a` and its gather's outputs).
fn references(ops: &mut [Op], t: usize) -> usize {
    ops.iter_mut()
        .map(|op| {
            let hidden = matmul(op)
                .and_then(|m| m.gather.as_ref().map(|g| [&m.a, &g.x, &g.y]))
                .map_or(0, |shapes| shapes.iter().filter(|x| id(x) == t).count());
            hidden + op.tensors().iter().filter(|(x, _)| id(x) == t).count()
        })
        .sum()
}

/// Whether anyone but the ops holds `tensor` (then it must stay written). `tensor` is the
/// caller's own share: one reference more than the ops and the outside hold.
fn held_outside(ops: &mut [Op], tensor: &Tensor) -> bool {
    Arc::strong_count(tensor.storage()) - 1 > references(ops, id(tensor))
}

/// Indices of the ops other than `except` that read `t`.
fn readers(ops: &mut [Op], t: usize, except: &[usize]) -> Vec<usize> {
    (0..ops.len())
        .filter(|i| !except.contains(i))
        .filter(|&i| reads(&mut ops[i], t))
        .collect()
}

/// `t` is an intermediate only `users` touch and nobody outside holds: it can disappear.
fn private_to(ops: &mut [Op], tensor: &Tensor, users: &[usize]) -> bool {
    let t = id(tensor);
    let others = (0..ops.len())
        .filter(|i| !users.contains(i))
        .any(|i| touches(&mut ops[i], t));
    !others && !held_outside(ops, tensor)
}

/// Replaces every use of `from` by `to` (reshaped to each use's shape).
fn substitute(ops: &mut [Op], from: usize, to: &Tensor) {
    for op in ops.iter_mut() {
        for (tensor, _) in op.tensors() {
            if id(tensor) == from {
                let shape = tensor.shape().clone();
                *tensor = to
                    .share()
                    .reshape(shape)
                    .expect("substitutes have the same element count");
            }
        }
    }
}

fn remove(ops: &mut Vec<Op>, mut indices: Vec<usize>) {
    indices.sort_unstable();
    indices.dedup();
    for i in indices.into_iter().rev() {
        ops.remove(i);
    }
}

fn matmul(op: &Op) -> Option<&MatmulOp> {
    match op {
        Op::Matmul(m) => Some(m),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Rule::Simplify

/// `g · s` with `s` the backward pass's seed (the constant 1): every use of the product reads
/// `g` instead.
fn fold_seed(ops: &mut Vec<Op>, constants: &HashMap<usize, f32>) {
    let mut i = 0;
    while i < ops.len() {
        let target = match &ops[i] {
            Op::Elementwise {
                op: ElementwiseOp::MulScalar(alpha),
                x,
                y: Some(s),
                out,
            } if constants.get(&id(s)).is_some_and(|c| alpha * c == 1.0) => {
                Some((x.share(), out.share()))
            }
            _ => None,
        };
        if let Some((x, out)) = target {
            let xid = id(&x);
            let unchanged = ops[i + 1..].iter_mut().all(|op| {
                let (_, w) = op.reads_writes();
                !w.contains(&xid)
            });
            if unchanged && !held_outside(ops, &out) {
                ops.remove(i);
                substitute(&mut ops[i..], id(&out), &x);
                continue;
            }
        }
        i += 1;
    }
}

/// `out ← c + out` right after `out` was zeroed (or `out ← copy of c` into a new buffer), with
/// `c` a fresh result nobody else reads: `c`'s producer writes into `out` itself.
fn redirect_gradients(ops: &mut Vec<Op>) {
    let mut j = 0;
    while j < ops.len() {
        let pair = match &ops[j] {
            Op::Elementwise {
                op: ElementwiseOp::Axpy(alpha),
                x,
                out,
                ..
            } if *alpha == 1.0 => Some((x.share(), out.share(), true)),
            Op::Copy { src, dst } => Some((src.share(), dst.share(), false)),
            _ => None,
        };
        let Some((c, g, needs_clear)) = pair else {
            j += 1;
            continue;
        };
        let (cid, gid) = (id(&c), id(&g));
        // The producer: the one op before j that writes c, as a pure output.
        let producer = (0..j).rev().find(|&i| {
            ops[i]
                .tensors()
                .iter()
                .any(|(x, a)| id(x) == cid && *a != Access::Read)
        });
        let Some(p) = producer else {
            j += 1;
            continue;
        };
        let pure = ops[p]
            .tensors()
            .iter()
            .any(|(x, a)| id(x) == cid && *a == Access::Write)
            && !touches(&mut ops[p], gid);
        let c_private = private_to(ops, &c, &[p, j]);
        // Nothing between the producer and j may touch g.
        let quiet = (p + 1..j).all(|i| !touches(&mut ops[i], gid));
        // g must hold nothing the producer's write would lose: the last op before the producer
        // that touches it zeroes it (then that clear goes too), or, for a copy into a new
        // buffer, nothing touches it.
        let last_before = (0..p).rev().find(|&i| touches(&mut ops[i], gid));
        let (fresh, clear) = match last_before {
            Some(q) if needs_clear => (
                matches!(&ops[q], Op::Clear { dst } if id(dst) == gid),
                Some(q),
            ),
            Some(_) => (false, None),
            None => (!needs_clear, None),
        };
        drop(c);
        if pure && c_private && quiet && fresh {
            substitute(&mut ops[p..=p], cid, &g);
            let gone: Vec<usize> = std::iter::once(j).chain(clear).collect();
            let removed_before = gone.iter().filter(|&&q| q < j).count();
            remove(ops, gone);
            j -= removed_before;
            continue;
        }
        j += 1;
    }
}

// ---------------------------------------------------------------------------------------------
// Rule::Forward

fn fuse_forward(ops: &mut Vec<Op>) {
    let mut i = 0;
    while i < ops.len() {
        let z = match matmul(&ops[i]) {
            Some(m) if m.is_plain() && m.activation == Activation::Identity => Some(m.out.share()),
            _ => None,
        };
        if let Some(out) = z {
            let z = id(&out);
            let next = (i + 1..ops.len()).find(|&j| touches(&mut ops[j], z));
            if let Some(j) = next {
                let fits = matches!(&ops[j], Op::Activation { x, activation, .. }
                    if id(x) == z && activation.has_gradient());
                if fits && private_to(ops, &out, &[i, j]) && can_hoist(ops, j, i) {
                    drop(out);
                    let Op::Activation {
                        y,
                        activation,
                        slopes,
                        training,
                        ..
                    } = ops.remove(j)
                    else {
                        unreachable!()
                    };
                    if let Op::Matmul(m) = &mut ops[i] {
                        m.out = y;
                        m.activation = activation;
                        m.slopes = slopes;
                        m.training = training;
                    }
                }
            }
        }
        i += 1;
    }
}

// ---------------------------------------------------------------------------------------------
// Rule::Head and Rule::HeadBackward

fn fuse_head(ops: &mut Vec<Op>) {
    let mut i = 0;
    while i < ops.len() {
        let candidate = match matmul(&ops[i]) {
            Some(m)
                if m.is_plain()
                    && m.form == MatmulForm::AB
                    && m.bias.is_some()
                    && m.activation == Activation::Identity =>
            {
                let MatmulDims { m: rows, k, n } = m.dims();
                (head::fits(rows, k, n) && head::runs_on(m.b.device())).then(|| id(&m.out))
            }
            _ => None,
        };
        let Some(logits) = candidate else {
            i += 1;
            continue;
        };
        let ce = (i + 1..ops.len())
            .find(|&j| matches!(&ops[j], Op::CrossEntropy { logits: l, .. } if id(l) == logits));
        let Some(j) = ce else {
            i += 1;
            continue;
        };
        // The logits feed only the loss and correct counts (and may be kept by the caller: the
        // head writes them anyway).
        let users = readers(ops, logits, &[i, j]);
        let counts_only = users
            .iter()
            .all(|&u| matches!(&ops[u], Op::CountCorrect { .. }));
        if !counts_only || !can_hoist(ops, j, i) {
            i += 1;
            continue;
        }
        let Op::CrossEntropy {
            labels,
            dlogits,
            loss,
            reduction,
            ..
        } = ops.remove(j)
        else {
            unreachable!()
        };
        let Op::Matmul(m) = std::mem::replace(&mut ops[i], Op::Clear { dst: loss.share() }) else {
            unreachable!()
        };
        let m = *m;
        ops[i] = Op::Head(Box::new(HeadOp {
            x: m.a,
            w: m.b,
            b: m.bias.expect("checked above"),
            labels,
            logits: m.out,
            dlogits,
            loss,
            reduction,
            loss_acc: None,
            correct: None,
            backward: None,
        }));
        absorb_head_extras(ops, i);
        i += 1;
    }
}

/// The correct count of the head's logits and the running sum of its loss, moved into it.
fn absorb_head_extras(ops: &mut Vec<Op>, h: usize) {
    let (logits, labels, loss) = match &ops[h] {
        Op::Head(head) => (id(&head.logits), id(&head.labels), head.loss.share()),
        _ => return,
    };
    let count = (h + 1..ops.len()).find(|&k| {
        matches!(&ops[k], Op::CountCorrect { scores, labels: l, .. }
            if id(scores) == logits && id(l) == labels)
    });
    if let Some(k) = count.filter(|&k| can_hoist(ops, k, h)) {
        let Op::CountCorrect { correct, .. } = ops.remove(k) else {
            unreachable!()
        };
        if let Op::Head(head) = &mut ops[h] {
            head.correct = Some(correct);
        }
    }
    let lid = id(&loss);
    let sum = (h + 1..ops.len()).find(|&k| {
        matches!(&ops[k], Op::Elementwise { op: ElementwiseOp::Axpy(a), x, out, .. }
            if *a == 1.0 && id(x) == lid && id(out) != lid)
    });
    if let Some(k) = sum.filter(|&k| can_hoist(ops, k, h)) {
        let Op::Elementwise { out, .. } = ops.remove(k) else {
            unreachable!()
        };
        if let Op::Head(head) = &mut ops[h] {
            head.loss_acc = Some(out);
        }
    }
}

fn fuse_head_backward(ops: &mut Vec<Op>) {
    let mut next = 0;
    while next < ops.len() {
        let h = next;
        next += 1;
        let (x, w, b, dl) = match &ops[h] {
            Op::Head(head) if head.backward.is_none() => {
                (id(&head.x), id(&head.w), id(&head.b), id(&head.dlogits))
            }
            _ => continue,
        };
        let find = |ops: &mut Vec<Op>, pred: &dyn Fn(&Op) -> bool| {
            (h + 1..ops.len()).find(|&k| pred(&ops[k]))
        };
        // Weight gradient xᵀ·dlogits and bias gradient Σ dlogits: both required.
        let wg = find(ops, &|op| {
            matches!(matmul(op), Some(m) if m.is_plain() && m.form == MatmulForm::AtB
                && id(&m.a) == x && id(&m.b) == dl)
        });
        let bg = find(ops, &|op| {
            matches!(op, Op::Sum { x: s, axis: Some(Axis::Columns), scale, .. }
                if id(s) == dl && *scale == 1.0)
        });
        let (Some(wg), Some(bg)) = (wg, bg) else {
            continue;
        };
        // Input gradient dlogits·Wᵀ, optionally through the activation below.
        let ig = find(ops, &|op| {
            matches!(matmul(op), Some(m) if m.is_plain() && m.form == MatmulForm::ABt
                && id(&m.a) == dl && id(&m.b) == w)
        });
        let mut absorbed = vec![wg, bg];
        let mut dx = None;
        if let Some(ig) = ig {
            let dh = matmul(&ops[ig]).map(|m| m.out.share()).expect("a matmul");
            let dhid = id(&dh);
            let act = (ig + 1..ops.len()).find(|&k| touches(&mut ops[k], dhid));
            let through = act.filter(|&k| {
                matches!(&ops[k], Op::ActivationBackward { saved, dy, from_output: true, .. }
                    if id(saved) == x && id(dy) == dhid)
            });
            let through = through.filter(|&k| private_to(ops, &dh, &[ig, k]));
            match through {
                Some(k) => {
                    if let Op::ActivationBackward {
                        dx: out,
                        activation,
                        ..
                    } = &ops[k]
                    {
                        dx = Some((out.share(), *activation));
                    }
                    absorbed.extend([ig, k]);
                }
                None => {
                    dx = Some((dh.share(), Activation::Identity));
                    absorbed.push(ig);
                }
            }
        }
        if !absorbed
            .iter()
            .all(|&k| can_hoist_group(ops, k, h, &absorbed))
        {
            continue;
        }
        let w_grad = matmul(&ops[wg]).map(|m| m.out.share()).expect("a matmul");
        let b_grad = match &ops[bg] {
            Op::Sum { out, .. } => out.share(),
            _ => unreachable!(),
        };
        remove(ops, absorbed);
        if let Op::Head(head) = &mut ops[h] {
            head.backward = Some(HeadBackward {
                dx,
                w_grad,
                b_grad,
                update: None,
            });
        }
        // The optimiser's updates of the head's weight and bias.
        let (gw, gb) = match &ops[h] {
            Op::Head(head) => {
                let back = head.backward.as_ref().expect("just set");
                (id(&back.w_grad), id(&back.b_grad))
            }
            _ => unreachable!(),
        };
        let step_of = |ops: &Vec<Op>, param: usize, grad: usize| {
            (h + 1..ops.len()).find(|&k| {
                matches!(&ops[k], Op::OptimizerStep(s)
                    if id(&s.slot.param) == param && id(&s.slot.grad) == grad)
            })
        };
        let (Some(sw), Some(sb)) = (step_of(ops, w, gw), step_of(ops, b, gb)) else {
            continue;
        };
        let same = match (&ops[sw], &ops[sb]) {
            (Op::OptimizerStep(a), Op::OptimizerStep(c)) => Arc::ptr_eq(&a.shared, &c.shared),
            _ => false,
        };
        if same && can_hoist_group(ops, sw, h, &[sw, sb]) && can_hoist_group(ops, sb, h, &[sw, sb])
        {
            let (first, second) = (sw.max(sb), sw.min(sb));
            let a = ops.remove(first);
            let c = ops.remove(second);
            let (Op::OptimizerStep(a), Op::OptimizerStep(c)) = (a, c) else {
                unreachable!()
            };
            let (sw_op, sb_op) = if sw > sb { (a, c) } else { (c, a) };
            if let Op::Head(head) = &mut ops[h] {
                head.backward.as_mut().expect("just set").update = Some([sw_op, sb_op]);
            }
        }
    }
}

/// Whether op `from` may move to `to`, ignoring conflicts with the other ops moving with it.
fn can_hoist_group(ops: &mut [Op], from: usize, to: usize, group: &[usize]) -> bool {
    let (before, rest) = ops.split_at_mut(from);
    let moving = &mut rest[0];
    before[to + 1..]
        .iter_mut()
        .enumerate()
        .filter(|(k, _)| !group.contains(&(k + to + 1)))
        .all(|(_, op)| !conflict(op, moving))
}

// ---------------------------------------------------------------------------------------------
// Rule::BiasGrad

fn fuse_bias_grad(ops: &mut Vec<Op>) {
    let mut next = 0;
    while next < ops.len() {
        let i = next;
        next += 1;
        let g = match matmul(&ops[i]) {
            Some(m) if m.is_plain() && m.form == MatmulForm::AtB => {
                // The fused bias gradient runs in one pass over the k rows.
                let dims = m.dims();
                (matmul::vector::runs(m.b.device(), MatmulForm::AtB, dims)
                    && dims.k <= matmul::vector::MAX_BIAS_GRAD_ROWS)
                    .then(|| id(&m.b))
            }
            _ => None,
        };
        let Some(g) = g else { continue };
        let sum = (i + 1..ops.len()).find(|&j| {
            matches!(&ops[j], Op::Sum { x, axis: Some(Axis::Columns), scale, .. }
                if id(x) == g && *scale == 1.0)
        });
        if let Some(j) = sum.filter(|&j| can_hoist(ops, j, i)) {
            let Op::Sum { out, .. } = ops.remove(j) else {
                unreachable!()
            };
            if let Op::Matmul(m) = &mut ops[i] {
                m.bias_grad = Some(out);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rule::InputGrad

fn fuse_input_grad(ops: &mut Vec<Op>) {
    let mut next = 0;
    while next < ops.len() {
        let i = next;
        next += 1;
        let dh = match matmul(&ops[i]) {
            Some(m)
                if m.is_plain()
                    && m.form == MatmulForm::ABt
                    && m.activation == Activation::Identity
                    && m.bias.is_none() =>
            {
                matmul::vector::runs(m.b.device(), MatmulForm::ABt, m.dims()).then(|| m.out.share())
            }
            _ => None,
        };
        let Some(out) = dh else { continue };
        let dh = id(&out);
        let next = (i + 1..ops.len()).find(|&j| touches(&mut ops[j], dh));
        let Some(j) = next else { continue };
        let fits =
            matches!(&ops[j], Op::ActivationBackward { dy, from_output: true, .. } if id(dy) == dh);
        if fits && private_to(ops, &out, &[i, j]) && can_hoist(ops, j, i) {
            drop(out);
            let Op::ActivationBackward {
                saved,
                dx,
                activation,
                ..
            } = ops.remove(j)
            else {
                unreachable!()
            };
            if let Op::Matmul(m) = &mut ops[i] {
                m.out = dx;
                m.dact = Some((saved, activation));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rule::Gather

fn fuse_gather(ops: &mut Vec<Op>) {
    let mut g = 0;
    while g < ops.len() {
        let Op::Gather(gather) = &ops[g] else {
            g += 1;
            continue;
        };
        let (source, x, y) = (gather.source.clone(), gather.x.share(), gather.y.share());
        let (xid, yid) = (id(&x), id(&y));
        for op in &mut ops[g + 1..] {
            let Op::Matmul(m) = op else { continue };
            if m.gather.is_some() || id(&m.a) != xid || m.kernel.is_some() {
                continue;
            }
            let dims = m.dims();
            let fits = match m.form {
                MatmulForm::AB => dims.k == source.features,
                MatmulForm::AtB => dims.m == source.features,
                MatmulForm::ABt => false,
            } && source.features.is_multiple_of(4)
                && matmul::vector::runs(m.b.device(), m.form, dims);
            if fits {
                m.gather = Some(GatherOp {
                    source: source.clone(),
                    x: x.share(),
                    y: y.share(),
                });
            }
        }
        // The gather goes when nothing reads its images and its labels are written elsewhere.
        let x_read = !readers(ops, xid, &[g]).is_empty() || held_outside(ops, &x);
        let y_readers = readers(ops, yid, &[g]);
        let writer = (g + 1..ops.len()).find(|&i| {
            matches!(matmul(&ops[i]), Some(m) if m.gather.is_some() && m.form == MatmulForm::AB)
        });
        let labels_ok =
            y_readers.is_empty() || writer.is_some_and(|w| y_readers.iter().all(|&r| r > w));
        drop(x);
        if !x_read && labels_ok {
            if !y_readers.is_empty()
                && let Some(Op::Matmul(m)) = writer.map(|w| &mut ops[w])
            {
                m.write_labels = Some(y.share());
            }
            ops.remove(g);
            continue;
        }
        g += 1;
    }
}

// ---------------------------------------------------------------------------------------------
// Rule::Update

fn fuse_update(ops: &mut Vec<Op>) {
    let mut next = 0;
    while next < ops.len() {
        let i = next;
        next += 1;
        let grads = match matmul(&ops[i]) {
            Some(m)
                if m.form == MatmulForm::AtB
                    && !m.accumulate
                    && m.update_w.is_none()
                    && m.kernel.is_none() =>
            {
                matmul::vector::runs(m.b.device(), MatmulForm::AtB, m.dims())
                    .then(|| (id(&m.out), m.bias_grad.as_ref().map(id)))
            }
            _ => None,
        };
        let Some((gw, gb)) = grads else { continue };
        let step_for = |ops: &Vec<Op>, grad: usize| {
            (i + 1..ops.len())
                .find(|&k| matches!(&ops[k], Op::OptimizerStep(s) if id(&s.slot.grad) == grad))
        };
        let Some(sw) = step_for(ops, gw).filter(|&k| can_hoist(ops, k, i)) else {
            continue;
        };
        let Op::OptimizerStep(w_step) = ops.remove(sw) else {
            unreachable!()
        };
        let b_step = gb.and_then(|gb| step_for(ops, gb)).and_then(|k| {
            let same =
                matches!(&ops[k], Op::OptimizerStep(s) if Arc::ptr_eq(&s.shared, &w_step.shared));
            (same && can_hoist(ops, k, i)).then_some(k)
        });
        let b_step = b_step.map(|k| match ops.remove(k) {
            Op::OptimizerStep(s) => s,
            _ => unreachable!(),
        });
        if let Op::Matmul(m) = &mut ops[i] {
            m.update_w = Some(w_step);
            m.update_b = b_step;
        }
    }
}
