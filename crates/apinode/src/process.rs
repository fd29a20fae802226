//! This process as `/proc/self` describes it: CPU, memory, file
//! descriptors. Read by the compute-resource-usage records and by
//! `/metrics`; reads only, zeros where `/proc` is absent.

/// The kernel's clock tick for `/proc/<pid>/stat` times (`USER_HZ`, 100 on
/// every Linux architecture this node builds for).
const USER_HZ: u64 = 100;

/// The process's own figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessSample {
    /// User CPU, ms.
    pub user_cpu_ms: u64,
    /// System CPU, ms.
    pub system_cpu_ms: u64,
    /// Resident set, kB.
    pub rss_kb: u64,
    /// Peak resident set, kB.
    pub peak_rss_kb: u64,
    /// Virtual memory, kB.
    pub virtual_kb: u64,
}

/// Reads `/proc/self/stat` and `/proc/self/status` (zeros elsewhere).
pub fn sample() -> ProcessSample {
    let mut s = ProcessSample::default();
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command name, which may hold spaces: state is
        // field 3, utime 14 and stime 15.
        if let Some((_, rest)) = stat.rsplit_once(')') {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            s.user_cpu_ms = ticks(11) * 1000 / USER_HZ;
            s.system_cpu_ms = ticks(12) * 1000 / USER_HZ;
        }
    }
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        for line in status.lines() {
            let kb = || line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
            if line.starts_with("VmRSS:") {
                s.rss_kb = kb();
            } else if line.starts_with("VmHWM:") {
                s.peak_rss_kb = kb();
            } else if line.starts_with("VmSize:") {
                s.virtual_kb = kb();
            }
        }
    }
    s
}

/// Open file descriptors.
pub fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

/// The soft limit of open file descriptors.
pub fn max_fds() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
