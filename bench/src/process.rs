//! The bench's child processes (web servers, workers, the comparison
//! server): started with only the settings given, logging to a file, and
//! stopped as their operators stop them (SIGTERM, then SIGKILL past a
//! deadline) when dropped, also when the bench fails midway. Also the
//! workspace's scripts that install or run what the bench needs.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long a process has to stop after SIGTERM.
const STOP_WITHIN: Duration = Duration::from_secs(30);

/// How often a stopping process is looked at.
const LOOK_EVERY: Duration = Duration::from_millis(10);

/// A child process with its log, stopped when dropped.
pub struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Process {
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Starts `command` at `nice` with no `THUMBQ_*` setting but those it was
    /// given, logging warnings and errors to a file in `log_dir`.
    pub fn start(name: &'static str, mut command: Command, log_dir: &Path, nice: i32) -> anyhow::Result<Self> {
        let log = tempfile::Builder::new().prefix(&format!("{name}-")).suffix(".log").tempfile_in(log_dir)?.into_temp_path().keep()?;
        let output = File::create(&log)?;
        let given: Vec<_> = command.get_envs().map(|(name, _)| name.to_owned()).collect();
        for (variable, _) in std::env::vars_os().filter(|(variable, _)| variable.to_string_lossy().starts_with("THUMBQ_") && !given.contains(variable)) {
            command.env_remove(variable);
        }
        // Warnings only: no log line per request in any server, so that none pays for it.
        command.env("RUST_LOG", "warn").stdin(Stdio::null()).stdout(output.try_clone()?).stderr(output);
        if nice != 0 {
            // SAFETY: setpriority is a plain system call, safe between fork and exec;
            // the priority it sets on this one thread is inherited by all the program's threads.
            unsafe {
                command.pre_exec(move || match libc::setpriority(libc::PRIO_PROCESS as _, 0, nice) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                });
            }
        }
        let child = command.spawn().with_context(|| format!("{} does not start", command.get_program().to_string_lossy()))?;
        Ok(Self { name, child, log })
    }

    /// Fails, with the end of its log, when it has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                bail!("{} exited ({status}); the end of its log:\n{}", self.name, tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
            }
        }
    }

    /// SIGTERM, as operators stop it; SIGKILL if it has not exited within [`STOP_WITHIN`].
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SAFETY: kill only sends a signal; the pid is still our child's, as it is not reaped yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_WITHIN;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(LOOK_EVERY);
        }
        eprintln!("{} did not stop within {STOP_WITHIN:?} of SIGTERM; killing it.", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fails, saying how to build it, when `binary` (of the package `package`) is missing.
pub fn ensure_built(binary: &Path, package: &str) -> anyhow::Result<()> {
    anyhow::ensure!(binary.is_file(), "{} is missing: cargo build --release -p {package} --bins (scripts/bench builds it)", binary.display());
    Ok(())
}

/// Runs the workspace's `scripts/{script}` with `args` and `environment`,
/// its progress shown on stderr; returns what it printed on stdout, trimmed.
pub fn script_output(script: &str, args: &[&str], environment: &[(&str, &str)]) -> anyhow::Result<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts").join(script);
    let output = Command::new(&path)
        .args(args)
        .envs(environment.iter().copied())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("{} does not run", path.display()))?;
    anyhow::ensure!(output.status.success(), "scripts/{script} {} failed ({})", args.join(" "), output.status);
    Ok(String::from_utf8(output.stdout).context("its output is text")?.trim().to_owned())
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}
