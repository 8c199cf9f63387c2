//! Pooling, dropout and reshapes on the device against the CPU oracle (`cpu::pool`,
//! `cpu::dropout`), their gradients against finite differences, and dropout's key in a
//! captured plan.
//!
//! Tolerances: max pooling's forward pass selects, so it is exact (values and indices). Every
//! other output is a sum of at most K terms (a window's K inputs, or the gradients of the K
//! windows covering an input) with at most one more rounding (the division by the window's
//! area), so |gpu − exact| ≤ γ_{K+2}·Σ|terms| + u·|exact|: `product_bounds` with the oracle
//! run on the absolute values as Σ|terms|. Where windows do not overlap max pooling's
//! gradient is one term: exact. Dropout is one f32 product per element, the oracle's own: exact.

mod common;

use common::gradcheck::{case, check, input, project_cpu, project_gpu};
use common::{check_within, gpu, random_vec, rng};
use wgsl_nn::autograd::Var;
use wgsl_nn::capture::{Fusion, capture};
use wgsl_nn::cpu::dropout::{self as dropout_oracle, DropoutKey};
use wgsl_nn::cpu::pool as oracle;
use wgsl_nn::cpu::tolerance::product_bounds as bounds;
use wgsl_nn::pool::{
    Pool2d, Pool2dGeometry, avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward,
};
use wgsl_nn::{Error, Tensor, dropout};

/// (input [N, C, H, W], window).
fn cases() -> Vec<([usize; 4], Pool2d)> {
    let window = |k: (usize, usize), s: (usize, usize), p: (usize, usize)| Pool2d {
        kernel: k,
        stride: s,
        padding: p,
    };
    vec![
        ([1, 1, 1, 1], window((1, 1), (1, 1), (0, 0))),
        ([2, 3, 7, 5], Pool2d::square(2)),
        ([1, 7, 9, 11], window((3, 3), (2, 2), (1, 1))),
        ([3, 1, 28, 28], Pool2d::square(2)),
        ([2, 2, 6, 6], window((3, 3), (1, 1), (1, 1))),
        ([1, 13, 5, 5], window((2, 3), (1, 2), (1, 1))),
        ([64, 32, 14, 14], Pool2d::square(2)),
    ]
}

fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

/// How many windows cover one input at most: ⌈kernel / stride⌉ per side.
fn overlap(pool: &Pool2d) -> usize {
    pool.kernel.0.div_ceil(pool.stride.0) * pool.kernel.1.div_ceil(pool.stride.1)
}

#[test]
fn pooling_matches_the_oracle_forward_and_backward_on_awkward_shapes() {
    let device = gpu();
    for (i, (shape, pool)) in cases().into_iter().enumerate() {
        let g = Pool2dGeometry::new(&shape, pool).unwrap();
        let what = format!("{shape:?} with {pool:?}");
        let mut r = rng(100 + i as u64);
        let x_host = random_vec(&mut r, shape.iter().product());
        let dy_host = random_vec(&mut r, g.output_shape().iter().product());
        let x = Tensor::from_slice(device, &x_host, shape).unwrap();
        let dy = Tensor::from_slice(device, &dy_host, g.output_shape()).unwrap();
        let (planes, size) = (g.planes(), g.in_size);

        let (y, argmax) = max_pool2d(&x, pool).unwrap();
        let (y_ref, argmax_ref) = oracle::max_pool2d(&x_host, planes, size, &pool);
        assert_eq!(y.to_vec().unwrap(), y_ref, "max pool {what}");
        assert_eq!(argmax.to_vec_u32().unwrap(), argmax_ref, "indices {what}");

        let dx = max_pool2d_backward(&dy, &argmax, &g)
            .unwrap()
            .to_vec()
            .unwrap();
        let dx_ref = oracle::max_pool2d_backward(&dy_host, &argmax_ref, x_host.len());
        let mag = oracle::max_pool2d_backward(&abs(&dy_host), &argmax_ref, x_host.len());
        check_within(&dx, &dx_ref, &bounds(&dx_ref, &mag, overlap(&pool)))
            .unwrap_or_else(|e| panic!("max pool gradient {what}: {e}"));
        if overlap(&pool) == 1 {
            assert_eq!(dx, dx_ref, "one window per input: exact ({what})");
        }

        let area = pool.kernel.0 * pool.kernel.1;
        let y = avg_pool2d(&x, pool).unwrap().to_vec().unwrap();
        let y_ref = oracle::avg_pool2d(&x_host, planes, size, &pool);
        let mag = oracle::avg_pool2d(&abs(&x_host), planes, size, &pool);
        check_within(&y, &y_ref, &bounds(&y_ref, &mag, area))
            .unwrap_or_else(|e| panic!("average pool {what}: {e}"));

        let dx = avg_pool2d_backward(&dy, &g).unwrap().to_vec().unwrap();
        let dx_ref = oracle::avg_pool2d_backward(&dy_host, planes, size, &pool);
        let mag = oracle::avg_pool2d_backward(&abs(&dy_host), planes, size, &pool);
        check_within(&dx, &dx_ref, &bounds(&dx_ref, &mag, overlap(&pool)))
            .unwrap_or_else(|e| panic!("average pool gradient {what}: {e}"));
    }
}

