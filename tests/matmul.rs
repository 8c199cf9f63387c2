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
use wgsl_nn::matmul::{MatmulForm, MatmulKernel, MatmulOptions, matmul, matmul_into};
use wgsl_nn::{Tensor, cpu};

/// Stored shapes of A and B for `form`, given op(A) M×K and op(B) K×N.
fn stored_shapes(form: MatmulForm, m: usize, k: usize, n: usize) -> ([usize; 2], [usize; 2]) {
    let a = if form.trans_a() { [k, m] } else { [m, k] };
    let b = if form.trans_b() { [n, k] } else { [k, n] };
    (a, b)
}

/// The oracle's `op(A)·op(B) (+ bias)` and each element's error bound for a sum of `terms`
/// products: (γ_terms + 2u)·Σₖ|aᵢₖ·bₖⱼ|. The scale Σ|a||b| is itself the oracle's product of
/// |A| and |B|, rounded once (one more u, covered by the 2u).
fn reference_and_bound(
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    form: MatmulForm,
    (m, k, n): (usize, usize, usize),
    terms: usize,
) -> (Vec<f32>, Vec<f64>) {
    let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<f32>>();
    let reference = cpu::matmul(a, b, bias, form, m, k, n);
    let abs_bias = bias.map(abs);
    let scale = cpu::matmul(&abs(a), &abs(b), abs_bias.as_deref(), form, m, k, n);
    let factor = gamma(terms) + 2.0 * F32_UNIT_ROUNDOFF;
    let bound = scale.iter().map(|&s| factor * f64::from(s)).collect();
    (reference, bound)
}

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
