//! Reductions against the CPU oracle, past lavapipe's 65535-iteration loop limit, and
//! bit-reproducible.
//!
//! Tolerance: a sum of n terms in any order is within γₙ·Σ|xᵢ| of the exact sum (Higham
//! §4.2), plus one rounding of the oracle.

mod common;

use common::{F32_UNIT_ROUNDOFF, gpu, random_vec, rng};
use wgsl_nn::reduce::{Axis, Sum, mean, sum, sum_columns, sum_rows};
use wgsl_nn::{Tensor, cpu};

/// γₙ·Σ|x| plus the oracle's rounding (the library's bound, which the kernels check uses too).
use wgsl_nn::cpu::tolerance::sum as bound;

const SHAPES: [(usize, usize); 7] = [
    (1, 1),
    (7, 13),
    (64, 128),
    (1, 1_000_003),
    (70_000, 3),
    (1025, 1023),
    (3, 70_001),
];

#[test]
fn sum_rows_matches_cpu() {
    for (rows, cols) in SHAPES {
        let x_host = random_vec(&mut rng(rows as u64), rows * cols);
        let x = Tensor::from_slice(gpu(), &x_host, [rows, cols]).unwrap();
        let got = sum_rows(&x).unwrap().to_vec().unwrap();
        let reference = cpu::sum_rows(&x_host, cols);
        for (i, (g, r)) in got.iter().zip(&reference).enumerate() {
            let b = bound(&x_host[i * cols..(i + 1) * cols]);
            assert!(
                (f64::from(*g) - f64::from(*r)).abs() <= b,
                "{rows}x{cols} row {i}: {g} vs {r}"
            );
        }
    }
}

#[test]
fn sum_columns_matches_cpu() {
    for (rows, cols) in SHAPES {
        let x_host = random_vec(&mut rng(cols as u64), rows * cols);
        let x = Tensor::from_slice(gpu(), &x_host, [rows, cols]).unwrap();
        let got = sum_columns(&x).unwrap().to_vec().unwrap();
        let reference = cpu::sum_columns(&x_host, cols);
        for (j, (g, r)) in got.iter().zip(&reference).enumerate() {
            let column: Vec<f32> = (0..rows).map(|i| x_host[i * cols + j]).collect();
            assert!(
                (f64::from(*g) - f64::from(*r)).abs() <= bound(&column),
                "{rows}x{cols} column {j}: {g} vs {r}"
            );
        }
    }
}

#[test]
fn sum_and_mean_match_cpu() {
    for n in [1usize, 2, 1023, 1024, 1025, 65_536, 1_000_003, 3_000_017] {
        let x_host = random_vec(&mut rng(n as u64), n);
        let x = Tensor::from_slice(gpu(), &x_host, [n]).unwrap();
        let total = f64::from(sum(&x).unwrap().to_vec().unwrap()[0]);
        let reference = cpu::sum(&x_host);
        assert!(
            (total - reference).abs() <= bound(&x_host),
            "n={n}: {total} vs {reference}"
        );
        let m = f64::from(mean(&x).unwrap().to_vec().unwrap()[0]);
        // One more rounding for the scale 1/n and one for the product.
        let tol =
            bound(&x_host) / n as f64 + 3.0 * F32_UNIT_ROUNDOFF * (reference / n as f64).abs();
        assert!(
            (m - reference / n as f64).abs() <= tol,
            "n={n}: mean {m} vs {}",
            reference / n as f64
        );
    }
}

#[test]
fn sums_are_bit_reproducible() {
    let x_host = random_vec(&mut rng(1), 2_000_003);
    let x = Tensor::from_slice(gpu(), &x_host, [2_000_003]).unwrap();
    let first = sum(&x).unwrap().to_vec().unwrap();
    for _ in 0..3 {
        assert_eq!(sum(&x).unwrap().to_vec().unwrap(), first);
    }
}

#[test]
fn accumulating_sum_adds_into_the_output() {
    let x = Tensor::from_slice(gpu(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]).unwrap();
    let out = Tensor::from_slice(gpu(), &[10.0, 20.0, 30.0], [3]).unwrap();
    let plan = Sum::new(&x, &out, Axis::Columns, 0.5, true).unwrap();
    let mut encoder = gpu().encoder();
    plan.record(&mut encoder);
    plan.record(&mut encoder);
    encoder.submit().unwrap();
    assert_eq!(out.to_vec().unwrap(), vec![15.0, 27.0, 39.0]);
}

#[test]
fn reduction_output_shape_is_checked() {
    let x = Tensor::uninit(gpu(), [4, 5]).unwrap();
    let out = Tensor::uninit(gpu(), [4]).unwrap();
    let error = Sum::new(&x, &out, Axis::Columns, 1.0, false)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("5 elements") && error.contains("[4]"),
        "{error}"
    );
}
