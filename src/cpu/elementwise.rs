/// `x + y`.
pub fn add(x: &[f32], y: &[f32]) -> Vec<f32> {
    x.iter().zip(y).map(|(a, b)| a + b).collect()
}

/// `x ⊙ y`.
pub fn mul(x: &[f32], y: &[f32]) -> Vec<f32> {
    x.iter().zip(y).map(|(a, b)| a * b).collect()
}

/// `alpha · x`.
pub fn scale(x: &[f32], alpha: f32) -> Vec<f32> {
    x.iter().map(|a| alpha * a).collect()
}

/// `alpha · x + y`, rounded once (as a fused multiply-add).
pub fn axpy(alpha: f32, x: &[f32], y: &[f32]) -> Vec<f32> {
    x.iter()
        .zip(y)
        .map(|(a, b)| (f64::from(alpha) * f64::from(*a) + f64::from(*b)) as f32)
        .collect()
}

/// `x − y`.
pub fn sub(x: &[f32], y: &[f32]) -> Vec<f32> {
    x.iter().zip(y).map(|(a, b)| a - b).collect()
}

/// `(alpha · s) · x`, in the device's order of operations.
pub fn mul_scalar(x: &[f32], s: f32, alpha: f32) -> Vec<f32> {
    x.iter().map(|a| (alpha * s) * a).collect()
}

/// `alpha · x + (beta · s)`, the sum rounded once (as a fused multiply-add).
pub fn add_scalar(x: &[f32], s: f32, alpha: f32, beta: f32) -> Vec<f32> {
    let shift = f64::from(beta * s);
    x.iter()
        .map(|a| (f64::from(alpha) * f64::from(*a) + shift) as f32)
        .collect()
}

/// `len` copies of `alpha · s`.
pub fn fill_scalar(s: f32, alpha: f32, len: usize) -> Vec<f32> {
    vec![alpha * s; len]
}
