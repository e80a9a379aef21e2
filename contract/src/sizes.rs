//! The three thumbnail sizes and their bounding boxes.

use std::fmt;
use std::str::FromStr;

/// One of the three thumbnail sizes every image gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThumbSize {
    Small,
    Medium,
    Large,
}

impl ThumbSize {
    /// Every size, smallest first.
    pub const ALL: [ThumbSize; 3] = [ThumbSize::Small, ThumbSize::Medium, ThumbSize::Large];

    /// The name used in URLs, file names and settings.
    pub fn name(self) -> &'static str {
        match self {
            Self::Small => "small",
            Self::Medium => "medium",
            Self::Large => "large",
        }
    }

    /// Parses the name used in URLs; anything else is `None`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|size| size.name() == name)
    }
}

impl fmt::Display for ThumbSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The longest side, in pixels, of each size's bounding box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    small: u32,
    medium: u32,
    large: u32,
}

impl Default for Sizes {
    fn default() -> Self {
        Self { small: 200, medium: 600, large: 1200 }
    }
}

impl Sizes {
    /// Bounding boxes smaller than this make useless thumbnails.
    pub const MIN_PX: u32 = 16;
    /// Bounding boxes larger than this are not thumbnails any more.
    pub const MAX_PX: u32 = 4096;

    /// The longest side of the box for `size`.
    pub fn max_side(&self, size: ThumbSize) -> u32 {
        match size {
            ThumbSize::Small => self.small,
            ThumbSize::Medium => self.medium,
            ThumbSize::Large => self.large,
        }
    }

    /// The dimensions of `size`'s thumbnail of a `width`×`height` image:
    /// the aspect ratio is kept, the longest side fits the box, and an image
    /// already inside the box is never enlarged. No side is ever 0.
    pub fn fit(&self, size: ThumbSize, width: u32, height: u32) -> (u32, u32) {
        fit_within(self.max_side(size), width, height)
    }
}

/// Fits `width`×`height` inside a `max_side`×`max_side` box without enlarging it.
pub fn fit_within(max_side: u32, width: u32, height: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= max_side || longest == 0 {
        return (width.max(1), height.max(1));
    }
    let scale = |side: u32| -> u32 {
        let scaled = (u64::from(side) * u64::from(max_side) + u64::from(longest) / 2) / u64::from(longest);
        (scaled as u32).max(1)
    };
    (scale(width), scale(height))
}

/// Why a `--sizes` value was refused; the message names the part at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SizesError {
    #[error("`{0}` is not of the form name=pixels (e.g. small=200,medium=600,large=1200)")]
    NotAPair(String),
    #[error("unknown size name `{0}`: the sizes are small, medium and large")]
    UnknownName(String),
    #[error("size `{name}` has `{value}` pixels: give a whole number from {min} to {max}", min = Sizes::MIN_PX, max = Sizes::MAX_PX)]
    BadPixels { name: String, value: String },
    #[error("size `{0}` is given twice")]
    Repeated(String),
    #[error("sizes must grow: small < medium < large (got {small}, {medium}, {large})")]
    NotIncreasing { small: u32, medium: u32, large: u32 },
}

impl FromStr for Sizes {
    type Err = SizesError;

    /// Parses `small=200,medium=600,large=1200`. Names left out keep their defaults.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut sizes = Sizes::default();
        let mut seen = Vec::new();
        for pair in text.split(',').map(str::trim).filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').ok_or_else(|| SizesError::NotAPair(pair.to_owned()))?;
            let (name, value) = (name.trim(), value.trim());
            let size = ThumbSize::from_name(name).ok_or_else(|| SizesError::UnknownName(name.to_owned()))?;
            if seen.contains(&size) {
                return Err(SizesError::Repeated(name.to_owned()));
            }
            seen.push(size);
            let pixels = value
                .parse::<u32>()
                .ok()
                .filter(|px| (Sizes::MIN_PX..=Sizes::MAX_PX).contains(px))
                .ok_or_else(|| SizesError::BadPixels { name: name.to_owned(), value: value.to_owned() })?;
            match size {
                ThumbSize::Small => sizes.small = pixels,
                ThumbSize::Medium => sizes.medium = pixels,
                ThumbSize::Large => sizes.large = pixels,
            }
        }
        if !(sizes.small < sizes.medium && sizes.medium < sizes.large) {
            return Err(SizesError::NotIncreasing { small: sizes.small, medium: sizes.medium, large: sizes.large });
        }
        Ok(sizes)
    }
}

impl fmt::Display for Sizes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "small={},medium={},large={}", self.small, self.medium, self.large)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_landscape_image_is_bounded_by_its_width() {
        let sizes = Sizes::default();
        assert_eq!(sizes.fit(ThumbSize::Small, 4000, 3000), (200, 150));
        assert_eq!(sizes.fit(ThumbSize::Medium, 4000, 3000), (600, 450));
        assert_eq!(sizes.fit(ThumbSize::Large, 4000, 3000), (1200, 900));
    }

    #[test]
    fn a_portrait_image_is_bounded_by_its_height() {
        assert_eq!(Sizes::default().fit(ThumbSize::Small, 3000, 4000), (150, 200));
    }

    #[test]
    fn a_small_image_is_never_enlarged() {
        assert_eq!(Sizes::default().fit(ThumbSize::Large, 640, 480), (640, 480));
        assert_eq!(Sizes::default().fit(ThumbSize::Small, 200, 10), (200, 10));
    }

    #[test]
    fn a_very_thin_image_keeps_at_least_one_pixel() {
        assert_eq!(Sizes::default().fit(ThumbSize::Small, 10_000, 3), (200, 1));
        assert_eq!(fit_within(200, 0, 0), (1, 1));
    }

    #[test]
    fn sizes_parse_and_print_the_same_text() {
        let sizes: Sizes = "small=100,medium=300,large=900".parse().unwrap();
        assert_eq!(sizes.max_side(ThumbSize::Medium), 300);
        assert_eq!(sizes.to_string(), "small=100,medium=300,large=900");
        assert_eq!("large=1600".parse::<Sizes>().unwrap().max_side(ThumbSize::Large), 1600);
    }

    #[test]
    fn bad_sizes_are_refused_with_a_message_naming_the_fault() {
        assert_eq!("tiny=10".parse::<Sizes>(), Err(SizesError::UnknownName("tiny".into())));
        assert_eq!("small".parse::<Sizes>(), Err(SizesError::NotAPair("small".into())));
        assert!(matches!("small=abc".parse::<Sizes>(), Err(SizesError::BadPixels { .. })));
        assert!(matches!("small=0".parse::<Sizes>(), Err(SizesError::BadPixels { .. })));
        assert!(matches!("small=700".parse::<Sizes>(), Err(SizesError::NotIncreasing { .. })));
        assert_eq!("small=1,small=2".parse::<Sizes>().unwrap_err(), SizesError::BadPixels { name: "small".into(), value: "1".into() });
        assert_eq!("small=20,small=30".parse::<Sizes>(), Err(SizesError::Repeated("small".into())));
        assert!("small=abc".parse::<Sizes>().unwrap_err().to_string().contains("small"));
    }
}
