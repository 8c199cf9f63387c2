// The staged matmul family, for GPUs: C = op(A)·op(B) with op(A)'s and op(B)'s tiles staged in
// workgroup memory and read back as vec4, many short invocations each owning few outputs (the
// opposite trade of matmul_vector.wgsl, whose long invocations suit CPU devices). Its
// prologues and epilogues are matmul_fused.wgsl's, prepended, so a captured training step
// fuses the same way under either device profile.
//
// Shape: a workgroup of 16 × 16 invocations covers 16 rows × 64 columns of C; invocation
// (x, y) owns row y, columns 4x..4x+3 (one vec4 accumulator). So a 64×128 output (the
// lecture's first layer) is 8 workgroups, 2,048 invocations, and a 784×128 weight gradient
// 98 workgroups; parallelism comes from outputs only (no split-K), because every output stays
// one fma chain over k in order: the same bits as every other family.
//
// Per tile of TILE_K values of k, every invocation stages at most one vec4 of each operand:
//   ab, abt  a_tile[row][k4]: the workgroup's 16 rows of op(A), 4 vec4s each (64 invocations)
//   atb      a_tile[k][m4]:   16 values of k, the workgroup's 16 columns of A as 4 vec4s
//   ab, atb  b_tile[k][c4]:   16 values of k, the workgroup's 64 columns of B as 16 vec4s
//   abt      bt_tile[n][k4]:  the workgroup's 64 rows of B, rows padded to 5 vec4s so that the
//            four rows an invocation reads do not share a bank
// then a barrier, the fmas of the tile, and a barrier before the next tile overwrites it.
// Rows and columns past C's edge load clamped (in bounds) and are never stored; a tile past
// k_end is never loaded nor used (no fma with padding, which could turn −0 into +0).
//
// Dispatch: (ceil(ceil(N / 4) / 16), ceil(M / 16) [+ 1 with BIAS_GRAD], 1).

// Rows of C per workgroup: the fused families' row block (p.row_blocks counts them).
const TILE_ROWS: u32 = 16u;
// vec4 columns of C per workgroup (64 columns).
const TILE_COLS4: u32 = 16u;
// Values of k per staged tile.
const TILE_K: u32 = 16u;
// vec4s per padded row of bt_tile.
const BT_STRIDE: u32 = 5u;

var<workgroup> a_tile: array<vec4<f32>, 64>;
var<workgroup> b_tile: array<vec4<f32>, 256>;
var<workgroup> bt_tile: array<vec4<f32>, 320>;

// ---------------------------------------------------------------------------------------------
// matmul_staged_ab

@compute @workgroup_size(16, 16)
fn matmul_staged_ab(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let n4 = p.n / 4u;
    let c4 = wg.x * TILE_COLS4 + lid.x;
    let row = wg.y * TILE_ROWS + lid.y;
    if WRITE_LABELS && c4 == 0u && p.k_begin == 0u && row < p.m {
        batch_labels[row] = ds_labels[order[p.offset + row]];
    }
    // What this invocation stages: row li / 4 of the workgroup's A rows (vec4 li % 4 of each
    // tile), and column vec4 li % 16 of B (row li / 16 of each tile).
    let a_base_row = a_row_base(wg.y * TILE_ROWS + li / 4u);
    let b_col = min(wg.x * TILE_COLS4 + li % TILE_COLS4, n4 - 1u);
    var acc = start4(row, 4u * c4);
    for (var k0 = p.k_begin; k0 < p.k_end; k0 += TILE_K) {
        let kt = min(TILE_K, p.k_end - k0);
        if li < 64u && 4u * (li % 4u) < kt {
            a_tile[li] = load_a(a_base_row, k0 / 4u + li % 4u);
        }
        if li / TILE_COLS4 < kt {
            b_tile[li] = b[(k0 + li / TILE_COLS4) * n4 + b_col];
        }
        workgroupBarrier();
        for (var k4 = 0u; k4 < kt / 4u; k4 += 1u) {
            let kb = 4u * k4 * TILE_COLS4 + lid.x;
            acc = step4(
                acc,
                a_tile[lid.y * 4u + k4],
                b_tile[kb],
                b_tile[kb + TILE_COLS4],
                b_tile[kb + 2u * TILE_COLS4],
                b_tile[kb + 3u * TILE_COLS4],
            );
        }
        workgroupBarrier();
    }
    store_ab4(row, 4u * c4, acc);
}

