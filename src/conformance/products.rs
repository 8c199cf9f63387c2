//! The products' cases of the kernels check: every matmul family on awkward shapes, and a
//! convolution's four products on the families that carry its index maps.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{CaseResult, Outcome, err, random};
use crate::cpu::{self, tolerance};
use crate::matmul::{MatmulForm, MatmulKernel, MatmulOptions, matmul_into};
use crate::{Device, Tensor};

/// (M, K, N): a single element, primes, the MLP's three products, a long thin one, and one
/// large enough for `Tiled`'s 128×128 tiles (ragged at both edges).
pub(super) const MATMUL_SHAPES: [(usize, usize, usize); 9] = [
    (1, 1, 1),
    (1, 4, 4),
    (7, 13, 29),
    (36, 63, 132),
    (64, 784, 128),
    (784, 64, 128),
    (128, 64, 784),
    (33, 3, 132),
    (1031, 9, 1030),
];

/// A case forced onto `kernel`: skipped where the device allows fewer storage buffers per
/// stage than the kernel binds (kernel choice never gives it such a kernel).
pub(super) async fn matmul_case(
    device: &Device,
    kernel: MatmulKernel,
    form: MatmulForm,
    shape: (usize, usize, usize),
    with_bias: bool,
    seed: u64,
) -> Outcome {
    match matmul_run(device, kernel, form, shape, with_bias, seed).await {
        Ok(worst_error) => Outcome::Passed { worst_error },
        Err(Ok(error)) => Outcome::Failed(error),
        Err(Err(why)) => Outcome::Skipped(why),
    }
}

