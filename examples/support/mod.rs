//! What several examples share: their command line (the `mnist` example's conventions), where
//! MNIST comes from, `main`, and the plots' font and PNG encoding.

#![allow(dead_code)] // each example uses a different subset

use std::path::PathBuf;

use wgsl_nn::data::mnist::{FILES, Mnist, find_file, resolve_data_dir};

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

/// `--out`, for the examples that write files.
#[derive(Debug, clap::Args)]
pub struct OutArgs {
    /// Where to write the example's files.
    #[arg(long, default_value = "runs/lecture")]
    pub out: PathBuf,
}

/// `--data-dir` and `--no-download`, for the examples that read MNIST.
#[derive(Debug, Default, clap::Args)]
pub struct DataArgs {
    /// Directory with the MNIST files (else $MNIST_DIR, else data/mnist).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Never download MNIST; fail if the files are missing.
    #[arg(long)]
    pub no_download: bool,
}

impl DataArgs {
    /// The data directory these flags name (`--data-dir`, else `MNIST_DIR`, else `data/mnist`).
    pub fn dir(&self) -> PathBuf {
        resolve_data_dir(self.data_dir.as_deref()).0
    }

    /// Makes sure the four files are in [`Self::dir`], downloading the missing ones (with a
    /// progress bar) unless `--no-download` forbids it; returns the directory.
    pub fn ensure(&self) -> Result<PathBuf, Box<dyn std::error::Error>> {
        let dir = self.dir();
        if FILES.iter().any(|f| find_file(&dir, f).is_none()) {
            if self.no_download {
                return Err(format!(
                    "the MNIST files are not all in {} and --no-download forbids fetching \
                     them: put the four files there (raw or .gz), point --data-dir or MNIST_DIR \
                     at a directory that has them, or drop --no-download",
                    dir.display()
                )
                .into());
            }
            download(&dir)?;
        }
        Ok(dir)
    }

    /// [`Self::ensure`], then the four files loaded and validated.
    pub fn load(&self) -> Result<Mnist, Box<dyn std::error::Error>> {
        Ok(Mnist::load(&self.ensure()?)?)
    }
}

/// Downloads the missing MNIST files into `dir`, with a progress bar.
#[cfg(feature = "download")]
fn download(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    use indicatif::{ProgressBar, ProgressStyle};
    use wgsl_nn::data::download::{DownloadOptions, download_mnist};

    println!("downloading MNIST into {}", dir.display());
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")?
            .progress_chars("=> "),
    );
    download_mnist(
        dir,
        &DownloadOptions::default(),
        &mut |name, done, total| {
            bar.set_message(name.to_string());
            bar.set_length(total.unwrap_or(done));
            bar.set_position(done);
        },
    )?;
    bar.finish_and_clear();
    Ok(())
}

/// Without the `download` feature there is no HTTP client: says how to get the files.
#[cfg(not(feature = "download"))]
fn download(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    Err(format!(
        "the MNIST files are not all in {}, and this build cannot download them (it lacks the \
         `download` feature): put the four files there (raw or .gz), point --data-dir or \
         MNIST_DIR at a directory that has them, or build with the default features",
        dir.display()
    )
    .into())
}

/// An example's `main`: parses its flags as `A` (an unknown flag or a stray argument is an
/// error with the usage, before anything runs; `--help` prints the usage), opens the device,
/// runs `run` with stdout as its log, and turns an error into a message and a failing exit
/// code.
pub fn main_with<A: clap::Parser, T>(
    run: impl FnOnce(
        &wgsl_nn::Device,
        &mut dyn std::io::Write,
        &A,
    ) -> Result<T, Box<dyn std::error::Error>>,
) -> std::process::ExitCode {
    let args = A::parse();
    let result = wgsl_nn::Device::new()
        .map_err(Into::into)
        .and_then(|device| run(&device, &mut std::io::stdout(), &args));
    match result {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
