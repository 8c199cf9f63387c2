//! Autograd on GPU tensors: every op's gradient against central differences of an f64 CPU
//! twin, the graph rules (accumulation, retain_grad, zero_grad, freed graphs), the cost of a
//! backward pass, and an autograd MLP against the CPU oracle's training step.
//!
//! Tolerance for gradients: 4e-5·max|g| + 1e-6 per tensor. Each gradient is a few f32
//! operations (activations accurate to ~2e-7) or a fixed-order sum of up to 2053 terms; the
//! rigorous bound for such a sum, γₙ·Σ|terms|, is far looser than what sums of terms of
//! random sign do (their rounding errors grow like √n), so the bound is set from measurement:
//! the worst |error| / max|g| over every case here is 1.3e-6 (the broadcast scalar's gradient
//! on [2053]), and 4e-5 leaves a 30× margin, while a wrong rule (a missing factor, a
//! transposed product, a dropped term) is off by a sizeable fraction of max|g| (a 0.1% error
//! in one product was caught). The central differences run in f64 with h = 1e-5, exact to
//! ~1e-9.

mod common;

use common::gradcheck::{away_from_zero, case, check, input, project_cpu, project_gpu};
use common::{fresh_gpu, gpu, rng};
use rand::Rng;
use wgsl_nn::activation::Activation;
use wgsl_nn::autograd::{Loss, Var, VarOptimizer, cross_entropy};
use wgsl_nn::cpu::{self, ActivationParams, CpuLinear, OptimizerState};
use wgsl_nn::loss::{Labels, Reduction};
use wgsl_nn::optim::OptimizerConfig;
use wgsl_nn::{Device, Error, Tensor};

fn zip_with(a: &[f64], b: &[f64], f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
}

/// `[m, k] · [k, n]` in f64.
fn matmul64(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            for j in 0..n {
                c[i * n + j] += a[i * k + p] * b[p * n + j];
            }
        }
    }
    c
}

#[test]
fn elementwise_gradients_match_finite_differences() {
    let shapes: [&[usize]; 4] = [&[1], &[7], &[3, 5], &[1031]];
    for (s, shape) in shapes.into_iter().enumerate() {
        let seed = 10 * s as u64;
        let pair = || vec![input(shape, seed + 1), input(shape, seed + 2)];
        let cases = [
            case(
                "add",
                pair(),
                |v| project_gpu(&v[0].add(&v[1])?),
                |x| project_cpu(&zip_with(&x[0], &x[1], |a, b| a + b)),
            ),
            case(
                "sub",
                pair(),
                |v| project_gpu(&v[0].sub(&v[1])?),
                |x| project_cpu(&zip_with(&x[0], &x[1], |a, b| a - b)),
            ),
            case(
                "mul",
                pair(),
                |v| project_gpu(&v[0].mul(&v[1])?),
                |x| project_cpu(&zip_with(&x[0], &x[1], |a, b| a * b)),
            ),
            case(
                "square",
                vec![input(shape, seed + 3)],
                |v| project_gpu(&v[0].square()?),
                |x| project_cpu(&zip_with(&x[0], &x[0], |a, b| a * b)),
            ),
            case(
                "scale",
                vec![input(shape, seed + 4)],
                |v| project_gpu(&v[0].scale(-2.5)?),
                |x| project_cpu(&x[0].iter().map(|a| -2.5 * a).collect::<Vec<_>>()),
            ),
            case(
                "neg then sum",
                vec![input(shape, seed + 5)],
                |v| v[0].neg()?.sum(),
                |x| -x[0].iter().sum::<f64>(),
            ),
            case(
                "mean",
                vec![input(shape, seed + 6)],
                |v| v[0].mean(),
                |x| x[0].iter().sum::<f64>() / x[0].len() as f64,
            ),
        ];
        for c in &cases {
            check(c, &format!("on {shape:?}"));
        }
    }
}

