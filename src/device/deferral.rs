//! The device's recording-only mode: while a [`Deferral`] lives on a thread (a capture holds
//! one), nothing that thread submits may run, so a submit or a readback there is refused with
//! an error instead of running out of order. The mode belongs to the device layer; whoever
//! records ahead of running (the capture) sets it, and the device never asks who.

use std::cell::Cell;

thread_local! {
    static DEFERRING: Cell<bool> = const { Cell::new(false) };
}

/// Recording-only mode on this thread, until dropped (also on a panic or an early return).
#[derive(Debug)]
pub(crate) struct Deferral(());

impl Deferral {
    /// Enters the mode; `None` when this thread is in it already.
    pub(crate) fn begin() -> Option<Self> {
        DEFERRING.with(|d| !d.replace(true)).then_some(Self(()))
    }

    /// Whether this thread is in the mode.
    pub(crate) fn active() -> bool {
        DEFERRING.with(Cell::get)
    }
}

impl Drop for Deferral {
    fn drop(&mut self) {
        DEFERRING.with(|d| d.set(false));
    }
}
