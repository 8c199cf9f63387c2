//! Learning-rate schedules, evaluated on the host per step (the rate reaches the device with
//! the optimiser's per-step uniform, so a schedule costs no sync).

use crate::{Error, Result};

/// How the learning rate changes over training.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// Multiply by `gamma` every `every_epochs` epochs (`torch.optim.lr_scheduler.StepLR`).
    Step {
        /// Epochs between decays.
        every_epochs: usize,
        /// The decay factor.
        gamma: f32,
    },
    /// Cosine annealing from the base rate to 0 over the run (`CosineAnnealingLR`, per step).
    Cosine,
    /// One cycle (`OneCycleLR` with cosine phases): warm up from base/25 to base over the first
    /// 30% of steps, then anneal to base/(25·10⁴).
    OneCycle,
}

impl Schedule {
    /// Parses `constant`, `step`, `cosine` or `onecycle` (step decays by 0.1 every 3 epochs).
    pub fn from_name(name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "constant" => Ok(Schedule::Constant),
            "step" => Ok(Schedule::Step {
                every_epochs: 3,
                gamma: 0.1,
            }),
            "cosine" => Ok(Schedule::Cosine),
            "onecycle" => Ok(Schedule::OneCycle),
            other => Err(Error::InvalidArgument(format!(
                "unknown schedule `{other}`: expected constant, step, cosine or onecycle"
            ))),
        }
    }

    /// The rate at `step` (0-based) of `total_steps`, with `steps_per_epoch` steps an epoch.
    pub fn lr_at(&self, base: f32, step: usize, total_steps: usize, steps_per_epoch: usize) -> f32 {
        let base = f64::from(base);
        let progress = |from: usize, to: usize| -> f64 {
            if to <= from {
                1.0
            } else {
                ((step.saturating_sub(from)) as f64 / (to - from) as f64).min(1.0)
            }
        };
        let cosine = |start: f64, end: f64, t: f64| {
            end + (start - end) * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0
        };
        let lr = match *self {
            Schedule::Constant => base,
            Schedule::Step {
                every_epochs,
                gamma,
            } => {
                let epoch = step / steps_per_epoch.max(1);
                base * f64::from(gamma).powi((epoch / every_epochs.max(1)) as i32)
            }
            Schedule::Cosine => cosine(base, 0.0, progress(0, total_steps.saturating_sub(1))),
            Schedule::OneCycle => {
                let warmup = ((total_steps as f64) * 0.3) as usize;
                let (initial, last) = (base / 25.0, base / 25.0 / 1e4);
                if step < warmup {
                    cosine(initial, base, progress(0, warmup))
                } else {
                    cosine(base, last, progress(warmup, total_steps.saturating_sub(1)))
                }
            }
        };
        lr as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_follow_their_formulas() {
        let lr = |s: Schedule, step| s.lr_at(1.0, step, 101, 10);
        assert_eq!(lr(Schedule::Constant, 50), 1.0);
        assert_eq!(
            lr(
                Schedule::Step {
                    every_epochs: 3,
                    gamma: 0.1
                },
                29
            ),
            1.0
        );
        assert!(
            (lr(
                Schedule::Step {
                    every_epochs: 3,
                    gamma: 0.1
                },
                30
            ) - 0.1)
                .abs()
                < 1e-7
        );
        assert_eq!(lr(Schedule::Cosine, 0), 1.0);
        assert!((lr(Schedule::Cosine, 50) - 0.5).abs() < 1e-6);
        assert!(lr(Schedule::Cosine, 100).abs() < 1e-7);
        assert!((lr(Schedule::OneCycle, 0) - 0.04).abs() < 1e-7);
        assert!((lr(Schedule::OneCycle, 30) - 1.0).abs() < 1e-6);
        assert!(lr(Schedule::OneCycle, 100) < 1e-5);
        assert!(Schedule::from_name("linear").is_err());
    }
}