#[test]
fn broadcast_scalar_gradients_match_finite_differences() {
    // The one-element operand may have any shape: [1], [1, 1], or none at all.
    let shapes = [&[1usize][..], &[6], &[4, 9], &[2053]];
    let scalar_shapes = [&[1usize][..], &[1, 1], &[]];
    for (shape, scalar_shape) in shapes
        .into_iter()
        .flat_map(|s| scalar_shapes.map(|c| (s, c)))
    {
        let tensor = || input(shape, 7 + shape.len() as u64);
        let scalar = || input(scalar_shape, 99);
        let broadcast = |x: &[f64], s: f64, f: fn(f64, f64) -> f64| -> Vec<f64> {
            x.iter().map(|&a| f(a, s)).collect()
        };
        let cases = [
            case(
                "tensor + scalar",
                vec![tensor(), scalar()],
                |v| project_gpu(&v[0].add(&v[1])?),
                move |x| project_cpu(&broadcast(&x[0], x[1][0], |a, s| a + s)),
            ),
            case(
                "scalar + tensor",
                vec![scalar(), tensor()],
                |v| project_gpu(&v[0].add(&v[1])?),
                move |x| project_cpu(&broadcast(&x[1], x[0][0], |a, s| s + a)),
            ),
            case(
                "tensor − scalar",
                vec![tensor(), scalar()],
                |v| project_gpu(&v[0].sub(&v[1])?),
                move |x| project_cpu(&broadcast(&x[0], x[1][0], |a, s| a - s)),
            ),
            case(
                "scalar − tensor",
                vec![scalar(), tensor()],
                |v| project_gpu(&v[0].sub(&v[1])?),
                move |x| project_cpu(&broadcast(&x[1], x[0][0], |a, s| s - a)),
            ),
            case(
                "tensor · scalar",
                vec![tensor(), scalar()],
                |v| project_gpu(&v[0].mul(&v[1])?),
                move |x| project_cpu(&broadcast(&x[0], x[1][0], |a, s| a * s)),
            ),
            case(
                "scalar · tensor",
                vec![scalar(), tensor()],
                |v| project_gpu(&v[0].mul(&v[1])?),
                move |x| project_cpu(&broadcast(&x[1], x[0][0], |a, s| s * a)),
            ),
        ];
        for c in &cases {
            check(c, &format!("on {shape:?} and {scalar_shape:?}"));
        }
    }
}

#[test]
fn matmul_and_linear_gradients_match_finite_differences() {
    for (m, k, n) in [(1, 1, 1), (3, 7, 5), (13, 64, 3), (65, 129, 17)] {
        let product = case(
            "matmul",
            vec![input(&[m, k], 1), input(&[k, n], 2)],
            |v| project_gpu(&v[0].matmul(&v[1])?),
            move |x| project_cpu(&matmul64(&x[0], &x[1], m, k, n)),
        );
        check(&product, &format!("{m}×{k}×{n}"));
        let linear = case(
            "linear",
            vec![input(&[m, k], 3), input(&[k, n], 4), input(&[n], 5)],
            |v| project_gpu(&v[0].linear(&v[1], Some(&v[2]))?),
            move |x| {
                let mut y = matmul64(&x[0], &x[1], m, k, n);
                for (i, v) in y.iter_mut().enumerate() {
                    *v += x[2][i % n];
                }
                project_cpu(&y)
            },
        );
        check(&linear, &format!("{m}×{k}×{n}"));
    }
}

/// conv2d in f64, NCHW, dilation 1: `x` `[n, c, h, w]`, `w` `[co, c, kh, kw]`.
fn conv64(
    x: &[f64],
    w: &[f64],
    b: Option<&[f64]>,
    [n, c, h, wd]: [usize; 4],
    [co, _, kh, kw]: [usize; 4],
    (sh, sw): (usize, usize),
    (ph, pw): (usize, usize),
) -> Vec<f64> {
    let (oh, ow) = ((h + 2 * ph - kh) / sh + 1, (wd + 2 * pw - kw) / sw + 1);
    let mut y = vec![0.0; n * co * oh * ow];
    for (i, out) in y.iter_mut().enumerate() {
        let (img, o, r, col) = (
            i / (co * oh * ow),
            (i / (oh * ow)) % co,
            (i / ow) % oh,
            i % ow,
        );
        let mut sum = b.map_or(0.0, |b| b[o]);
        for ci in 0..c {
            for dr in 0..kh {
                for dc in 0..kw {
                    let (ir, ic) = (
                        (r * sh + dr) as isize - ph as isize,
                        (col * sw + dc) as isize - pw as isize,
                    );
                    if ir >= 0 && ic >= 0 && (ir as usize) < h && (ic as usize) < wd {
                        let xv = x[((img * c + ci) * h + ir as usize) * wd + ic as usize];
                        sum += xv * w[((o * c + ci) * kh + dr) * kw + dc];
                    }
                }
            }
        }
        *out = sum;
    }
    y
}

