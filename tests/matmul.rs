//! Every matmul form and kernel against the CPU oracle.
//!
//! Tolerance: each output is a sum of K products (plus a bias and an accumulated value when
//! asked), so |gpu − exact| ≤ γ_{K+2}·Σₖ|aᵢₖ·bₖⱼ| in any summation order, and the oracle itself
//! is the exact value rounded once (|ref − exact| ≤ u·|exact|). A missing or doubled term (an
//! off-by-one at a tile edge) is about Σ/K, which is far above K·u·Σ for every K tested:
//! `bound_rejects_an_off_by_one_in_k` proves the bound can fail.

mod common;

use common::{F32_UNIT_ROUNDOFF, check_within, gamma, gpu, random_vec, rng};
use proptest::prelude::*;
use wgsl_nn::matmul::{MatmulDims, MatmulForm, MatmulKernel, MatmulOptions, matmul, matmul_into};
use wgsl_nn::{Tensor, cpu};

/// Stored shapes of A and B for `form`, given op(A) M×K and op(B) K×N.
fn stored_shapes(form: MatmulForm, m: usize, k: usize, n: usize) -> ([usize; 2], [usize; 2]) {
    let a = if form.trans_a() { [k, m] } else { [m, k] };
    let b = if form.trans_b() { [n, k] } else { [k, n] };
    (a, b)
}

/// The oracle's `op(A)·op(B) (+ bias)` and each element's bound (see the module doc).
use wgsl_nn::cpu::tolerance::matmul_reference_and_bound as reference_and_bound;

#[derive(Clone, Copy, Debug)]
struct Case {
    m: usize,
    k: usize,
    n: usize,
    form: MatmulForm,
    kernel: MatmulKernel,
    bias: bool,
    accumulate: bool,
}

impl Case {
    fn new(m: usize, k: usize, n: usize, form: MatmulForm, kernel: MatmulKernel) -> Self {
        Self {
            m,
            k,
            n,
            form,
            kernel,
            bias: false,
            accumulate: false,
        }
    }

    /// Runs the case on the GPU and checks it; returns the largest error.
    fn run(self, seed: u64) -> Result<f64, String> {
        let Case {
            m,
            k,
            n,
            form,
            kernel,
            ..
        } = self;
        let device = gpu();
        let mut rng = rng(seed);
        let a_host = random_vec(&mut rng, m * k);
        let b_host = random_vec(&mut rng, k * n);
        let bias_host = self.bias.then(|| random_vec(&mut rng, n));
        let c_host = random_vec(&mut rng, m * n);
        let (a_shape, b_shape) = stored_shapes(form, m, k, n);

        let a = Tensor::from_slice(device, &a_host, a_shape).map_err(|e| e.to_string())?;
        let b = Tensor::from_slice(device, &b_host, b_shape).map_err(|e| e.to_string())?;
        let bias = match &bias_host {
            Some(values) => {
                Some(Tensor::from_slice(device, values, [n]).map_err(|e| e.to_string())?)
            }
            None => None,
        };
        let c = Tensor::from_slice(device, &c_host, [m, n]).map_err(|e| e.to_string())?;
        let options = MatmulOptions {
            form,
            bias: bias.as_ref(),
            accumulate: self.accumulate,
            kernel: Some(kernel),
            ..Default::default()
        };
        matmul_into(&a, &b, &c, &options).map_err(|e| e.to_string())?;
        let result = c.to_vec().map_err(|e| e.to_string())?;

        let (mut reference, mut bound) = reference_and_bound(
            &a_host,
            &b_host,
            bias_host.as_deref(),
            form,
            (m, k, n),
            k + 2,
        );
        if self.accumulate {
            // One more rounding, of a sum whose scale grows by |c|.
            let factor = gamma(k + 2) + 2.0 * F32_UNIT_ROUNDOFF;
            for i in 0..m * n {
                reference[i] = (f64::from(reference[i]) + f64::from(c_host[i])) as f32;
                bound[i] += factor * f64::from(c_host[i]).abs()
                    + F32_UNIT_ROUNDOFF * f64::from(reference[i]).abs();
            }
        }
        check_within(&result, &reference, &bound).map_err(|e| format!("{self:?}: {e}"))
    }
}

