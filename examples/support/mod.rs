//! What several examples share: the plots' font.

#![allow(dead_code)] // each example uses a different subset

/// Registers a system sans-serif font for the plots' text; `false` when none is found, and
/// the plots are then drawn without text.
pub fn register_font() -> bool {
    const CANDIDATES: [&str; 4] = [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/Library/Fonts/Arial.ttf",
        "C:\\Windows\\Fonts\\arial.ttf",
    ];
    CANDIDATES.iter().any(|path| {
        std::fs::read(path).ok().is_some_and(|bytes| {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, bytes)
                .is_ok()
        })
    })
}

/// An example's `main`: opens the device, runs `run` with stdout as its log, and turns an
/// error into a message and a failing exit code.
pub fn main_with<T>(
    run: impl FnOnce(&wgsl_nn::Device, &mut dyn std::io::Write) -> Result<T, Box<dyn std::error::Error>>,
) -> std::process::ExitCode {
    let result = wgsl_nn::Device::new()
        .map_err(Into::into)
        .and_then(|device| run(&device, &mut std::io::stdout()));
    match result {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Where an example writes its files: the first command-line argument, else `runs/lecture`.
pub fn out_dir() -> std::path::PathBuf {
    std::env::args_os()
        .nth(1)
        .map_or_else(|| "runs/lecture".into(), Into::into)
}
