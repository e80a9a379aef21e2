//! A reference program that times its own runs, so that no process start
//! counts: `bench/vips_reference.c` compiled, and `node bench/sharp/reference.mjs`
//! with or without mozjpeg. All take `FILE RUNS LARGE MEDIUM SMALL [OUTDIR]`,
//! warm up once untimed, and print each run's milliseconds on a line of its own.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use thumbq_contract::{Sizes, ThumbSize};

/// A program, the arguments that come before the file, and the environment it runs in.
pub struct SelfTimed {
    program: PathBuf,
    leading_args: Vec<OsString>,
    environment: Vec<(&'static str, &'static str)>,
    /// How messages name it.
    name: String,
}

impl SelfTimed {
    pub fn new(program: impl Into<PathBuf>, leading_args: &[&OsStr], environment: &[(&'static str, &'static str)]) -> Self {
        let program = program.into();
        let leading_args: Vec<OsString> = leading_args.iter().map(|&arg| arg.to_owned()).collect();
        let name = std::iter::once(program.as_os_str())
            .chain(leading_args.iter().map(OsString::as_os_str))
            .map(|part| part.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        Self { program, leading_args, environment: environment.to_vec(), name }
    }

    /// The time of each of `runs` runs after a warm-up, as the program measured them.
    /// With `outputs`, the last run's thumbnails are written there as `{size}.jpg`.
    pub fn runs(&self, input: &Path, runs: usize, sizes: &Sizes, outputs: Option<&Path>) -> anyhow::Result<Vec<Duration>> {
        let mut command = Command::new(&self.program);
        command.envs(self.environment.iter().copied()).args(&self.leading_args).arg(input).arg(runs.to_string());
        for size in ThumbSize::ALL.into_iter().rev() {
            command.arg(sizes.max_side(size).to_string());
        }
        command.args(outputs);
        let output = command.output().with_context(|| format!("{} does not start", self.name))?;
        if !output.status.success() {
            bail!("{} failed on {}: {}", self.name, input.display(), String::from_utf8_lossy(&output.stderr).trim());
        }
        let times: Vec<Duration> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| line.trim().parse::<f64>().map(|ms| Duration::from_secs_f64(ms / 1000.0)))
            .collect::<Result<_, _>>()
            .with_context(|| format!("{} printed something else than milliseconds", self.name))?;
        ensure!(times.len() == runs, "{} printed {} times for {runs} runs", self.name, times.len());
        Ok(times)
    }
}