/// The shapes the issue names, as (M, K, N): MNIST-MLP layers and their gradients, primes,
/// degenerate vectors and one large cube.
const SHAPES: [(usize, usize, usize); 8] = [
    (1, 1, 1),
    (7, 13, 29),
    (64, 784, 128),
    (784, 64, 128),
    (128, 64, 784),
    (1000, 1, 1000),
    (513, 257, 129),
    (1024, 1024, 1024),
];

fn check_all_shapes(form: MatmulForm, kernel: MatmulKernel) {
    for (i, &(m, k, n)) in SHAPES.iter().enumerate() {
        let worst = Case::new(m, k, n, form, kernel)
            .run(1000 + i as u64)
            .unwrap_or_else(|e| panic!("{e}"));
        eprintln!("{form:?} {kernel:?} {m}x{k}x{n}: max error {worst:e}");
    }
}

#[test]
fn matmul_ab_blocked_matches_cpu() {
    check_all_shapes(MatmulForm::AB, MatmulKernel::Blocked);
}

#[test]
fn matmul_atb_blocked_matches_cpu() {
    check_all_shapes(MatmulForm::AtB, MatmulKernel::Blocked);
}

#[test]
fn matmul_abt_blocked_matches_cpu() {
    check_all_shapes(MatmulForm::ABt, MatmulKernel::Blocked);
}

#[test]
fn matmul_ab_tiled_matches_cpu() {
    check_all_shapes(MatmulForm::AB, MatmulKernel::Tiled);
}

#[test]
fn matmul_atb_tiled_matches_cpu() {
    check_all_shapes(MatmulForm::AtB, MatmulKernel::Tiled);
}

#[test]
fn matmul_abt_tiled_matches_cpu() {
    check_all_shapes(MatmulForm::ABt, MatmulKernel::Tiled);
}

#[test]
fn matmul_ab_texture_matches_cpu() {
    check_all_shapes(MatmulForm::AB, MatmulKernel::Texture);
}

#[test]
fn matmul_atb_texture_matches_cpu() {
    check_all_shapes(MatmulForm::AtB, MatmulKernel::Texture);
}

#[test]
fn matmul_abt_texture_matches_cpu() {
    check_all_shapes(MatmulForm::ABt, MatmulKernel::Texture);
}

/// Shapes the aligned kernels take (multiples of 4 where they read four values at a time):
/// one texel, rows past a 16-row block and a 32-column subgroup, odd K (Aᵀ·B takes k in
/// pairs), primes times four, the MLP's.
const ALIGNED_SHAPES: [(usize, usize, usize); 11] = [
    (1, 4, 4),
    (4, 1, 4),
    (36, 63, 132),
    (17, 12, 36),
    (33, 3, 132),
    (20, 132, 4),
    (64, 784, 128),
    (784, 64, 128),
    (128, 64, 784),
    (257, 63, 44),
    (300, 256, 68),
];

/// Every aligned shape `kernel` takes in `form`, plain, with a bias and accumulating, against
/// the oracle; returns how many it ran (the broadcast family only runs where the device has
/// subgroups of 8 or more).
fn check_aligned_shapes(form: MatmulForm, kernel: MatmulKernel) -> usize {
    let mut ran = 0;
    for (i, &(m, k, n)) in ALIGNED_SHAPES.iter().enumerate() {
        if !kernel.supports(form, MatmulDims { m, k, n }) {
            continue;
        }
        for (bias, accumulate) in [(false, false), (true, false), (false, true)] {
            // The vector and broadcast families fuse a bias into A·B only.
            if bias && form != MatmulForm::AB {
                continue;
            }
            let case = Case {
                bias,
                accumulate,
                ..Case::new(m, k, n, form, kernel)
            };
            let worst = case.run(2000 + i as u64).unwrap_or_else(|e| panic!("{e}"));
            eprintln!("{form:?} {kernel:?} {m}x{k}x{n} bias={bias} acc={accumulate}: {worst:e}");
        }
        ran += 1;
    }
    ran
}

