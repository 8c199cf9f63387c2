//! Elementwise arithmetic against the CPU oracle.
//!
//! Tolerance: add, mul and scale are one correctly rounded operation, so the GPU must agree
//! exactly; axpy is one fused multiply-add on the oracle and at most two roundings on a
//! device that does not fuse (Vulkan allows either): 2u relative to the operands' magnitude.
//! The scalar broadcasts follow the same rules: `α·s·x` and the fill are exact, `α·x + β·s`
//! is held to 2u like axpy.

mod common;

use common::{F32_UNIT_ROUNDOFF, gpu, random_vec, rng};
use wgsl_nn::elementwise::{add, add_scalar, axpy, fill_scalar, mul, mul_scalar, scale, sub};
use wgsl_nn::{Error, Tensor, cpu};

const LENGTHS: [usize; 5] = [1, 7, 64, 1000, 1_000_003];

fn pair(len: usize) -> (Vec<f32>, Vec<f32>, Tensor, Tensor) {
    let mut r = rng(len as u64);
    let (x, y) = (random_vec(&mut r, len), random_vec(&mut r, len));
    let (xt, yt) = (
        Tensor::from_slice(gpu(), &x, [len]).unwrap(),
        Tensor::from_slice(gpu(), &y, [len]).unwrap(),
    );
    (x, y, xt, yt)
}

type GpuBinary = fn(&Tensor, &Tensor) -> wgsl_nn::Result<Tensor>;
type CpuBinary = fn(&[f32], &[f32]) -> Vec<f32>;

/// The binary ops and their oracles: one correctly rounded operation each, so exact.
const BINARY: [(&str, GpuBinary, CpuBinary); 3] = [
    ("add", add, cpu::add),
    ("sub", sub, cpu::sub),
    ("mul", mul, cpu::mul),
];

#[test]
fn add_sub_and_mul_match_cpu() {
    for (name, gpu_op, cpu_op) in BINARY {
        for len in LENGTHS {
            let (x, y, xt, yt) = pair(len);
            assert_eq!(
                gpu_op(&xt, &yt).unwrap().to_vec().unwrap(),
                cpu_op(&x, &y),
                "{name}, length {len}"
            );
        }
    }
}

#[test]
fn scale_matches_cpu() {
    for len in LENGTHS {
        let (x, _, xt, _) = pair(len);
        assert_eq!(
            scale(&xt, -0.3).unwrap().to_vec().unwrap(),
            cpu::scale(&x, -0.3),
            "length {len}"
        );
    }
}

#[test]
fn axpy_matches_cpu() {
    for len in LENGTHS {
        let (x, y, xt, yt) = pair(len);
        axpy(0.7, &xt, &yt).unwrap();
        let got = yt.to_vec().unwrap();
        let reference = cpu::axpy(0.7, &x, &y);
        for i in 0..len {
            let magnitude = f64::from((0.7 * x[i]).abs() + y[i].abs());
            let error = (f64::from(got[i]) - f64::from(reference[i])).abs();
            assert!(
                error <= 2.0 * F32_UNIT_ROUNDOFF * magnitude,
                "length {len}, element {i}: {} vs {}",
                got[i],
                reference[i]
            );
        }
    }
}

fn scalar(value: f32) -> Tensor {
    Tensor::from_slice(gpu(), &[value], [1]).unwrap()
}

#[test]
fn mul_scalar_matches_cpu() {
    for len in LENGTHS {
        let (x, _, xt, _) = pair(len);
        for (s, alpha) in [(1.7f32, 1.0f32), (-0.37, -2.0)] {
            assert_eq!(
                mul_scalar(&xt, &scalar(s), alpha)
                    .unwrap()
                    .to_vec()
                    .unwrap(),
                cpu::mul_scalar(&x, s, alpha),
                "length {len}, s {s}, alpha {alpha}"
            );
        }
    }
}

#[test]
fn add_scalar_matches_cpu() {
    for len in LENGTHS {
        let (x, _, xt, _) = pair(len);
        for (s, alpha, beta) in [
            (0.3f32, 1.0f32, 1.0f32),
            (0.3, 1.0, -1.0),
            (-2.5, -1.0, 0.5),
        ] {
            let got = add_scalar(&xt, &scalar(s), alpha, beta)
                .unwrap()
                .to_vec()
                .unwrap();
            let reference = cpu::add_scalar(&x, s, alpha, beta);
            for i in 0..len {
                let magnitude = f64::from((alpha * x[i]).abs() + (beta * s).abs());
                let error = (f64::from(got[i]) - f64::from(reference[i])).abs();
                assert!(
                    error <= 2.0 * F32_UNIT_ROUNDOFF * magnitude,
                    "length {len}, element {i}: {} vs {}",
                    got[i],
                    reference[i]
                );
            }
        }
    }
}

#[test]
fn fill_scalar_matches_cpu() {
    for len in LENGTHS {
        let got = fill_scalar(&scalar(-3.25), 0.5, [len])
            .unwrap()
            .to_vec()
            .unwrap();
        assert_eq!(got, cpu::fill_scalar(-3.25, 0.5, len), "length {len}");
    }
}

#[test]
fn scalar_operands_must_have_one_element() {
    let x = Tensor::uninit(gpu(), [3]).unwrap();
    let two = Tensor::uninit(gpu(), [2]).unwrap();
    for error in [
        mul_scalar(&x, &two, 1.0).unwrap_err(),
        add_scalar(&x, &two, 1.0, 1.0).unwrap_err(),
        fill_scalar(&two, 1.0, [3]).unwrap_err(),
    ] {
        let message = error.to_string();
        assert!(matches!(error, Error::Shape { .. }), "{message}");
        assert!(
            message.contains("one-element") && message.contains("[2]"),
            "{message}"
        );
    }
}

#[test]
fn elementwise_shapes_and_aliasing_are_checked() {
    let a = Tensor::uninit(gpu(), [3]).unwrap();
    let b = Tensor::uninit(gpu(), [4]).unwrap();
    let error = add(&a, &b).unwrap_err().to_string();
    assert!(error.contains("[3]") && error.contains("[4]"), "{error}");
    assert!(matches!(
        axpy(1.0, &a, &a).unwrap_err(),
        Error::InvalidArgument(_)
    ));
}

#[test]
fn repeated_eager_ops_take_their_output_and_uniform_buffers_from_the_pool() {
    let device = common::fresh_gpu();
    let x = Tensor::from_slice(&device, &[1.0; 100], [100]).unwrap();
    // The first call (and read-back) creates what the pool then holds.
    assert_eq!(add(&x, &x).unwrap().to_vec().unwrap(), vec![2.0; 100]);
    let before = device.counters().buffers_created;
    for _ in 0..5 {
        let y = add(&x, &x).unwrap();
        assert_eq!(y.to_vec().unwrap(), vec![2.0; 100]);
    }
    assert_eq!(
        device.counters().buffers_created,
        before,
        "each call created buffers instead of reusing the pool's"
    );
}