#[test]
fn conv2d_gradients_match_finite_differences() {
    use wgsl_nn::conv::Conv2dOptions;
    // (input, weight, stride, padding, bias): a padded 3×3, stride 2 without padding on
    // three channels, a 1×1 kernel.
    type Geometry = ([usize; 4], [usize; 4], (usize, usize), (usize, usize), bool);
    let cases: [Geometry; 3] = [
        ([1, 1, 4, 5], [2, 1, 3, 3], (1, 1), (1, 1), true),
        ([2, 3, 5, 4], [1, 3, 2, 2], (2, 2), (0, 0), false),
        ([1, 2, 3, 3], [3, 2, 1, 1], (1, 1), (0, 0), true),
    ];
    for (i, &(x_shape, w_shape, stride, padding, bias)) in cases.iter().enumerate() {
        let options = Conv2dOptions {
            stride,
            padding,
            ..Default::default()
        };
        let mut inputs = vec![
            input(&x_shape, 60 + i as u64),
            input(&w_shape, 70 + i as u64),
        ];
        if bias {
            inputs.push(input(&[w_shape[0]], 80 + i as u64));
        }
        let conv = case(
            "conv2d",
            inputs,
            move |v| project_gpu(&v[0].conv2d(&v[1], v.get(2), options)?),
            move |x| {
                let b = x.get(2).map(Vec::as_slice);
                project_cpu(&conv64(&x[0], &x[1], b, x_shape, w_shape, stride, padding))
            },
        );
        check(&conv, &format!("{x_shape:?} * {w_shape:?}"));
    }
}

#[test]
fn activation_gradients_match_finite_differences() {
    let trainable: Vec<Activation> = Activation::ALL
        .into_iter()
        .filter(|a| a.has_gradient() && *a != Activation::Prelu)
        .collect();
    for activation in trainable {
        for shape in [&[1usize][..], &[5, 11], &[1000]] {
            let features = *shape.last().unwrap();
            let c = case(
                activation.name(),
                vec![input(shape, 21)],
                move |v| project_gpu(&v[0].activation(activation)?),
                move |x| {
                    let params = ActivationParams {
                        features,
                        ..ActivationParams::default()
                    };
                    let y: Vec<f64> = x[0]
                        .iter()
                        .enumerate()
                        .map(|(i, &v)| cpu::activation_value(activation, v, &params, i))
                        .collect();
                    project_cpu(&y)
                },
            );
            check(&c, &format!("on {shape:?}"));
        }
    }
}

#[test]
fn prelu_gradients_reach_the_input_and_the_slopes() {
    for (rows, features, slopes) in [(1, 1, 1), (6, 5, 5), (40, 7, 1)] {
        let c = case(
            "prelu",
            vec![input(&[rows, features], 31), input(&[slopes], 32)],
            |v| project_gpu(&v[0].prelu(&v[1])?),
            move |x| {
                let y: Vec<f64> = x[0]
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        if v > 0.0 {
                            v
                        } else {
                            x[1][(i % features) % slopes] * v
                        }
                    })
                    .collect();
                project_cpu(&y)
            },
        );
        check(&c, &format!("{rows}×{features}, {slopes} slopes"));
    }
}

fn probabilities(seed: u64, len: usize) -> Vec<f32> {
    let mut r = rng(seed);
    (0..len).map(|_| r.random_range(0.05f32..0.95)).collect()
}

