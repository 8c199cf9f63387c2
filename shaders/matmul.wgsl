// The matmul family: C = act(op(A) · op(B) [+ bias row] [+ C]), where op transposes or not
// and act is any activation of activation_functions.wgsl (prepended to this file).
//
// op(A) is M×K and op(B) is K×N, both row-major in memory. TRANS_A means A is stored K×M
// (so C = Aᵀ·B without materialising Aᵀ); TRANS_B means B is stored N×K (C = A·Bᵀ).
// No shape needs to be a multiple of any block size: edges are guarded.
//
// With CONV ≠ 0 (shaders/matmul_conv.wgsl, appended) the blocked and tiled kernels compute a
// 2-D convolution's products instead, reading their operands through its index maps.
//
// Passes over k: lavapipe stops an invocation's loops once it has run 65535 loop iterations
// in all, so a long K is covered by several dispatches, each over k in [p.k_begin, p.k_end).
// A pass continues every output's accumulator from `partial`, where the previous pass left
// it (an f32 stored and reloaded exactly), so each output is still one fma chain over
// k = 0, 1, …, K−1; only the last pass (k_end = K) applies the epilogue and writes C.
//
// Bindings (group 0), shared by the matmul entry points (matmul_texture reads op(A) and op(B)
// from textures 8 and 9 instead of 0 and 1; pack_operand has bindings of its own, below):
//   0: a     storage, read        op(A) source
//   1: b     storage, read        op(B) source
//   2: bias  storage, read        N values added to every row (read only when HAS_BIAS)
//   3: c     storage, read_write  M×N output (also read when ACCUMULATE)
//   4: p     uniform              the sizes M, N, K and the pass's k range
//   5: partial  storage, read_write  M×N accumulators between passes (unused with one pass)
//   20, 21                        the activation's slopes and runtime (activation_functions.wgsl)

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
// C = C + A·B (+ bias): accumulates into the output instead of overwriting it.
override ACCUMULATE: bool = false;

// A convolution's shapes (CONV ≠ 0; zeros for a plain product).
struct ConvGeometry {
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
    _pad0: u32,
    _pad1: u32,
}