// ---------------------------------------------------------------------------------------------
// matmul_staged_atb

@compute @workgroup_size(16, 16)
fn matmul_staged_atb(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let n4 = p.n / 4u;
    if BIAS_GRAD && wg.y == p.row_blocks {
        let c4 = wg.x * TILE_COLS4 + lid.x;
        if lid.y == 0u && c4 < n4 {
            bias_grad_columns(c4);
        }
        return;
    }
    let c4 = wg.x * TILE_COLS4 + lid.x;
    let row = wg.y * TILE_ROWS + lid.y;
    // What this invocation stages: column vec4 li % 4 of the workgroup's A columns at k row
    // li / 4, and column vec4 li % 16 of B at k row li / 16.
    let m4 = min(wg.y * (TILE_ROWS / 4u) + li % 4u, p.m / 4u - 1u);
    let b_col = min(wg.x * TILE_COLS4 + li % TILE_COLS4, n4 - 1u);
    var acc = start4(row, 4u * c4);
    for (var k0 = p.k_begin; k0 < p.k_end; k0 += TILE_K) {
        let kt = min(TILE_K, p.k_end - k0);
        if li < 64u && li / 4u < kt {
            a_tile[li] = load_a(at_row_base(k0 + li / 4u), m4);
        }
        if li / TILE_COLS4 < kt {
            b_tile[li] = b[(k0 + li / TILE_COLS4) * n4 + b_col];
        }
        workgroupBarrier();
        for (var k = 0u; k < kt; k += 1u) {
            let a_value = a_tile[k * 4u + lid.y / 4u][lid.y % 4u];
            acc = fma(vec4<f32>(a_value), b_tile[k * TILE_COLS4 + lid.x], acc);
        }
        workgroupBarrier();
    }
    store_atb4(row, 4u * c4, acc);
}

// ---------------------------------------------------------------------------------------------
// matmul_staged_abt

@compute @workgroup_size(16, 16)
fn matmul_staged_abt(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let k4n = p.k / 4u;
    let c4 = wg.x * TILE_COLS4 + lid.x;
    let row = wg.y * TILE_ROWS + lid.y;
    // What this invocation stages: vec4 li % 4 of the workgroup's A row li / 4 (64 invocations),
    // and vec4 li % 4 of the workgroup's B row li / 4 (all 256).
    let a_row = min(wg.y * TILE_ROWS + li / 4u, p.m - 1u) * k4n;
    let b_row = min(wg.x * TILE_COLS4 * 4u + li / 4u, p.n - 1u) * k4n;
    var acc = start4(row, 4u * c4);
    for (var k0 = p.k_begin; k0 < p.k_end; k0 += TILE_K) {
        let kt = min(TILE_K, p.k_end - k0);
        if 4u * (li % 4u) < kt {
            if li < 64u {
                a_tile[li] = a[a_row + k0 / 4u + li % 4u];
            }
            bt_tile[(li / 4u) * BT_STRIDE + li % 4u] = b[b_row + k0 / 4u + li % 4u];
        }
        workgroupBarrier();
        let n0 = 4u * lid.x * BT_STRIDE;
        for (var k4 = 0u; k4 < kt / 4u; k4 += 1u) {
            // Columns of t are the four k values of the four output columns.
            let t = transpose(mat4x4<f32>(
                bt_tile[n0 + k4],
                bt_tile[n0 + BT_STRIDE + k4],
                bt_tile[n0 + 2u * BT_STRIDE + k4],
                bt_tile[n0 + 3u * BT_STRIDE + k4],
            ));
            acc = step4(acc, a_tile[lid.y * 4u + k4], t[0], t[1], t[2], t[3]);
        }
        workgroupBarrier();
    }
    store_abt4(row, 4u * c4, acc);
}