#[test]
fn loss_gradients_match_finite_differences() {
    let mean = |terms: Vec<f64>| terms.iter().sum::<f64>() / terms.len() as f64;
    for len in [1usize, 7, 300] {
        let shape = vec![len];
        let cases = [
            case(
                "mse",
                vec![input(&shape, 41), input(&shape, 42)],
                |v| Loss::mse().forward(&v[0], &v[1]),
                move |x| mean(zip_with(&x[0], &x[1], |a, t| (a - t).powi(2))),
            ),
            case(
                "l1",
                vec![input(&shape, 43), (shape.clone(), vec![0.0; len])],
                |v| Loss::l1().forward(&v[0], &v[1]),
                move |x| mean(zip_with(&x[0], &x[1], |a, t| (a - t).abs())),
            ),
            case(
                "mse, summed",
                vec![input(&shape, 44), input(&shape, 45)],
                |v| {
                    Loss::mse()
                        .with_reduction(Reduction::Sum)
                        .forward(&v[0], &v[1])
                },
                move |x| zip_with(&x[0], &x[1], |a, t| (a - t).powi(2)).iter().sum(),
            ),
            case(
                "bce",
                vec![(shape.clone(), probabilities(46, len))],
                move |v| {
                    let t = Var::from_slice(v[0].device(), &probabilities(47, len), [len], false)?;
                    Loss::bce().forward(&v[0], &t)
                },
                move |x| {
                    let t = probabilities(47, len);
                    mean(
                        x[0].iter()
                            .zip(t)
                            .map(|(&p, t)| {
                                let t = f64::from(t);
                                -(t * p.ln() + (1.0 - t) * (1.0 - p).ln())
                            })
                            .collect(),
                    )
                },
            ),
            case(
                "bce with logits",
                vec![input(&shape, 48)],
                move |v| {
                    let t = Var::from_slice(v[0].device(), &probabilities(49, len), [len], false)?;
                    Loss::bce_with_logits().forward(&v[0], &t)
                },
                move |x| {
                    let t = probabilities(49, len);
                    mean(
                        x[0].iter()
                            .zip(t)
                            .map(|(&z, t)| {
                                let p = 1.0 / (1.0 + (-z).exp());
                                let t = f64::from(t);
                                -(t * p.ln() + (1.0 - t) * (1.0 - p).ln())
                            })
                            .collect(),
                    )
                },
            ),
        ];
        for c in &cases {
            check(c, &format!("on [{len}]"));
        }
    }
}

#[test]
fn cross_entropy_gradient_matches_finite_differences() {
    for (rows, classes) in [(1, 2), (5, 10), (33, 3)] {
        let labels: Vec<u32> = (0..rows).map(|i| (i * 7 % classes) as u32).collect();
        let gpu_labels = labels.clone();
        let c = case(
            "cross_entropy",
            vec![input(&[rows, classes], 51)],
            move |v| {
                let labels = Labels::new(v[0].device(), &gpu_labels, classes)?;
                cross_entropy(&v[0], &labels, Reduction::Mean)
            },
            move |x| {
                let total: f64 = x[0]
                    .chunks(classes)
                    .zip(&labels)
                    .map(|(row, &label)| {
                        let max = row.iter().cloned().fold(f64::MIN, f64::max);
                        let lse = max + row.iter().map(|z| (z - max).exp()).sum::<f64>().ln();
                        lse - row[label as usize]
                    })
                    .sum();
                total / rows as f64
            },
        );
        check(&c, &format!("{rows}×{classes}"));
    }
}

#[test]
fn composite_graph_with_shared_subexpressions() {
    // f = mean(tanh(x·W + b) ⊙ tanh(x·W + b)) + s·Σ x: one value used twice, a scalar used
    // in a broadcast, several paths back to x.
    let (m, k, n) = (4, 6, 3);
    let c = case(
        "composite",
        vec![
            input(&[m, k], 61),
            input(&[k, n], 62),
            input(&[n], 63),
            input(&[1], 64),
        ],
        |v| {
            let h = v[0].linear(&v[1], Some(&v[2]))?.tanh()?;
            h.mul(&h)?.mean()?.add(&v[3].mul(&v[0].sum()?)?)
        },
        move |x| {
            let mut z = matmul64(&x[0], &x[1], m, k, n);
            for (i, v) in z.iter_mut().enumerate() {
                *v += x[2][i % n];
            }
            let h: f64 = z.iter().map(|v| v.tanh().powi(2)).sum::<f64>() / z.len() as f64;
            h + x[3][0] * x[0].iter().sum::<f64>()
        },
    );
    check(&c, "");
}

#[test]
fn lecture_linear_regression_first_numbers() {
    let device = gpu();
    let x = Var::from_slice(device, &[1.0, 2.0, 3.0, 4.0], [4], false).unwrap();
    let y = Var::from_slice(device, &[2.0, 4.0, 6.0, 8.0], [4], false).unwrap();
    let w = Var::scalar(device, 1.0, true).unwrap();
    let loss = w
        .mul(&x)
        .unwrap()
        .sub(&y)
        .unwrap()
        .square()
        .unwrap()
        .mean()
        .unwrap();
    loss.backward().unwrap();
    assert_eq!(loss.item().unwrap(), 7.5);
    assert_eq!(w.grad_vec().unwrap(), Some(vec![-15.0]));
    // The same through the loss object.
    let w2 = Var::scalar(device, 1.0, true).unwrap();
    let loss = Loss::mse().forward(&w2.mul(&x).unwrap(), &y).unwrap();
    loss.backward().unwrap();
    assert_eq!(loss.item().unwrap(), 7.5);
    assert_eq!(w2.grad_vec().unwrap(), Some(vec![-15.0]));
}

