//! The kernels check's cases of a CNN's other layers: max and average pooling forward and
//! backward, and dropout's mask, each against the CPU oracle.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{CaseResult, err, random};
use crate::cpu::{self, tolerance};
use crate::pool::{self, Pool2d, Pool2dGeometry};
use crate::{Device, Tensor};

/// (input [N, C, H, W], window): one element, LeNet's 2×2 pooling on an odd image, and
/// padded overlapping windows.
pub(super) fn pool_cases() -> [([usize; 4], Pool2d); 3] {
    [
        ([1, 1, 1, 1], Pool2d::square(1)),
        ([2, 3, 7, 9], Pool2d::square(2)),
        (
            [1, 5, 9, 8],
            Pool2d {
                kernel: (3, 3),
                stride: (2, 1),
                padding: (1, 1),
            },
        ),
    ]
}

/// Max pooling (exact: it selects) and average pooling, forward and backward; the worst error.
pub(super) async fn pool_case(device: &Device, shape: [usize; 4], window: Pool2d) -> CaseResult {
    let g = Pool2dGeometry::new(&shape, window).map_err(err)?;
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    let x_host = random(&mut rng, shape.iter().product(), 1.0);
    let dy_host = random(&mut rng, g.output_shape().iter().product(), 1.0);
    let abs = |v: &[f32]| -> Vec<f32> { v.iter().map(|x| x.abs()).collect() };
    let x = Tensor::from_slice(device, &x_host, shape).map_err(err)?;
    let dy = Tensor::from_slice(device, &dy_host, g.output_shape()).map_err(err)?;
    let (planes, size) = (g.planes(), g.in_size);
    let overlap =
        window.kernel.0.div_ceil(window.stride.0) * window.kernel.1.div_ceil(window.stride.1);
    let area = window.kernel.0 * window.kernel.1;
    let mut worst = 0.0f64;
    let mut check = |what: &str, got: Vec<f32>, reference: Vec<f32>, magnitude: Vec<f32>, terms| {
        let bound = tolerance::product_bounds(&reference, &magnitude, terms);
        tolerance::check_within(&got, &reference, &bound)
            .map(|e| worst = worst.max(e))
            .map_err(|e| format!("{what}: {e}"))
    };

    let (y, argmax) = pool::max_pool2d(&x, window).map_err(err)?;
    let (y_ref, argmax_ref) = cpu::pool::max_pool2d(&x_host, planes, size, &window);
    if y.to_vec_async().await.map_err(err)? != y_ref
        || argmax.to_vec_u32_async().await.map_err(err)? != argmax_ref
    {
        return Err("max pooling: not the oracle's maxima and indices".into());
    }
    let dx = pool::max_pool2d_backward(&dy, &argmax, &g).map_err(err)?;
    check(
        "max pooling gradient",
        dx.to_vec_async().await.map_err(err)?,
        cpu::pool::max_pool2d_backward(&dy_host, &argmax_ref, x_host.len()),
        cpu::pool::max_pool2d_backward(&abs(&dy_host), &argmax_ref, x_host.len()),
        overlap,
    )?;
    let y = pool::avg_pool2d(&x, window).map_err(err)?;
    check(
        "average pooling",
        y.to_vec_async().await.map_err(err)?,
        cpu::pool::avg_pool2d(&x_host, planes, size, &window),
        cpu::pool::avg_pool2d(&abs(&x_host), planes, size, &window),
        area,
    )?;
    let dx = pool::avg_pool2d_backward(&dy, &g).map_err(err)?;
    check(
        "average pooling gradient",
        dx.to_vec_async().await.map_err(err)?,
        cpu::pool::avg_pool2d_backward(&dy_host, planes, size, &window),
        cpu::pool::avg_pool2d_backward(&abs(&dy_host), planes, size, &window),
        overlap,
    )?;
    Ok(worst)
}

/// Dropout of `len` values at probability `p`: the oracle's mask and scale, bit for bit.
pub(super) async fn dropout_case(device: &Device, len: usize, p: f32) -> CaseResult {
    let mut rng = ChaCha8Rng::seed_from_u64(41);
    let x_host = random(&mut rng, len, 1.0);
    let x = Tensor::from_slice(device, &x_host, [len]).map_err(err)?;
    let key = cpu::dropout::DropoutKey {
        seed: 3,
        step: 17,
        salt: 2,
    };
    let got = crate::dropout::dropout(&x, p, key.seed, key.step, key.salt)
        .map_err(err)?
        .to_vec_async()
        .await
        .map_err(err)?;
    let want = cpu::dropout::dropout(&x_host, p, Some(key));
    if got
        .iter()
        .map(|v| v.to_bits())
        .ne(want.iter().map(|v| v.to_bits()))
    {
        return Err("not the oracle's mask and scale, bit for bit".into());
    }
    Ok(0.0)
}
