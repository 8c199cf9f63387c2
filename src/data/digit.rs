//! A hand-drawn digit made to look like an MNIST image, as the data set's images were made
//! (LeCun et al.): the ink's bounding box scaled, keeping its aspect ratio, to fit a 20×20
//! box with anti-aliasing, then placed in the 28×28 image so that its centre of mass falls
//! on the centre.

use super::mnist::{PIXELS, SIDE};

/// The side of the box the digit's larger dimension is scaled to.
pub const BOX: usize = 20;

/// Ink below this (on a 0–1 scale) does not count towards the bounding box.
const INK: f32 = 0.05;

/// Samples per target pixel along each axis when downsampling (a box filter).
const SAMPLES: usize = 6;

/// Turns `canvas` (`width × height` ink values in [0, 1], row-major, 1 = ink) into an MNIST
/// image: 784 values in [0, 1], the digit scaled into a 20×20 box and centred by its centre of
/// mass. A blank canvas (or one whose size does not match) gives a blank image.
pub fn mnist_like(canvas: &[f32], width: usize, height: usize) -> Vec<f32> {
    let mut image = vec![0.0f32; PIXELS];
    if width == 0 || height == 0 || canvas.len() != width * height {
        return image;
    }
    let ink = |x: usize, y: usize| canvas[y * width + x].clamp(0.0, 1.0);
    // The ink's bounding box.
    let (mut x0, mut y0, mut x1, mut y1) = (width, height, 0, 0);
    for y in 0..height {
        for x in 0..width {
            if ink(x, y) > INK {
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x + 1);
                y1 = y1.max(y + 1);
            }
        }
    }
    if x0 >= x1 {
        return image;
    }
    let (box_w, box_h) = ((x1 - x0) as f32, (y1 - y0) as f32);
    let scale = BOX as f32 / box_w.max(box_h);
    let out_w = ((box_w * scale).round() as usize).clamp(1, BOX);
    let out_h = ((box_h * scale).round() as usize).clamp(1, BOX);
    // Box-filtered downsampling: each target pixel averages SAMPLES² points of its footprint.
    let mut small = vec![0.0f32; out_w * out_h];
    for ty in 0..out_h {
        for tx in 0..out_w {
            let mut sum = 0.0;
            for sy in 0..SAMPLES {
                for sx in 0..SAMPLES {
                    let fx = (tx as f32 + (sx as f32 + 0.5) / SAMPLES as f32) / scale;
                    let fy = (ty as f32 + (sy as f32 + 0.5) / SAMPLES as f32) / scale;
                    let x = (x0 + fx as usize).min(x1 - 1);
                    let y = (y0 + fy as usize).min(y1 - 1);
                    sum += ink(x, y);
                }
            }
            small[ty * out_w + tx] = sum / (SAMPLES * SAMPLES) as f32;
        }
    }
    // Its centre of mass, placed on the image's centre.
    let (mut mass, mut cx, mut cy) = (0.0f32, 0.0f32, 0.0f32);
    for y in 0..out_h {
        for x in 0..out_w {
            let v = small[y * out_w + x];
            mass += v;
            cx += v * (x as f32 + 0.5);
            cy += v * (y as f32 + 0.5);
        }
    }
    let (cx, cy) = (cx / mass, cy / mass);
    let centre = SIDE as f32 / 2.0;
    let left = (centre - cx).round() as isize;
    let top = (centre - cy).round() as isize;
    for y in 0..out_h {
        for x in 0..out_w {
            let (ix, iy) = (left + x as isize, top + y as isize);
            if (0..SIDE as isize).contains(&ix) && (0..SIDE as isize).contains(&iy) {
                image[iy as usize * SIDE + ix as usize] = small[y * out_w + x];
            }
        }
    }
    image
}

/// An MNIST image's pixels (0–255 bytes) as the 0–1 ink values [`mnist_like`] produces.
pub fn ink_from_bytes(pixels: &[u8]) -> Vec<f32> {
    pixels.iter().map(|&p| f32::from(p) / 255.0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn centre_of_mass(image: &[f32]) -> (f32, f32) {
        let (mut m, mut x, mut y) = (0.0, 0.0, 0.0);
        for (i, &v) in image.iter().enumerate() {
            m += v;
            x += v * ((i % SIDE) as f32 + 0.5);
            y += v * ((i / SIDE) as f32 + 0.5);
        }
        (x / m, y / m)
    }

    /// The ink's bounding box in a 28×28 image: (left, top, right, bottom), exclusive.
    fn bounds(image: &[f32]) -> (usize, usize, usize, usize) {
        let mut b = (SIDE, SIDE, 0, 0);
        for (i, &v) in image.iter().enumerate() {
            if v > INK {
                let (x, y) = (i % SIDE, i / SIDE);
                b = (b.0.min(x), b.1.min(y), b.2.max(x + 1), b.3.max(y + 1));
            }
        }
        b
    }

    #[test]
    fn a_blank_or_mis_sized_canvas_gives_a_blank_image() {
        assert_eq!(mnist_like(&[0.0; 100], 10, 10), vec![0.0; PIXELS]);
        assert_eq!(mnist_like(&[1.0; 99], 10, 10), vec![0.0; PIXELS]);
        assert_eq!(mnist_like(&[], 0, 0), vec![0.0; PIXELS]);
    }

    #[test]
    fn an_off_centre_stroke_is_scaled_into_the_box_and_centred() {
        // A 280×280 canvas with a vertical bar in its top-left corner: 20×100 canvas pixels.
        let (w, h) = (280, 280);
        let mut canvas = vec![0.0f32; w * h];
        for y in 10..110 {
            for x in 30..50 {
                canvas[y * w + x] = 1.0;
            }
        }
        let image = mnist_like(&canvas, w, h);
        let (l, t, r, b) = bounds(&image);
        assert_eq!(b - t, BOX, "the taller side fills the 20-pixel box");
        assert_eq!(r - l, 4, "the aspect ratio is kept: 20 × 20/100");
        let (cx, cy) = centre_of_mass(&image);
        assert!(
            (cx - 14.0).abs() <= 0.5 && (cy - 14.0).abs() <= 0.5,
            "{cx}, {cy}"
        );
        assert!(image.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn anti_aliasing_keeps_partial_coverage() {
        // A diagonal line: downsampled pixels must take values strictly between 0 and 1.
        let (w, h) = (200, 200);
        let mut canvas = vec![0.0f32; w * h];
        for i in 0..200 {
            for d in 0..6 {
                canvas[i * w + (i + d).min(w - 1)] = 1.0;
            }
        }
        let image = mnist_like(&canvas, w, h);
        assert!(image.iter().any(|&v| v > 0.05 && v < 0.95));
    }
}
