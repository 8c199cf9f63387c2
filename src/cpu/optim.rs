use crate::kernels::optim::OptimizerConfig;

/// The state of one parameter under the CPU oracle of an optimiser.
#[derive(Clone, Debug, Default)]
pub struct OptimizerState {
    /// Momentum buffer (SGD) or first moment (Adam).
    pub first: Vec<f32>,
    /// Second moment (Adam).
    pub second: Vec<f32>,
    /// Steps taken.
    pub steps: u64,
}

/// One optimiser step on `param` with `grad`, each element computed in f64 from the f32
/// state and rounded back, with PyTorch's formulas.
pub fn optimizer_step(
    config: &OptimizerConfig,
    param: &mut [f32],
    grad: &[f32],
    state: &mut OptimizerState,
) {
    state.steps += 1;
    if state.first.is_empty() {
        state.first = vec![0.0; param.len()];
        state.second = vec![0.0; param.len()];
    }
    let t = state.steps as f64;
    for i in 0..param.len() {
        let p = f64::from(param[i]);
        let g = f64::from(grad[i]);
        match *config {
            OptimizerConfig::Sgd {
                lr,
                momentum,
                dampening,
                nesterov,
                weight_decay,
            } => {
                let mut d = g + f64::from(weight_decay) * p;
                if momentum > 0.0 {
                    let buf = if state.steps == 1 {
                        d
                    } else {
                        f64::from(momentum) * f64::from(state.first[i])
                            + (1.0 - f64::from(dampening)) * d
                    };
                    state.first[i] = buf as f32;
                    d = if nesterov {
                        d + f64::from(momentum) * buf
                    } else {
                        buf
                    };
                }
                param[i] = (p - f64::from(lr) * d) as f32;
            }
            OptimizerConfig::Adam {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
                decoupled,
            } => {
                let (lr, beta1, beta2) = (f64::from(lr), f64::from(beta1), f64::from(beta2));
                let (mut p, mut g) = (p, g);
                if decoupled {
                    p *= 1.0 - lr * f64::from(weight_decay);
                } else {
                    g += f64::from(weight_decay) * p;
                }
                let m = beta1 * f64::from(state.first[i]) + (1.0 - beta1) * g;
                let v = beta2 * f64::from(state.second[i]) + (1.0 - beta2) * g * g;
                state.first[i] = m as f32;
                state.second[i] = v as f32;
                let bc1 = 1.0 - beta1.powf(t);
                let bc2 = 1.0 - beta2.powf(t);
                let denom = v.sqrt() / bc2.sqrt() + f64::from(eps);
                param[i] = (p - lr / bc1 * m / denom) as f32;
            }
        }
    }
}
