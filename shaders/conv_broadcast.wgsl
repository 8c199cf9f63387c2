// A 2-D convolution's products (NCHW, as shaders/matmul_conv.wgsl defines them) for CPU
// devices, after the broadcast matmul family (matmul_broadcast.wgsl, which says why): operands
// are read through texel fetches of linear texel views (one u32 per texel, the f32's bits: any
// element count), and the eight values of the "columns" operand each k step needs come from
// `columns`, prepended: with subgroups of at least eight (lavapipe) each lane fetches one and
// subgroupBroadcast hands them round (conv_columns_broadcast.wgsl); without (SwiftShader, the
// browser) each lane fetches all eight (conv_columns_fetch.wgsl).
//
// Why not the implicit GEMM of matmul_blocked there: its index maps divide and take remainders
// per loaded value, which AVX2 has no instruction for (llvmpipe runs them lane by lane), and
// its lanes run along the output's columns, which a convolution has few of (6 to 64
// channels), so most lanes of a workgroup idle. Here lanes run along the long side (output
// positions, input positions, or the weight's taps), coordinates are split once per lane and
// then stepped, and the columns (channels) come by broadcast.
//
// Every output is the fma chain of matmul_conv.wgsl: over k in the same order (forward
// (ci, kh, kw), input gradient (co, kh, kw), weight gradient (n, oh, ow)), from 0, with an
// fma by 0 where a tap falls in the padding, then + bias. So the families agree in bits.
//
// Entry points (a workgroup is one subgroup of LANES invocations; lane l computes rows
// row0 + l + LANES·r for r < ROWS, and LANES columns col0..col0+7; rows and columns past the
// edge read the last valid one and store nothing):
//   conv_forward       rows: output positions (n, oh, ow); columns: output channels co;
//                      k: the taps (ci, kh, kw). rows_in = X, cols_in = W. C = Y (NCHW):
//                      act_value(chain + bias), the plain families' epilogue.
//   conv_input_grad    rows: input positions (n, ih, iw); columns: input channels ci;
//                      k: (co, kh, kw), where oh = (ih + pad − kh·dilation) / stride divides
//                      and lands inside dY. rows_in = dY, cols_in = W. C = dX (NCHW).
//   conv_weight_grad   rows: the weight's taps (ci, kh, kw); columns: output channels co;
//                      k: output positions (n, oh, ow) from p.k_begin to p.k_end, a pass;
//                      passes after the first start from C. rows_in = X, cols_in = dY.
//                      C = dW [co, ci, kh, kw].
//   conv_bias_grad     rows: output channels co, one per invocation; k: output positions, a
//                      pass as the weight gradient's; acc + dY as fma(dY, 1, acc), the plain
//                      families' ones column. rows_in = dY. C = dB.
// Dispatch: (ceil(rows / (LANES · ROWS)), ceil(columns / LANES), 1); the bias gradient
// (ceil(rows / LANES), 1, 1).
//
// With UNIT_STRIDE (a stride of 1 both ways) the input gradient finds the output position a
// tap meets by a subtraction; otherwise through tables of divisions made once per row.
//
// Bindings (group 0):
//   0: rows_in  texture (u32)        the operand gathered per row, as f32 bits
//   1: cols_in  texture (u32)        the operand broadcast per column, as f32 bits
//   2: bias     storage, read        per output channel (conv_forward with p.has_bias)
//   3: c        storage, read_write  the product
//   4: p        uniform              ConvParams
//   20, 21: the activation's (activation_functions.wgsl; conv_forward)

override UNIT_STRIDE: bool = false;

const LANES: u32 = 8u;
const ROWS: u32 = 4u;
// The largest kernel side the input gradient's tables hold.
const MAX_SIDE: u32 = 16u;

