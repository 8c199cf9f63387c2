// Shared by the kernels that draw random numbers (RReLU's slopes, dropout's mask; prepended
// by the Rust side, as WGSL has no includes). The CPU oracle's twin is `cpu::pcg_hash`.

// PCG hash (O'Neill), used as a counter-based RNG: the same (seed, step, index) always gives
// the same number, on the GPU and in the CPU oracle, with no state to store.
fn pcg_hash(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}
