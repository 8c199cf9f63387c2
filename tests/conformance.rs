//! The kernels check the web page runs in the browser ([`wgsl_nn::conformance`]), run
//! natively: every row must pass here too, and the check must be able to fail.

mod common;

use common::gpu;
use wgsl_nn::conformance::{self, Outcome};

#[test]
fn every_kernel_family_passes_the_kernels_check() {
    let rows = pollster::block_on(conformance::run(gpu(), |_| {}));
    let families: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r.family.as_str()).collect();
    for family in [
        "matmul/Blocked",
        "matmul/Tiled",
        "matmul/Texture",
        "matmul/Vector",
        "matmul/Broadcast",
        "conv2d/Blocked",
        "conv2d/Tiled",
        "conv2d/Broadcast",
        "pool2d",
        "dropout",
        "activation",
        "softmax cross-entropy",
        "softmax",
        "log-softmax",
        "reduce",
        "metrics",
        "optimizer",
        "captured step",
    ] {
        assert!(families.contains(family), "no rows for {family}");
    }
    let failed: Vec<String> = rows
        .iter()
        .filter(|r| r.failed())
        .map(|r| format!("{} {}: {:?}", r.family, r.case, r.outcome))
        .collect();
    assert!(failed.is_empty(), "failed rows:\n{}", failed.join("\n"));
    // lavapipe has subgroups of 8: the broadcast family runs rather than being skipped.
    if gpu().subgroup_min_size().is_some_and(|s| s >= 8) {
        assert!(
            rows.iter()
                .all(|r| !matches!(r.outcome, Outcome::Skipped(_))),
            "nothing may be skipped on a device with subgroups of 8"
        );
    }
    let summary = conformance::Summary::of(&rows);
    assert_eq!(summary.failed, 0);
    eprintln!(
        "{}: {} rows passed ({} skipped), worst error {:e}",
        gpu().adapter(),
        summary.rows,
        summary.skipped,
        summary.worst_error
    );
}

#[test]
fn the_bounds_reject_an_off_by_one() {
    use wgsl_nn::cpu::tolerance::{check_within, matmul_reference_and_bound};
    use wgsl_nn::matmul::MatmulForm;
    let (m, k, n) = (7, 13, 29);
    let a: Vec<f32> = (0..m * k)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) / 5.0)
        .collect();
    let b: Vec<f32> = (0..k * n)
        .map(|i| ((i * 5 % 13) as f32 - 6.0) / 6.0)
        .collect();
    let (reference, bound) =
        matmul_reference_and_bound(&a, &b, None, MatmulForm::AB, (m, k, n), k + 2);
    // The same product without its last term, as a kernel with an off-by-one in k would give.
    let short = wgsl_nn::cpu::matmul(&a[..], &b[..], None, MatmulForm::AB, m, k, n);
    let mut wrong = short.clone();
    for i in 0..m {
        for j in 0..n {
            wrong[i * n + j] -= a[i * k + k - 1] * b[(k - 1) * n + j];
        }
    }
    assert!(check_within(&short, &reference, &bound).is_ok());
    assert!(check_within(&wrong, &reference, &bound).is_err());
}
