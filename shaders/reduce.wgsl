// The reduction family: sums along rows or columns of a row-major rows × cols matrix, in a
// fixed order (no float atomics), so the same inputs always give the same bits.
//
// Each invocation sums one block of at most `block` consecutive elements along the reduced
// axis. The block is bounded because lavapipe ends any shader loop after 65535 iterations;
// the Rust side chains passes over the partial sums until one block remains.
//
// Bindings (group 0):
//   0: x    storage, read        the input
//   1: out  storage, read_write  partial or final sums
//   2: p    uniform              rows, cols, block, blocks, scale
//
// sum_rows_blocked:    item (row i, block b) → out[i·blocks + b] = Σ_{j in block b} x[i, j]
// sum_columns_blocked: item (block b, col j) → out[b·cols + j]   = Σ_{i in block b} x[i, j]
// Workgroup: 64 invocations, one item each. Dispatch: a 2-D grid over the items.

// Adds into `out` instead of overwriting it (final pass only).
override ACCUMULATE: bool = false;

struct ReduceParams {
    rows: u32,
    cols: u32,
    block: u32,
    blocks: u32,
    scale: f32,
    _pad0: f32,
    _pad1: f32,
    _pad2: f32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: ReduceParams;

fn finish(index: u32, sum: f32) {
    var total = sum * p.scale;
    if ACCUMULATE {
        total += out[index];
    }
    out[index] = total;
}

@compute @workgroup_size(WG)
fn sum_rows_blocked(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let item = flat_index(wg, groups, lid);
    if item >= p.rows * p.blocks {
        return;
    }
    let row = item / p.blocks;
    let start = (item % p.blocks) * p.block;
    let end = min(start + p.block, p.cols);
    var sum = 0.0;
    for (var j = start; j < end; j += 1u) {
        sum += x[row * p.cols + j];
    }
    finish(item, sum);
}

@compute @workgroup_size(WG)
fn sum_columns_blocked(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let item = flat_index(wg, groups, lid);
    if item >= p.cols * p.blocks {
        return;
    }
    let col = item % p.cols;
    let start = (item / p.cols) * p.block;
    let end = min(start + p.block, p.rows);
    var sum = 0.0;
    for (var i = start; i < end; i += 1u) {
        sum += x[i * p.cols + col];
    }
    finish(item, sum);
}
