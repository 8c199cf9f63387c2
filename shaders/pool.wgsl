// 2-D pooling in NCHW, as PyTorch's nn.MaxPool2d and nn.AvgPool2d (floor mode; average pooling
// counts the padding, PyTorch's default): the forward passes, and the backward passes written
// as gathers. Each input's gradient is one sum over the windows that cover it, in the windows'
// row-major order, so no two invocations write one element and no float atomics are needed:
// the result is the same bits on every run and every device.
//
// Bindings (group 0):
//   0: x       storage, read        the input (forward)
//   1: y       storage, read_write  the output (forward)
//   2: argmax  storage, read_write  max pooling: per output, the flat index in x it took
//                                   (written by the forward pass, read by the backward)
//   3: dy      storage, read        the output's gradient (backward)
//   4: dx      storage, read_write  the input's gradient (backward)
//   5: p       uniform              the geometry
//
// Workgroup: WG invocations, one output (forward) or one input element (backward) each.
// Dispatch: a 2-D grid over p.count.

struct PoolParams {
    // Planes (batch × channels), the input's and the output's height and width.
    planes: u32,
    height: u32,
    width: u32,
    out_h: u32,
    out_w: u32,
    kernel_h: u32,
    kernel_w: u32,
    stride_h: u32,
    stride_w: u32,
    pad_h: u32,
    pad_w: u32,
    // Outputs (forward) or inputs (backward): the invocations that work.
    count: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> argmax: array<u32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<uniform> p: PoolParams;

// NaN by its bits: a compiler may assume `v != v` is false.
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

@compute @workgroup_size(WG)
fn max_pool_forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let o = flat_index(wg, groups, lid);
    if o >= p.count {
        return;
    }
    let ow = o % p.out_w;
    let oh = (o / p.out_w) % p.out_h;
    let plane = o / (p.out_w * p.out_h);
    let base = plane * p.height * p.width;
    // The window's first row and column in the padded input.
    let r0 = oh * p.stride_h;
    let c0 = ow * p.stride_w;
    // The first maximum in row-major order; a NaN wins and stays.
    var best = 0xffffffffu;
    var best_value = 0.0;
    for (var kr = 0u; kr < p.kernel_h; kr++) {
        let pr = r0 + kr;
        if pr < p.pad_h || pr - p.pad_h >= p.height {
            continue;
        }
        for (var kc = 0u; kc < p.kernel_w; kc++) {
            let pc = c0 + kc;
            if pc < p.pad_w || pc - p.pad_w >= p.width {
                continue;
            }
            let i = base + (pr - p.pad_h) * p.width + (pc - p.pad_w);
            let v = x[i];
            if best == 0xffffffffu || (!is_nan(best_value) && (v > best_value || is_nan(v))) {
                best = i;
                best_value = v;
            }
        }
    }
    y[o] = best_value;
    argmax[o] = best;
}

// The outputs whose windows cover padded row (or column) `padded`: [first, end).
fn covering(padded: u32, kernel: u32, stride: u32, outputs: u32) -> vec2<u32> {
    // o·stride ≤ padded < o·stride + kernel.
    var first = 0u;
    if padded + 1u > kernel {
        first = (padded + 1u - kernel + stride - 1u) / stride;
    }
    let end = min(padded / stride + 1u, outputs);
    return vec2<u32>(first, max(first, end));
}

@compute @workgroup_size(WG)
fn max_pool_backward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = flat_index(wg, groups, lid);
    if i >= p.count {
        return;
    }
    let c = i % p.width;
    let r = (i / p.width) % p.height;
    let plane = i / (p.width * p.height);
    let rows = covering(r + p.pad_h, p.kernel_h, p.stride_h, p.out_h);
    let cols = covering(c + p.pad_w, p.kernel_w, p.stride_w, p.out_w);
    var sum = 0.0;
    for (var oh = rows.x; oh < rows.y; oh++) {
        for (var ow = cols.x; ow < cols.y; ow++) {
            let o = (plane * p.out_h + oh) * p.out_w + ow;
            if argmax[o] == i {
                sum += dy[o];
            }
        }
    }
    dx[i] = sum;
}

@compute @workgroup_size(WG)
fn avg_pool_forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let o = flat_index(wg, groups, lid);
    if o >= p.count {
        return;
    }
    let ow = o % p.out_w;
    let oh = (o / p.out_w) % p.out_h;
    let plane = o / (p.out_w * p.out_h);
    let base = plane * p.height * p.width;
    // The window's first row and column in the padded input.
    let r0 = oh * p.stride_h;
    let c0 = ow * p.stride_w;
    var sum = 0.0;
    for (var kr = 0u; kr < p.kernel_h; kr++) {
        let pr = r0 + kr;
        if pr < p.pad_h || pr - p.pad_h >= p.height {
            continue;
        }
        for (var kc = 0u; kc < p.kernel_w; kc++) {
            let pc = c0 + kc;
            if pc < p.pad_w || pc - p.pad_w >= p.width {
                continue;
            }
            sum += x[base + (pr - p.pad_h) * p.width + (pc - p.pad_w)];
        }
    }
    y[o] = sum / f32(p.kernel_h * p.kernel_w);
}

@compute @workgroup_size(WG)
fn avg_pool_backward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = flat_index(wg, groups, lid);
    if i >= p.count {
        return;
    }
    let c = i % p.width;
    let r = (i / p.width) % p.height;
    let plane = i / (p.width * p.height);
    let rows = covering(r + p.pad_h, p.kernel_h, p.stride_h, p.out_h);
    let cols = covering(c + p.pad_w, p.kernel_w, p.stride_w, p.out_w);
    var sum = 0.0;
    for (var oh = rows.x; oh < rows.y; oh++) {
        for (var ow = cols.x; ow < cols.y; ow++) {
            sum += dy[(plane * p.out_h + oh) * p.out_w + ow];
        }
    }
    dx[i] = sum / f32(p.kernel_h * p.kernel_w);
}
