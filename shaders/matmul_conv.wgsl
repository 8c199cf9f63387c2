// Appended to matmul.wgsl (it uses `a`, `b` and `p` of that file; WGSL declarations may come
// in any order).
//
// Convolutions as products (implicit GEMM). With CONV ≠ 0 the blocked and tiled kernels read
// op(A) and op(B) through the index maps of a 2-D convolution in NCHW (geometry `p.conv`)
// instead of as matrices, zero in the padding, and write C in the layout the mode names.
// Every output is still one fma chain in k order, so the two kernels agree in bits.
//
//   CONV 1, forward:         C[(n, oh, ow), co] = Σ_(ci, kh, kw) X[n, ci, ih, iw] · W[co, ci, kh, kw]
//                            A = X gathered (im2col), B = W read as [Co, K] transposed; C NCHW
//   CONV 2, input gradient:  C[(n, ih, iw), ci] = Σ_(co, kh, kw) dY[n, co, oh, ow] · W[co, ci, kh, kw]
//                            where oh = (ih + pad − kh·dilation) / stride divides exactly and
//                            lands inside dY (a gather: no scatter, no atomics); C NCHW
//   CONV 3, weight gradient: C[co, (ci, kh, kw)] = Σ_(n, oh, ow) dY[n, co, oh, ow] · X[n, ci, ih, iw]
//                            A = dY as [Co, N·OH·OW], B = X gathered; C laid out as W
//   CONV 4, bias gradient:   C[co, 0] = Σ_(n, oh, ow) dY[n, co, oh, ow] (op(B) is ones)

override CONV: u32 = 0u;

// (i / (mid · last), (i / last) % mid, i % last): a flat index split into three coordinates,
// the last varying fastest (an output position (n, oh, ow), a tap (ci, kh, kw)).
fn unflatten(i: u32, mid: u32, last: u32) -> vec3<u32> {
    return vec3<u32>(i / (mid * last), (i / last) % mid, i % last);
}

// The index in X that im2col's (m, kk) reads: output position m = (n, oh, ow) through tap
// kk = (ci, kh, kw); −1 where the tap falls in the padding.
fn im2col_index(m: u32, kk: u32) -> i32 {
    let g = p.conv;
    let pos = unflatten(m, g.out_h, g.out_w);
    let tap = unflatten(kk, g.kernel_h, g.kernel_w);
    let ih = i32(pos.y * g.stride_h + tap.y * g.dilation_h) - i32(g.pad_h);
    let iw = i32(pos.z * g.stride_w + tap.z * g.dilation_w) - i32(g.pad_w);
    if ih < 0 || iw < 0 || u32(ih) >= g.in_h || u32(iw) >= g.in_w {
        return -1;
    }
    return i32(((pos.x * g.in_channels + tap.x) * g.in_h + u32(ih)) * g.in_w + u32(iw));
}

// One coordinate of the input gradient's gather: the output row (or column) that input row
// `i` meets through tap `k`, or −1 where none does.
fn conv_source(i: u32, k: u32, pad: u32, dilation: u32, stride: u32, size: u32) -> i32 {
    let reach = i32(i + pad) - i32(k * dilation);
    if reach < 0 || reach % i32(stride) != 0 || u32(reach) / stride >= size {
        return -1;
    }
    return reach / i32(stride);
}

// op(A)[row, kk] of the convolution's product.
fn conv_a(row: u32, kk: u32) -> f32 {
    let g = p.conv;
    switch CONV {
        case 1u: {
            let at = im2col_index(row, kk);
            if at < 0 {
                return 0.0;
            }
            return a[at];
        }
        case 2u: {
            // row = (n, ih, iw), kk = (co, kh, kw).
            let pos = unflatten(row, g.in_h, g.in_w);
            let tap = unflatten(kk, g.kernel_h, g.kernel_w);
            let oh = conv_source(pos.y, tap.y, g.pad_h, g.dilation_h, g.stride_h, g.out_h);
            let ow = conv_source(pos.z, tap.z, g.pad_w, g.dilation_w, g.stride_w, g.out_w);
            if oh < 0 || ow < 0 {
                return 0.0;
            }
            return a[((pos.x * g.out_channels + tap.x) * g.out_h + u32(oh)) * g.out_w + u32(ow)];
        }
        default: {
            // 3 and 4: row = co, kk = (n, oh, ow).
            let plane = g.out_h * g.out_w;
            return a[((kk / plane) * g.out_channels + row) * plane + kk % plane];
        }
    }
}

// op(B)[kk, col] of the convolution's product.
fn conv_b(kk: u32, col: u32) -> f32 {
    let g = p.conv;
    switch CONV {
        case 1u: {
            return b[col * p.k + kk];
        }
        case 2u: {
            // kk = (co, kh, kw), col = ci.
            let taps = g.kernel_h * g.kernel_w;
            return b[((kk / taps) * g.in_channels + col) * taps + kk % taps];
        }
        case 3u: {
            let at = im2col_index(kk, col);
            if at < 0 {
                return 0.0;
            }
            return b[at];
        }
        default: {
            return 1.0;
        }
    }
}

// Where output (row, col) of the product is stored in C.
fn out_index(row: u32, col: u32) -> u32 {
    let g = p.conv;
    switch CONV {
        case 1u: {
            let plane = g.out_h * g.out_w;
            return ((row / plane) * g.out_channels + col) * plane + row % plane;
        }
        case 2u: {
            let plane = g.in_h * g.in_w;
            return ((row / plane) * g.in_channels + col) * plane + row % plane;
        }
        default: {
            return row * p.n + col;
        }
    }
}
