//! The CPU baseline for `--preset cnn`'s step, built as a user would for speed: its
//! convolutions as im2col + matrixmultiply's threaded sgemm (`cpu_conv.rs`), its dense layers as
//! sgemm, pooling, ReLU and the loss as plain loops, and SGD. The same math as the device's
//! step; `benches/conv.rs` checks the two agree after a step before timing either.

use super::cpu_conv::CpuConv;
use super::cpu_step::gemm;

/// LeNet's parameters, in the engine's layouts (conv `[out, in, kh, kw]`, dense `[in, out]`),
/// in `Model::parameters` order, and the step's scratch.
pub struct CpuCnn {
    pub params: Vec<Vec<f32>>,
    grads: Vec<Vec<f32>>,
    conv1: CpuConv,
    conv2: CpuConv,
    batch: usize,
}

const DENSE: [(usize, usize); 3] = [(400, 120), (120, 84), (84, 10)];

/// ReLU in place.
fn relu(v: &mut [f32]) {
    v.iter_mut().for_each(|x| *x = x.max(0.0));
}

/// 2×2 max pooling of `planes` planes of `h × w`: the output and each output's index.
fn max_pool(x: &[f32], planes: usize, (h, w): (usize, usize)) -> (Vec<f32>, Vec<usize>) {
    let (oh, ow) = (h / 2, w / 2);
    let mut y = Vec::with_capacity(planes * oh * ow);
    let mut at = Vec::with_capacity(y.capacity());
    for p in 0..planes {
        for r in 0..oh {
            for c in 0..ow {
                let mut best = p * h * w + 2 * r * w + 2 * c;
                for (dr, dc) in [(0, 1), (1, 0), (1, 1)] {
                    let i = p * h * w + (2 * r + dr) * w + 2 * c + dc;
                    if x[i] > x[best] {
                        best = i;
                    }
                }
                y.push(x[best]);
                at.push(best);
            }
        }
    }
    (y, at)
}

/// The gradient through a max pooling and the ReLU before it.
fn unpool_relu(dy: &[f32], at: &[usize], relu_out: &[f32]) -> Vec<f32> {
    let mut dx = vec![0.0; relu_out.len()];
    for (&d, &i) in dy.iter().zip(at) {
        dx[i] += d;
    }
    for (d, &y) in dx.iter_mut().zip(relu_out) {
        if y <= 0.0 {
            *d = 0.0;
        }
    }
    dx
}

/// Per-channel sums of an NCHW gradient (a convolution's bias gradient).
fn channel_sums(dy: &[f32], batch: usize, channels: usize) -> Vec<f32> {
    let plane = dy.len() / (batch * channels);
    let mut db = vec![0.0; channels];
    for (i, chunk) in dy.chunks(plane).enumerate() {
        db[i % channels] += chunk.iter().sum::<f32>();
    }
    db
}

impl CpuCnn {
    pub fn new(params: Vec<Vec<f32>>, batch: usize) -> Self {
        let grads = params.iter().map(|p| vec![0.0; p.len()]).collect();
        Self {
            params,
            grads,
            conv1: CpuConv::new([batch, 1, 28, 28], [8, 1, 5, 5], (1, 1), (2, 2)),
            conv2: CpuConv::new([batch, 8, 14, 14], [16, 8, 5, 5], (1, 1), (0, 0)),
            batch,
        }
    }

    /// One SGD step on `x` (`batch` normalised images) with `labels`; the mean
    /// cross-entropy.
    pub fn step(&mut self, x: &[f32], labels: &[u8], lr: f32) -> f32 {
        let b = self.batch;
        let p = &self.params;
        // Forward.
        let mut y1 = vec![0.0; b * 8 * 28 * 28];
        self.conv1.forward(x, &p[0], &p[1], &mut y1);
        relu(&mut y1);
        let (p1, at1) = max_pool(&y1, b * 8, (28, 28));
        let mut y2 = vec![0.0; b * 16 * 10 * 10];
        self.conv2.forward(&p1, &p[2], &p[3], &mut y2);
        relu(&mut y2);
        let (flat, at2) = max_pool(&y2, b * 16, (10, 10));
        let mut acts = vec![flat];
        for (l, &(i, o)) in DENSE.iter().enumerate() {
            let mut z = vec![0.0; b * o];
            for row in z.chunks_mut(o) {
                row.copy_from_slice(&p[5 + 2 * l]);
            }
            gemm(
                b,
                i,
                o,
                acts.last().unwrap(),
                false,
                &p[4 + 2 * l],
                false,
                1.0,
                &mut z,
            );
            if l < 2 {
                relu(&mut z);
            }
            acts.push(z);
        }
        // Softmax cross-entropy; the logits become their gradient.
        let mut dz = acts.pop().unwrap();
        let mut loss = 0.0;
        for (row, &label) in dz.chunks_mut(10).zip(labels) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
            loss += sum.ln() + max - row[usize::from(label)];
            for (j, v) in row.iter_mut().enumerate() {
                *v = ((*v - max).exp() / sum - f32::from(u8::from(j == usize::from(label))))
                    / b as f32;
            }
        }
        // Backward through the dense layers.
        for l in (0..3).rev() {
            let (i, o) = DENSE[l];
            let input = &acts[l];
            gemm(
                i,
                b,
                o,
                input,
                true,
                &dz,
                false,
                0.0,
                &mut self.grads[4 + 2 * l],
            );
            self.grads[5 + 2 * l] = (0..o).map(|j| dz.iter().skip(j).step_by(o).sum()).collect();
            let mut dx = vec![0.0; b * i];
            gemm(
                b,
                o,
                i,
                &dz,
                false,
                &self.params[4 + 2 * l],
                true,
                0.0,
                &mut dx,
            );
            if l > 0 {
                for (d, &a) in dx.iter_mut().zip(input) {
                    if a <= 0.0 {
                        *d = 0.0;
                    }
                }
            }
            dz = dx;
        }
        // Through the second convolution, then the first (whose input needs no gradient).
        let dy2 = unpool_relu(&dz, &at2, &y2);
        // The forward passes' patches, still in each convolution's scratch.
        self.conv2
            .weight_grad_after_forward(&dy2, &mut self.grads[2]);
        self.grads[3] = channel_sums(&dy2, b, 16);
        let mut dp1 = vec![0.0; p1.len()];
        self.conv2.input_grad(&dy2, &self.params[2], &mut dp1);
        let dy1 = unpool_relu(&dp1, &at1, &y1);
        self.conv1
            .weight_grad_after_forward(&dy1, &mut self.grads[0]);
        self.grads[1] = channel_sums(&dy1, b, 8);
        for (param, grad) in self.params.iter_mut().zip(&self.grads) {
            for (w, g) in param.iter_mut().zip(grad) {
                *w -= lr * g;
            }
        }
        loss / b as f32
    }
}
