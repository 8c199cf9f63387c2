//! [`Rule::Gather`](super::Rule::Gather): the matmuls that read a gathered batch read it
//! straight from the data set's bytes instead, and the gather goes when nothing else reads its
//! images (the first such product then writes the batch's labels, if anything reads them).

use super::analysis::{held_outside, matmul, readers};
use super::{Context, Rewrite};
use crate::graph::{Op, id};
use crate::kernels::gather::GatherOp;
use crate::kernels::matmul::{MatmulForm, vector};

/// A gather, and the products reading its images: the products gather for themselves.
pub(crate) struct Gather;

/// The fused vector kernels bind up to 13 storage buffers.
const STORAGE_BUFFERS: usize = 13;

impl Rewrite for Gather {
    /// The products that read the batch through the data set.
    type Match = Vec<usize>;

    fn find(&self, ops: &mut [Op], at: usize, cx: &Context<'_>) -> Option<Vec<usize>> {
        if cx.max_storage < STORAGE_BUFFERS {
            return None;
        }
        let Op::Gather(gather) = &ops[at] else {
            return None;
        };
        let (x, features) = (id(&gather.x), gather.source.features);
        let readers = (at + 1..ops.len()).filter(|&i| {
            let Op::Matmul(m) = &ops[i] else { return false };
            if m.gather.is_some() || id(&m.a) != x || m.kernel.is_some() {
                return false;
            }
            let dims = m.dims();
            let fits = match m.form {
                MatmulForm::AB => dims.k == features,
                MatmulForm::AtB => dims.m == features,
                MatmulForm::ABt => false,
            };
            fits && features.is_multiple_of(4) && vector::runs(m.b.device(), m.form, dims)
        });
        Some(readers.collect())
    }

    fn rewrite(&self, ops: &mut Vec<Op>, g: usize, products: Vec<usize>) -> usize {
        let Op::Gather(gather) = &ops[g] else {
            unreachable!("found a gather")
        };
        let (source, x, y) = (gather.source.clone(), gather.x.share(), gather.y.share());
        let (xid, yid) = (id(&x), id(&y));
        for &i in &products {
            if let Op::Matmul(m) = &mut ops[i] {
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
        if x_read || !labels_ok {
            return g + 1;
        }
        if !y_readers.is_empty()
            && let Some(Op::Matmul(m)) = writer.map(|w| &mut ops[w])
        {
            m.write_labels = Some(y.share());
        }
        ops.remove(g);
        g
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::super::testing::{Ops, batch, matmul, same, tensor};
    use super::*;
    use crate::kernels::activation::Activation;

    #[test]
    fn the_products_read_the_data_set_and_the_first_writes_the_labels() {
        let (gather, x, y) = batch(64, 784);
        let (w, h, dh, dw, label_use) = (
            tensor([784, 128]),
            tensor([64, 128]),
            tensor([64, 128]),
            tensor([784, 128]),
            tensor([64]),
        );
        let mut ops = Ops::new()
            .op(gather)
            .op(matmul(MatmulForm::AB, &x, &w, &h, None))
            .op(matmul(MatmulForm::AtB, &x, &dh, &dw, None))
            .activation(&y, &label_use, Activation::Identity);
        drop(x);
        ops.apply(&Gather);
        assert_eq!(ops.len(), 3, "{:?}", ops.labels());
        let (Op::Matmul(forward), Op::Matmul(backward)) = (ops.get(0), ops.get(1)) else {
            panic!()
        };
        assert!(forward.gather.is_some() && backward.gather.is_some());
        assert!(same(forward.write_labels.as_ref().unwrap(), &y));
        assert!(backward.write_labels.is_none());
    }

    #[test]
    fn images_read_by_another_op_or_held_outside_keep_the_gather() {
        let (gather, x, _y) = batch(64, 784);
        let (w, h, relu) = (tensor([784, 128]), tensor([64, 128]), tensor([64, 784]));
        let mut ops = Ops::new()
            .op(gather)
            .op(matmul(MatmulForm::AB, &x, &w, &h, None))
            .activation(&x, &relu, Activation::Relu);
        ops.apply(&Gather);
        assert_eq!(ops.len(), 3);
        let Op::Matmul(m) = ops.get(1) else { panic!() };
        assert!(m.gather.is_some(), "the product still reads the data set");
    }

    #[test]
    fn a_device_with_few_storage_buffers_keeps_the_gather() {
        let (gather, x, _y) = batch(64, 784);
        let (w, h) = (tensor([784, 128]), tensor([64, 128]));
        let mut ops =
            Ops::new()
                .max_storage(10)
                .op(gather)
                .op(matmul(MatmulForm::AB, &x, &w, &h, None));
        drop(x);
        ops.apply(&Gather);
        assert_eq!(ops.len(), 2);
    }
}