struct ConvParams {
    batch: u32,
    in_channels: u32,
    in_h: u32,
    in_w: u32,
    out_channels: u32,
    out_h: u32,
    out_w: u32,
    kernel_h: u32,
    kernel_w: u32,
    stride_h: u32,
    stride_w: u32,
    pad_h: u32,
    pad_w: u32,
    dilation_h: u32,
    dilation_w: u32,
    // M and N of the product.
    rows: u32,
    cols: u32,
    // The weight gradient's pass: k_begin..k_end; a pass after the first starts from C.
    k_begin: u32,
    k_end: u32,
    has_bias: u32,
}

@group(0) @binding(0) var rows_in: texture_2d<u32>;
@group(0) @binding(1) var cols_in: texture_2d<u32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<uniform> p: ConvParams;

fn fetch_rows(i: u32) -> f32 {
    return bitcast<f32>(textureLoad(rows_in, texel(i), 0).x);
}

fn fetch_cols(i: u32) -> f32 {
    return bitcast<f32>(textureLoad(cols_in, texel(i), 0).x);
}

// Whether (h, w) lies inside an h_size × w_size plane.
fn inside(h: i32, w: i32, h_size: u32, w_size: u32) -> bool {
    return h >= 0 && w >= 0 && u32(h) < h_size && u32(w) < w_size;
}

// Stores row `row`'s eight columns from col0 (those inside C) at `base + column · stride`.
fn store_row(row: u32, col0: u32, base: u32, stride: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if row >= p.rows {
        return;
    }
    let values = array<f32, 8>(lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w);
    for (var j = 0u; j < LANES; j++) {
        let col = col0 + j;
        if col < p.cols {
            c[base + col * stride] = values[j];
        }
    }
}

@compute @workgroup_size(LANES)
fn conv_forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let row0 = wg.x * LANES * ROWS + lid.x;
    let col0 = wg.y * LANES;
    let plane_out = p.out_h * p.out_w;
    let plane_in = p.in_h * p.in_w;
    let k_len = p.in_channels * p.kernel_h * p.kernel_w;
    // Per row: the image's first input element, and the input position of tap (0, 0).
    var image: array<u32, ROWS>;
    var h0: array<i32, ROWS>;
    var w0: array<i32, ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        let m = min(row0 + LANES * r, p.rows - 1u);
        let pos = m % plane_out;
        image[r] = (m / plane_out) * p.in_channels * plane_in;
        h0[r] = i32((pos / p.out_w) * p.stride_h) - i32(p.pad_h);
        w0[r] = i32((pos % p.out_w) * p.stride_w) - i32(p.pad_w);
    }
    var acc: array<vec4<f32>, 8>;
    var k = 0u;
    for (var ci = 0u; ci < p.in_channels; ci++) {
        for (var kh = 0u; kh < p.kernel_h; kh++) {
            let dh = i32(kh * p.dilation_h);
            for (var kw = 0u; kw < p.kernel_w; kw++) {
                let dw = i32(kw * p.dilation_w);
                let w = columns(k, k_len, col0, lid.x);
                let lo = w[0];
                let hi = w[1];
                for (var r = 0u; r < ROWS; r++) {
                    let h = h0[r] + dh;
                    let w = w0[r] + dw;
                    var xv = 0.0;
                    if inside(h, w, p.in_h, p.in_w) {
                        xv = fetch_rows(image[r] + ci * plane_in + u32(h) * p.in_w + u32(w));
                    }
                    acc[2u * r] = fma(vec4<f32>(xv), lo, acc[2u * r]);
                    acc[2u * r + 1u] = fma(vec4<f32>(xv), hi, acc[2u * r + 1u]);
                }
                k++;
            }
        }
    }
    // + bias after the chain, as the plain families' epilogue.
    var b_lo = vec4<f32>(0.0);
    var b_hi = vec4<f32>(0.0);
    if p.has_bias != 0u {
        for (var j = 0u; j < 4u; j++) {
            b_lo[j] = bias[min(col0 + j, p.cols - 1u)];
            b_hi[j] = bias[min(col0 + 4u + j, p.cols - 1u)];
        }
    }
    for (var r = 0u; r < ROWS; r++) {
        let m = row0 + LANES * r;
        let base = (m / plane_out) * p.out_channels * plane_out + m % plane_out;
        var lo = acc[2u * r];
        var hi = acc[2u * r + 1u];
        if p.has_bias != 0u {
            lo += b_lo;
            hi += b_hi;
        }
        // The activation of each stored element, by its index in Y.
        for (var j = 0u; j < 4u; j++) {
            lo[j] = act_value(lo[j], base + (col0 + j) * plane_out);
            hi[j] = act_value(hi[j], base + (col0 + 4u + j) * plane_out);
        }
        store_row(m, col0, base, plane_out, lo, hi);
    }
}

