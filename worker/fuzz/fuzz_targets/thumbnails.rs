//! Feeds arbitrary bytes to the worker's pipeline, as an upload would reach it.
//!
//! The format is sniffed the way the web server does; bytes it would refuse
//! never reach a worker, so they stop here. Any `Err` is a fine answer to a
//! hostile file. A panic, an abort, a sanitizer report, a timeout or running
//! out of memory is a bug, and so are thumbnails that break the promises
//! `make_thumbnails` makes: three of them, largest first, each inside its box.
//!
//! With `THUMBQ_FUZZ_VERBOSE=1`, each input's result is printed, for triage:
//! `THUMBQ_FUZZ_VERBOSE=1 target/.../thumbnails FILE...` says what the pipeline made of each file.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use thumbq_contract::{MediaLimits, Sizes, SourceFormat, ThumbSize};
use thumbq_worker::pipeline::make_thumbnails;

/// The smallest boxes the settings allow: the same code runs, on fewer pixels.
static SIZES: LazyLock<Sizes> = LazyLock::new(|| {
    let text = format!("small={},medium=32,large=64", Sizes::MIN_PX);
    text.parse().expect("the fuzz target's sizes are valid")
});

static VERBOSE: LazyLock<bool> = LazyLock::new(|| std::env::var_os("THUMBQ_FUZZ_VERBOSE").is_some_and(|value| value != "0"));

/// Tighter than production, so that the fuzzer spends its time on odd files
/// rather than on honest large ones; the checks against them are the same.
const LIMITS: MediaLimits = MediaLimits { max_file_bytes: 1 << 20, max_side_px: 4096, max_pixels: 4_000_000 };

fuzz_target!(|bytes: &[u8]| {
    let Some(format) = SourceFormat::sniff(bytes) else {
        return;
    };
    let result = make_thumbnails(bytes, format, &SIZES, &LIMITS);
    if *VERBOSE {
        match &result {
            Ok(thumbnails) => {
                let made: Vec<String> = thumbnails.iter().map(|t| format!("{} {}×{} {:?}", t.size, t.width, t.height, t.format)).collect();
                eprintln!("{}: {}", format.name(), made.join(", "));
            }
            Err(error) => eprintln!("{}: refused: {error} ({error:?})", format.name()),
        }
    }
    let Ok(thumbnails) = result else {
        return;
    };
    let sizes: Vec<ThumbSize> = thumbnails.iter().map(|thumbnail| thumbnail.size).collect();
    assert_eq!(sizes, [ThumbSize::Large, ThumbSize::Medium, ThumbSize::Small], "three thumbnails, largest first");
    for thumbnail in &thumbnails {
        let max_side = SIZES.max_side(thumbnail.size);
        assert!(
            (1..=max_side).contains(&thumbnail.width) && (1..=max_side).contains(&thumbnail.height),
            "the {} thumbnail is {}×{}, outside its {max_side} px box",
            thumbnail.size,
            thumbnail.width,
            thumbnail.height,
        );
        assert!(!thumbnail.bytes.is_empty(), "the {} thumbnail has no bytes", thumbnail.size);
    }
});
