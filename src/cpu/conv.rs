//! 2-D convolution in NCHW, as PyTorch's `nn.Conv2d` (cross-correlation, stride, zero
//! padding, dilation, one group): the forward pass, the input gradient, the weight gradient
//! and the bias gradient, each a plain loop with f64 accumulation.

/// The geometry of a convolution: the input `[batch, in_channels, height, width]`, the
/// weight `[out_channels, in_channels, kernel_h, kernel_w]`, stride, padding and dilation
/// (each `(rows, columns)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeometry {
    /// Images in the batch.
    pub batch: usize,
    /// Channels of the input (and of each filter).
    pub in_channels: usize,
    /// The input's height.
    pub height: usize,
    /// The input's width.
    pub width: usize,
    /// Filters, the output's channels.
    pub out_channels: usize,
    /// The kernel's height and width.
    pub kernel: (usize, usize),
    /// Steps between output positions.
    pub stride: (usize, usize),
    /// Zeros added on each side.
    pub padding: (usize, usize),
    /// Steps between kernel taps.
    pub dilation: (usize, usize),
}

impl Conv2dGeometry {
    /// The output's height and width, PyTorch's formula:
    /// `(in + 2·padding − dilation·(kernel − 1) − 1) / stride + 1`; `None` when the dilated
    /// kernel does not fit the padded input or a stride is 0.
    pub fn output_size(&self) -> Option<(usize, usize)> {
        let side = |input: usize, kernel: usize, stride: usize, padding: usize, dilation: usize| {
            let span = dilation * (kernel.checked_sub(1)?) + 1;
            let padded = input + 2 * padding;
            (stride > 0 && padded >= span).then(|| (padded - span) / stride + 1)
        };
        Some((
            side(
                self.height,
                self.kernel.0,
                self.stride.0,
                self.padding.0,
                self.dilation.0,
            )?,
            side(
                self.width,
                self.kernel.1,
                self.stride.1,
                self.padding.1,
                self.dilation.1,
            )?,
        ))
    }

    /// Elements of the input, the weight and the output.
    pub fn sizes(&self) -> (usize, usize, usize) {
        let (oh, ow) = self.output_size().expect("a valid geometry");
        (
            self.batch * self.in_channels * self.height * self.width,
            self.out_channels * self.in_channels * self.kernel.0 * self.kernel.1,
            self.batch * self.out_channels * oh * ow,
        )
    }

    /// The input coordinate `(row, column)` that output `(oh, ow)` reads through kernel tap
    /// `(kh, kw)`, or `None` where it falls in the padding.
    fn tap(&self, oh: usize, ow: usize, kh: usize, kw: usize) -> Option<(usize, usize)> {
        let row = (oh * self.stride.0 + kh * self.dilation.0).checked_sub(self.padding.0)?;
        let col = (ow * self.stride.1 + kw * self.dilation.1).checked_sub(self.padding.1)?;
        (row < self.height && col < self.width).then_some((row, col))
    }
}

/// `y = conv2d(x, w) + b` (`b` one value per output channel), NCHW.
pub fn conv2d(x: &[f32], w: &[f32], b: Option<&[f32]>, g: &Conv2dGeometry) -> Vec<f32> {
    let (oh_n, ow_n) = g.output_size().expect("a valid geometry");
    let (cin, (kh_n, kw_n)) = (g.in_channels, g.kernel);
    let mut y = vec![0.0f32; g.batch * g.out_channels * oh_n * ow_n];
    for n in 0..g.batch {
        for co in 0..g.out_channels {
            for oh in 0..oh_n {
                for ow in 0..ow_n {
                    let mut sum = b.map_or(0.0, |b| f64::from(b[co]));
                    for ci in 0..cin {
                        for kh in 0..kh_n {
                            for kw in 0..kw_n {
                                if let Some((r, c)) = g.tap(oh, ow, kh, kw) {
                                    let xv = x[((n * cin + ci) * g.height + r) * g.width + c];
                                    let wv = w[((co * cin + ci) * kh_n + kh) * kw_n + kw];
                                    sum += f64::from(xv) * f64::from(wv);
                                }
                            }
                        }
                    }
                    y[((n * g.out_channels + co) * oh_n + oh) * ow_n + ow] = sum as f32;
                }
            }
        }
    }
    y
}