/// `x = 2`, `y = x²` (retained), `z = 3y`: dz/dx = 12, dz/dy = 3.
fn small_graph(device: &Device) -> (Var, Var, Var) {
    let x = Var::scalar(device, 2.0, true).unwrap();
    let y = x.square().unwrap();
    y.retain_grad().unwrap();
    let z = y.scale(3.0).unwrap();
    (x, y, z)
}

#[test]
fn gradients_accumulate_until_zeroed() {
    let (x, y, z) = small_graph(gpu());
    z.backward_retain_graph().unwrap();
    assert_eq!(x.grad_vec().unwrap(), Some(vec![12.0]));
    assert_eq!(y.grad_vec().unwrap(), Some(vec![3.0]));
    z.backward_retain_graph().unwrap();
    assert_eq!(x.grad_vec().unwrap(), Some(vec![24.0]));
    assert_eq!(y.grad_vec().unwrap(), Some(vec![6.0]));
    let held = x.grad().unwrap();
    x.zero_grad().unwrap();
    assert_eq!(x.grad_vec().unwrap(), Some(vec![0.0]));
    z.backward().unwrap();
    assert_eq!(x.grad_vec().unwrap(), Some(vec![12.0]));
    // A handle taken earlier is the same buffer, as `x.grad` is in PyTorch.
    assert_eq!(held.to_vec().unwrap(), vec![12.0]);
}

#[test]
fn only_leaves_and_retained_values_keep_gradients() {
    let device = gpu();
    let x = Var::scalar(device, 2.0, true).unwrap();
    let c = Var::scalar(device, 5.0, false).unwrap();
    let hidden = x.mul(&c).unwrap();
    let kept = hidden.sigmoid().unwrap();
    kept.retain_grad().unwrap();
    let out = kept.scale(2.0).unwrap();
    out.backward().unwrap();
    assert!(
        hidden.grad().is_none(),
        "an intermediate keeps no gradient unless asked"
    );
    assert_eq!(kept.grad_vec().unwrap(), Some(vec![2.0]));
    assert!(c.grad().is_none(), "a constant gets no gradient");
    assert!(x.grad().is_some());
    assert!(x.is_leaf() && !hidden.is_leaf());
    assert_eq!(hidden.grad_fn(), Some("mul"));
    assert_eq!(kept.grad_fn(), Some("sigmoid"));
}

