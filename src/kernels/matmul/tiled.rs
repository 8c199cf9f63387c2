//! The tile shapes of [`MatmulKernel::Tiled`](super::MatmulKernel::Tiled) (`matmul_tiled`
//! in `shaders/matmul.wgsl`), chosen by the product's shape.
//!
//! The kernel is shaped after the published SGEMM designs for GPUs: a large tile of C per
//! workgroup, a block of 4×4 outputs per invocation read as vec4 from workgroup memory, the
//! next k slice fetched while the current one is multiplied (two buffers, one barrier per
//! step). A large tile reuses each loaded value more (128×128 tiles with 8×8 outputs per
//! invocation do 64 FMAs per 4 vec4 reads of workgroup memory per k) but gives fewer
//! workgroups; a GPU needs several workgroups per multiprocessor to hide its latencies. So
//! the launcher takes the largest tile that still gives a grid of many workgroups, and the
//! smallest one otherwise. The thresholds are reasoned from the hardware's shape (a GPU of
//! 60–140 multiprocessors), not measured on one: no GPU has run this kernel yet.

use super::MatmulDims;

/// One tile shape of `matmul_tiled`: its override constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TileShape {
    /// Invocations along N (`TILED_WG_X`) and along M (`TILED_WG_Y`).
    pub wg: [usize; 2],
    /// 4×4 output blocks per invocation along M (`TILED_ROW_GROUPS`) and N
    /// (`TILED_COL_GROUPS`): 1 or 2 each.
    pub groups: [usize; 2],
    /// Values of k per staged slice (`TILED_BK`), a multiple of 4 dividing
    /// [`PASS_LENGTH`](crate::kernels::PASS_LENGTH).
    pub bk: usize,
}

/// 128×128 tiles, 8×8 outputs per invocation of 256, slices 8 deep.
pub(crate) const LARGE: TileShape = TileShape {
    wg: [16, 16],
    groups: [2, 2],
    bk: 8,
};
/// 64×64 tiles, 4×4 outputs per invocation of 256, slices 16 deep.
pub(crate) const MEDIUM: TileShape = TileShape {
    wg: [16, 16],
    groups: [1, 1],
    bk: 16,
};
/// 32×32 tiles, 4×4 outputs per invocation of 64, slices 32 deep.
pub(crate) const SMALL: TileShape = TileShape {
    wg: [8, 8],
    groups: [1, 1],
    bk: 32,
};

/// The shapes from the largest tile to the smallest.
pub(crate) const SHAPES: [TileShape; 3] = [LARGE, MEDIUM, SMALL];

/// vec4 slots of workgroup memory per operand slice (the shader's `TILED_SLOTS`).
pub(crate) const SLOTS: usize = 256;
/// vec4 loads per operand, invocation and step, at most (the shader's `TILED_MAX_LOADS`).
pub(crate) const MAX_LOADS: usize = 4;

impl TileShape {
    /// Rows of C per workgroup.
    pub fn rows(self) -> usize {
        4 * self.wg[1] * self.groups[0]
    }

    /// Columns of C per workgroup.
    pub fn cols(self) -> usize {
        4 * self.wg[0] * self.groups[1]
    }

    /// Workgroups covering an `m × n` output.
    pub fn workgroups(self, m: usize, n: usize) -> usize {
        m.div_ceil(self.rows()) * n.div_ceil(self.cols())
    }

    /// The override constants the shader takes.
    pub fn constants(self) -> [(&'static str, f64); 5] {
        [
            ("TILED_WG_X", self.wg[0] as f64),
            ("TILED_WG_Y", self.wg[1] as f64),
            ("TILED_ROW_GROUPS", self.groups[0] as f64),
            ("TILED_COL_GROUPS", self.groups[1] as f64),
            ("TILED_BK", self.bk as f64),
        ]
    }

    /// Whether the shader's fixed sizes hold this shape: each slice fits its 256 vec4
    /// slots, each invocation loads at most four vec4 of each, blocks of 1 or 2.
    pub fn fits_shader(self) -> bool {
        let threads = self.wg[0] * self.wg[1];
        let slots = [self.rows() / 4 * self.bk, self.cols() / 4 * self.bk];
        self.bk.is_multiple_of(4)
            && crate::kernels::PASS_LENGTH.is_multiple_of(self.bk)
            && self.groups.iter().all(|g| (1..=2).contains(g))
            && slots
                .iter()
                .all(|&s| s <= SLOTS && s <= MAX_LOADS * threads)
    }
}

/// The tile for an `m × n` output: the largest whose grid has at least `MIN_WORKGROUPS[i]`
/// workgroups (64 for 128×128 tiles, 16 for 64×64), else 32×32.
pub(crate) fn tile_for(dims: MatmulDims) -> TileShape {
    const MIN_WORKGROUPS: [usize; 2] = [64, 16];
    let MatmulDims { m, n, .. } = dims;
    SHAPES[..2]
        .iter()
        .zip(MIN_WORKGROUPS)
        .find(|(shape, least)| shape.workgroups(m, n) >= *least)
        .map_or(SMALL, |(shape, _)| *shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_fits_the_shader() {
        for shape in SHAPES {
            assert!(shape.fits_shader(), "{shape:?}");
        }
    }

    #[test]
    fn the_tile_shrinks_with_the_output() {
        let dims = |m, n| MatmulDims { m, k: 64, n };
        assert_eq!(tile_for(dims(2048, 2048)), LARGE);
        assert_eq!(tile_for(dims(1024, 1024)), LARGE);
        // The shapes of tests/matmul.rs's `tiled_agrees_in_bits_with_blocked_at_every_tile_shape`.
        assert_eq!(tile_for(dims(1000, 1000)), LARGE);
        assert_eq!(tile_for(dims(61, 35)), SMALL);
        // The kernels check's large shape (`conformance`).
        assert_eq!(tile_for(dims(1031, 1030)), LARGE);
        assert_eq!(tile_for(dims(513, 129)), MEDIUM);
        assert_eq!(tile_for(dims(784, 128)), MEDIUM);
        assert_eq!(tile_for(dims(64, 128)), SMALL);
        assert_eq!(tile_for(dims(1, 1)), SMALL);
    }
}
