//! 2-D convolution in NCHW, as PyTorch's `nn.Conv2d` (cross-correlation, stride, zero
//! padding, dilation, one group): the forward pass, the input gradient, the weight gradient
//! and the bias gradient, each a plain loop with f64 accumulation over the same visit of
//! every (output, input, weight) triple. The geometry is the kernels' own
//! ([`Conv2dGeometry`], which checks the shapes).

use crate::kernels::conv::Conv2dGeometry;

/// Calls `visit(y, x, w)` with the flat indices of every output, input and weight element
/// that meet in the convolution (taps in the padding left out).
fn for_each_tap(g: &Conv2dGeometry, mut visit: impl FnMut(usize, usize, usize)) {
    let (oh_n, ow_n) = g.out_size;
    let (h, w) = g.in_size;
    let (cin, (kh_n, kw_n)) = (g.in_channels, g.kernel);
    let o = &g.options;
    for n in 0..g.batch {
        for co in 0..g.out_channels {
            for oh in 0..oh_n {
                for ow in 0..ow_n {
                    let y = ((n * g.out_channels + co) * oh_n + oh) * ow_n + ow;
                    for ci in 0..cin {
                        for kh in 0..kh_n {
                            for kw in 0..kw_n {
                                let r =
                                    (oh * o.stride.0 + kh * o.dilation.0).checked_sub(o.padding.0);
                                let c =
                                    (ow * o.stride.1 + kw * o.dilation.1).checked_sub(o.padding.1);
                                if let (Some(r), Some(c)) = (r, c)
                                    && r < h
                                    && c < w
                                {
                                    let x = ((n * cin + ci) * h + r) * w + c;
                                    let wi = ((co * cin + ci) * kh_n + kh) * kw_n + kw;
                                    visit(y, x, wi);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn to_f32(values: Vec<f64>) -> Vec<f32> {
    values.into_iter().map(|v| v as f32).collect()
}

fn len(shape: [usize; 4]) -> usize {
    shape.iter().product()
}

/// `y = conv2d(x, w) + b` (`b` one value per output channel), NCHW.
pub fn conv2d(x: &[f32], w: &[f32], b: Option<&[f32]>, g: &Conv2dGeometry) -> Vec<f32> {
    let plane = g.out_size.0 * g.out_size.1;
    let mut y: Vec<f64> = (0..len(g.output_shape()))
        .map(|i| b.map_or(0.0, |b| f64::from(b[(i / plane) % g.out_channels])))
        .collect();
    for_each_tap(g, |yi, xi, wi| y[yi] += f64::from(x[xi]) * f64::from(w[wi]));
    to_f32(y)
}

/// The input gradient `dx` of `conv2d` for the output gradient `dy`.
pub fn conv2d_input_grad(dy: &[f32], w: &[f32], g: &Conv2dGeometry) -> Vec<f32> {
    let mut dx = vec![0.0f64; len(g.input_shape())];
    for_each_tap(g, |yi, xi, wi| {
        dx[xi] += f64::from(dy[yi]) * f64::from(w[wi])
    });
    to_f32(dx)
}

/// The weight gradient `dw` of `conv2d` for the output gradient `dy`.
pub fn conv2d_weight_grad(x: &[f32], dy: &[f32], g: &Conv2dGeometry) -> Vec<f32> {
    let mut dw = vec![0.0f64; len(g.weight_shape())];
    for_each_tap(g, |yi, xi, wi| {
        dw[wi] += f64::from(dy[yi]) * f64::from(x[xi])
    });
    to_f32(dw)
}

/// The bias gradient of `conv2d`: `dy` summed over the batch and the output's positions,
/// per output channel.
pub fn conv2d_bias_grad(dy: &[f32], g: &Conv2dGeometry) -> Vec<f32> {
    let plane = g.out_size.0 * g.out_size.1;
    let mut db = vec![0.0f64; g.out_channels];
    for (i, &d) in dy.iter().enumerate() {
        db[(i / plane) % g.out_channels] += f64::from(d);
    }
    to_f32(db)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::Conv2dOptions;

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| {
                let h = crate::cpu::pcg_hash(i ^ crate::cpu::pcg_hash(seed));
                (h >> 8) as f32 / 8_388_608.0 - 1.0
            })
            .collect()
    }

    fn geometry(
        input: [usize; 4],
        weight: [usize; 4],
        stride: (usize, usize),
        padding: (usize, usize),
        dilation: (usize, usize),
    ) -> Conv2dGeometry {
        let options = Conv2dOptions {
            stride,
            padding,
            dilation,
            kernel: None,
        };
        Conv2dGeometry::new(&input, &weight, options).unwrap()
    }

    /// 1×1; 5×5 padded on 3 channels; stride 2×3 on 7 channels; dilation 2 with padding.
    fn geometries() -> Vec<Conv2dGeometry> {
        vec![
            geometry([1, 1, 5, 5], [1, 1, 1, 1], (1, 1), (0, 0), (1, 1)),
            geometry([2, 3, 7, 6], [5, 3, 5, 5], (1, 1), (2, 2), (1, 1)),
            geometry([1, 7, 9, 11], [3, 7, 3, 2], (2, 3), (1, 0), (1, 1)),
            geometry([3, 2, 8, 8], [2, 2, 3, 3], (1, 1), (2, 1), (2, 1)),
        ]
    }

    #[test]
    fn output_sizes_follow_pytorch() {
        let g = geometries();
        assert_eq!(g[0].out_size, (5, 5));
        assert_eq!(g[1].out_size, (7, 6));
        // (9 + 2 − 3) / 2 + 1 = 5 rows; (11 − 2) / 3 + 1 = 4 columns.
        assert_eq!(g[2].out_size, (5, 4));
        // Dilated 3×3 spans 5 rows: (8 + 4 − 5) + 1 = 8.
        assert_eq!(g[3].out_size, (8, 8));
    }

    #[test]
    fn a_one_by_one_kernel_is_a_per_pixel_product_and_a_bias_adds() {
        let g = geometry([1, 2, 5, 5], [1, 2, 1, 1], (1, 1), (0, 0), (1, 1));
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
            let x = values(len(g.input_shape()), 10 + i as u32);
            let w = values(len(g.weight_shape()), 20);
            let dy = values(len(g.output_shape()), 30);
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
        let x = values(len(g.input_shape()), 3);
        let w = values(len(g.weight_shape()), 4);
        let dy = values(len(g.output_shape()), 5);
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
