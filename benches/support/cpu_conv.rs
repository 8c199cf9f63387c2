//! The CPU baseline a user would pick for a convolution: im2col (or col2im) loops around
//! matrixmultiply's threaded f32 sgemm, NCHW in and out, stride and padding (dilation 1).
//! Scratch is allocated once; checked against the f64 oracle before it is timed.

use super::cpu_step::gemm;

/// One convolution's shapes and scratch.
pub struct CpuConv {
    pub batch: usize,
    pub cin: usize,
    pub size: (usize, usize),
    pub cout: usize,
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub out: (usize, usize),
    /// im2col's patches, [positions, taps].
    cols: Vec<f32>,
    /// A product in [positions, channels] (NHWC) before it is laid out as NCHW.
    nhwc: Vec<f32>,
}

impl CpuConv {
    pub fn new(
        [batch, cin, h, w]: [usize; 4],
        [cout, _, kh, kw]: [usize; 4],
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Self {
        let out = (
            (h + 2 * padding.0 - kh) / stride.0 + 1,
            (w + 2 * padding.1 - kw) / stride.1 + 1,
        );
        let positions = batch * out.0 * out.1;
        Self {
            batch,
            cin,
            size: (h, w),
            cout,
            kernel: (kh, kw),
            stride,
            padding,
            out,
            cols: vec![0.0; positions * cin * kh * kw],
            nhwc: vec![0.0; positions * cout.max(cin * kh * kw)],
        }
    }

    fn positions(&self) -> usize {
        self.batch * self.out.0 * self.out.1
    }

    fn taps(&self) -> usize {
        self.cin * self.kernel.0 * self.kernel.1
    }

    /// Calls `f(patch index, input index)` for every tap inside the image.
    fn each_tap(&self, mut f: impl FnMut(usize, usize)) {
        let (h, w) = self.size;
        let (kh, kw) = self.kernel;
        for n in 0..self.batch {
            for oh in 0..self.out.0 {
                for ow in 0..self.out.1 {
                    let p = (n * self.out.0 + oh) * self.out.1 + ow;
                    for c in 0..self.cin {
                        for i in 0..kh {
                            let r = (oh * self.stride.0 + i).wrapping_sub(self.padding.0);
                            if r >= h {
                                continue;
                            }
                            for j in 0..kw {
                                let col = (ow * self.stride.1 + j).wrapping_sub(self.padding.1);
                                if col < w {
                                    let t = (c * kh + i) * kw + j;
                                    f(p * self.taps() + t, ((n * self.cin + c) * h + r) * w + col);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn im2col(&mut self, x: &[f32]) {
        let mut cols = std::mem::take(&mut self.cols);
        cols.fill(0.0);
        self.each_tap(|p, i| cols[p] = x[i]);
        self.cols = cols;
    }

    /// `[positions, channels]` ↔ NCHW.
    fn rows_to_nchw(&self, nhwc: &[f32], channels: usize, y: &mut [f32]) {
        let plane = self.out.0 * self.out.1;
        for n in 0..self.batch {
            for q in 0..plane {
                for c in 0..channels {
                    y[(n * channels + c) * plane + q] = nhwc[(n * plane + q) * channels + c];
                }
            }
        }
    }

    fn nchw_to_rows(&self, y: &[f32], channels: usize, nhwc: &mut [f32]) {
        let plane = self.out.0 * self.out.1;
        for n in 0..self.batch {
            for c in 0..channels {
                for q in 0..plane {
                    nhwc[(n * plane + q) * channels + c] = y[(n * channels + c) * plane + q];
                }
            }
        }
    }

    /// `y = conv(x, w) + b`.
    pub fn forward(&mut self, x: &[f32], w: &[f32], b: &[f32], y: &mut [f32]) {
        self.im2col(x);
        let (p, k, co) = (self.positions(), self.taps(), self.cout);
        for row in self.nhwc[..p * co].chunks_mut(co) {
            row.copy_from_slice(b);
        }
        // [P, K] · [Co, K]ᵀ.
        gemm(p, k, co, &self.cols, false, w, true, 1.0, &mut self.nhwc);
        let nhwc = std::mem::take(&mut self.nhwc);
        self.rows_to_nchw(&nhwc, co, y);
        self.nhwc = nhwc;
    }

    /// `dx` from `dy` (NCHW) and `w`: dcols = dY · W, then col2im.
    pub fn input_grad(&mut self, dy: &[f32], w: &[f32], dx: &mut [f32]) {
        let (p, k, co) = (self.positions(), self.taps(), self.cout);
        let mut dy_rows = std::mem::take(&mut self.nhwc);
        self.nchw_to_rows(dy, co, &mut dy_rows);
        // [P, Co] · [Co, K] into the patches' scratch.
        gemm(p, co, k, &dy_rows, false, w, false, 0.0, &mut self.cols);
        self.nhwc = dy_rows;
        dx.fill(0.0);
        let cols = std::mem::take(&mut self.cols);
        self.each_tap(|pi, i| dx[i] += cols[pi]);
        self.cols = cols;
    }

    /// `dw` from `x` and `dy`: [Co, P] · [P, K] over im2col's patches.
    pub fn weight_grad(&mut self, x: &[f32], dy: &[f32], dw: &mut [f32]) {
        self.im2col(x);
        self.weight_grad_after_forward(dy, dw);
    }

    /// [`CpuConv::weight_grad`] of the input the last [`CpuConv::forward`] saw, whose patches
    /// are still in the scratch (no input gradient since), as a training step reuses them.
    pub fn weight_grad_after_forward(&mut self, dy: &[f32], dw: &mut [f32]) {
        let (p, k, co) = (self.positions(), self.taps(), self.cout);
        let mut dy_rows = std::mem::take(&mut self.nhwc);
        self.nchw_to_rows(dy, co, &mut dy_rows);
        gemm(co, p, k, &dy_rows, true, &self.cols, false, 0.0, dw);
        self.nhwc = dy_rows;
    }
}
