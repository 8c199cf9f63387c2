// Dropout in training, as PyTorch's nn.Dropout(p): each element kept with probability 1 − p
// and multiplied by scale = 1 / (1 − p), multiplied by 0 otherwise. Which elements are kept is a
// counter-based hash of the element's index and the key (the run's seed, the global step and
// a salt telling a model's dropout layers apart), so the backward pass (the same kernel on
// the output's gradient) and a resumed run see the same mask, and nothing is stored.
//
// Bindings (group 0):
//   0: x    storage, read        the input (or the output's gradient)
//   1: out  storage, read_write  the result (or the input's gradient)
//   2: p    uniform              the key (rewritten per step), count, p and scale
//
// Workgroup: WG invocations, one element each. Dispatch: a 2-D grid over count.

struct DropoutParams {
    // The RNG key: a plan writes these two words per step from its table.
    seed: u32,
    step: u32,
    salt: u32,
    count: u32,
    p: f32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> params: DropoutParams;

// Element `index` is kept when its uniform draw u (24 random bits) is at least p.
fn kept(index: u32) -> bool {
    let h = pcg_hash(index ^ pcg_hash(params.seed ^ pcg_hash(params.step ^ pcg_hash(params.salt))));
    let u = f32(h >> 8u) * (1.0 / 16777216.0);
    return u >= params.p;
}

@compute @workgroup_size(WG)
fn dropout(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = flat_index(wg, groups, lid);
    if i >= params.count {
        return;
    }
    // x · 0 for a dropped element, as PyTorch's x · mask · scale: a NaN or an infinity stays
    // NaN, and a zero keeps its sign.
    out[i] = x[i] * select(0.0, params.scale, kept(i));
}