/// The input gradient `dx` of `conv2d` for the output gradient `dy`.
pub fn conv2d_input_grad(dy: &[f32], w: &[f32], g: &Conv2dGeometry) -> Vec<f32> {
    let (oh_n, ow_n) = g.output_size().expect("a valid geometry");
    let (cin, (kh_n, kw_n)) = (g.in_channels, g.kernel);
    let mut dx = vec![0.0f64; g.batch * cin * g.height * g.width];
    for n in 0..g.batch {
        for co in 0..g.out_channels {
            for oh in 0..oh_n {
                for ow in 0..ow_n {
                    let d = f64::from(dy[((n * g.out_channels + co) * oh_n + oh) * ow_n + ow]);
                    for ci in 0..cin {
                        for kh in 0..kh_n {
                            for kw in 0..kw_n {
                                if let Some((r, c)) = g.tap(oh, ow, kh, kw) {
                                    let wv = w[((co * cin + ci) * kh_n + kh) * kw_n + kw];
                                    dx[((n * cin + ci) * g.height + r) * g.width + c] +=
                                        d * f64::from(wv);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    dx.into_iter().map(|v| v as f32).collect()
}

/// The weight gradient `dw` of `conv2d` for the output gradient `dy`.
pub fn conv2d_weight_grad(x: &[f32], dy: &[f32], g: &Conv2dGeometry) -> Vec<f32> {
    let (oh_n, ow_n) = g.output_size().expect("a valid geometry");
    let (cin, (kh_n, kw_n)) = (g.in_channels, g.kernel);
    let mut dw = vec![0.0f64; g.out_channels * cin * kh_n * kw_n];
    for n in 0..g.batch {
        for co in 0..g.out_channels {
            for oh in 0..oh_n {
                for ow in 0..ow_n {
                    let d = f64::from(dy[((n * g.out_channels + co) * oh_n + oh) * ow_n + ow]);
                    for ci in 0..cin {
                        for kh in 0..kh_n {
                            for kw in 0..kw_n {
                                if let Some((r, c)) = g.tap(oh, ow, kh, kw) {
                                    let xv = x[((n * cin + ci) * g.height + r) * g.width + c];
                                    dw[((co * cin + ci) * kh_n + kh) * kw_n + kw] +=
                                        d * f64::from(xv);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    dw.into_iter().map(|v| v as f32).collect()
}

/// The bias gradient of `conv2d`: `dy` summed over the batch and the output's positions,
/// per output channel.
pub fn conv2d_bias_grad(dy: &[f32], g: &Conv2dGeometry) -> Vec<f32> {
    let (oh_n, ow_n) = g.output_size().expect("a valid geometry");
    let plane = oh_n * ow_n;
    (0..g.out_channels)
        .map(|co| {
            let sum: f64 = (0..g.batch)
                .flat_map(|n| {
                    let start = (n * g.out_channels + co) * plane;
                    dy[start..start + plane].iter().map(|&v| f64::from(v))
                })
                .sum();
            sum as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| {
                let h = crate::cpu::pcg_hash(i ^ crate::cpu::pcg_hash(seed));
                (h >> 8) as f32 / 8_388_608.0 - 1.0
            })
            .collect()
    }

    fn geometries() -> Vec<Conv2dGeometry> {
        let base = Conv2dGeometry {
            batch: 1,
            in_channels: 1,
            height: 5,
            width: 5,
            out_channels: 1,
            kernel: (1, 1),
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
        };
        vec![
            base,
            Conv2dGeometry {
                batch: 2,
                in_channels: 3,
                height: 7,
                width: 6,
                out_channels: 5,
                kernel: (5, 5),
                padding: (2, 2),
                ..base
            },
            Conv2dGeometry {
                batch: 1,
                in_channels: 7,
                height: 9,
                width: 11,
                out_channels: 3,
                kernel: (3, 2),
                stride: (2, 3),
                padding: (1, 0),
                ..base
            },
            Conv2dGeometry {
                batch: 3,
                in_channels: 2,
                height: 8,
                width: 8,
                out_channels: 2,
                kernel: (3, 3),
                padding: (2, 1),
                dilation: (2, 1),
                ..base
            },
        ]
    }

    #[test]
    fn output_sizes_follow_pytorch_and_refuse_what_does_not_fit() {
        let g = geometries();
        assert_eq!(g[0].output_size(), Some((5, 5)));
        assert_eq!(g[1].output_size(), Some((7, 6)));
        // (9 + 2 − 3) / 2 + 1 = 5 rows; (11 − 2) / 3 + 1 = 4 columns.
        assert_eq!(g[2].output_size(), Some((5, 4)));
        // Dilated 3×3 spans 5 rows: (8 + 4 − 5) + 1 = 8.
        assert_eq!(g[3].output_size(), Some((8, 8)));
        let too_big = Conv2dGeometry {
            kernel: (6, 1),
            ..g[0]
        };
        assert_eq!(too_big.output_size(), None);
        let zero_stride = Conv2dGeometry {
            stride: (0, 1),
            ..g[0]
        };
        assert_eq!(zero_stride.output_size(), None);
    }

    #[test]
    fn a_one_by_one_kernel_is_a_per_pixel_product_and_a_bias_adds() {
        let g = Conv2dGeometry {
            in_channels: 2,
            out_channels: 1,
            ..geometries()[0]
        };
        let x = values(50, 1);
        let y = conv2d(&x, &[2.0, -1.0], Some(&[0.5]), &g);
        for p in 0..25 {
            let expected = 2.0 * f64::from(x[p]) - f64::from(x[25 + p]) + 0.5;
            assert!((f64::from(y[p]) - expected).abs() < 1e-6);
        }
    }

    /// ⟨conv(x, w), dy⟩ = ⟨x, dx(dy, w)⟩ = ⟨w, dw(x, dy)⟩: each gradient is the adjoint of
    /// the forward pass in its argument, so a transposed index or a missed tap breaks it.
    #[test]
    fn the_gradients_are_the_forward_pass_adjoints() {
        for (i, g) in geometries().into_iter().enumerate() {
            let (nx, nw, ny) = g.sizes();
            let (x, w, dy) = (values(nx, 10 + i as u32), values(nw, 20), values(ny, 30));
            let dot = |a: &[f32], b: &[f32]| -> f64 {
                a.iter()
                    .zip(b)
                    .map(|(&p, &q)| f64::from(p) * f64::from(q))
                    .sum()
            };
            let forward = dot(&conv2d(&x, &w, None, &g), &dy);
            let via_dx = dot(&x, &conv2d_input_grad(&dy, &w, &g));
            let via_dw = dot(&w, &conv2d_weight_grad(&x, &dy, &g));
            let scale = forward.abs().max(1.0);
            assert!(
                (forward - via_dx).abs() < 1e-4 * scale,
                "{g:?}: {forward} vs {via_dx}"
            );
            assert!(
                (forward - via_dw).abs() < 1e-4 * scale,
                "{g:?}: {forward} vs {via_dw}"
            );
        }
    }

    /// The gradients against central differences of Σ dy·conv(x, w, b).
    #[test]
    fn the_gradients_match_finite_differences() {
        let g = geometries()[2];
        let (nx, nw, ny) = g.sizes();
        let (x, w, dy) = (values(nx, 3), values(nw, 4), values(ny, 5));
        let b = values(g.out_channels, 6);
        let loss = |x: &[f32], w: &[f32], b: &[f32]| -> f64 {
            conv2d(x, w, Some(b), &g)
                .iter()
                .zip(&dy)
                .map(|(&y, &d)| f64::from(y) * f64::from(d))
                .sum()
        };
        let h = 1e-2f32;
        let numeric = |which: usize, i: usize| {
            let (mut xp, mut wp, mut bp) = (x.clone(), w.clone(), b.clone());
            let (mut xm, mut wm, mut bm) = (x.clone(), w.clone(), b.clone());
            match which {
                0 => (xp[i] += h, xm[i] -= h),
                1 => (wp[i] += h, wm[i] -= h),
                _ => (bp[i] += h, bm[i] -= h),
            };
            (loss(&xp, &wp, &bp) - loss(&xm, &wm, &bm)) / (2.0 * f64::from(h))
        };
        // The loss is linear in each argument, so central differences are exact up to the
        // f32 rounding of the outputs (~1e-7 relative each, over a few dozen terms).
        let check = |which: usize, analytic: &[f32]| {
            for (i, &a) in analytic.iter().enumerate() {
                let n = numeric(which, i);
                assert!(
                    (f64::from(a) - n).abs() < 2e-3,
                    "argument {which} element {i}: {a} vs {n}"
                );
            }
        };
        check(0, &conv2d_input_grad(&dy, &w, &g));
        check(1, &conv2d_weight_grad(&x, &dy, &g));
        check(2, &conv2d_bias_grad(&dy, &g));
    }
}