struct Params {
    m: u32,
    n: u32,
    k: u32,
    // This pass: k in [k_begin, k_end).
    k_begin: u32,
    k_end: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    conv: ConvGeometry,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
@group(0) @binding(5) var<storage, read_write> partial: array<f32>;

// Index of op(A)[row, kk] in `a`.
fn a_index(row: u32, kk: u32) -> u32 {
    if TRANS_A {
        return kk * p.m + row;
    }
    return row * p.k + kk;
}

// Index of op(B)[kk, col] in `b`.
fn b_index(kk: u32, col: u32) -> u32 {
    if TRANS_B {
        return col * p.k + kk;
    }
    return kk * p.n + col;
}

// The accumulator an output starts this pass from: 0, or where the previous pass left it.
fn start(row: u32, col: u32) -> f32 {
    if p.k_begin == 0u || row >= p.m || col >= p.n {
        return 0.0;
    }
    return partial[row * p.n + col];
}

fn start4(row: u32, col: u32) -> vec4<f32> {
    return vec4<f32>(start(row, col), start(row, col + 1u), start(row, col + 2u), start(row, col + 3u));
}

// Writes one output element with the epilogue applied (the last pass), or its accumulator
// for the next pass; drops elements outside C.
fn store(row: u32, col: u32, value: f32) {
    if row >= p.m || col >= p.n {
        return;
    }
    if p.k_end < p.k {
        partial[row * p.n + col] = value;
        return;
    }
    let index = out_index(row, col);
    var out = value;
    if HAS_BIAS {
        out += bias[col];
    }
    if ACCUMULATE {
        out += c[index];
    }
    c[index] = act_value(out, index);
}

// ---------------------------------------------------------------------------------------------
// matmul_blocked: register blocking without workgroup memory, for CPU devices (lavapipe).
//
// Workgroup: BLOCKED_WG invocations along N. One invocation computes an 8×8 block of C
// (rows row0..row0+8, columns col0..col0+8) in sixteen vec4 accumulators.
// Why this shape: on lavapipe (Mesa 22.3) every storage-buffer load costs a few nanoseconds
// per invocation and component (it is a per-lane loop with a bounds check), while an FMA costs
// a fraction of that. The cost of a k step is its 8 + 8 loads, which feed 64 FMAs, four
// times the FMAs per load of a 16×1 block. Barriers are avoided: a CPU device implements
// them by switching between invocations.
// Dispatch: (ceil(N / (8 · BLOCKED_WG)), ceil(M / 8), 1).

override BLOCKED_WG: u32 = 64u;
const BLOCK: u32 = 8u;

@compute @workgroup_size(BLOCKED_WG)
fn matmul_blocked(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let col0 = (wg.x * BLOCKED_WG + lid.x) * BLOCK;
    let row0 = wg.y * BLOCK;
    if col0 >= p.n {
        return;
    }
    // op(A)[row, kk] = a[a_base[r] + kk * a_step] and op(B)[kk, col] = b[b_base[j] + kk * b_step]:
    // the transposes become strides, so the loop body has no branches. Rows and columns past
    // the edge read the last valid one (in bounds) and are dropped by `store`.
    var a_base: array<u32, 8>;
    var b_base: array<u32, 8>;
    for (var i = 0u; i < BLOCK; i += 1u) {
        a_base[i] = a_index(min(row0 + i, p.m - 1u), 0u);
        b_base[i] = b_index(0u, min(col0 + i, p.n - 1u));
    }
    var a_step = 1u;
    if TRANS_A {
        a_step = p.m;
    }
    var b_step = p.n;
    if TRANS_B {
        b_step = 1u;
    }

    // acc[2r] holds row r, columns 0..3; acc[2r + 1] row r, columns 4..7.
    var acc: array<vec4<f32>, 16>;
    for (var r = 0u; r < BLOCK; r += 1u) {
        acc[2u * r] = start4(row0 + r, col0);
        acc[2u * r + 1u] = start4(row0 + r, col0 + 4u);
    }
    if CONV != 0u {
        // A convolution's product: every value through its index map (the same fma order).
        for (var kk = p.k_begin; kk < p.k_end; kk += 1u) {
            var bv: array<f32, 8>;
            for (var j = 0u; j < BLOCK; j += 1u) {
                bv[j] = conv_b(kk, min(col0 + j, p.n - 1u));
            }
            let b_lo = vec4<f32>(bv[0], bv[1], bv[2], bv[3]);
            let b_hi = vec4<f32>(bv[4], bv[5], bv[6], bv[7]);
            for (var r = 0u; r < BLOCK; r += 1u) {
                let av = vec4<f32>(conv_a(min(row0 + r, p.m - 1u), kk));
                acc[2u * r] = fma(av, b_lo, acc[2u * r]);
                acc[2u * r + 1u] = fma(av, b_hi, acc[2u * r + 1u]);
            }
        }
    }
    var ka = p.k_begin * a_step;
    var kb = p.k_begin * b_step;
    for (var kk = p.k_begin; kk < p.k_end && CONV == 0u; kk += 1u) {
        let b_lo = vec4<f32>(b[b_base[0] + kb], b[b_base[1] + kb], b[b_base[2] + kb], b[b_base[3] + kb]);
        let b_hi = vec4<f32>(b[b_base[4] + kb], b[b_base[5] + kb], b[b_base[6] + kb], b[b_base[7] + kb]);
        for (var r = 0u; r < BLOCK; r += 1u) {
            let av = vec4<f32>(a[a_base[r] + ka]);
            acc[2u * r] = fma(av, b_lo, acc[2u * r]);
            acc[2u * r + 1u] = fma(av, b_hi, acc[2u * r + 1u]);
        }
        ka += a_step;
        kb += b_step;
    }

    for (var r = 0u; r < BLOCK; r += 1u) {
        let lo = acc[2u * r];
        let hi = acc[2u * r + 1u];
        store(row0 + r, col0, lo.x);
        store(row0 + r, col0 + 1u, lo.y);
        store(row0 + r, col0 + 2u, lo.z);
        store(row0 + r, col0 + 3u, lo.w);
        store(row0 + r, col0 + 4u, hi.x);
        store(row0 + r, col0 + 5u, hi.y);
        store(row0 + r, col0 + 6u, hi.z);
        store(row0 + r, col0 + 7u, hi.w);
    }
}

// ---------------------------------------------------------------------------------------------
// matmul_tiled: workgroup-memory tiling after the published WGSL and CUDA SGEMM designs, for
// real GPUs.
//
// A workgroup of TILED_WG_X × TILED_WG_Y invocations computes a BM × BN tile of C
// (BM = 4·TILED_WG_Y·TILED_ROW_GROUPS, BN = 4·TILED_WG_X·TILED_COL_GROUPS). Invocation (tx, ty)
// owns TILED_ROW_GROUPS × TILED_COL_GROUPS blocks of 4×4 outputs: rows 4·(ty + g·TILED_WG_Y)
// + 0..4 and columns 4·(tx + h·TILED_WG_X) + 0..4, in vec4 accumulators (the largest shape,
// 128×128 with 8×8 outputs per invocation, keeps 16 of them). The blocks are strided so a
// subgroup's vec4 reads of a tile row are consecutive (no bank conflicts) and its stores of a
// row of C are coalesced.
//
// Per step of TILED_BK values of k the workgroup stages op(A)'s BM × BK slice and op(B)'s
// BK × BN slice in workgroup memory as vec4 rows along M and N: tile_a[kk][m / 4] and
// tile_b[kk][n / 4], so each k of the inner loop is TILED_ROW_GROUPS + TILED_COL_GROUPS vec4
// reads for 16 · TILED_ROW_GROUPS · TILED_COL_GROUPS FMAs. Two buffers: while the invocations
// multiply out of one, their loads of the next slice (issued before the multiply, so their
// latency hides behind it) are stored into the other, and one barrier per step separates the
// steps. The global loads run along memory (four consecutive values of one row of the stored
// operand per invocation), whichever layout A and B have; a transposed layout becomes four
// scalar stores into the tile instead of one vec4.
//
// Workgroups wholly inside C, and steps wholly inside the pass, load without edge checks
// (a workgroup-uniform branch); the others load zero past the edges of A and B, and the last
// step of a pass multiplies only the values of k it has. Each output is one fma chain in
// k order from its starting value, as in every family.
//
// Workgroup memory: 2 buffers × 2 operands × 256 vec4 = 16 KiB, WebGPU's default limit, so
// BM·BK and BK·BN are at most 1024 (the launcher's shapes: 128×128×8, 64×64×16, 32×32×32).
// Dispatch: (ceil(N / BN), ceil(M / BM), 1).

override TILED_WG_X: u32 = 16u;
override TILED_WG_Y: u32 = 16u;
// 4×4 blocks per invocation along M and N: 1 or 2 each.
override TILED_ROW_GROUPS: u32 = 2u;
override TILED_COL_GROUPS: u32 = 2u;
override TILED_BK: u32 = 8u;

const TILED_SLOTS: u32 = 256u; // vec4 per operand and buffer
const TILED_MAX_LOADS: u32 = 4u; // vec4 loads per operand, invocation and step, at most

// Buffer s holds op(A)'s slice at s · 512 and op(B)'s at s · 512 + 256.
var<workgroup> tiles: array<vec4<f32>, 1024>;

struct TiledTile {
    row0: u32,
    col0: u32,
    bm4: u32, // BM / 4
    bn4: u32, // BN / 4
}

// op(A)[row, kk], or 0 outside op(A) or the pass (unless `full`: known inside).
fn tiled_a(row: u32, kk: u32, full: bool) -> f32 {
    if CONV != 0u {
        if row < p.m && kk < p.k_end {
            return conv_a(row, kk);
        }
        return 0.0;
    }
    if full || (row < p.m && kk < p.k_end) {
        return a[a_index(row, kk)];
    }
    return 0.0;
}

// op(B)[kk, col], or 0 outside op(B) or the pass (unless `full`).
fn tiled_b(kk: u32, col: u32, full: bool) -> f32 {
    if CONV != 0u {
        if col < p.n && kk < p.k_end {
            return conv_b(kk, col);
        }
        return 0.0;
    }
    if full || (col < p.n && kk < p.k_end) {
        return b[b_index(kk, col)];
    }
    return 0.0;
}

// The `slot`-th vec4 of op(A)'s slice at k0, in the stored operand's order: four consecutive
// k of one row (A stored M×K) or four consecutive rows at one k (Aᵀ stored K×M).
fn tiled_fetch_a(t: TiledTile, slot: u32, k0: u32, full: bool) -> vec4<f32> {
    var row: u32;
    var kk: u32;
    if TRANS_A {
        kk = k0 + slot / t.bm4;
        row = t.row0 + 4u * (slot % t.bm4);
        return vec4<f32>(
            tiled_a(row, kk, full),
            tiled_a(row + 1u, kk, full),
            tiled_a(row + 2u, kk, full),
            tiled_a(row + 3u, kk, full),
        );
    }
    row = t.row0 + slot / (TILED_BK / 4u);
    kk = k0 + 4u * (slot % (TILED_BK / 4u));
    return vec4<f32>(
        tiled_a(row, kk, full),
        tiled_a(row, kk + 1u, full),
        tiled_a(row, kk + 2u, full),
        tiled_a(row, kk + 3u, full),
    );
}

// Stores the `slot`-th fetched vec4 of an operand's slice at `base`, whose rows (one per
// value of k) are `stride4` vec4 long: whole when it was fetched along the slice's rows,
// else as four values of k of one row or column of C, one component in each of four rows.
fn tiled_put(base: u32, slot: u32, v: vec4<f32>, whole: bool, stride4: u32) {
    if whole {
        tiles[base + slot] = v;
        return;
    }
    let line = slot / (TILED_BK / 4u);
    let kk = 4u * (slot % (TILED_BK / 4u));
    let at = base + kk * stride4 + line / 4u;
    let lane = line % 4u;
    tiles[at][lane] = v.x;
    tiles[at + stride4][lane] = v.y;
    tiles[at + 2u * stride4][lane] = v.z;
    tiles[at + 3u * stride4][lane] = v.w;
}

// The `slot`-th vec4 of op(B)'s slice at k0: four consecutive columns at one k (B stored
// K×N) or four consecutive k of one column (Bᵀ stored N×K).
fn tiled_fetch_b(t: TiledTile, slot: u32, k0: u32, full: bool) -> vec4<f32> {
    var col: u32;
    var kk: u32;
    if TRANS_B {
        col = t.col0 + slot / (TILED_BK / 4u);
        kk = k0 + 4u * (slot % (TILED_BK / 4u));
        return vec4<f32>(
            tiled_b(kk, col, full),
            tiled_b(kk + 1u, col, full),
            tiled_b(kk + 2u, col, full),
            tiled_b(kk + 3u, col, full),
        );
    }
    kk = k0 + slot / t.bn4;
    col = t.col0 + 4u * (slot % t.bn4);
    return vec4<f32>(
        tiled_b(kk, col, full),
        tiled_b(kk, col + 1u, full),
        tiled_b(kk, col + 2u, full),
        tiled_b(kk, col + 3u, full),
    );
}

@compute @workgroup_size(TILED_WG_X, TILED_WG_Y)
fn matmul_tiled(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) flat: u32,
) {
    let bm4 = TILED_WG_Y * TILED_ROW_GROUPS;
    let bn4 = TILED_WG_X * TILED_COL_GROUPS;
    let t = TiledTile(wg.y * 4u * bm4, wg.x * 4u * bn4, bm4, bn4);
    let threads = TILED_WG_X * TILED_WG_Y;
    let slots_a = bm4 * TILED_BK; // vec4 per slice of op(A)
    let slots_b = bn4 * TILED_BK;
    let inside = t.row0 + 4u * bm4 <= p.m && t.col0 + 4u * bn4 <= p.n;

    // acc[(4g + i) · 2 + h]: row 4·(ty + g·WG_Y) + i, columns 4·(tx + h·WG_X) + 0..4.
    var acc: array<vec4<f32>, 16>;
    for (var g = 0u; g < TILED_ROW_GROUPS; g += 1u) {
        for (var i = 0u; i < 4u; i += 1u) {
            let row = t.row0 + 4u * (lid.y + g * TILED_WG_Y) + i;
            for (var h = 0u; h < TILED_COL_GROUPS; h += 1u) {
                acc[(4u * g + i) * 2u + h] = start4(row, t.col0 + 4u * (lid.x + h * TILED_WG_X));
            }
        }
    }

    let steps = (p.k_end - p.k_begin + TILED_BK - 1u) / TILED_BK;
    var fetched_a: array<vec4<f32>, TILED_MAX_LOADS>;
    var fetched_b: array<vec4<f32>, TILED_MAX_LOADS>;
    for (var s = 0u; s <= steps; s += 1u) {
        // Fetch slice s (the first one before any multiply), multiply slice s − 1 out of
        // buffer (s − 1) % 2, store slice s into buffer s % 2, then one barrier.
        if s < steps {
            let k0 = p.k_begin + s * TILED_BK;
            let full = inside && k0 + TILED_BK <= p.k_end;
            for (var e = 0u; e < TILED_MAX_LOADS; e += 1u) {
                let slot = flat + e * threads;
                if slot < slots_a {
                    fetched_a[e] = tiled_fetch_a(t, slot, k0, full);
                }
                if slot < slots_b {
                    fetched_b[e] = tiled_fetch_b(t, slot, k0, full);
                }
            }
        }
        if s > 0u {
            let k0 = p.k_begin + (s - 1u) * TILED_BK;
            let depth = min(TILED_BK, p.k_end - k0);
            let base = ((s - 1u) % 2u) * 512u;
            for (var kk = 0u; kk < depth; kk += 1u) {
                let row_a = base + kk * bm4 + lid.y;
                let row_b = base + TILED_SLOTS + kk * bn4 + lid.x;
                let b0 = tiles[row_b];
                var b1 = b0;
                if TILED_COL_GROUPS > 1u {
                    b1 = tiles[row_b + TILED_WG_X];
                }
                for (var g = 0u; g < TILED_ROW_GROUPS; g += 1u) {
                    let av = tiles[row_a + g * TILED_WG_Y];
                    for (var i = 0u; i < 4u; i += 1u) {
                        let at = (4u * g + i) * 2u;
                        acc[at] = fma(vec4<f32>(av[i]), b0, acc[at]);
                        if TILED_COL_GROUPS > 1u {
                            acc[at + 1u] = fma(vec4<f32>(av[i]), b1, acc[at + 1u]);
                        }
                    }
                }
            }
        }
        if s < steps {
            let base = (s % 2u) * 512u;
            for (var e = 0u; e < TILED_MAX_LOADS; e += 1u) {
                let slot = flat + e * threads;
                if slot < slots_a {
                    tiled_put(base, slot, fetched_a[e], TRANS_A, t.bm4);
                }
                if slot < slots_b {
                    tiled_put(base + TILED_SLOTS, slot, fetched_b[e], !TRANS_B, t.bn4);
                }
            }
        }
        workgroupBarrier();
    }

    for (var g = 0u; g < TILED_ROW_GROUPS; g += 1u) {
        for (var i = 0u; i < 4u; i += 1u) {
            let row = t.row0 + 4u * (lid.y + g * TILED_WG_Y) + i;
            for (var h = 0u; h < TILED_COL_GROUPS; h += 1u) {
                let col = t.col0 + 4u * (lid.x + h * TILED_WG_X);
                let v = acc[(4u * g + i) * 2u + h];
                store(row, col, v.x);
                store(row, col + 1u, v.y);
                store(row, col + 2u, v.z);
                store(row, col + 3u, v.w);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// matmul_texture: register blocking over operands packed into textures, for CPU devices.
//
// Why textures: on lavapipe (Mesa 22.3) a texel fetch costs ~0.5 ns per invocation and
// component against ~3.5 ns for a storage-buffer load (measured), because texture sampling is
// what llvmpipe vectorises best. `pack_operand` first copies op(A) and op(B) into rgba32float
// textures (transposing if asked, zero-padding every edge), so this kernel has no edge cases
// in its loop and never branches on the layout.
//
//   8: tex_a  texture_2d<f32>  op(A) packed: texel (k4, m) = op(A)[m, 4·k4 .. 4·k4 + 4]
//   9: tex_b  texture_2d<f32>  op(B) packed: texel (n4, k) = op(B)[k, 4·n4 .. 4·n4 + 4]
//
// Workgroup: TEX_WG invocations along N. One invocation computes an 8×8 block of C as four
// 4×4 matrices. With a_i = mat4x4(rows of op(A), 4 values of k each) = A_blockᵀ and
// b_j = mat4x4(rows of op(B), 4 columns each) = B_blockᵀ, the block product is
// Cᵀ = b_j · a_i, whose column r is row r of C.
// Dispatch: (ceil(ceil(N / 4) / (2 · TEX_WG)), ceil(M / 8), 1).

override TEX_WG: u32 = 16u;

@group(0) @binding(8) var tex_a: texture_2d<f32>;
@group(0) @binding(9) var tex_b: texture_2d<f32>;

fn store_row4(row: u32, col: u32, values: vec4<f32>) {
    store(row, col, values.x);
    store(row, col + 1u, values.y);
    store(row, col + 2u, values.z);
    store(row, col + 3u, values.w);
}

@compute @workgroup_size(TEX_WG)
fn matmul_texture(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let c4 = (wg.x * TEX_WG + lid.x) * 2u;
    let r0 = wg.y * 8u;
    if c4 * 4u >= p.n {
        return;
    }
    var acc00 = mat4x4<f32>(); // rows r0..r0+4, columns of texel c4
    var acc01 = mat4x4<f32>(); // rows r0..r0+4, columns of texel c4 + 1
    var acc10 = mat4x4<f32>(); // rows r0+4..r0+8, texel c4
    var acc11 = mat4x4<f32>(); // rows r0+4..r0+8, texel c4 + 1
    let k4_count = textureDimensions(tex_a).x;
    for (var k4 = 0u; k4 < k4_count; k4 += 1u) {
        let a_lo = mat4x4<f32>(
            textureLoad(tex_a, vec2<u32>(k4, r0), 0),
            textureLoad(tex_a, vec2<u32>(k4, r0 + 1u), 0),
            textureLoad(tex_a, vec2<u32>(k4, r0 + 2u), 0),
            textureLoad(tex_a, vec2<u32>(k4, r0 + 3u), 0),
        );
        let a_hi = mat4x4<f32>(
            textureLoad(tex_a, vec2<u32>(k4, r0 + 4u), 0),
            textureLoad(tex_a, vec2<u32>(k4, r0 + 5u), 0),
            textureLoad(tex_a, vec2<u32>(k4, r0 + 6u), 0),
            textureLoad(tex_a, vec2<u32>(k4, r0 + 7u), 0),
        );
        let k = 4u * k4;
        let b_0 = mat4x4<f32>(
            textureLoad(tex_b, vec2<u32>(c4, k), 0),
            textureLoad(tex_b, vec2<u32>(c4, k + 1u), 0),
            textureLoad(tex_b, vec2<u32>(c4, k + 2u), 0),
            textureLoad(tex_b, vec2<u32>(c4, k + 3u), 0),
        );
        let b_1 = mat4x4<f32>(
            textureLoad(tex_b, vec2<u32>(c4 + 1u, k), 0),
            textureLoad(tex_b, vec2<u32>(c4 + 1u, k + 1u), 0),
            textureLoad(tex_b, vec2<u32>(c4 + 1u, k + 2u), 0),
            textureLoad(tex_b, vec2<u32>(c4 + 1u, k + 3u), 0),
        );
        acc00 += b_0 * a_lo;
        acc01 += b_1 * a_lo;
        acc10 += b_0 * a_hi;
        acc11 += b_1 * a_hi;
    }
    let col0 = 4u * c4;
    for (var r = 0u; r < 4u; r += 1u) {
        store_row4(r0 + r, col0, acc00[r]);
        store_row4(r0 + r, col0 + 4u, acc01[r]);
        store_row4(r0 + 4u + r, col0, acc10[r]);
        store_row4(r0 + 4u + r, col0 + 4u, acc11[r]);
    }
}

// ---------------------------------------------------------------------------------------------
// pack_operand: copies a logical matrix L (rows × cols) into an rgba32float texture,
// texel (x, y) = L[y, 4x .. 4x + 4], zero outside L. TRANSPOSED means the source stores Lᵀ.
//
//   10: pack_src  storage, read  the source buffer
//   11: pack_dst  storage texture, write
//   12: pack_p    uniform        rows, cols of L
//
// Workgroup: 8×8 invocations, one texel each. Dispatch: (ceil(width / 8), ceil(height / 8), 1).

override TRANSPOSED: bool = false;

struct PackParams {
    rows: u32,
    cols: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(10) var<storage, read> pack_src: array<f32>;
@group(0) @binding(11) var pack_dst: texture_storage_2d<rgba32float, write>;
@group(0) @binding(12) var<uniform> pack_p: PackParams;

fn pack_at(row: u32, col: u32) -> f32 {
    if row >= pack_p.rows || col >= pack_p.cols {
        return 0.0;
    }
    if TRANSPOSED {
        return pack_src[col * pack_p.rows + row];
    }
    return pack_src[row * pack_p.cols + col];
}

@compute @workgroup_size(8, 8)
fn pack_operand(@builtin(global_invocation_id) gid: vec3<u32>) {
    let size = textureDimensions(pack_dst);
    if gid.x >= size.x || gid.y >= size.y {
        return;
    }
    let col = 4u * gid.x;
    let texel = vec4<f32>(
        pack_at(gid.y, col),
        pack_at(gid.y, col + 1u),
        pack_at(gid.y, col + 2u),
        pack_at(gid.y, col + 3u),
    );
    textureStore(pack_dst, vec2<u32>(gid.x, gid.y), texel);
}