// The output row (or column) input row `i` meets through tap `k`, or −1 where none does.
fn source(i: u32, k: u32, pad: u32, dilation: u32, stride: u32, size: u32) -> i32 {
    let reach = i32(i + pad) - i32(k * dilation);
    if reach < 0 || reach % i32(stride) != 0 || u32(reach) / stride >= size {
        return -1;
    }
    return reach / i32(stride);
}

@compute @workgroup_size(LANES)
fn conv_input_grad(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let row0 = wg.x * LANES * ROWS + lid.x;
    let col0 = wg.y * LANES;
    let plane_out = p.out_h * p.out_w;
    let plane_in = p.in_h * p.in_w;
    let taps = p.kernel_h * p.kernel_w;
    // Per row: the image's first element of dY, and per tap row (column) the output row
    // (column) it meets, −1 for none: the divisions happen here, once.
    var image: array<u32, ROWS>;
    var ih: array<u32, ROWS>;
    var iw: array<u32, ROWS>;
    var oh_of: array<array<i32, MAX_SIDE>, ROWS>;
    var ow_of: array<array<i32, MAX_SIDE>, ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        let m = min(row0 + LANES * r, p.rows - 1u);
        let pos = m % plane_in;
        image[r] = (m / plane_in) * p.out_channels * plane_out;
        ih[r] = pos / p.in_w;
        iw[r] = pos % p.in_w;
        if !UNIT_STRIDE {
            for (var kh = 0u; kh < p.kernel_h; kh++) {
                oh_of[r][kh] = source(ih[r], kh, p.pad_h, p.dilation_h, p.stride_h, p.out_h);
            }
            for (var kw = 0u; kw < p.kernel_w; kw++) {
                ow_of[r][kw] = source(iw[r], kw, p.pad_w, p.dilation_w, p.stride_w, p.out_w);
            }
        }
    }
    var acc: array<vec4<f32>, 8>;
    for (var co = 0u; co < p.out_channels; co++) {
        let w_base = co * p.in_channels * taps;
        for (var kh = 0u; kh < p.kernel_h; kh++) {
            for (var kw = 0u; kw < p.kernel_w; kw++) {
                let w = columns(w_base + kh * p.kernel_w + kw, taps, col0, lid.x);
                let lo = w[0];
                let hi = w[1];
                for (var r = 0u; r < ROWS; r++) {
                    var oh: i32;
                    var ow: i32;
                    if UNIT_STRIDE {
                        oh = i32(ih[r] + p.pad_h) - i32(kh * p.dilation_h);
                        ow = i32(iw[r] + p.pad_w) - i32(kw * p.dilation_w);
                        if !inside(oh, ow, p.out_h, p.out_w) {
                            oh = -1;
                        }
                    } else {
                        oh = oh_of[r][kh];
                        ow = ow_of[r][kw];
                    }
                    var gv = 0.0;
                    if oh >= 0 && ow >= 0 {
                        gv = fetch_rows(image[r] + co * plane_out + u32(oh) * p.out_w + u32(ow));
                    }
                    acc[2u * r] = fma(vec4<f32>(gv), lo, acc[2u * r]);
                    acc[2u * r + 1u] = fma(vec4<f32>(gv), hi, acc[2u * r + 1u]);
                }
            }
        }
    }
    for (var r = 0u; r < ROWS; r++) {
        let m = row0 + LANES * r;
        let base = (m / plane_in) * p.in_channels * plane_in + m % plane_in;
        store_row(m, col0, base, plane_in, acc[2u * r], acc[2u * r + 1u]);
    }
}

