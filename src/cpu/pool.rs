//! 2-D pooling in NCHW, as PyTorch's `nn.MaxPool2d` and `nn.AvgPool2d` (floor mode; average
//! pooling counts the padding, PyTorch's default `count_include_pad=True`): forward and
//! backward, plain loops. The window is the kernels' own ([`Pool2d`]).

pub use crate::kernels::pool::Pool2d;

/// The input positions `(row, column)` window `(oh, ow)` of `pool` covers, padding left out,
/// in row-major order.
fn window(
    pool: &Pool2d,
    (oh, ow): (usize, usize),
    (height, width): (usize, usize),
) -> impl Iterator<Item = (usize, usize)> {
    let (r0, c0) = (oh * pool.stride.0, ow * pool.stride.1);
    let (kh, kw, ph, pw) = (pool.kernel.0, pool.kernel.1, pool.padding.0, pool.padding.1);
    (r0..r0 + kh)
        .flat_map(move |r| (c0..c0 + kw).map(move |c| (r, c)))
        .filter_map(move |(r, c)| {
            let (r, c) = (r.checked_sub(ph)?, c.checked_sub(pw)?);
            (r < height && c < width).then_some((r, c))
        })
}

/// Max pooling over `planes` planes (batch × channels) of `height × width`: the output and,
/// per output, the index in `x` of the maximum it took (the first in the window's row-major
/// order on ties; a NaN wins, as in PyTorch).
pub fn max_pool2d(
    x: &[f32],
    planes: usize,
    (height, width): (usize, usize),
    pool: &Pool2d,
) -> (Vec<f32>, Vec<u32>) {
    let (oh_n, ow_n) = pool.output_size(height, width).expect("a valid window");
    let mut y = Vec::with_capacity(planes * oh_n * ow_n);
    let mut argmax = Vec::with_capacity(y.capacity());
    for p in 0..planes {
        let base = p * height * width;
        for oh in 0..oh_n {
            for ow in 0..ow_n {
                let mut best: Option<usize> = None;
                for (r, c) in window(pool, (oh, ow), (height, width)) {
                    let i = base + r * width + c;
                    best = match best {
                        Some(b) if x[b].is_nan() || !(x[i] > x[b] || x[i].is_nan()) => Some(b),
                        _ => Some(i),
                    };
                }
                let best = best.expect("every window holds an input position");
                y.push(x[best]);
                argmax.push(best as u32);
            }
        }
    }
    (y, argmax)
}

/// The input gradient of `max_pool2d`: each output's gradient added to the input it took.
pub fn max_pool2d_backward(dy: &[f32], argmax: &[u32], input_len: usize) -> Vec<f32> {
    let mut dx = vec![0.0f64; input_len];
    for (&d, &i) in dy.iter().zip(argmax) {
        dx[i as usize] += f64::from(d);
    }
    dx.into_iter().map(|v| v as f32).collect()
}

/// Calls `visit(y, x)` with the flat index of every output and of every input position in
/// its window (padding left out), over `planes` planes of `height × width`.
fn for_each_window(
    planes: usize,
    (height, width): (usize, usize),
    pool: &Pool2d,
    mut visit: impl FnMut(usize, usize),
) {
    let (oh_n, ow_n) = pool.output_size(height, width).expect("a valid window");
    for p in 0..planes {
        for oh in 0..oh_n {
            for ow in 0..ow_n {
                let y = (p * oh_n + oh) * ow_n + ow;
                for (r, c) in window(pool, (oh, ow), (height, width)) {
                    visit(y, (p * height + r) * width + c);
                }
            }
        }
    }
}

/// Average pooling: each output the mean of its window, the padding counted as zeros.
pub fn avg_pool2d(x: &[f32], planes: usize, size: (usize, usize), pool: &Pool2d) -> Vec<f32> {
    let (oh_n, ow_n) = pool.output_size(size.0, size.1).expect("a valid window");
    let area = (pool.kernel.0 * pool.kernel.1) as f64;
    let mut sums = vec![0.0f64; planes * oh_n * ow_n];
    for_each_window(planes, size, pool, |y, xi| sums[y] += f64::from(x[xi]));
    sums.into_iter().map(|s| (s / area) as f32).collect()
}

