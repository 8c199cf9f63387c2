// Shared by the matmul families that fuse a bias gradient into Aᵀ·B (matmul_vector.wgsl and
// matmul_broadcast.wgsl; prepended by the Rust side after optim_functions.wgsl): storing one
// column sum of B, the bias gradient, and the optimiser's update of the bias it is the
// gradient of. Reads the including shader's ACCUMULATE and UPDATE_B overrides and its `p.n`.
//
// Bindings (group 0):
//  10: bias_grad     storage, read_write  N column sums of B (BIAS_GRAD)
//  14–16: b_param, b_state1, b_state2     the bias, and its optimiser state (UPDATE_B)

@group(0) @binding(10) var<storage, read_write> bias_grad: array<f32>;
@group(0) @binding(14) var<storage, read_write> b_param: array<f32>;
@group(0) @binding(15) var<storage, read_write> b_state1: array<f32>;
@group(0) @binding(16) var<storage, read_write> b_state2: array<f32>;

// One bias-gradient value (+ its previous value when accumulating); UPDATE_B steps the bias.
fn store_bias_grad(col: u32, value: f32) {
    if col >= p.n {
        return;
    }
    var g = value;
    if ACCUMULATE {
        g += bias_grad[col];
    }
    bias_grad[col] = g;
    if UPDATE_B {
        var s1 = 0.0;
        var s2 = 0.0;
        if optim_uses_state1() {
            s1 = b_state1[col];
        }
        if optim_uses_state2() {
            s2 = b_state2[col];
        }
        let r = optim_update(b_param[col], g, s1, s2);
        b_param[col] = r.x;
        if optim_uses_state1() {
            b_state1[col] = r.y;
        }
        if optim_uses_state2() {
            b_state2[col] = r.z;
        }
    }
}