#[test]
fn max_pooling_keeps_the_first_maximum_and_a_nan() {
    let device = gpu();
    // Two 2×2 windows: a tie (index 1 before 4) and a NaN after a larger value.
    let x = [1.0, 5.0, 7.0, f32::NAN, 5.0, 0.0, -1.0, 9.0];
    let t = Tensor::from_slice(device, &x, [1, 1, 2, 4]).unwrap();
    let (y, argmax) = max_pool2d(&t, Pool2d::square(2)).unwrap();
    let y = y.to_vec().unwrap();
    assert_eq!(y[0], 5.0);
    assert!(
        y[1].is_nan(),
        "a NaN in the window wins, as in PyTorch: {y:?}"
    );
    assert_eq!(argmax.to_vec_u32().unwrap(), [1, 3]);
}

#[test]
fn a_window_that_does_not_fit_is_an_error_naming_both_shapes() {
    let device = gpu();
    let x = Var::from_slice(device, &[0.0; 2 * 3 * 3], [1, 2, 3, 3], true).unwrap();
    let bad = [
        Pool2d::square(4),
        Pool2d {
            stride: (0, 1),
            ..Pool2d::square(2)
        },
        Pool2d {
            padding: (2, 2),
            ..Pool2d::square(3)
        },
    ];
    for pool in bad {
        let message = x.max_pool2d(pool).unwrap_err().to_string();
        assert!(
            message.contains("[1, 2, 3, 3]") && message.contains(&format!("{:?}", pool.kernel)),
            "{message}"
        );
        assert!(x.avg_pool2d(pool).is_err());
    }
    let flat = Var::from_slice(device, &[0.0; 9], [3, 3], true).unwrap();
    let message = flat.max_pool2d(Pool2d::square(2)).unwrap_err().to_string();
    assert!(
        message.contains("NCHW") && message.contains("[3, 3]"),
        "{message}"
    );
}

#[test]
fn pooling_gradients_match_finite_differences() {
    for (i, (shape, pool)) in cases().into_iter().take(6).enumerate() {
        let g = Pool2dGeometry::new(&shape, pool).unwrap();
        let (planes, size) = (g.planes(), g.in_size);
        let max = case(
            "max_pool2d",
            vec![input(&shape, 200 + i as u64)],
            move |v| project_gpu(&v[0].max_pool2d(pool)?),
            move |x| {
                let x32: Vec<f32> = x[0].iter().map(|&v| v as f32).collect();
                let (_, argmax) = oracle::max_pool2d(&x32, planes, size, &pool);
                project_cpu(&argmax.iter().map(|&j| x[0][j as usize]).collect::<Vec<_>>())
            },
        );
        check(&max, &format!("{shape:?} {pool:?}"));
        let area = (pool.kernel.0 * pool.kernel.1) as f64;
        let avg = case(
            "avg_pool2d",
            vec![input(&shape, 300 + i as u64)],
            move |v| project_gpu(&v[0].avg_pool2d(pool)?),
            move |x| {
                // Linear: the oracle's window sums in f64, from the f64 inputs.
                let (oh, ow) = g.out_size;
                let mut y = vec![0.0; planes * oh * ow];
                for (o, out) in y.iter_mut().enumerate() {
                    let (p, r, c) = (o / (oh * ow), (o / ow) % oh, o % ow);
                    for kr in 0..pool.kernel.0 {
                        for kc in 0..pool.kernel.1 {
                            let (pr, pc) = (r * pool.stride.0 + kr, c * pool.stride.1 + kc);
                            if let (Some(ir), Some(ic)) = (
                                pr.checked_sub(pool.padding.0),
                                pc.checked_sub(pool.padding.1),
                            ) && ir < size.0
                                && ic < size.1
                            {
                                *out += x[0][(p * size.0 + ir) * size.1 + ic];
                            }
                        }
                    }
                    *out /= area;
                }
                project_cpu(&y)
            },
        );
        check(&avg, &format!("{shape:?} {pool:?}"));
    }
}

