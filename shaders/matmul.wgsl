// The matmul family: C = act(op(A) · op(B) [+ bias row] [+ C]), where op transposes or not
// and act is any activation of activation_functions.wgsl (prepended to this file).
//
// op(A) is M×K and op(B) is K×N, both row-major in memory. TRANS_A means A is stored K×M
// (so C = Aᵀ·B without materialising Aᵀ); TRANS_B means B is stored N×K (C = A·Bᵀ).
// No shape needs to be a multiple of any block size: edges are guarded.
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
    let index = row * p.n + col;
    if p.k_end < p.k {
        partial[index] = value;
        return;
    }
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
    var ka = p.k_begin * a_step;
    var kb = p.k_begin * b_step;
    for (var kk = p.k_begin; kk < p.k_end; kk += 1u) {
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
// matmul_tiled: classic workgroup-memory tiling, for real GPUs.
//
// Workgroup: 16×16 invocations computing a 64×64 tile of C; each invocation owns a 4×4
// sub-block at rows ty + 16i and columns tx + 16j (strided, so workgroup-memory reads are
// conflict-free and global stores are coalesced along tx). Per step the workgroup stages a
// 64×16 slice of op(A) and a 16×64 slice of op(B) in workgroup memory, zero-filled past the
// edges, and every invocation reads them 16 times.
// Dispatch: (ceil(N / 64), ceil(M / 64), 1).

const TILE: u32 = 64u;
const TILE_K: u32 = 16u;

var<workgroup> tile_a: array<f32, 1024>; // [kk][mm], TILE_K × TILE
var<workgroup> tile_b: array<f32, 1024>; // [kk][nn], TILE_K × TILE

// The starting accumulators of row `row`, columns col, col + 16, col + 32, col + 48.
fn start_tiled(row: u32, col: u32) -> vec4<f32> {
    return vec4<f32>(start(row, col), start(row, col + 16u), start(row, col + 32u), start(row, col + 48u));
}

@compute @workgroup_size(16, 16)
fn matmul_tiled(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) flat: u32,
) {
    let row0 = wg.y * TILE;
    let col0 = wg.x * TILE;
    // acc_i holds row ty + 16i; its components are columns tx + 16j.
    let sr = row0 + lid.y;
    let sc = col0 + lid.x;
    var acc0 = start_tiled(sr, sc);
    var acc1 = start_tiled(sr + 16u, sc);
    var acc2 = start_tiled(sr + 32u, sc);
    var acc3 = start_tiled(sr + 48u, sc);

    // Passes start at multiples of TILE_K, so only the last one has a partial tile.
    for (var k0 = p.k_begin; k0 < p.k_end; k0 += TILE_K) {
        for (var t = 0u; t < 4u; t += 1u) {
            let e = flat + t * 256u;
            // Neighbouring invocations load neighbouring addresses of whichever layout A
            // and B have.
            var mm = e / TILE_K;
            var ka = e % TILE_K;
            if TRANS_A {
                mm = e % TILE;
                ka = e / TILE;
            }
            var av = 0.0;
            if row0 + mm < p.m && k0 + ka < p.k_end {
                av = a[a_index(row0 + mm, k0 + ka)];
            }
            tile_a[ka * TILE + mm] = av;

            var nn = e % TILE;
            var kb = e / TILE;
            if TRANS_B {
                nn = e / TILE_K;
                kb = e % TILE_K;
            }
            var bv = 0.0;
            if col0 + nn < p.n && k0 + kb < p.k_end {
                bv = b[b_index(k0 + kb, col0 + nn)];
            }
            tile_b[kb * TILE + nn] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TILE_K; kk += 1u) {
            let ra = kk * TILE + lid.y;
            let rb = kk * TILE + lid.x;
            let av = vec4<f32>(tile_a[ra], tile_a[ra + 16u], tile_a[ra + 32u], tile_a[ra + 48u]);
            let bv = vec4<f32>(tile_b[rb], tile_b[rb + 16u], tile_b[rb + 32u], tile_b[rb + 48u]);
            acc0 = fma(vec4<f32>(av.x), bv, acc0);
            acc1 = fma(vec4<f32>(av.y), bv, acc1);
            acc2 = fma(vec4<f32>(av.z), bv, acc2);
            acc3 = fma(vec4<f32>(av.w), bv, acc3);
        }
        workgroupBarrier();
    }

    // acc_i holds row ty + 16i; its components are columns tx + 16j.
    let col = col0 + lid.x;
    for (var i = 0u; i < 4u; i += 1u) {
        var row_acc = acc0;
        switch i {
            case 1u: { row_acc = acc1; }
            case 2u: { row_acc = acc2; }
            case 3u: { row_acc = acc3; }
            default: {}
        }
        let row = row0 + lid.y + 16u * i;
        store(row, col, row_acc.x);
        store(row, col + 16u, row_acc.y);
        store(row, col + 32u, row_acc.z);
        store(row, col + 48u, row_acc.w);
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