#[test]
fn a_second_backward_through_a_freed_graph_is_an_error() {
    let (x, _, z) = small_graph(gpu());
    z.backward().unwrap();
    let error = z.backward().unwrap_err();
    assert!(matches!(error, Error::GraphFreed { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("second time") && message.contains("backward_retain_graph"),
        "{message}"
    );
    // The failed call changed nothing.
    assert_eq!(x.grad_vec().unwrap(), Some(vec![12.0]));
    // A new forward pass builds a new graph.
    let z2 = x.square().unwrap().scale(3.0).unwrap();
    z2.backward().unwrap();
    assert_eq!(x.grad_vec().unwrap(), Some(vec![24.0]));
}

#[test]
fn a_graph_freed_by_another_output_is_reported() {
    let device = gpu();
    let x = Var::scalar(device, 3.0, true).unwrap();
    let shared = x.sigmoid().unwrap();
    let a = shared.scale(2.0).unwrap();
    let b = shared.scale(5.0).unwrap();
    a.backward().unwrap();
    let error = b.backward().unwrap_err();
    assert!(
        matches!(&error, Error::GraphFreed { op } if op == "sigmoid"),
        "{error}"
    );
}

#[test]
fn backward_needs_a_scalar_that_requires_grad() {
    let device = gpu();
    let v = Var::from_slice(device, &[1.0, 2.0], [2], true).unwrap();
    let doubled = v.scale(2.0).unwrap();
    let message = doubled.backward().unwrap_err().to_string();
    assert!(
        message.contains("scalar") && message.contains("[2]"),
        "{message}"
    );
    let constant = Var::scalar(device, 1.0, false).unwrap();
    let message = constant
        .scale(2.0)
        .unwrap()
        .backward()
        .unwrap_err()
        .to_string();
    assert!(message.contains("does not require a gradient"), "{message}");
    assert!(constant.retain_grad().is_err());
}

#[test]
fn the_step_function_has_no_gradient_and_a_failed_backward_changes_nothing() {
    let device = gpu();
    let w = Var::from_slice(device, &[0.5, -0.5], [2], true).unwrap();
    let x = Var::from_slice(device, &[0.5, -0.5], [2], true).unwrap();
    // A first pass gives w a gradient.
    w.sum().unwrap().backward().unwrap();
    let stepped = x.activation(Activation::STEP).unwrap();
    assert_eq!(stepped.to_vec().unwrap(), vec![1.0, 0.0]);
    // w is reached (and its accumulation recorded) before the step function fails.
    let total = w.add(&stepped).unwrap().sum().unwrap();
    let error = total.backward().unwrap_err();
    assert!(matches!(error, Error::NoGradient { .. }), "{error}");
    assert_eq!(w.grad_vec().unwrap(), Some(vec![1.0, 1.0]));
    assert!(x.grad().is_none());
    // The graph was not freed by the failed pass: its other branch still works.
    assert_eq!(total.grad_fn(), Some("sum"));
}

#[test]
fn a_long_chain_of_ops_drops_without_overflowing_the_stack() {
    // 20,000 nodes: a recursive drop needs far more than this thread's 512 KiB of stack.
    let handle = std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(|| {
            let x = Var::scalar(gpu(), 1.0, true).unwrap();
            let mut y = x.clone();
            for _ in 0..20_000 {
                y = y.scale(1.0).unwrap();
            }
            drop(y);
            x.item().unwrap()
        })
        .unwrap();
    assert_eq!(handle.join().expect("the drop overflowed the stack"), 1.0);
}

#[test]
fn shape_errors_name_both_shapes() {
    let device = gpu();
    let a = Var::from_slice(device, &[0.0; 6], [2, 3], true).unwrap();
    let b = Var::from_slice(device, &[0.0; 4], [4], true).unwrap();
    let c = Var::from_slice(device, &[0.0; 8], [4, 2], true).unwrap();
    for (error, found) in [
        (a.add(&b).unwrap_err(), "[4]"),
        (a.matmul(&c).unwrap_err(), "[4, 2]"),
    ] {
        let message = error.to_string();
        assert!(
            message.contains("[2, 3]") && message.contains(found),
            "{message}"
        );
    }
    let labels = Labels::new(device, &[0, 1, 2], 3).unwrap();
    assert!(cross_entropy(&a, &labels, Reduction::Mean).is_err());
    assert!(Var::leaf(Tensor::from_u32(device, &[1], [1]).unwrap(), true).is_err());
}

#[test]
fn backward_is_one_submit_without_host_syncs() {
    let device = fresh_gpu();
    let x = Var::from_slice(&device, &away_from_zero(1, 64 * 20), [64, 20], false).unwrap();
    let w1 =
        Var::parameter(Tensor::from_slice(&device, &away_from_zero(2, 20 * 16), [20, 16]).unwrap())
            .unwrap();
    let b1 = Var::parameter(Tensor::zeros(&device, [16]).unwrap()).unwrap();
    let w2 =
        Var::parameter(Tensor::from_slice(&device, &away_from_zero(3, 16 * 4), [16, 4]).unwrap())
            .unwrap();
    let labels = Labels::new(&device, &[1; 64], 4).unwrap();
    let loss = cross_entropy(
        &x.linear(&w1, Some(&b1))
            .unwrap()
            .relu()
            .unwrap()
            .matmul(&w2)
            .unwrap(),
        &labels,
        Reduction::Mean,
    )
    .unwrap();
    let before = device.counters();
    loss.backward().unwrap();
    let after = device.counters();
    assert_eq!(after.submits - before.submits, 1);
    assert_eq!(after.host_syncs - before.host_syncs, 0);
    assert!(w1.grad().is_some() && b1.grad().is_some() && w2.grad().is_some());
}

#[test]
fn optimizer_rejects_computed_values_and_duplicates() {
    let device = gpu();
    let w = Var::scalar(device, 1.0, true).unwrap();
    let computed = w.scale(2.0).unwrap();
    let constant = Var::scalar(device, 1.0, false).unwrap();
    for params in [vec![&computed], vec![&constant], vec![&w, &w]] {
        let error = VarOptimizer::new(OptimizerConfig::sgd(0.1), &params).unwrap_err();
        assert!(matches!(error, Error::InvalidArgument(_)), "{error}");
    }
}

#[test]
fn autograd_mlp_trains_like_the_cpu_oracle() {
    // The lecture's MLP shape, shrunk: three SGD steps of linear → ReLU → linear → CE through
    // autograd must match the oracle's training step (the same graph, in f64).
    let device = gpu();
    let (batch, inputs, hidden, classes) = (16, 30, 12, 5);
    let mut r = rng(77);
    let x: Vec<f32> = (0..batch * inputs)
        .map(|_| r.random_range(-1.0..1.0))
        .collect();
    let labels: Vec<u32> = (0..batch)
        .map(|_| r.random_range(0..classes as u32))
        .collect();
    let mut layers = vec![
        CpuLinear {
            weight: away_from_zero(81, inputs * hidden),
            bias: away_from_zero(82, hidden),
            inputs,
            outputs: hidden,
        },
        CpuLinear {
            weight: away_from_zero(83, hidden * classes),
            bias: away_from_zero(84, classes),
            inputs: hidden,
            outputs: classes,
        },
    ];
    let params: Vec<(Var, Var)> = layers
        .iter()
        .map(|l| {
            (
                Var::from_slice(device, &l.weight, [l.inputs, l.outputs], true).unwrap(),
                Var::from_slice(device, &l.bias, [l.outputs], true).unwrap(),
            )
        })
        .collect();
    let config = OptimizerConfig::sgd(0.1);
    let leaves: Vec<&Var> = params.iter().flat_map(|(w, b)| [w, b]).collect();
    let mut optimizer = VarOptimizer::new(config, &leaves).unwrap();
    let xv = Var::from_slice(device, &x, [batch, inputs], false).unwrap();
    let gpu_labels = Labels::new(device, &labels, classes).unwrap();
    let mut states = vec![OptimizerState::default(); 4];
    for step in 0..3 {
        optimizer.zero_grad().unwrap();
        let h = xv
            .linear(&params[0].0, Some(&params[0].1))
            .unwrap()
            .relu()
            .unwrap();
        let logits = h.linear(&params[1].0, Some(&params[1].1)).unwrap();
        let loss = cross_entropy(&logits, &gpu_labels, Reduction::Mean).unwrap();
        loss.backward().unwrap();
        optimizer.step().unwrap();
        let expected = cpu::mlp_train_step(
            &mut layers,
            Activation::Relu,
            &x,
            &labels,
            &config,
            &mut states,
        );
        let got = loss.item().unwrap();
        assert!(
            (f64::from(got) - expected).abs() < 1e-5,
            "step {step}: loss {got} vs {expected}"
        );
    }
    for (l, (w, b)) in params.iter().enumerate() {
        for (got, want) in [
            (w.to_vec().unwrap(), &layers[l].weight),
            (b.to_vec().unwrap(), &layers[l].bias),
        ] {
            for (g, e) in got.iter().zip(want.iter()) {
                assert!((g - e).abs() < 1e-5, "layer {l}: {g} vs {e}");
            }
        }
    }
}

#[test]
fn an_optimizer_step_between_forward_and_backward_is_an_error() {
    let device = gpu();
    let w = Var::scalar(device, 1.0, true).unwrap();
    let x = Var::from_slice(device, &[1.0, 2.0], [2], false).unwrap();
    let mut sgd = VarOptimizer::new(OptimizerConfig::sgd(0.1), &[&w]).unwrap();
    let loss = w.mul(&x).unwrap().sum().unwrap();
    loss.backward_retain_graph().unwrap();
    sgd.step().unwrap();
    let error = loss.backward().unwrap_err();
    assert!(
        matches!(&error, Error::ModifiedInPlace { op, input: 0 } if op == "mul"),
        "{error}"
    );
    assert!(error.to_string().contains("before step()"), "{error}");
    assert_eq!(
        w.grad_vec().unwrap(),
        Some(vec![3.0]),
        "the failed pass added nothing"
    );
    // A fresh forward pass reads the new value and is fine.
    let loss = w.mul(&x).unwrap().sum().unwrap();
    loss.backward().unwrap();
    assert_eq!(w.grad_vec().unwrap(), Some(vec![6.0]));
}
