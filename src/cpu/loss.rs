use crate::kernels::loss::{PointwiseLoss, Reduction};

/// Softmax cross-entropy of `logits` (`rows × classes`, row-major) against `labels`:
/// `(loss, dlogits)`, in f64, with optional per-class `weights` (PyTorch's weighted mean).
pub fn softmax_cross_entropy(
    logits: &[f32],
    labels: &[u32],
    classes: usize,
    weights: Option<&[f32]>,
    reduction: Reduction,
) -> (f64, Vec<f32>) {
    let rows = labels.len();
    assert_eq!(
        logits.len(),
        rows * classes,
        "cpu::softmax_cross_entropy: logits length"
    );
    let weight = |label: u32| weights.map_or(1.0, |w| f64::from(w[label as usize]));
    let normaliser = match reduction {
        Reduction::Sum => 1.0,
        Reduction::Mean => labels.iter().map(|&l| weight(l)).sum::<f64>(),
    };
    let mut loss = 0.0;
    let mut grad = vec![0.0f32; logits.len()];
    for (row, &label) in labels.iter().enumerate() {
        let z: Vec<f64> = logits[row * classes..(row + 1) * classes]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = z.iter().map(|v| (v - m).exp()).sum();
        let w = weight(label) / normaliser;
        loss += w * (m + s.ln() - z[label as usize]);
        for (j, &v) in z.iter().enumerate() {
            let q = (v - m).exp() / s;
            let target = if j == label as usize { 1.0 } else { 0.0 };
            grad[row * classes + j] = (w * (q - target)) as f32;
        }
    }
    (loss, grad)
}

/// Row-wise softmax (or log-softmax) in f64.
pub fn softmax(x: &[f32], cols: usize, log: bool) -> Vec<f32> {
    x.chunks(cols)
        .flat_map(|row| {
            let m = row
                .iter()
                .map(|&v| f64::from(v))
                .fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = row.iter().map(|&v| (f64::from(v) - m).exp()).sum();
            row.iter()
                .map(move |&v| {
                    let shifted = f64::from(v) - m;
                    (if log {
                        shifted - s.ln()
                    } else {
                        shifted.exp() / s
                    }) as f32
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The backward pass of [`softmax`], from its output `y` and upstream gradient `dy`.
pub fn softmax_backward(y: &[f32], dy: &[f32], cols: usize, log: bool) -> Vec<f32> {
    y.chunks(cols)
        .zip(dy.chunks(cols))
        .flat_map(|(y, dy)| {
            let dot: f64 = if log {
                dy.iter().map(|&g| f64::from(g)).sum()
            } else {
                y.iter()
                    .zip(dy)
                    .map(|(&y, &g)| f64::from(y) * f64::from(g))
                    .sum()
            };
            y.iter()
                .zip(dy)
                .map(move |(&y, &g)| {
                    let (y, g) = (f64::from(y), f64::from(g));
                    (if log {
                        g - y.exp() * dot
                    } else {
                        y * (g - dot)
                    }) as f32
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A pointwise loss and its gradient, `(loss, dinput)`, in f64 (PyTorch's clamps for BCE).
pub fn pointwise_loss(
    kind: PointwiseLoss,
    input: &[f32],
    target: &[f32],
    reduction: Reduction,
) -> (f64, Vec<f32>) {
    let scale = match reduction {
        Reduction::Mean => 1.0 / input.len().max(1) as f64,
        Reduction::Sum => 1.0,
    };
    let mut loss = 0.0;
    let grad = input
        .iter()
        .zip(target)
        .map(|(&x, &t)| {
            let (x, t) = (f64::from(x), f64::from(t));
            let (term, g) = match kind {
                PointwiseLoss::Mse => ((x - t).powi(2), 2.0 * (x - t)),
                PointwiseLoss::L1 => ((x - t).abs(), if x == t { 0.0 } else { (x - t).signum() }),
                PointwiseLoss::Bce => {
                    let log_p = x.ln().max(-100.0);
                    let log_q = (1.0 - x).ln().max(-100.0);
                    (
                        -(t * log_p + (1.0 - t) * log_q),
                        (x - t) / ((1.0 - x) * x).max(1e-12),
                    )
                }
                PointwiseLoss::BceWithLogits => {
                    let term = x.max(0.0) - x * t + (-x.abs()).exp().ln_1p();
                    (term, 1.0 / (1.0 + (-x).exp()) - t)
                }
            };
            loss += term;
            (g * scale) as f32
        })
        .collect();
    (loss * scale, grad)
}
