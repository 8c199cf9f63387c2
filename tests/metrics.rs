//! Argmax and correct-prediction counts against the CPU oracle (exact: integers).

mod common;

use common::{gpu, random_vec, rng};
use rand::Rng;
use wgsl_nn::loss::Labels;
use wgsl_nn::metrics::{Metric, argmax, count_correct};
use wgsl_nn::{DType, Tensor, cpu};

#[test]
fn argmax_matches_cpu() {
    for (rows, cols) in [(1, 1), (1, 10), (7, 13), (64, 10), (10_000, 10)] {
        let scores = random_vec(&mut rng(rows as u64), rows * cols);
        let t = Tensor::from_slice(gpu(), &scores, [rows, cols]).unwrap();
        assert_eq!(
            argmax(&t).unwrap().to_vec_u32().unwrap(),
            cpu::argmax(&scores, cols),
            "{rows}x{cols}"
        );
    }
}

#[test]
fn argmax_takes_the_first_maximum_and_nan_as_maximum() {
    let scores = [
        1.0,
        3.0,
        3.0,
        0.0,
        f32::NAN,
        5.0,
        2.0,
        2.0,
        2.0,
        -1.0,
        -1.0,
        f32::NAN,
    ];
    let t = Tensor::from_slice(gpu(), &scores, [4, 3]).unwrap();
    let expected = vec![1, 1, 0, 2];
    assert_eq!(cpu::argmax(&scores, 3), expected);
    assert_eq!(argmax(&t).unwrap().to_vec_u32().unwrap(), expected);
}

#[test]
fn count_correct_matches_cpu_and_accumulates() {
    let (rows, cols) = (1000, 10);
    let scores = random_vec(&mut rng(2), rows * cols);
    let mut r = rng(3);
    let labels_host: Vec<u32> = (0..rows).map(|_| r.random_range(0..cols as u32)).collect();
    let t = Tensor::from_slice(gpu(), &scores, [rows, cols]).unwrap();
    let labels = Labels::new(gpu(), &labels_host, cols).unwrap();
    let expected = cpu::count_correct(&scores, cols, &labels_host);
    assert_eq!(count_correct(&t, &labels).unwrap(), expected);

    // Recorded three times into one counter: three times the count, no host sync between.
    let counter = Tensor::zeros_of(gpu(), [1], DType::U32).unwrap();
    let metric = Metric::count_correct(&t, &labels, &counter).unwrap();
    let mut encoder = gpu().encoder();
    for _ in 0..3 {
        metric.record(&mut encoder);
    }
    encoder.submit().unwrap();
    assert_eq!(counter.to_vec_u32().unwrap(), vec![3 * expected]);
}

#[test]
fn count_correct_checks_shapes_and_types() {
    let t = Tensor::uninit(gpu(), [4, 3]).unwrap();
    let labels = Labels::new(gpu(), &[0, 1, 2], 3).unwrap();
    let counter = Tensor::zeros_of(gpu(), [1], DType::U32).unwrap();
    assert!(Metric::count_correct(&t, &labels, &counter).is_err());
    let labels = Labels::new(gpu(), &[0, 1, 2, 0], 3).unwrap();
    let float_counter = Tensor::zeros(gpu(), [1]).unwrap();
    let error = Metric::count_correct(&t, &labels, &float_counter)
        .unwrap_err()
        .to_string();
    assert!(error.contains("U32") && error.contains("F32"), "{error}");
}

#[test]
fn argmax_and_count_over_rows_past_the_loop_limit_match_cpu() {
    // 70,000 columns: past lavapipe's 65535 loop iterations per invocation. The maxima sit
    // before, at and after the limit, one row has a NaN late (the maximum), one ties.
    let (rows, cols) = (5, 70_000);
    let mut scores = random_vec(&mut rng(70), rows * cols);
    scores[cols - 1] = 2.0; // row 0: the last column
    scores[cols + 65_534] = 2.0; // row 1: just before the limit
    scores[2 * cols + 65_536] = 2.0; // row 2: just past it
    scores[3 * cols + 10] = 2.0; // row 3: early, with a NaN late
    scores[3 * cols + 69_000] = f32::NAN;
    scores[4 * cols + 40_000] = 3.0; // row 4: a tie, the first one wins
    scores[4 * cols + 69_999] = 3.0;
    let expected = cpu::argmax(&scores, cols);
    assert_eq!(expected, [69_999, 65_534, 65_536, 69_000, 40_000]);
    let t = Tensor::from_slice(gpu(), &scores, [rows, cols]).unwrap();
    assert_eq!(argmax(&t).unwrap().to_vec_u32().unwrap(), expected);
    let labels_host = [69_999, 1, 65_536, 69_000, 69_999];
    let labels = Labels::new(gpu(), &labels_host, cols).unwrap();
    assert_eq!(
        count_correct(&t, &labels).unwrap(),
        cpu::count_correct(&scores, cols, &labels_host)
    );
    assert_eq!(cpu::count_correct(&scores, cols, &labels_host), 3);
}
