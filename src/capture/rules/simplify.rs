//! [`Rule::Simplify`](super::Rule::Simplify): what the backward pass writes generically, written
//! directly. Multiplying by the pass's constant seed of 1 is dropped ([`FoldSeed`]), and a
//! gradient added into a freshly zeroed (or new) `.grad` buffer is written there by its
//! producer ([`RedirectGradient`]).

use super::analysis::{held_outside, private_to, remove, substitute, touches};
use super::{Context, Rewrite};
use crate::graph::{Access, Op, id};
use crate::kernels::elementwise::ElementwiseOp;
use crate::tensor::Tensor;

/// `out = g · s` with `s` the seed (the constant 1): every later use of `out` reads `g`.
pub(crate) struct FoldSeed;

impl Rewrite for FoldSeed {
    type Match = ();

    fn find(&self, ops: &mut [Op], at: usize, cx: &Context<'_>) -> Option<()> {
        let (x, out) = match &ops[at] {
            Op::Elementwise {
                op: ElementwiseOp::MulScalar(alpha),
                x,
                y: Some(s),
                out,
            } if cx.constants.get(&id(s)).is_some_and(|c| alpha * c == 1.0) => (id(x), out.share()),
            _ => return None,
        };
        // `g` must hold the same values wherever `out` was read.
        let unchanged = ops[at + 1..].iter_mut().all(|op| {
            let (_, w) = op.reads_writes();
            !w.contains(&x)
        });
        (unchanged && !held_outside(ops, &out)).then_some(())
    }

    fn rewrite(&self, ops: &mut Vec<Op>, at: usize, (): ()) -> usize {
        let Op::Elementwise { x, out, .. } = ops.remove(at) else {
            unreachable!("found an elementwise op")
        };
        substitute(&mut ops[at..], id(&out), &x);
        at
    }
}

/// `g ← c + g` right after `g` was zeroed (or `g ← copy of c` into a new buffer), with `c` a
/// fresh result nobody else reads: `c`'s producer writes into `g` itself, and the add (and the
/// zeroing) go.
pub(crate) struct RedirectGradient;

/// Where a [`RedirectGradient`] found its producer, and the clear that goes with the add.
pub(crate) struct Redirect {
    producer: usize,
    clear: Option<usize>,
    c: usize,
    g: Tensor,
}

impl Rewrite for RedirectGradient {
    type Match = Redirect;

    fn find(&self, ops: &mut [Op], at: usize, _: &Context<'_>) -> Option<Redirect> {
        let (c, g, needs_clear) = match &ops[at] {
            Op::Elementwise {
                op: ElementwiseOp::Axpy(alpha),
                x,
                out,
                ..
            } if *alpha == 1.0 => (x.share(), out.share(), true),
            Op::Copy { src, dst } => (src.share(), dst.share(), false),
            _ => return None,
        };
        let (cid, gid) = (id(&c), id(&g));
        // The producer: the one op before `at` that writes c, as a pure output.
        let p = (0..at).rev().find(|&i| {
            ops[i]
                .tensors()
                .iter()
                .any(|(x, a)| id(x) == cid && *a != Access::Read)
        })?;
        let pure = ops[p]
            .tensors()
            .iter()
            .any(|(x, a)| id(x) == cid && *a == Access::Write)
            && !touches(&mut ops[p], gid);
        let c_private = private_to(ops, &c, &[p, at]);
        // Nothing between the producer and the add may touch g.
        let quiet = (p + 1..at).all(|i| !touches(&mut ops[i], gid));
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
        (pure && c_private && quiet && fresh).then_some(Redirect {
            producer: p,
            clear,
            c: cid,
            g,
        })
    }

    fn rewrite(&self, ops: &mut Vec<Op>, at: usize, found: Redirect) -> usize {
        let Redirect {
            producer,
            clear,
            c,
            g,
        } = found;
        substitute(&mut ops[producer..=producer], c, &g);
        let gone: Vec<usize> = std::iter::once(at).chain(clear).collect();
        let removed_before = gone.iter().filter(|&&q| q < at).count();
        remove(ops, gone);
        at - removed_before
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::super::testing::{Ops, tensor};
    use super::*;
    use crate::kernels::activation::Activation;

    #[test]
    fn a_product_with_the_seed_is_read_as_its_factor() {
        let (g, seed, out, y) = (tensor([4]), tensor([1]), tensor([4]), tensor([4]));
        let mut ops = Ops::new()
            .constant(&seed, 1.0)
            .op(Op::Elementwise {
                op: ElementwiseOp::MulScalar(1.0),
                x: g.share(),
                y: Some(seed.share()),
                out: out.share(),
            })
            .activation(&out, &y, Activation::Relu);
        drop(out);
        ops.apply(&FoldSeed);
        assert_eq!(ops.labels(), ["relu"]);
        assert!(ops.reads(0, &g), "the activation reads the factor");
    }

    #[test]
    fn a_product_with_another_constant_or_one_the_user_holds_stays() {
        let (g, seed, y) = (tensor([4]), tensor([1]), tensor([4]));
        let product = |alpha, out: &Tensor| Op::Elementwise {
            op: ElementwiseOp::MulScalar(alpha),
            x: g.share(),
            y: Some(seed.share()),
            out: out.share(),
        };
        // 2 · s with s = 1 is not the seed's identity.
        let out = tensor([4]);
        let mut ops = Ops::new()
            .constant(&seed, 1.0)
            .op(product(2.0, &out))
            .activation(&out, &y, Activation::Relu);
        drop(out);
        ops.apply(&FoldSeed);
        assert_eq!(ops.len(), 2);
        // The user holds `out`: it must still be written.
        let out = tensor([4]);
        let mut ops = Ops::new()
            .constant(&seed, 1.0)
            .op(product(1.0, &out))
            .activation(&out, &y, Activation::Relu);
        ops.apply(&FoldSeed);
        assert_eq!(ops.len(), 2);
        // Nobody holds it: it goes.
        drop(out);
        ops.apply(&FoldSeed);
        assert_eq!(ops.len(), 1);
    }

    #[test]
    fn a_gradient_added_into_a_zeroed_buffer_is_written_there_by_its_producer() {
        let (x, c, g) = (tensor([4]), tensor([4]), tensor([4]));
        let mut ops = Ops::new()
            .op(Op::Clear { dst: g.share() })
            .activation(&x, &c, Activation::Relu)
            .op(Op::Elementwise {
                op: ElementwiseOp::Axpy(1.0),
                x: c.share(),
                y: None,
                out: g.share(),
            });
        drop(c);
        ops.apply(&RedirectGradient);
        assert_eq!(ops.labels(), ["relu"]);
        assert!(ops.writes(0, &g), "the producer writes the gradient buffer");
    }

    #[test]
    fn a_gradient_added_into_a_buffer_holding_values_is_added() {
        let (x, c, g) = (tensor([4]), tensor([4]), tensor([4]));
        let add = Op::Elementwise {
            op: ElementwiseOp::Axpy(1.0),
            x: c.share(),
            y: None,
            out: g.share(),
        };
        // g was written (not zeroed) before: the add must stay.
        let mut ops = Ops::new()
            .activation(&x, &g, Activation::Relu)
            .activation(&x, &c, Activation::Sigmoid)
            .op(add);
        drop(c);
        ops.apply(&RedirectGradient);
        assert_eq!(ops.len(), 3);
    }
}
