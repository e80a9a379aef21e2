//! SSIM, the structural similarity index of Wang, Bovik, Sheikh and
//! Simoncelli (IEEE Transactions on Image Processing, 2004), on luma.
//!
//! As in the paper: an 11×11 circular-symmetric Gaussian window with σ = 1.5
//! (normalised to sum 1), K1 = 0.01, K2 = 0.03, L = 255, the SSIM map over
//! every position where the window lies wholly inside the image (no padding),
//! and its mean as the score. No downsampling first: a thumbnail is seen at
//! its own size. 1 means identical; lower is further from the reference.

use image::RgbImage;

const RADIUS: usize = 5;
const SIGMA: f64 = 1.5;
const C1: f64 = (0.01 * 255.0) * (0.01 * 255.0);
const C2: f64 = (0.03 * 255.0) * (0.03 * 255.0);

/// One channel of an image, in the 0–255 range.
pub struct Plane {
    width: usize,
    height: usize,
    values: Vec<f64>,
}

impl Plane {
    /// The luma of an RGB image, with the BT.601 weights that JPEG uses.
    pub fn luma(image: &RgbImage) -> Self {
        let values = image
            .pixels()
            .map(|pixel| {
                let [red, green, blue] = pixel.0.map(f64::from);
                0.299 * red + 0.587 * green + 0.114 * blue
            })
            .collect();
        Self { width: image.width() as usize, height: image.height() as usize, values }
    }

    pub fn dimensions(&self) -> (u32, u32) {
        (self.width as u32, self.height as u32)
    }

    fn map(&self, operation: impl Fn(f64) -> f64) -> Vec<f64> {
        self.values.iter().map(|&value| operation(value)).collect()
    }
}

/// The mean SSIM of `distorted` against `reference`. Both must have the same
/// dimensions, at least 11×11.
pub fn ssim(reference: &Plane, distorted: &Plane) -> f64 {
    assert_eq!(reference.dimensions(), distorted.dimensions(), "SSIM compares images of the same size");
    let (width, height) = (reference.width, reference.height);
    assert!(width > 2 * RADIUS && height > 2 * RADIUS, "SSIM needs images of at least 11×11 pixels");
    let window = gaussian_window();
    let blur = |values: &[f64]| filter_valid(values, width, height, &window);
    let products: Vec<f64> = reference.values.iter().zip(&distorted.values).map(|(x, y)| x * y).collect();
    let (mean_x, mean_y) = (blur(&reference.values), blur(&distorted.values));
    let (mean_xx, mean_yy, mean_xy) = (blur(&reference.map(|x| x * x)), blur(&distorted.map(|y| y * y)), blur(&products));
    let scores = (0..mean_x.len()).map(|at| {
        let (mx, my) = (mean_x[at], mean_y[at]);
        let (variance_x, variance_y, covariance) = (mean_xx[at] - mx * mx, mean_yy[at] - my * my, mean_xy[at] - mx * my);
        ((2.0 * mx * my + C1) * (2.0 * covariance + C2)) / ((mx * mx + my * my + C1) * (variance_x + variance_y + C2))
    });
    scores.sum::<f64>() / mean_x.len() as f64
}

fn gaussian_window() -> [f64; 2 * RADIUS + 1] {
    let mut window = std::array::from_fn(|at| {
        let offset = at as f64 - RADIUS as f64;
        (-offset * offset / (2.0 * SIGMA * SIGMA)).exp()
    });
    let sum: f64 = window.iter().sum();
    window.iter_mut().for_each(|weight| *weight /= sum);
    window
}

/// Filters `values` (`width`×`height`, rows first) with the separable window,
/// keeping only the positions where it lies wholly inside.
fn filter_valid(values: &[f64], width: usize, height: usize, window: &[f64]) -> Vec<f64> {
    let taps = window.len();
    let out_width = width - taps + 1;
    let mut across = Vec::with_capacity(out_width * height);
    for row in values.chunks_exact(width) {
        across.extend(row.windows(taps).map(|span| span.iter().zip(window).map(|(value, weight)| value * weight).sum::<f64>()));
    }
    let mut down = vec![0.0; out_width * (height - taps + 1)];
    for (top, out_row) in down.chunks_exact_mut(out_width).enumerate() {
        for (tap, weight) in window.iter().enumerate() {
            let source = &across[(top + tap) * out_width..][..out_width];
            out_row.iter_mut().zip(source).for_each(|(out, value)| *out += weight * value);
        }
    }
    down
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane(width: usize, height: usize, value: impl Fn(usize, usize) -> f64) -> Plane {
        let values = (0..height).flat_map(|y| (0..width).map(move |x| (x, y))).map(|(x, y)| value(x, y)).collect();
        Plane { width, height, values }
    }

    #[test]
    fn an_image_is_identical_to_itself() {
        let texture = plane(40, 30, |x, y| ((x * 37 + y * 11) % 256) as f64);
        assert!((ssim(&texture, &texture) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn two_flat_images_differ_only_by_luminance() {
        // With no variance, SSIM is the luminance term alone: (2ab + C1) / (a² + b² + C1).
        let (a, b) = (100.0, 140.0);
        let expected = (2.0 * a * b + C1) / (a * a + b * b + C1);
        assert!((ssim(&plane(20, 20, |_, _| a), &plane(20, 20, |_, _| b)) - expected).abs() < 1e-9);
    }

    #[test]
    fn the_score_is_symmetric_and_falls_as_noise_grows() {
        let texture = plane(64, 48, |x, y| 128.0 + 60.0 * ((x as f64 * 0.3).sin() + (y as f64 * 0.2).cos()) / 2.0);
        let noisy = |amount: f64| plane(64, 48, |x, y| texture.values[y * 64 + x] + amount * if (x * 7 + y * 13) % 3 == 0 { 1.0 } else { -0.5 });
        let (slightly, badly) = (noisy(5.0), noisy(40.0));
        assert!((ssim(&texture, &slightly) - ssim(&slightly, &texture)).abs() < 1e-12);
        assert!(1.0 > ssim(&texture, &slightly));
        assert!(ssim(&texture, &slightly) > ssim(&texture, &badly));
    }

    #[test]
    fn the_window_sums_to_one_and_peaks_in_the_middle() {
        let window = gaussian_window();
        assert!((window.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(window.iter().all(|&weight| weight <= window[RADIUS]));
    }
}
