//! GPU time of each dispatch of one submit, from timestamp queries: what an adapter offers,
//! and the query set an [`Encoder`](super::Encoder) writes around its dispatches while
//! timing.

use super::DispatchGrid;

/// Where an adapter can write timestamps, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampSupport {
    /// Inside compute passes (`TIMESTAMP_QUERY_INSIDE_PASSES`, native only): dispatches keep
    /// sharing one pass while timed.
    InsidePasses,
    /// At the beginning and end of passes only (`TIMESTAMP_QUERY`): each timed dispatch gets
    /// a pass of its own, so wgpu's barriers between passes are timed with it.
    PassBoundaries,
    /// No timestamp queries (most browsers without a flag, some drivers).
    None,
}

impl TimestampSupport {
    /// What a device with `features` supports.
    pub(crate) fn of(features: wgpu::Features) -> Self {
        if features.contains(
            wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES,
        ) {
            Self::InsidePasses
        } else if features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            Self::PassBoundaries
        } else {
            Self::None
        }
    }

    /// The features to request of an adapter that has `available`.
    pub(crate) fn features(available: wgpu::Features) -> wgpu::Features {
        available
            & (wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES)
    }
}

impl std::fmt::Display for TimestampSupport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::InsidePasses => "timestamps inside passes",
            Self::PassBoundaries => "timestamps at pass boundaries (one pass per timed dispatch)",
            Self::None => "no timestamp queries",
        })
    }
}

/// One dispatch of a timed submit: its grid and how long the GPU took over it.
#[derive(Clone, Debug, PartialEq)]
pub struct DispatchTime {
    /// The dispatch's entry point and grid.
    pub grid: DispatchGrid,
    /// GPU time from the timestamp before the dispatch to the one after, in nanoseconds
    /// (`None` past the query set's capacity).
    pub nanoseconds: Option<f64>,
}

impl std::fmt::Display for DispatchTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.nanoseconds {
            Some(ns) => write!(f, "{:>9.1} µs  {}", ns / 1e3, self.grid),
            None => write!(f, "{:>9}     {}", "?", self.grid),
        }
    }
}

/// The timestamp queries of one encoder: two per dispatch, before and after.
#[derive(Debug)]
pub(crate) struct Timing {
    pub query_set: wgpu::QuerySet,
    pub support: TimestampSupport,
    /// Dispatches the query set has room for.
    pub capacity: u32,
    /// Dispatches timed so far.
    pub timed: u32,
}

impl Timing {
    /// The most dispatches one timed submit times (wgpu allows 4096 queries per set).
    pub const MAX_DISPATCHES: u32 = 2048;

    /// The query indices of the next dispatch, or `None` when the set is full.
    pub fn next(&mut self) -> Option<(u32, u32)> {
        if self.timed == self.capacity {
            return None;
        }
        let at = 2 * self.timed;
        self.timed += 1;
        Some((at, at + 1))
    }
}

/// Nanoseconds between each pair of `ticks` (before, after), at `period` ns per tick. A pair
/// whose end precedes its start (a driver that resets its counter) gives 0.
pub(crate) fn durations(ticks: &[u64], period: f32) -> Vec<f64> {
    ticks
        .chunks_exact(2)
        .map(|pair| pair[1].saturating_sub(pair[0]) as f64 * f64::from(period))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_pair_the_ticks_and_scale_them() {
        assert_eq!(durations(&[10, 30, 100, 101], 2.5), vec![50.0, 2.5]);
        assert_eq!(durations(&[50, 40], 1.0), vec![0.0]);
    }

    #[test]
    fn support_is_read_from_the_features() {
        use wgpu::Features as F;
        assert_eq!(TimestampSupport::of(F::empty()), TimestampSupport::None);
        assert_eq!(
            TimestampSupport::of(F::TIMESTAMP_QUERY),
            TimestampSupport::PassBoundaries
        );
        assert_eq!(
            TimestampSupport::of(F::TIMESTAMP_QUERY | F::TIMESTAMP_QUERY_INSIDE_PASSES),
            TimestampSupport::InsidePasses
        );
        assert_eq!(
            TimestampSupport::features(F::SUBGROUP | F::TIMESTAMP_QUERY),
            F::TIMESTAMP_QUERY
        );
    }
}