/// `Err(Err(why))`: the device cannot run the kernel.
async fn matmul_run(
    device: &Device,
    kernel: MatmulKernel,
    form: MatmulForm,
    (m, k, n): (usize, usize, usize),
    with_bias: bool,
    seed: u64,
) -> std::result::Result<f64, std::result::Result<String, String>> {
    let err = |e: crate::Error| match e {
        crate::Error::TooLarge {
            limit_name: "max_storage_buffers_per_shader_stage",
            ..
        } => Err(e.to_string()),
        e => Ok(e.to_string()),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(1000 + seed);
    let a_host = random(&mut rng, m * k, 1.0);
    let b_host = random(&mut rng, k * n, 1.0);
    let bias_host = with_bias.then(|| random(&mut rng, n, 1.0));
    let a_shape = if form.trans_a() { [k, m] } else { [m, k] };
    let b_shape = if form.trans_b() { [n, k] } else { [k, n] };
    let a = Tensor::from_slice(device, &a_host, a_shape).map_err(err)?;
    let b = Tensor::from_slice(device, &b_host, b_shape).map_err(err)?;
    let bias = match &bias_host {
        Some(values) => Some(Tensor::from_slice(device, values, [n]).map_err(err)?),
        None => None,
    };
    let c = Tensor::zeros(device, [m, n]).map_err(err)?;
    let options = MatmulOptions {
        form,
        bias: bias.as_ref(),
        kernel: Some(kernel),
        ..Default::default()
    };
    matmul_into(&a, &b, &c, &options).map_err(err)?;
    let result = c.to_vec_async().await.map_err(err)?;
    let (reference, bound) = tolerance::matmul_reference_and_bound(
        &a_host,
        &b_host,
        bias_host.as_deref(),
        form,
        (m, k, n),
        k + 2,
    );
    tolerance::check_within(&result, &reference, &bound).map_err(Ok)
}

/// Input `[N, C, H, W]`, weight `[Co, C, KH, KW]`, stride, padding.
pub(super) type ConvCase = ([usize; 4], [usize; 4], (usize, usize), (usize, usize));

/// (input [N, C, H, W], weight [Co, C, KH, KW], stride, padding): a 1×1 kernel, a padded
/// 5×5 on an odd image of 3 channels, stride 2 on a prime-sized one.
pub(super) const CONV_CASES: [ConvCase; 3] = [
    ([1, 1, 1, 1], [1, 1, 1, 1], (1, 1), (0, 0)),
    ([2, 3, 7, 9], [5, 3, 5, 5], (1, 1), (2, 2)),
    ([1, 2, 13, 11], [3, 2, 3, 3], (2, 2), (1, 0)),
];

/// The convolution's four products on `kernel` against the oracle; the worst error.
pub(super) async fn conv_case(
    device: &Device,
    kernel: MatmulKernel,
    &(input, weight, stride, padding): &ConvCase,
) -> CaseResult {
    use crate::conv::{self, Conv2dGeometry, Conv2dOptions};
    let options = Conv2dOptions {
        stride,
        padding,
        kernel: Some(kernel),
        ..Default::default()
    };
    let g = Conv2dGeometry::new(&input, &weight, options).map_err(err)?;
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let len = |s: [usize; 4]| s.iter().product::<usize>();
    let x_host = random(&mut rng, len(input), 1.0);
    let w_host = random(&mut rng, len(weight), 1.0);
    let b_host = random(&mut rng, g.out_channels, 1.0);
    let dy_host = random(&mut rng, len(g.output_shape()), 1.0);
    let abs = |v: &[f32]| -> Vec<f32> { v.iter().map(|x| x.abs()).collect() };
    let x = Tensor::from_slice(device, &x_host, input).map_err(err)?;
    let w = Tensor::from_slice(device, &w_host, weight).map_err(err)?;
    let b = Tensor::from_slice(device, &b_host, [g.out_channels]).map_err(err)?;
    let dy = Tensor::from_slice(device, &dy_host, g.output_shape()).map_err(err)?;
    let taps = g.kernel.0 * g.kernel.1;
    let positions = g.batch * g.out_size.0 * g.out_size.1;
    let mut worst = 0.0f64;
    let mut check = |what: &str, got: Vec<f32>, reference: Vec<f32>, magnitude: Vec<f32>, terms| {
        let bound = tolerance::product_bounds(&reference, &magnitude, terms);
        tolerance::check_within(&got, &reference, &bound)
            .map(|e| worst = worst.max(e))
            .map_err(|e| format!("{what}: {e}"))
    };
    let y = conv::conv2d(&x, &w, Some(&b), options).map_err(err)?;
    check(
        "forward",
        y.to_vec_async().await.map_err(err)?,
        cpu::conv::conv2d(&x_host, &w_host, Some(&b_host), &g),
        cpu::conv::conv2d(&abs(&x_host), &abs(&w_host), Some(&abs(&b_host)), &g),
        g.in_channels * taps + 1,
    )?;
    let dx = conv::conv2d_input_grad(&dy, &w, input, options).map_err(err)?;
    check(
        "input gradient",
        dx.to_vec_async().await.map_err(err)?,
        cpu::conv::conv2d_input_grad(&dy_host, &w_host, &g),
        cpu::conv::conv2d_input_grad(&abs(&dy_host), &abs(&w_host), &g),
        g.out_channels * taps,
    )?;
    let dw = conv::conv2d_weight_grad(&x, &dy, g.kernel, options).map_err(err)?;
    check(
        "weight gradient",
        dw.to_vec_async().await.map_err(err)?,
        cpu::conv::conv2d_weight_grad(&x_host, &dy_host, &g),
        cpu::conv::conv2d_weight_grad(&abs(&x_host), &abs(&dy_host), &g),
        positions,
    )?;
    let db = conv::conv2d_bias_grad(&dy).map_err(err)?;
    check(
        "bias gradient",
        db.to_vec_async().await.map_err(err)?,
        cpu::conv::conv2d_bias_grad(&dy_host, &g),
        cpu::conv::conv2d_bias_grad(&abs(&dy_host), &g),
        positions,
    )?;
    Ok(worst)
}