#[test]
fn dropout_matches_the_oracle_bit_for_bit_for_every_key() {
    let device = gpu();
    for (len, p) in [(1, 0.5), (1000, 0.1), (4097, 0.5), (777, 0.9)] {
        let mut r = rng(len as u64);
        let mut x_host = random_vec(&mut r, len);
        if len > 3 {
            x_host[3] = f32::NAN;
            x_host[2] = -0.0;
        }
        let x = Tensor::from_slice(device, &x_host, [len]).unwrap();
        for (seed, step, salt) in [(0, 0, 0), (7, 3, 1), (7, 4, 1), (7, 3, 2)] {
            let got = dropout::dropout(&x, p, seed, step, salt)
                .unwrap()
                .to_vec()
                .unwrap();
            let key = DropoutKey { seed, step, salt };
            let want = dropout_oracle::dropout(&x_host, p, Some(key));
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "len {len}, p {p}, key {key:?}");
        }
    }
    let x = Tensor::from_slice(device, &[1.0], [1]).unwrap();
    for p in [1.0, -0.1, f32::NAN] {
        let message = dropout::dropout(&x, p, 0, 0, 0).unwrap_err().to_string();
        assert!(message.contains("[0, 1)"), "{message}");
    }
}

#[test]
fn dropout_is_the_identity_in_evaluation_and_its_gradient_uses_the_same_mask() {
    let device = gpu();
    let data: Vec<f32> = (0..300).map(|i| i as f32 * 0.01 - 1.0).collect();
    let x = Var::from_slice(device, &data, [3, 100], true).unwrap();
    let eval = x.dropout(0.5, 1, false).unwrap();
    assert_eq!(eval.to_vec().unwrap(), data, "evaluation");
    let y = x.dropout(0.5, 1, true).unwrap();
    assert_eq!(y.grad_fn(), Some("dropout"));
    y.sum().unwrap().backward().unwrap();
    let grad = x.grad_vec().unwrap().unwrap();
    let key = DropoutKey {
        seed: 0,
        step: 0,
        salt: 1,
    };
    let scale = wgsl_nn::dropout::scale(0.5);
    for (i, &g) in grad.iter().enumerate() {
        let kept = dropout_oracle::dropout_keeps(0.5, key, i);
        assert_eq!(g, if kept { scale } else { 0.0 }, "element {i}");
    }
    // Finite differences through the mask (fixed for the eager key 0, 0).
    let c = case(
        "dropout",
        vec![input(&[5, 13], 400)],
        |v| project_gpu(&v[0].dropout(0.3, 2, true)?),
        |x| {
            let key = DropoutKey {
                seed: 0,
                step: 0,
                salt: 2,
            };
            let scale = f64::from(wgsl_nn::dropout::scale(0.3));
            let y: Vec<f64> = x[0]
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    if dropout_oracle::dropout_keeps(0.3, key, i) {
                        v * scale
                    } else {
                        0.0
                    }
                })
                .collect();
            project_cpu(&y)
        },
    );
    check(&c, "[5, 13]");
}

#[test]
fn a_captured_dropout_draws_the_mask_of_the_plans_key() {
    let device = gpu();
    let data: Vec<f32> = (0..500).map(|i| 1.0 + i as f32).collect();
    let x = Var::from_slice(device, &data, [500], false).unwrap();
    let (plan, y) = capture(device, &Fusion::all(), || {
        Ok(x.dropout(0.25, 9, true)?.value().share())
    })
    .unwrap();
    for (seed, step) in [(1, 0), (1, 1), (2, 1)] {
        plan.set_rng(seed, step);
        plan.replay().unwrap();
        let key = DropoutKey {
            seed,
            step,
            salt: 9,
        };
        let want = dropout_oracle::dropout(&data, 0.25, Some(key));
        assert_eq!(y.to_vec().unwrap(), want, "key {key:?}");
    }
}

#[test]
fn reshape_and_flatten_are_views_whose_gradient_comes_back_in_shape() {
    let device = gpu();
    let x = Var::from_slice(device, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [1, 2, 1, 3], true).unwrap();
    let flat = x.flatten().unwrap();
    assert_eq!(flat.shape().dims(), [1, 6]);
    assert_eq!(flat.value().buffer(), x.value().buffer(), "a view: no copy");
    let err = x.reshape([4]).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    // A flatten between a convolution-shaped value and a linear layer, checked end to end.
    let c = case(
        "flatten then linear",
        vec![input(&[2, 3, 2, 2], 500), input(&[12, 4], 501)],
        |v| project_gpu(&v[0].flatten()?.matmul(&v[1])?),
        |x| {
            let mut y = vec![0.0; 2 * 4];
            for r in 0..2 {
                for k in 0..12 {
                    for j in 0..4 {
                        y[r * 4 + j] += x[0][r * 12 + k] * x[1][k * 4 + j];
                    }
                }
            }
            project_cpu(&y)
        },
    );
    check(&c, "[2, 3, 2, 2] → [2, 12]");
}