@compute @workgroup_size(LANES)
fn conv_weight_grad(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let row0 = wg.x * LANES * ROWS + lid.x;
    let col0 = wg.y * LANES;
    let plane_out = p.out_h * p.out_w;
    let plane_in = p.in_h * p.in_w;
    let taps = p.kernel_h * p.kernel_w;
    // Per row (a tap (ci, kh, kw)): its channel's first element in an image, and its offset
    // from an output position's (oh·stride − pad, ow·stride − pad).
    var channel: array<u32, ROWS>;
    var dh: array<i32, ROWS>;
    var dw: array<i32, ROWS>;
    var acc: array<vec4<f32>, 8>;
    for (var r = 0u; r < ROWS; r++) {
        let m = min(row0 + LANES * r, p.rows - 1u);
        let tap = m % taps;
        channel[r] = (m / taps) * plane_in;
        dh[r] = i32((tap / p.kernel_w) * p.dilation_h) - i32(p.pad_h);
        dw[r] = i32((tap % p.kernel_w) * p.dilation_w) - i32(p.pad_w);
        if p.k_begin > 0u {
            // A later pass: continue each chain from the value the last one stored.
            for (var j = 0u; j < 4u; j++) {
                acc[2u * r][j] = c[min(col0 + j, p.cols - 1u) * p.rows + m];
                acc[2u * r + 1u][j] = c[min(col0 + 4u + j, p.cols - 1u) * p.rows + m];
            }
        }
    }
    // k = (n, oh, ow), stepped rather than divided.
    var n = p.k_begin / plane_out;
    var oh = (p.k_begin % plane_out) / p.out_w;
    var ow = p.k_begin % p.out_w;
    for (var k = p.k_begin; k < p.k_end; k++) {
        let g = columns(n * p.out_channels * plane_out + oh * p.out_w + ow, plane_out, col0, lid.x);
        let lo = g[0];
        let hi = g[1];
        let image = n * p.in_channels * plane_in;
        let h_at = i32(oh * p.stride_h);
        let w_at = i32(ow * p.stride_w);
        for (var r = 0u; r < ROWS; r++) {
            let h = h_at + dh[r];
            let w = w_at + dw[r];
            var xv = 0.0;
            if inside(h, w, p.in_h, p.in_w) {
                xv = fetch_rows(image + channel[r] + u32(h) * p.in_w + u32(w));
            }
            acc[2u * r] = fma(lo, vec4<f32>(xv), acc[2u * r]);
            acc[2u * r + 1u] = fma(hi, vec4<f32>(xv), acc[2u * r + 1u]);
        }
        ow++;
        if ow == p.out_w {
            ow = 0u;
            oh++;
            if oh == p.out_h {
                oh = 0u;
                n++;
            }
        }
    }
    for (var r = 0u; r < ROWS; r++) {
        let m = row0 + LANES * r;
        store_row(m, col0, m, p.rows, acc[2u * r], acc[2u * r + 1u]);
    }
}

@compute @workgroup_size(LANES)
fn conv_bias_grad(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let co = wg.x * LANES + lid.x;
    let channel = min(co, p.rows - 1u);
    let plane = p.out_h * p.out_w;
    var acc = 0.0;
    if p.k_begin > 0u {
        acc = c[channel];
    }
    // k = (n, position), stepped rather than divided.
    var n = p.k_begin / plane;
    var pos = p.k_begin % plane;
    for (var k = p.k_begin; k < p.k_end; k++) {
        acc = fma(fetch_rows((n * p.out_channels + channel) * plane + pos), 1.0, acc);
        pos++;
        if pos == plane {
            pos = 0u;
            n++;
        }
    }
    if co < p.rows {
        c[co] = acc;
    }
}
