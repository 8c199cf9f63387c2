// The gather kernel: a shuffled batch of images and labels gathered on the device.
//
// The training set stays on the device as bytes (47 MB for MNIST; as f32 it would be 188 MB,
// beyond many adapters' 128 MiB storage-binding limit). Each step gathers its batch through
// the epoch's shuffled order and normalises it: x = byte · scale + shift, with
// scale = 1 / (255·std) and shift = −mean / std, i.e. (byte/255 − mean) / std.
//
// Bindings (group 0):
//   0: pixels   storage, read        all images, four bytes per u32, little-endian
//   1: labels   storage, read        all labels (u32)
//   2: order    storage, read        this epoch's permutation of example indices
//   3: batch_x  storage, read_write  rows × pixels_per_image, f32
//   4: batch_y  storage, read_write  rows labels (u32)
//   5: p        uniform              offset into order, rows, pixels per image, scale, shift
//
// Workgroup: 64 invocations, one pixel each (the first pixel of a row also copies its label).
// Dispatch: a 2-D grid over rows × pixels_per_image.

struct GatherParams {
    offset: u32,
    rows: u32,
    pixels: u32,
    _pad: u32,
    scale: f32,
    shift: f32,
    _pad1: f32,
    _pad2: f32,
}

@group(0) @binding(0) var<storage, read> pixels: array<u32>;
@group(0) @binding(1) var<storage, read> labels: array<u32>;
@group(0) @binding(2) var<storage, read> order: array<u32>;
@group(0) @binding(3) var<storage, read_write> batch_x: array<f32>;
@group(0) @binding(4) var<storage, read_write> batch_y: array<u32>;
@group(0) @binding(5) var<uniform> p: GatherParams;

@compute @workgroup_size(WG)
fn gather_batch(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = flat_index(wg, groups, lid);
    if i >= p.rows * p.pixels {
        return;
    }
    let row = i / p.pixels;
    let pixel = i % p.pixels;
    let example = order[p.offset + row];
    let byte_index = example * p.pixels + pixel;
    let word = pixels[byte_index / 4u];
    let byte = (word >> ((byte_index % 4u) * 8u)) & 0xffu;
    batch_x[i] = normalize_byte(byte, p.scale, p.shift);
    if pixel == 0u {
        batch_y[row] = labels[example];
    }
}
