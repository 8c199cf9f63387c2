//! Ctrl-C (and SIGTERM): the first asks the run to stop at the next point where its state can
//! be saved (the end of a step, or of an accumulation group); a second quits at once, unless
//! the run's outputs are being written, in which case it quits as soon as they are complete.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static PRESSES: AtomicUsize = AtomicUsize::new(0);
static WRITING: AtomicBool = AtomicBool::new(false);
static TRAINING: AtomicBool = AtomicBool::new(true);

/// Installs the handler.
pub fn install() -> Result<(), ctrlc::Error> {
    ctrlc::set_handler(|| {
        let first = PRESSES.fetch_add(1, Ordering::SeqCst) == 0;
        if WRITING.load(Ordering::SeqCst) {
            eprintln!("\ninterrupted: quitting as soon as the files being written are complete");
        } else if first && TRAINING.load(Ordering::SeqCst) {
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

/// Training is over: from now on a press quits at once (outside [`writing`]).
pub fn training_done() {
    TRAINING.store(false, Ordering::SeqCst);
}

/// Runs `write` with interrupts deferred, then quits if one came meanwhile.
pub fn writing<T>(write: impl FnOnce() -> T) -> T {
    WRITING.store(true, Ordering::SeqCst);
    let result = write();
    WRITING.store(false, Ordering::SeqCst);
    if requested() && !TRAINING.load(Ordering::SeqCst) {
        eprintln!("quitting: the files were written");
        std::process::exit(130);
    }
    result
}
