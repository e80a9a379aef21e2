//! The second reference: sharp, the Node.js library that Immich and many other
//! services make their thumbnails with, on the libvips build it ships.
//! `bench/sharp/reference.mjs` does in one Node.js process what
//! `bench/vips_reference.c` does, one libvips thread and no cache; it is run
//! with libjpeg-turbo's baseline encoder settings, with mozjpeg's, and making a WebP of each size too (the worker's default job).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::reference::SelfTimed;

/// The script with sharp installed beside it, and the Node.js that runs it.
pub struct Sharp {
    /// JPEGs encoded as libvips does by default (`mozjpeg: false`).
    pub plain: SelfTimed,
    /// JPEGs encoded with mozjpeg's settings (`mozjpeg: true`): trellis quantisation, progressive scans.
    pub mozjpeg: SelfTimed,
    /// What the worker makes by default: each size as a JPEG (libvips's default settings) and a WebP.
    pub with_webp: SelfTimed,
    /// For the notes, e.g. "sharp 0.35.5 (libvips 8.18.7)".
    pub version: String,
}

/// What the bench reads from `node_modules/sharp/package.json`.
#[derive(Deserialize)]
struct Package {
    version: String,
    engines: Engines,
}

#[derive(Deserialize)]
struct Engines {
    node: String,
}

impl Sharp {
    /// Looks for `node` on the path and for sharp installed beside `script`;
    /// the error says how to install what is missing. A table that compares
    /// with sharp is not run without it, rather than run with an empty column.
    pub fn find(script: &Path) -> anyhow::Result<Self> {
        let node = Command::new("node").arg("--version").output().ok().filter(|output| output.status.success());
        let Some(node) = node else {
            bail!("Node.js is missing (Debian: apt-get install -y nodejs npm; scripts/bench installs it)");
        };
        let node_version = String::from_utf8_lossy(&node.stdout).trim().to_owned();
        let script = script.canonicalize().with_context(|| format!("The sharp reference script is not at {}", script.display()))?;
        let dir = script.parent().context("a file is in a directory")?;
        let manifest = dir.join("node_modules/sharp/package.json");
        let package: Package = serde_json::from_str(
            &std::fs::read_to_string(&manifest)
                .with_context(|| format!("sharp is not installed in {} (npm ci there; scripts/bench runs it)", dir.display()))?,
        )
        .with_context(|| format!("{} is not a package manifest", manifest.display()))?;
        // Loading it also checks that this Node.js is one sharp runs on.
        let loaded = Command::new("node")
            .current_dir(dir)
            .args(["--input-type=module", "--eval", "import sharp from 'sharp'; console.log(sharp.versions.vips);"])
            .output()
            .context("node does not start")?;
        if !loaded.status.success() {
            bail!(
                "sharp {} does not load in Node.js {node_version} (it needs node {}): {}",
                package.version,
                package.engines.node,
                String::from_utf8_lossy(&loaded.stderr).trim()
            );
        }
        let libvips = String::from_utf8_lossy(&loaded.stdout).trim().to_owned();
        let run = |mozjpeg, webp| SelfTimed::new("node", &[script.as_os_str()], &[("THUMBQ_BENCH_MOZJPEG", mozjpeg), ("THUMBQ_BENCH_WEBP", webp)]);
        Ok(Self {
            plain: run("0", "0"),
            mozjpeg: run("1", "0"),
            with_webp: run("0", "1"),
            version: format!("sharp {} (libvips {libvips}, Node.js {node_version})", package.version),
        })
    }
}
