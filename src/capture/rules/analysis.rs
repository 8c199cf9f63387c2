//! The analysis every rule shares: which ops read, write or merely touch a tensor, whether an
//! op may move earlier past the ops in between, and whether a tensor is private to some ops
//! (nothing else in the plan touches it and nobody outside the plan holds it).

use std::sync::Arc;

use crate::graph::{Access, MatmulOp, Op, id};
use crate::tensor::Tensor;

pub(super) fn reads(op: &mut Op, t: usize) -> bool {
    op.tensors()
        .iter()
        .any(|(x, a)| id(x) == t && *a != Access::Write)
}

pub(super) fn touches(op: &mut Op, t: usize) -> bool {
    op.tensors().iter().any(|(x, _)| id(x) == t)
}

/// Whether `a` and `b` may not swap: one writes what the other reads or writes.
fn conflict(a: &mut Op, b: &mut Op) -> bool {
    let (ra, wa) = a.reads_writes();
    let (rb, wb) = b.reads_writes();
    !wa.is_disjoint(&rb) || !wa.is_disjoint(&wb) || !wb.is_disjoint(&ra)
}

/// Whether op `from` may run at position `to` < `from` instead (nothing in between conflicts).
pub(super) fn can_hoist(ops: &mut [Op], from: usize, to: usize) -> bool {
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
pub(super) fn held_outside(ops: &mut [Op], tensor: &Tensor) -> bool {
    Arc::strong_count(tensor.storage()) - 1 > references(ops, id(tensor))
}

/// Indices of the ops other than `except` that read `t`.
pub(super) fn readers(ops: &mut [Op], t: usize, except: &[usize]) -> Vec<usize> {
    (0..ops.len())
        .filter(|i| !except.contains(i))
        .filter(|&i| reads(&mut ops[i], t))
        .collect()
}

/// `t` is an intermediate only `users` touch and nobody outside holds: it can disappear.
pub(super) fn private_to(ops: &mut [Op], tensor: &Tensor, users: &[usize]) -> bool {
    let t = id(tensor);
    let others = (0..ops.len())
        .filter(|i| !users.contains(i))
        .any(|i| touches(&mut ops[i], t));
    !others && !held_outside(ops, tensor)
}

/// Replaces every use of `from` by `to` (reshaped to each use's shape).
pub(super) fn substitute(ops: &mut [Op], from: usize, to: &Tensor) {
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

pub(super) fn remove(ops: &mut Vec<Op>, mut indices: Vec<usize>) {
    indices.sort_unstable();
    indices.dedup();
    for i in indices.into_iter().rev() {
        ops.remove(i);
    }
}

pub(super) fn matmul(op: &Op) -> Option<&MatmulOp> {
    match op {
        Op::Matmul(m) => Some(m),
        _ => None,
    }
}

/// Whether op `from` may move to `to`, ignoring conflicts with the other ops moving with it.
pub(super) fn can_hoist_group(ops: &mut [Op], from: usize, to: usize, group: &[usize]) -> bool {
    let (before, rest) = ops.split_at_mut(from);
    let moving = &mut rest[0];
    before[to + 1..]
        .iter_mut()
        .enumerate()
        .filter(|(k, _)| !group.contains(&(k + to + 1)))
        .all(|(_, op)| !conflict(op, moving))
}
