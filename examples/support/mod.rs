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

/// What a drawing closure returns (plotters' errors, boxed).
pub type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// An RGB image of `width` × `height` drawn by `draw` into a white buffer (with plotters'
/// `BitMapBackend::with_buffer`), encoded as PNG bytes: drawn in memory, so the file can be
/// written atomically.
pub fn png(
    width: u32,
    height: u32,
    draw: impl FnOnce(&mut [u8]) -> DrawResult,
) -> Result<Vec<u8>, String> {
    let mut rgb = vec![255u8; width as usize * height as usize * 3];
    draw(&mut rgb).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(&rgb).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(bytes)
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
