//! The honest CPU baseline: the lecture's training step (784-128-10, ReLU, softmax
//! cross-entropy, SGD) as a user would write it on the CPU for speed, with matrixmultiply's f32
//! sgemm (threaded over the machine's cores) for the five matmuls and plain loops for the rest.
//! The same math and update as the GPU step; not the f64 oracle, which exists to be exact.

/// `c = alpha·op(a)·op(b) + beta·c` for row-major `a` (m×k, or k×m when `ta`), `b` (k×n, or
/// n×k when `tb`) and `c` (m×n).
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    ta: bool,
    b: &[f32],
    tb: bool,
    beta: f32,
    c: &mut [f32],
) {
    let (rsa, csa) = if ta { (1, m as isize) } else { (k as isize, 1) };
    let (rsb, csb) = if tb { (1, k as isize) } else { (n as isize, 1) };
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    // SAFETY: the slices hold at least m·k, k·n and m·n elements, which the strides address.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// The lecture MLP's parameters and the step's scratch, allocated once.
pub struct CpuMlp {
    pub w1: Vec<f32>,
    pub b1: Vec<f32>,
    pub w2: Vec<f32>,
    pub b2: Vec<f32>,
    inputs: usize,
    hidden: usize,
    classes: usize,
    x: Vec<f32>,
    z1: Vec<f32>,
    z2: Vec<f32>,
    dh: Vec<f32>,
    dw1: Vec<f32>,
    dw2: Vec<f32>,
}

impl CpuMlp {
    pub fn new(w1: Vec<f32>, b1: Vec<f32>, w2: Vec<f32>, b2: Vec<f32>, batch: usize) -> Self {
        let (hidden, classes) = (b1.len(), b2.len());
        let inputs = w1.len() / hidden;
        Self {
            x: vec![0.0; batch * inputs],
            z1: vec![0.0; batch * hidden],
            z2: vec![0.0; batch * classes],
            dh: vec![0.0; batch * hidden],
            dw1: vec![0.0; inputs * hidden],
            dw2: vec![0.0; hidden * classes],
            w1,
            b1,
            w2,
            b2,
            inputs,
            hidden,
            classes,
        }
    }

    /// FLOPs of the step's five matmuls for `rows` examples: forward and weight gradient of
    /// both layers, the input gradient of the second only (the images need none).
    pub fn matmul_flops(&self, rows: usize) -> f64 {
        let product = |i: usize, o: usize| 2.0 * (rows * i * o) as f64;
        2.0 * product(self.inputs, self.hidden) + 3.0 * product(self.hidden, self.classes)
    }

    /// One SGD step on the examples `rows` of `images` (bytes, normalised as `pixel·scale +
    /// shift`) with `labels`; returns the batch's mean cross-entropy.
    pub fn step(
        &mut self,
        images: &[u8],
        labels: &[u8],
        rows: &[u32],
        (scale, shift): (f32, f32),
        lr: f32,
    ) -> f32 {
        let (b, i, h, o) = (rows.len(), self.inputs, self.hidden, self.classes);
        for (dst, &r) in self.x.chunks_mut(i).zip(rows) {
            let src = &images[r as usize * i..(r as usize + 1) * i];
            for (d, &p) in dst.iter_mut().zip(src) {
                *d = f32::from(p).mul_add(scale, shift);
            }
        }
        let x = &self.x[..b * i];
        // Forward: z1 = x·W1 + b1, h = relu(z1) in place, z2 = h·W2 + b2.
        let z1 = &mut self.z1[..b * h];
        for row in z1.chunks_mut(h) {
            row.copy_from_slice(&self.b1);
        }
        gemm(b, i, h, x, false, &self.w1, false, 1.0, z1);
        z1.iter_mut().for_each(|v| *v = v.max(0.0));
        let z2 = &mut self.z2[..b * o];
        for row in z2.chunks_mut(o) {
            row.copy_from_slice(&self.b2);
        }
        gemm(b, h, o, z1, false, &self.w2, false, 1.0, z2);
        // Softmax cross-entropy, mean over the batch; z2 becomes dL/dz2.
        let mut loss = 0.0f32;
        for (row, &r) in z2.chunks_mut(o).zip(rows) {
            let label = usize::from(labels[r as usize]);
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
            loss += sum.ln() + max - row[label];
            for (j, v) in row.iter_mut().enumerate() {
                let p = (*v - max).exp() / sum;
                *v = (p - f32::from(u8::from(j == label))) / b as f32;
            }
        }
        // Backward: dW2 = hᵀ·dz2, db2 = Σ dz2, dh = dz2·W2ᵀ ⊙ relu′, dW1 = xᵀ·dh, db1 = Σ dh.
        gemm(h, b, o, z1, true, z2, false, 0.0, &mut self.dw2);
        let dh = &mut self.dh[..b * h];
        gemm(b, o, h, z2, false, &self.w2, true, 0.0, dh);
        for (d, &a) in dh.iter_mut().zip(z1.iter()) {
            if a <= 0.0 {
                *d = 0.0;
            }
        }
        gemm(i, b, h, x, true, dh, false, 0.0, &mut self.dw1);
        // SGD.
        for (w, g) in self.w2.iter_mut().zip(&self.dw2) {
            *w -= lr * g;
        }
        for (j, bias) in self.b2.iter_mut().enumerate() {
            *bias -= lr * z2.chunks(o).map(|row| row[j]).sum::<f32>();
        }
        for (w, g) in self.w1.iter_mut().zip(&self.dw1) {
            *w -= lr * g;
        }
        for (j, bias) in self.b1.iter_mut().enumerate() {
            *bias -= lr * dh.chunks(h).map(|row| row[j]).sum::<f32>();
        }
        loss / b as f32
    }
}
