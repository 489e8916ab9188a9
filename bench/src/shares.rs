//! Who else used the machine's CPU during a scenario. The gateway is
//! measured by [`Meter`](crate::gateway::Meter); this adds the stand-ins,
//! the bench client itself, Postgres and the machine as a whole, so that a
//! throughput can be read as a budget of the cores everything shares.

use crate::gateway::cpu_seconds;
use crate::report::Line;

/// CPU seconds of every participant at the start of a scenario.
#[derive(Debug)]
pub struct Shares {
    stand_ins: Option<u32>,
    start: Snapshot,
}

#[derive(Clone, Copy, Debug)]
struct Snapshot {
    stand_ins: Option<f64>,
    client: Option<f64>,
    postgres: Option<f64>,
    busy: Option<f64>,
}

impl Shares {
    /// Starts counting now; `stand_ins` is their process when a child.
    pub fn start(stand_ins: Option<u32>) -> Self {
        Self { stand_ins, start: Snapshot::take(stand_ins) }
    }

    /// Adds what each used since [`Shares::start`] to `line`: `stand_ins_cpu_s`
    /// (when a child process), `bench_client_cpu_s`, `postgres_cpu_s` (every
    /// `postgres` process of the machine, so only meaningful on an otherwise
    /// idle one) and `machine_busy_cpu_s` (all cores, from `/proc/stat`). A
    /// figure that cannot be read is left out, never guessed.
    pub fn finish(&self, mut line: Line) -> Line {
        let end = Snapshot::take(self.stand_ins);
        let fields = [
            ("stand_ins_cpu_s", self.start.stand_ins, end.stand_ins),
            ("bench_client_cpu_s", self.start.client, end.client),
            ("postgres_cpu_s", self.start.postgres, end.postgres),
            ("machine_busy_cpu_s", self.start.busy, end.busy),
        ];
        for (key, start, end) in fields {
            if let (Some(start), Some(end)) = (start, end) {
                line = line.num(key, end - start, 2);
            }
        }
        line
    }
}

impl Snapshot {
    fn take(stand_ins: Option<u32>) -> Self {
        Self {
            stand_ins: stand_ins.and_then(|pid| cpu_seconds(pid).ok()),
            client: cpu_seconds(std::process::id()).ok(),
            postgres: postgres_seconds(),
            busy: busy_seconds(),
        }
    }
}

/// CPU seconds of the processes named `postgres` (server and backends).
/// A backend that exits mid-scenario takes its time with it; the gateway's
/// pool keeps its connections open, so that is rare.
fn postgres_seconds() -> Option<f64> {
    let mut total = 0.0;
    let mut found = false;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let is_postgres = std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres");
        if is_postgres {
            if let Ok(s) = cpu_seconds(pid) {
                total += s;
                found = true;
            }
        }
    }
    found.then_some(total)
}

/// Busy CPU seconds of the whole machine, all cores: everything in the
/// `cpu` line of `/proc/stat` but idle and iowait.
fn busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<f64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is in user).
    let busy: f64 = ticks.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, t)| t).sum();
    Some(busy / crate::gateway::clock_ticks())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bench_process_and_the_machine_are_measured() {
        let shares = Shares::start(None);
        // Burn a little CPU so the counters move past a clock tick.
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < std::time::Duration::from_millis(60) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let line = shares.finish(Line::new("test", None));
        let client = line.get("bench_client_cpu_s").and_then(serde_json::Value::as_f64).expect("client CPU");
        let busy = line.get("machine_busy_cpu_s").and_then(serde_json::Value::as_f64).expect("machine CPU");
        assert!(client > 0.0 && busy >= client * 0.5, "client {client} s, machine {busy} s");
        assert!(line.get("stand_ins_cpu_s").is_none(), "no child stand-ins were given");
    }
}
