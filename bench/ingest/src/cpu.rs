//! CPU time from `/proc` (Linux), to say where a phase's CPU went: the
//! machine's busy time, and each process's, split by thread name.
//!
//! Times are in clock ticks of `USER_HZ`, which Linux fixes at 100 a second
//! for `/proc/stat` and `/proc/<pid>/stat` on every architecture we run on.

use std::collections::HashMap;

use memsy_testkit::stat_ticks;

const TICKS_PER_S: f64 = 100.0;

/// Busy, stolen and total ticks of all cores (`/proc/stat`, line `cpu`),
/// or of one (line `cpuN`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Machine {
    busy: u64,
    steal: u64,
    total: u64,
}

pub fn machine() -> Machine {
    stat_line("cpu")
}

/// Core `n` alone.
pub fn core(n: usize) -> Machine {
    stat_line(&format!("cpu{n}"))
}

/// The cores this process may run on (`Cpus_allowed_list` of
/// `/proc/self/status`, which a cgroup cpuset or `taskset` narrows), in
/// ascending order; empty if it cannot be read.
pub fn allowed_cores() -> Vec<usize> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let list = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap_or_default();
    parse_cpu_list(list)
}

/// `"0-2,5, 7-8"` → `[0, 1, 2, 5, 7, 8]`; whatever does not parse is left out.
fn parse_cpu_list(list: &str) -> Vec<usize> {
    let mut cores = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (from, to) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(from), Ok(to)) = (from.trim().parse::<usize>(), to.trim().parse::<usize>()) {
            cores.extend(from..=to);
        }
    }
    cores.sort_unstable();
    cores.dedup();
    cores
}

fn stat_line(name: &str) -> Machine {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().find(|l| l.split_whitespace().next() == Some(name)).unwrap_or_default();
    let fields: Vec<u64> = line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest is in user).
    let field = |i: usize| fields.get(i).copied().unwrap_or(0);
    let total: u64 = fields.iter().take(8).sum();
    let steal = field(7);
    Machine { busy: total.saturating_sub(field(3) + field(4) + steal), steal, total }
}

/// Seconds of the cores over an interval.
#[derive(Debug, Clone, Copy)]
pub struct MachineTime {
    /// Running this machine's processes.
    pub busy: f64,
    /// Taken by the hypervisor for other guests (a virtual machine's
    /// cores are not always its own: part of why runs differ).
    pub stolen: f64,
    pub all: f64,
}

impl Machine {
    pub fn since(&self, start: &Machine) -> MachineTime {
        let s = |now: u64, then: u64| now.saturating_sub(then) as f64 / TICKS_PER_S;
        MachineTime {
            busy: s(self.busy, start.busy),
            stolen: s(self.steal, start.steal),
            all: s(self.total, start.total),
        }
    }
}

/// One process's CPU: its total (live and exited threads) and its live
/// threads' by thread id, with their names.
#[derive(Debug, Clone, Default)]
pub struct Process {
    total: u64,
    threads: HashMap<String, (String, u64)>,
}

pub fn process(pid: u32) -> Process {
    let total =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|s| stat_ticks(&s)).map_or(0, |t| t.1);
    let mut threads = HashMap::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in dir.flatten() {
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            if let Some(t) = stat_ticks(&stat) {
                threads.insert(task.file_name().to_string_lossy().into_owned(), t);
            }
        }
    }
    Process { total, threads }
}

impl Process {
    /// Seconds since `start`.
    pub fn since(&self, start: &Process) -> f64 {
        self.total.saturating_sub(start.total) as f64 / TICKS_PER_S
    }

    /// Seconds since `start` of the threads *not* named `name`, and of the
    /// rest of the process (threads named `name`, and threads that both
    /// started and ended in between, which the kernel only adds to the
    /// total). The second is exact for a name whose threads come and go
    /// (scoped worker threads) while the others live on — as tokio's
    /// blocking threads do through a busy phase (they end after 10 s idle).
    pub fn split_since(&self, start: &Process, name: &str) -> (f64, f64) {
        let mut others = 0u64;
        for (tid, (comm, now)) in &self.threads {
            if comm == name {
                continue;
            }
            let before = start.threads.get(tid).map_or(0, |t| t.1);
            others += now.saturating_sub(before);
        }
        let total = self.total.saturating_sub(start.total);
        (others as f64 / TICKS_PER_S, total.saturating_sub(others) as f64 / TICKS_PER_S)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_as_the_kernel_writes_them() {
        assert_eq!(parse_cpu_list("0-1"), vec![0, 1]);
        assert_eq!(parse_cpu_list("2,4-6, 9\n"), vec![2, 4, 5, 6, 9]);
        assert_eq!(parse_cpu_list("3"), vec![3]);
        assert!(parse_cpu_list("").is_empty());
        // This process runs somewhere.
        assert!(!allowed_cores().is_empty());
    }

    #[test]
    fn this_process_uses_cpu() {
        // Spin until the kernel has counted 0.1 s (at most 20 s of wall
        // time on a crowded machine): only a /proc that says nothing fails.
        let start = process(std::process::id());
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while process(std::process::id()).since(&start) < 0.1 && t.elapsed().as_secs() < 20 {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
        let now = process(std::process::id());
        assert!(now.since(&start) >= 0.1, "{:?} → {:?}", start.total, now.total);
        // This thread is alive and named otherwise, so it counts as "others".
        let (others, _) = now.split_since(&start, "no such thread name");
        assert!(others > 0.0);
        let (m1, m0) = (machine(), Machine::default());
        assert!(m1.since(&m0).busy > 0.0);
        // Core 0 alone: busy since boot, and less than all cores together.
        let c0 = core(0).since(&m0);
        let all = machine().since(&m0);
        assert!(c0.busy > 0.0 && c0.all <= all.all, "{c0:?} {all:?}");
    }
}
