/// The first index of each row's maximum (a NaN counts as the maximum).
pub fn argmax(scores: &[f32], cols: usize) -> Vec<u32> {
    scores
        .chunks(cols)
        .map(|row| {
            let mut best = 0;
            for (j, &v) in row.iter().enumerate().skip(1) {
                if !row[best].is_nan() && (v > row[best] || v.is_nan()) {
                    best = j;
                }
            }
            best as u32
        })
        .collect()
}

/// How many rows' argmax equals their label.
pub fn count_correct(scores: &[f32], cols: usize, labels: &[u32]) -> u32 {
    argmax(scores, cols)
        .iter()
        .zip(labels)
        .filter(|(p, l)| p == l)
        .count() as u32
}
