//! The reference side: libvips, run the two ways a team would use it, both on
//! one core (`VIPS_CONCURRENCY=1`).
//!
//! - [`Vipsthumbnail`]: three `vipsthumbnail` processes per image, one per
//!   size, as a shell script would run them.
//! - in-process: `bench/vips_reference.c`, what a service linking libvips
//!   does: one thumbnail with shrink-on-load, the smaller sizes resized from it,
//!   all encoded in memory; it times its own runs ([`SelfTimed`]), so no process start counts.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use thumbq_contract::{Sizes, ThumbSize};

use crate::reference::SelfTimed;

/// Both ways, each `None` when it is not installed, with a message saying how to get it.
pub struct Libvips {
    pub vipsthumbnail: Option<Vipsthumbnail>,
    pub in_process: Option<SelfTimed>,
    /// As `vips --version` prints it.
    pub version: Option<String>,
}

impl Libvips {
    /// Looks for `vipsthumbnail` on the path and for the compiled reference program at `reference`.
    pub fn find(reference: &Path) -> Self {
        let version = Command::new("vips")
            .arg("--version")
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned());
        let vipsthumbnail = Command::new("vipsthumbnail").arg("--version").output().is_ok().then_some(Vipsthumbnail);
        if vipsthumbnail.is_none() {
            eprintln!("vipsthumbnail is missing (Debian: apt-get install -y libvips-tools; scripts/bench installs it): its columns stay empty.");
        }
        let in_process = reference.is_file().then(|| SelfTimed::new(reference, &[], &[("VIPS_CONCURRENCY", "1")]));
        if in_process.is_none() {
            eprintln!(
                "The libvips reference program is not at {} (scripts/bench compiles bench/vips_reference.c there; it needs libvips-dev): its columns stay empty.",
                reference.display()
            );
        }
        Self { vipsthumbnail, in_process, version }
    }
}

pub struct Vipsthumbnail;

impl Vipsthumbnail {
    /// The time three `vipsthumbnail` processes take, one per size, writing JPEGs at Q=85 into `workdir`.
    pub fn three_sizes(&self, input: &Path, workdir: &Path, sizes: &Sizes) -> anyhow::Result<Duration> {
        let started = Instant::now();
        for size in ThumbSize::ALL {
            let side = sizes.max_side(size);
            let output = workdir.join(format!("vipsthumbnail-{size}.jpg[Q=85,strip]"));
            let status = Command::new("vipsthumbnail")
                .env("VIPS_CONCURRENCY", "1")
                .arg(input)
                .arg("--size")
                .arg(format!("{side}x{side}>"))
                .arg("-o")
                .arg(&output)
                .status()
                .context("vipsthumbnail does not start")?;
            ensure!(status.success(), "vipsthumbnail failed on {}", input.display());
        }
        Ok(started.elapsed())
    }
}
