//! Ctrl-C: the first press asks the run to stop at the end of the current step (it then saves
//! a checkpoint and says how to resume); a second press quits at once.

use std::sync::atomic::{AtomicUsize, Ordering};

static PRESSES: AtomicUsize = AtomicUsize::new(0);

/// Installs the handler (SIGINT and SIGTERM).
pub fn install() -> Result<(), ctrlc::Error> {
    ctrlc::set_handler(|| {
        if PRESSES.fetch_add(1, Ordering::SeqCst) == 0 {
            eprintln!(
                "\ninterrupted: stopping at the end of this step to save a checkpoint \
                 (press Ctrl-C again to quit at once, losing the run since the last epoch)"
            );
        } else {
            eprintln!("\nquitting at once");
            // Whatever a write had in progress is a `.wgsl-nn-*.tmp` that the next run removes.
            std::process::exit(130);
        }
    })
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    PRESSES.load(Ordering::SeqCst) > 0
}