#[test]
fn aligned_kernels_match_cpu_on_every_form() {
    let broadcast = wgsl_nn::matmul::broadcast::available(gpu());
    for kernel in MatmulKernel::ALIGNED {
        if kernel == MatmulKernel::Broadcast && !broadcast {
            eprintln!(
                "skipping Broadcast: {} has no subgroups of 8",
                gpu().adapter()
            );
            continue;
        }
        for form in MatmulForm::ALL {
            assert!(
                check_aligned_shapes(form, kernel) >= 5,
                "{kernel:?} {form:?}"
            );
        }
    }
}

#[test]
fn broadcast_is_refused_where_it_cannot_run() {
    // Unaligned: N = 5 is not a multiple of four.
    let a = Tensor::zeros(gpu(), [4, 8]).unwrap();
    let b = Tensor::zeros(gpu(), [8, 5]).unwrap();
    let options = MatmulOptions {
        kernel: Some(MatmulKernel::Broadcast),
        ..Default::default()
    };
    let error = matmul(&a, &b, &options).unwrap_err().to_string();
    assert!(
        error.contains("line up") || error.contains("subgroup"),
        "{error}"
    );
}

#[test]
fn matmul_bias_epilogue_matches_cpu() {
    for kernel in MatmulKernel::ALL {
        for form in MatmulForm::ALL {
            for (m, k, n) in [(1, 1, 1), (7, 13, 29), (513, 257, 129), (64, 784, 128)] {
                let case = Case {
                    bias: true,
                    ..Case::new(m, k, n, form, kernel)
                };
                case.run(7).unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
}

#[test]
fn matmul_accumulate_adds_into_the_output() {
    for kernel in MatmulKernel::ALL {
        for form in MatmulForm::ALL {
            for (m, k, n) in [(1, 1, 1), (7, 13, 29), (129, 65, 67)] {
                for bias in [false, true] {
                    let case = Case {
                        bias,
                        accumulate: true,
                        ..Case::new(m, k, n, form, kernel)
                    };
                    case.run(11).unwrap_or_else(|e| panic!("{e}"));
                }
            }
        }
    }
}

#[test]
fn bound_rejects_an_off_by_one_in_k() {
    // The same data with the last k term dropped, as a kernel that stops one short would
    // compute it, must fail the tolerance the tests above use.
    for &(m, k, n) in &[(7usize, 13usize, 29usize), (513, 257, 129), (64, 784, 128)] {
        let mut rng = rng(3);
        let a = random_vec(&mut rng, m * k);
        let b = random_vec(&mut rng, k * n);
        let (reference, bound) =
            reference_and_bound(&a, &b, None, MatmulForm::AB, (m, k, n), k + 2);
        let a_short: Vec<f32> = (0..m)
            .flat_map(|i| a[i * k..i * k + k - 1].to_vec())
            .collect();
        let short = cpu::matmul(
            &a_short,
            &b[..(k - 1) * n],
            None,
            MatmulForm::AB,
            m,
            k - 1,
            n,
        );
        assert!(
            check_within(&short, &reference, &bound).is_err(),
            "{m}x{k}x{n}: dropping a k term went unnoticed"
        );
    }
}

#[test]
fn matmul_allocating_form_infers_the_output_shape() {
    let device = gpu();
    let a = Tensor::from_slice(device, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]).unwrap();
    let b = Tensor::from_slice(device, &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0], [3, 2]).unwrap();
    let c = matmul(&a, &b, &MatmulOptions::default()).unwrap();
    assert_eq!(c.shape().dims(), [2, 2]);
    assert_eq!(c.to_vec().unwrap(), vec![4.0, 5.0, 10.0, 11.0]);
    // Aᵀ·A is 3×3 and symmetric.
    let ata = matmul(&a, &a, &MatmulOptions::form(MatmulForm::AtB)).unwrap();
    assert_eq!(
        ata.to_vec().unwrap(),
        vec![17.0, 22.0, 27.0, 22.0, 29.0, 36.0, 27.0, 36.0, 45.0]
    );
}

#[test]
fn automatic_kernel_choice_matches_cpu() {
    for (m, k, n) in [(3, 5, 7), (100, 50, 70)] {
        let device = gpu();
        let mut r = rng(5);
        let (a_host, b_host) = (random_vec(&mut r, m * k), random_vec(&mut r, k * n));
        let a = Tensor::from_slice(device, &a_host, [m, k]).unwrap();
        let b = Tensor::from_slice(device, &b_host, [k, n]).unwrap();
        let c = matmul(&a, &b, &MatmulOptions::default())
            .unwrap()
            .to_vec()
            .unwrap();
        let (reference, bound) =
            reference_and_bound(&a_host, &b_host, None, MatmulForm::AB, (m, k, n), k + 2);
        check_within(&c, &reference, &bound).unwrap();
    }
}

fn form_strategy() -> impl Strategy<Value = MatmulForm> {
    prop_oneof![
        Just(MatmulForm::AB),
        Just(MatmulForm::AtB),
        Just(MatmulForm::ABt)
    ]
}

fn kernel_strategy() -> impl Strategy<Value = MatmulKernel> {
    prop_oneof![
        Just(MatmulKernel::Blocked),
        Just(MatmulKernel::Tiled),
        Just(MatmulKernel::Texture)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn matmul_random_shapes_match_cpu(
        m in 1usize..300,
        k in 1usize..300,
        n in 1usize..300,
        form in form_strategy(),
        kernel in kernel_strategy(),
        bias in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let case = Case { bias, ..Case::new(m, k, n, form, kernel) };
        prop_assert!(case.run(seed).is_ok(), "{}", case.run(seed).unwrap_err());
    }
}

/// K past lavapipe's loop limit: it stops an invocation's loops once that invocation has run
/// 65535 iterations in all (one counter for all its loops, nested or not).
const LONG_K: usize = 70_000;
/// Past the limit for the vector kernels' A·B and A·Bᵀ, which take 4 values of k per iteration.
const LONGER_K: usize = 1_200_000;
/// The iterations after which lavapipe stops an invocation's loops.
const LOOP_LIMIT: usize = 65_535;

/// The most values of k the kernel's loops cover per loop iteration counted by lavapipe. The
/// tiled kernel steps 16 values of k at a time, but its inner loop over those 16 counts too
/// (without passes it stopped near k = 58,000).
fn k_per_iteration(kernel: MatmulKernel, form: MatmulForm) -> usize {
    match (kernel, form) {
        (MatmulKernel::Vector | MatmulKernel::Staged, MatmulForm::AtB) => 1,
        (MatmulKernel::Broadcast, MatmulForm::AtB) => 2,
        (
            MatmulKernel::Vector
            | MatmulKernel::Texture
            | MatmulKernel::Broadcast
            | MatmulKernel::Staged,
            _,
        ) => 4,
        (MatmulKernel::Blocked | MatmulKernel::Tiled, _) => 1,
    }
}

/// op(A)·op(B) (+ bias) (+ C) of `m×k·k×n` on `kernel` with every value in [0, 1), against
/// the oracle under the bounds of `Case::run`; returns the result. With non-negative terms a
/// k loop cut short drops a fixed share of every sum, which the check below shows the bound
/// rejects for the point where this kernel's loop would stop.
fn long_k_case(
    form: MatmulForm,
    kernel: MatmulKernel,
    (m, k, n): (usize, usize, usize),
    epilogue: bool,
) -> Vec<f32> {
    let device = gpu();
    let mut r = rng(k as u64 + m as u64);
    let mut positive =
        |len| -> Vec<f32> { random_vec(&mut r, len).iter().map(|v| v.abs()).collect() };
    let (a_host, b_host) = (positive(m * k), positive(k * n));
    let (bias_host, c_host) = (positive(n), positive(m * n));
    let (a_shape, b_shape) = stored_shapes(form, m, k, n);
    let a = Tensor::from_slice(device, &a_host, a_shape).unwrap();
    let b = Tensor::from_slice(device, &b_host, b_shape).unwrap();
    let bias = Tensor::from_slice(device, &bias_host, [n]).unwrap();
    let c = Tensor::from_slice(device, &c_host, [m, n]).unwrap();
    // The fused families' A·Bᵀ and Aᵀ·B have no bias epilogue.
    let fused = matches!(kernel, MatmulKernel::Vector | MatmulKernel::Staged);
    let with_bias = epilogue && !(fused && form != MatmulForm::AB);
    let options = MatmulOptions {
        form,
        kernel: Some(kernel),
        bias: with_bias.then_some(&bias),
        accumulate: epilogue,
        ..Default::default()
    };
    let what = format!("{form:?} {kernel:?} {m}×{k}×{n} epilogue={epilogue}");
    matmul_into(&a, &b, &c, &options).unwrap_or_else(|e| panic!("{what}: {e}"));
    let got = c.to_vec().unwrap();

    let bias_ref = with_bias.then_some(&bias_host[..]);
    let (mut reference, mut bound) =
        reference_and_bound(&a_host, &b_host, bias_ref, form, (m, k, n), k + 2);
    if epilogue {
        // As in `Case::run`: one more rounding, of a sum whose scale grows by |c|.
        let factor = gamma(k + 2) + 2.0 * F32_UNIT_ROUNDOFF;
        for i in 0..m * n {
            reference[i] = (f64::from(reference[i]) + f64::from(c_host[i])) as f32;
            bound[i] += factor * f64::from(c_host[i]).abs()
                + F32_UNIT_ROUNDOFF * f64::from(reference[i]).abs();
        }
    }
    check_within(&got, &reference, &bound).unwrap_or_else(|e| panic!("{what}: {e}"));

    // The same bound rejects the product a loop stopped at the limit would give.
    let stop = LOOP_LIMIT * k_per_iteration(kernel, form);
    if stop < k {
        let (a_cut, b_cut) = first_k_terms(&a_host, &b_host, form, (m, k, n), stop);
        let mut cut = cpu::matmul(&a_cut, &b_cut, bias_ref, form, m, stop, n);
        if epilogue {
            for (v, &old) in cut.iter_mut().zip(&c_host) {
                *v += old;
            }
        }
        assert!(
            check_within(&cut, &reference, &bound).is_err(),
            "{what}: a k loop stopped after {stop} values would pass the bound"
        );
    }
    got
}

/// The stored operands of the product over the first `kept` values of k only.
fn first_k_terms(
    a: &[f32],
    b: &[f32],
    form: MatmulForm,
    (m, k, n): (usize, usize, usize),
    kept: usize,
) -> (Vec<f32>, Vec<f32>) {
    let a_cut = if form.trans_a() {
        a[..kept * m].to_vec()
    } else {
        (0..m)
            .flat_map(|i| a[i * k..i * k + kept].to_vec())
            .collect()
    };
    let b_cut = if form.trans_b() {
        (0..n)
            .flat_map(|j| b[j * k..j * k + kept].to_vec())
            .collect()
    } else {
        b[..kept * n].to_vec()
    };
    (a_cut, b_cut)
}

#[test]
fn matmul_with_k_past_the_loop_limit_matches_cpu() {
    // Small M and N, K past the limit for every kernel's own k loop; with and without the
    // epilogue (bias, accumulation), which only the last pass over k applies.
    for kernel in [MatmulKernel::Blocked, MatmulKernel::Tiled] {
        for form in MatmulForm::ALL {
            long_k_case(form, kernel, (3, LONG_K, 5), false);
            long_k_case(form, kernel, (3, LONG_K, 5), true);
        }
    }
    // Many passes (74 of 16,384 values of k); the tiled kernel is left out here, as its
    // barriers make it ~25 s at this size on lavapipe.
    for form in MatmulForm::ALL {
        long_k_case(form, MatmulKernel::Blocked, (3, LONGER_K, 5), false);
    }
}

#[test]
fn vector_and_staged_matmul_with_k_past_the_loop_limit_match_cpu() {
    // The fused families need vec4-aligned shapes: M and N multiples of 4 cover every form.
    for kernel in [MatmulKernel::Vector, MatmulKernel::Staged] {
        for form in MatmulForm::ALL {
            for k in [LONG_K, LONGER_K] {
                long_k_case(form, kernel, (4, k, 8), false);
            }
            long_k_case(form, kernel, (4, LONG_K, 8), true);
        }
    }
}

#[test]
fn blocked_tiled_vector_and_staged_agree_in_bits_past_the_loop_limit() {
    // Each output is one fma chain in k order whichever kernel runs it, across passes too.
    for form in MatmulForm::ALL {
        for epilogue in [false, true] {
            let results: Vec<Vec<f32>> = [
                MatmulKernel::Blocked,
                MatmulKernel::Tiled,
                MatmulKernel::Vector,
                MatmulKernel::Staged,
            ]
            .into_iter()
            .filter(|kernel| {
                let fused = matches!(kernel, MatmulKernel::Vector | MatmulKernel::Staged);
                !(epilogue && fused && form != MatmulForm::AB)
            })
            .map(|kernel| long_k_case(form, kernel, (4, LONG_K, 8), epilogue))
            .collect();
            for other in &results[1..] {
                assert!(
                    other == &results[0],
                    "{form:?} epilogue={epilogue}: the kernels differ in bits"
                );
            }
        }
    }
}

#[test]
fn texture_matmul_past_the_loop_limit_is_refused_or_correct() {
    // The packed op(B) is K texels high, so the texture kernel's K is bounded by the device's
    // texture size (its loop runs K/4 times); past it the matmul is a clear error.
    let limit = gpu().limits().max_texture_dimension_2d as usize;
    for form in MatmulForm::ALL {
        if LONG_K <= limit {
            long_k_case(form, MatmulKernel::Texture, (3, LONG_K, 5), false);
            continue;
        }
        let (a_shape, b_shape) = stored_shapes(form, 3, LONG_K, 5);
        let a = Tensor::zeros(gpu(), a_shape).unwrap();
        let b = Tensor::zeros(gpu(), b_shape).unwrap();
        let options = MatmulOptions {
            form,
            kernel: Some(MatmulKernel::Texture),
            ..Default::default()
        };
        let error = matmul(&a, &b, &options).unwrap_err();
        assert!(
            matches!(
                error,
                wgsl_nn::Error::TooLarge {
                    limit_name: "max_texture_dimension_2d",
                    ..
                }
            ),
            "{form:?}: {error:?}"
        );
    }
}

#[test]
fn tiled_agrees_in_bits_with_blocked_at_every_tile_shape() {
    // 1000×1000 takes 128×128 tiles, 513×129 64×64 and 61×35 32×32 (the unit tests of
    // `tile_for` pin the choice); k = 45 and 70 end on a partial slice of every depth. With a
    // bias and accumulation, so the epilogue runs on the edge tiles too.
    let device = gpu();
    for (m, k, n) in [(1000, 45, 1000), (513, 70, 129), (61, 45, 35)] {
        for form in MatmulForm::ALL {
            let mut r = rng((m * k + n) as u64);
            let (a_shape, b_shape) = stored_shapes(form, m, k, n);
            let a = Tensor::from_slice(device, &random_vec(&mut r, m * k), a_shape).unwrap();
            let b = Tensor::from_slice(device, &random_vec(&mut r, k * n), b_shape).unwrap();
            let bias = Tensor::from_slice(device, &random_vec(&mut r, n), [n]).unwrap();
            let c_host = random_vec(&mut r, m * n);
            let results: Vec<Vec<u32>> = [MatmulKernel::Blocked, MatmulKernel::Tiled]
                .into_iter()
                .map(|kernel| {
                    let c = Tensor::from_slice(device, &c_host, [m, n]).unwrap();
                    let options = MatmulOptions {
                        form,
                        bias: Some(&bias),
                        accumulate: true,
                        kernel: Some(kernel),
                        ..Default::default()
                    };
                    matmul_into(&a, &b, &c, &options).unwrap();
                    c.to_vec().unwrap().iter().map(|v| v.to_bits()).collect()
                })
                .collect();
            assert!(
                results[0] == results[1],
                "{form:?} {m}×{k}×{n}: Tiled differs from Blocked in bits"
            );
        }
    }
}