/// The input gradient of `avg_pool2d`: each output's gradient spread evenly over its window.
pub fn avg_pool2d_backward(
    dy: &[f32],
    planes: usize,
    size: (usize, usize),
    pool: &Pool2d,
) -> Vec<f32> {
    let area = (pool.kernel.0 * pool.kernel.1) as f64;
    let mut dx = vec![0.0f64; planes * size.0 * size.1];
    for_each_window(planes, size, pool, |y, xi| {
        dx[xi] += f64::from(dy[y]) / area
    });
    dx.into_iter().map(|v| v as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: Pool2d = Pool2d {
        kernel: (2, 2),
        stride: (2, 2),
        padding: (0, 0),
    };

    #[test]
    fn output_sizes_follow_pytorch_and_refuse_what_does_not_fit() {
        assert_eq!(TWO.output_size(28, 28), Some((14, 14)));
        assert_eq!(TWO.output_size(7, 5), Some((3, 2)));
        let padded = Pool2d {
            kernel: (3, 3),
            stride: (2, 2),
            padding: (1, 1),
        };
        assert_eq!(padded.output_size(7, 7), Some((4, 4)));
        assert_eq!(TWO.output_size(1, 5), None);
        let too_much_padding = Pool2d {
            padding: (2, 0),
            ..padded
        };
        assert_eq!(too_much_padding.output_size(7, 7), None);
        let zero_stride = Pool2d {
            stride: (0, 1),
            ..TWO
        };
        assert_eq!(zero_stride.output_size(4, 4), None);
    }

    #[test]
    fn max_pooling_takes_the_first_maximum_and_routes_its_gradient_back() {
        // One 3×4 plane, 2×2 windows: the last row and the odd column are left out (floor).
        let x = [1.0, 5.0, 2.0, 2.0, 5.0, 0.0, -1.0, 2.0, 9.0, 9.0, 9.0, 9.0];
        let (y, argmax) = max_pool2d(&x, 1, (3, 4), &TWO);
        assert_eq!(y, [5.0, 2.0]);
        // Ties: index 1 before 4; 2 before 3 and 7.
        assert_eq!(argmax, [1, 2]);
        let dx = max_pool2d_backward(&[10.0, 20.0], &argmax, x.len());
        assert_eq!(
            dx,
            [0.0, 10.0, 20.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        );
        let (y, _) = max_pool2d(&[1.0, f32::NAN, 3.0, 2.0], 1, (2, 2), &TWO);
        assert!(y[0].is_nan(), "a NaN in the window wins, as in PyTorch");
    }

    #[test]
    fn average_pooling_counts_the_padding_and_its_gradient_is_its_adjoint() {
        let pool = Pool2d {
            kernel: (3, 3),
            stride: (2, 2),
            padding: (1, 1),
        };
        let x: Vec<f32> = (0..2 * 5 * 5).map(|i| (i % 7) as f32 - 3.0).collect();
        let y = avg_pool2d(&x, 2, (5, 5), &pool);
        // The corner window sees 4 inputs and 5 padding zeros.
        let corner = (x[0] + x[1] + x[5] + x[6]) as f64 / 9.0;
        assert!((f64::from(y[0]) - corner).abs() < 1e-6);
        let dy: Vec<f32> = (0..y.len()).map(|i| (i % 5) as f32 * 0.5 - 1.0).collect();
        let dx = avg_pool2d_backward(&dy, 2, (5, 5), &pool);
        let dot = |a: &[f32], b: &[f32]| -> f64 {
            a.iter()
                .zip(b)
                .map(|(&p, &q)| f64::from(p) * f64::from(q))
                .sum()
        };
        assert!((dot(&y, &dy) - dot(&x, &dx)).abs() < 1e-5);
    }
}
