//! How large an upload may be, stated once for the web server and the workers.

/// The limits on one image. The web server checks them from the file's header
/// at upload; the worker checks them again before it allocates pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaLimits {
    /// Largest file, in bytes.
    pub max_file_bytes: u64,
    /// Widest and tallest image, in pixels.
    pub max_side_px: u32,
    /// Largest area, in pixels (width × height).
    pub max_pixels: u64,
}

impl MediaLimits {
    pub const DEFAULT_MAX_FILE_BYTES: u64 = 50 * 1024 * 1024;
    pub const DEFAULT_MAX_SIDE_PX: u32 = 20_000;
    pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;

    /// Why an image of `width`×`height` is over the limits, if it is.
    pub fn check_dimensions(&self, width: u32, height: u32) -> Result<(), DimensionError> {
        if width > self.max_side_px || height > self.max_side_px {
            return Err(DimensionError::TooWide { width, height, max_side: self.max_side_px });
        }
        let pixels = u64::from(width) * u64::from(height);
        if pixels > self.max_pixels {
            return Err(DimensionError::TooManyPixels { width, height, max_pixels: self.max_pixels });
        }
        if width == 0 || height == 0 {
            return Err(DimensionError::Empty);
        }
        Ok(())
    }
}

impl Default for MediaLimits {
    fn default() -> Self {
        Self { max_file_bytes: Self::DEFAULT_MAX_FILE_BYTES, max_side_px: Self::DEFAULT_MAX_SIDE_PX, max_pixels: Self::DEFAULT_MAX_PIXELS }
    }
}

/// An image over the pixel limits; the message is for the person who sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DimensionError {
    #[error("the image is {width}×{height} pixels; no side may be longer than {max_side} pixels")]
    TooWide { width: u32, height: u32, max_side: u32 },
    #[error("the image is {width}×{height} pixels, over the limit of {} megapixels", max_pixels / 1_000_000)]
    TooManyPixels { width: u32, height: u32, max_pixels: u64 },
    #[error("the image has no pixels")]
    Empty,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decompression_bomb_is_over_the_limits_from_its_dimensions_alone() {
        let limits = MediaLimits::default();
        assert_eq!(limits.check_dimensions(4000, 3000), Ok(()));
        assert!(matches!(limits.check_dimensions(50_000, 50_000), Err(DimensionError::TooWide { .. })));
        assert!(matches!(limits.check_dimensions(15_000, 15_000), Err(DimensionError::TooManyPixels { .. })));
        assert_eq!(limits.check_dimensions(0, 10), Err(DimensionError::Empty));
        assert!(limits.check_dimensions(15_000, 15_000).unwrap_err().to_string().contains("100 megapixels"));
    }
}
