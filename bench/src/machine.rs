//! What the numbers were measured on, and how busy other processes kept the
//! machine meanwhile: a build running beside the benchmark skews every table.

use std::time::{Duration, Instant};

/// The machine in one line: cores and processor model.
pub fn describe() -> String {
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name").and_then(|rest| rest.split_once(':')).map(|(_, model)| model.trim()))
        .unwrap_or("unknown processor");
    format!("{cores} cores ({model})")
}

/// CPU time of the whole machine against that of this process and its
/// children, from one moment on (Linux only).
pub struct CpuShare {
    started: Instant,
    machine_busy: Duration,
    ours: Duration,
}

impl CpuShare {
    pub fn start() -> Self {
        Self { started: Instant::now(), machine_busy: machine_busy(), ours: own_cpu_time() }
    }

    /// The share of the machine's CPU time that processes other than this one
    /// and its waited-for children used since [`CpuShare::start`]: 0 on a quiet machine.
    pub fn others(&self) -> f64 {
        let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get()) as f64;
        let others = machine_busy().saturating_sub(self.machine_busy).saturating_sub(own_cpu_time().saturating_sub(self.ours));
        (others.as_secs_f64() / (self.started.elapsed().as_secs_f64() * cores)).clamp(0.0, 1.0)
    }

    /// Says below a table how busy other processes kept the machine.
    pub fn note(&self) {
        crate::table::note(&format!(
            "Other processes kept the machine {:.0} % busy while this table was measured (0 % is a quiet machine).",
            self.others() * 100.0
        ));
    }
}

/// Busy time of all cores together since boot, from the first line of `/proc/stat`.
fn machine_busy() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|field| field.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is counted in user).
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&field| ticks.get(field)).sum();
    Duration::from_secs_f64(busy as f64 / ticks_per_second())
}

/// The unit of the CPU times in `/proc`: clock ticks per second, 100 on most Linux systems.
pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a constant of the system.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64
}

/// How many cores some work kept busy on average: its CPU time ÷ its wall-clock time.
pub struct CoresUsed {
    who: libc::c_int,
    started: Instant,
    cpu: Duration,
}

impl CoresUsed {
    /// Starts counting this process's threads.
    pub fn ours() -> Self {
        Self::start(libc::RUSAGE_SELF)
    }

    /// Starts counting the child processes that end and are waited for from now on.
    pub fn children() -> Self {
        Self::start(libc::RUSAGE_CHILDREN)
    }

    fn start(who: libc::c_int) -> Self {
        Self { who, started: Instant::now(), cpu: cpu_time(who) }
    }

    /// CPU time and wall-clock time since counting started.
    pub fn spent(&self) -> (Duration, Duration) {
        (cpu_time(self.who).saturating_sub(self.cpu), self.started.elapsed())
    }
}

/// User and system time of this process and of its children that were waited for.
pub fn own_cpu_time() -> Duration {
    cpu_time(libc::RUSAGE_SELF) + cpu_time(libc::RUSAGE_CHILDREN)
}

fn cpu_time(who: libc::c_int) -> Duration {
    // SAFETY: getrusage writes one rusage into the zeroed struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut usage) };
    let seconds = |time: libc::timeval| Duration::new(time.tv_sec as u64, time.tv_usec as u32 * 1000);
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}
