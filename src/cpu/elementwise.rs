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
