//! Dropout as PyTorch's `nn.Dropout(p)` in training: each element kept with probability
//! `1 − p` and scaled by `1 / (1 − p)`, multiplied by 0 otherwise (a NaN stays NaN); the
//! identity in evaluation. Which elements are kept is a counter-based hash of the element's
//! index and the step's key (seed, step, and a salt telling the model's dropout layers apart),
//! as RReLU's slopes are, so a resumed run drops the same elements.

use super::pcg_hash;

/// The key of one dropout layer at one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DropoutKey {
    /// The run's seed.
    pub seed: u32,
    /// The global step.
    pub step: u32,
    /// Tells the dropout layers of one model apart.
    pub salt: u32,
}

/// Whether element `index` is kept at drop probability `p` under `key`: its hash's top 24
/// bits as a uniform `u` in [0, 1), kept when `u ≥ p`.
pub fn dropout_keeps(p: f32, key: DropoutKey, index: usize) -> bool {
    let h = pcg_hash(index as u32 ^ pcg_hash(key.seed ^ pcg_hash(key.step ^ pcg_hash(key.salt))));
    let u = f64::from(h >> 8) / 16_777_216.0;
    u >= f64::from(p)
}

/// `x` with dropout applied in training (`key` given), unchanged in evaluation (`None`).
pub fn dropout(x: &[f32], p: f32, key: Option<DropoutKey>) -> Vec<f32> {
    let Some(key) = key else {
        return x.to_vec();
    };
    let scale = crate::kernels::dropout::scale(p);
    x.iter()
        .enumerate()
        .map(|(i, &v)| v * if dropout_keeps(p, key, i) { scale } else { 0.0 })
        .collect()
}

/// The input gradient of `dropout` in training: the same mask and scale applied to `dy`.
pub fn dropout_backward(dy: &[f32], p: f32, key: DropoutKey) -> Vec<f32> {
    dropout(dy, p, Some(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: DropoutKey = DropoutKey {
        seed: 7,
        step: 3,
        salt: 1,
    };

    #[test]
    fn about_p_of_the_elements_are_dropped_and_the_rest_scaled() {
        let x = vec![1.0f32; 100_000];
        let y = dropout(&x, 0.25, Some(KEY));
        let dropped = y.iter().filter(|&&v| v == 0.0).count() as f64 / x.len() as f64;
        // Binomial: σ = √(p(1 − p)/n) ≈ 0.0014; 5σ.
        assert!((dropped - 0.25).abs() < 0.007, "{dropped}");
        assert!(y.iter().all(|&v| v == 0.0 || (v - 4.0 / 3.0).abs() < 1e-6));
        let mean = y.iter().map(|&v| f64::from(v)).sum::<f64>() / x.len() as f64;
        assert!((mean - 1.0).abs() < 0.01, "the expectation is kept: {mean}");
    }

    #[test]
    fn the_mask_depends_on_the_key_alone_and_evaluation_is_the_identity() {
        let x: Vec<f32> = (0..64).map(|i| i as f32).collect();
        assert_eq!(dropout(&x, 0.5, Some(KEY)), dropout(&x, 0.5, Some(KEY)));
        for other in [
            DropoutKey { seed: 8, ..KEY },
            DropoutKey { step: 4, ..KEY },
            DropoutKey { salt: 2, ..KEY },
        ] {
            assert_ne!(dropout(&x, 0.5, Some(KEY)), dropout(&x, 0.5, Some(other)));
        }
        assert_eq!(dropout(&x, 0.5, None), x);
        assert_eq!(dropout(&x, 0.0, Some(KEY)), x);
        let dy = vec![1.0f32; 64];
        let dx = dropout_backward(&dy, 0.5, KEY);
        for (i, &d) in dx.iter().enumerate() {
            assert_eq!(
                d != 0.0,
                dropout_keeps(0.5, KEY, i),
                "the forward pass's mask"
            );
        }
    }
}
