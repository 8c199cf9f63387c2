/// Row sums of a row-major `rows × cols` matrix, in f64, rounded once.
pub fn sum_rows(x: &[f32], cols: usize) -> Vec<f32> {
    x.chunks(cols.max(1))
        .map(|row| row.iter().map(|&v| f64::from(v)).sum::<f64>() as f32)
        .collect()
}

/// Column sums of a row-major `rows × cols` matrix, in f64, rounded once.
pub fn sum_columns(x: &[f32], cols: usize) -> Vec<f32> {
    let mut sums = vec![0.0f64; cols];
    for row in x.chunks(cols.max(1)) {
        for (sum, &v) in sums.iter_mut().zip(row) {
            *sum += f64::from(v);
        }
    }
    sums.into_iter().map(|s| s as f32).collect()
}

/// The sum of every element, in f64.
pub fn sum(x: &[f32]) -> f64 {
    x.iter().map(|&v| f64::from(v)).sum()
}
