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

// Output `o`'s window: its plane's first input element, and the input rows and columns it
// covers, [begin, end) each, padding left out.
struct Window {
    base: u32,
    rows: vec2<u32>,
    cols: vec2<u32>,
}

// Input rows (or columns) [begin, end) of window `o` of one side: padded positions
// o·stride .. o·stride + kernel, less the padding, clipped to the input.
fn window_side(o: u32, stride: u32, kernel: u32, pad: u32, size: u32) -> vec2<u32> {
    let begin = max(o * stride, pad) - pad;
    let end = min(o * stride + kernel, pad + size) - pad;
    return vec2<u32>(begin, max(begin, end));
}

fn window_of(o: u32) -> Window {
    let ow = o % p.out_w;
    let oh = (o / p.out_w) % p.out_h;
    let plane = o / (p.out_w * p.out_h);
    return Window(
        plane * p.height * p.width,
        window_side(oh, p.stride_h, p.kernel_h, p.pad_h, p.height),
        window_side(ow, p.stride_w, p.kernel_w, p.pad_w, p.width),
    );
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

// Input `i`'s plane's first output, and the output rows and columns whose windows cover it.
fn covers_of(i: u32) -> Window {
    let c = i % p.width;
    let r = (i / p.width) % p.height;
    let plane = i / (p.width * p.height);
    return Window(
        plane * p.out_h * p.out_w,
        covering(r + p.pad_h, p.kernel_h, p.stride_h, p.out_h),
        covering(c + p.pad_w, p.kernel_w, p.stride_w, p.out_w),
    );
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
    let w = window_of(o);
    // The first maximum in row-major order; a NaN wins and stays.
    var best = 0xffffffffu;
    var best_value = 0.0;
    for (var r = w.rows.x; r < w.rows.y; r++) {
        for (var c = w.cols.x; c < w.cols.y; c++) {
            let i = w.base + r * p.width + c;
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
    let w = covers_of(i);
    var sum = 0.0;
    for (var oh = w.rows.x; oh < w.rows.y; oh++) {
        for (var ow = w.cols.x; ow < w.cols.y; ow++) {
            let o = w.base + oh * p.out_w + ow;
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
    let w = window_of(o);
    var sum = 0.0;
    for (var r = w.rows.x; r < w.rows.y; r++) {
        for (var c = w.cols.x; c < w.cols.y; c++) {
            sum += x[w.base + r * p.width + c];
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
    let w = covers_of(i);
    var sum = 0.0;
    for (var oh = w.rows.x; oh < w.rows.y; oh++) {
        for (var ow = w.cols.x; ow < w.cols.y; ow++) {
            sum += dy[w.base + oh * p.out_w + ow];
        }
    }
    dx[i] = sum / f32(p.kernel_h * p.kernel_w);
}
