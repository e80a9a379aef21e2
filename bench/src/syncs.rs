//! Counting a running process's sync calls with strace: how the uploads
//! table tells how many times each server makes an upload durable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::process::Process;

/// Every call by which a process makes written data durable on Linux.
pub const SYNC_CALLS: [&str; 3] = ["fsync", "fdatasync", "sync_file_range"];

/// How long strace has to hold every thread of a server.
const ATTACH_WITHIN: Duration = Duration::from_secs(10);

/// How often the threads of a server being attached to are looked at.
const LOOK_EVERY: Duration = Duration::from_millis(10);

/// strace attached to every thread of a running server (`-f`: also those it
/// starts later, as tokio's blocking pool does on demand), counting its sync
/// calls; detached when dropped, also when the bench fails midway.
pub struct SyncCounter {
    strace: Process,
    summary: PathBuf,
}

impl SyncCounter {
    /// Returns once strace traces every thread of `pid`: a sync before that would go uncounted.
    pub async fn attach(pid: u32, dir: &Path) -> anyhow::Result<Self> {
        let summary = dir.join("strace-summary.txt");
        let mut command = Command::new("strace");
        command.args(["-f", "-c", "-U", "name,calls", "-e"]).arg(format!("trace={}", SYNC_CALLS.join(","))).arg("-o").arg(&summary);
        command.arg("-p").arg(pid.to_string());
        let mut strace = Process::start("strace", command, dir, 0)?;
        let deadline = Instant::now() + ATTACH_WITHIN;
        while !traced_by(pid, strace.id())? {
            strace.check_running()?;
            anyhow::ensure!(Instant::now() < deadline, "strace did not trace every thread of process {pid} within {ATTACH_WITHIN:?}");
            tokio::time::sleep(LOOK_EVERY).await;
        }
        Ok(Self { strace, summary })
    }

    /// Detaches strace (SIGTERM), which then writes its summary, and reads
    /// it: calls by name. Blocks until strace has exited.
    pub fn finish(self) -> anyhow::Result<BTreeMap<String, u64>> {
        let Self { mut strace, summary } = self;
        strace.check_running()?;
        drop(strace);
        let text = std::fs::read_to_string(&summary).with_context(|| format!("cannot read strace's summary {}", summary.display()))?;
        parse_summary(&text).with_context(|| format!("strace's summary {}", summary.display()))
    }
}

/// Whether every thread of process `pid` is traced by `tracer` (`TracerPid` in its status).
fn traced_by(pid: u32, tracer: u32) -> anyhow::Result<bool> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).with_context(|| format!("cannot list the threads of process {pid}"))?;
    for task in tasks {
        // A thread that ended meanwhile has no status left, and needs no tracer.
        let Ok(status) = std::fs::read_to_string(task?.path().join("status")) else { continue };
        let tracer_pid = status.lines().find_map(|line| line.strip_prefix("TracerPid:")).and_then(|value| value.trim().parse::<u32>().ok());
        if tracer_pid != Some(tracer) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Calls by name from `strace -c -U name,calls`: a header, rules, one line
/// per call and a total. A summary without its total is one strace was
/// killed before writing (it writes nothing at all for no calls, which every
/// server here makes: each upload is fsynced).
fn parse_summary(text: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut calls = BTreeMap::new();
    let mut total = None;
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let (Some(name), Some(count), None) = (fields.next(), fields.next(), fields.next()) else { continue };
        // The header and the rules have no number.
        let Ok(count) = count.parse::<u64>() else { continue };
        if name == "total" {
            total = Some(count);
        } else {
            calls.insert(name.to_owned(), count);
        }
    }
    let total = total.context("no total: strace was stopped before it wrote its summary, or counted no call at all")?;
    anyhow::ensure!(total == calls.values().sum::<u64>(), "the calls do not add up to the total {total}: {calls:?}");
    Ok(calls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strace_summaries_are_read_by_name() {
        let summary = "syscall              calls\n---------------- ---------\nfsync                  210\nfdatasync               12\n---------------- ---------\ntotal                  222\n";
        let calls = parse_summary(summary).unwrap();
        assert_eq!(calls.get("fsync"), Some(&210));
        assert_eq!(calls.get("fdatasync"), Some(&12));
        assert_eq!(calls.len(), 2);
        assert!(parse_summary("").is_err(), "no summary is not zero calls");
    }
}
