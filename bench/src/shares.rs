//! Who else used the machine's CPU during a scenario. The gateway is
//! measured by [`Meter`](crate::gateway::Meter); this adds the stand-ins,
//! the bench client itself, Postgres and the machine as a whole, so that a
//! throughput can be read as a budget of the cores everything shares.

use std::collections::HashMap;

use crate::gateway::cpu_seconds;
use crate::report::Line;
use crate::StoreKind;

/// CPU seconds of every participant at the start of a scenario.
#[derive(Debug)]
pub struct Shares {
    stand_ins: Option<u32>,
    database: Option<String>,
    start: Snapshot,
}

#[derive(Clone, Debug)]
struct Snapshot {
    stand_ins: Option<f64>,
    client: Option<f64>,
    postgres: Option<f64>,
    /// CPU seconds of each backend connected to the bench's database.
    backends: HashMap<u32, f64>,
    busy: Option<f64>,
}

impl Shares {
    /// Starts counting now; `stand_ins` is their process when a child,
    /// `database` the bench's Postgres database when on Postgres.
    pub fn start(stand_ins: Option<u32>, database: Option<&str>) -> Self {
        Self { stand_ins, database: database.map(str::to_owned), start: Snapshot::take(stand_ins, database) }
    }

    /// Adds what each used since [`Shares::start`] to `line`: `stand_ins_cpu_s`
    /// (when a child process), `bench_client_cpu_s`, `postgres_cpu_s` (every
    /// `postgres` process of the machine, so only meaningful on an otherwise
    /// idle one), `postgres_db_cpu_s` (only the backends connected to the
    /// bench's database, when on Postgres: what other databases' work does
    /// not inflate, but without the WAL writer and checkpointer) and
    /// `machine_busy_cpu_s` (all cores, from `/proc/stat`). A figure that
    /// cannot be read is left out, never guessed.
    ///
    /// On a Postgres `store` it also adds `key` (for example
    /// `postgres_cpu_us_per_send`): `postgres_cpu_s` in µs over `pushes`,
    /// the denominator of the gateway's own figure on the same line.
    pub fn finish_per_push(&self, line: Line, store: StoreKind, key: &str, pushes: u64) -> Line {
        let (line, postgres_s) = self.finish_with(line);
        match postgres_s {
            Some(s) if store == StoreKind::Postgres => line.num(key, s * 1e6 / pushes.max(1) as f64, 1),
            _ => line,
        }
    }

    /// The line with the shares, and Postgres's CPU seconds when read.
    fn finish_with(&self, mut line: Line) -> (Line, Option<f64>) {
        let end = Snapshot::take(self.stand_ins, self.database.as_deref());
        let postgres_s = self.start.postgres.zip(end.postgres).map(|(start, end)| end - start);
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
        // None found: process titles are off (update_process_title) or Postgres is elsewhere; not a zero.
        if !end.backends.is_empty() {
            // A backend opened during the scenario counts from zero.
            let used: f64 =
                end.backends.iter().map(|(pid, s)| s - self.start.backends.get(pid).copied().unwrap_or(0.0)).sum();
            line = line.num("postgres_db_cpu_s", used, 2);
        }
        (line, postgres_s)
    }
}

impl Snapshot {
    fn take(stand_ins: Option<u32>, database: Option<&str>) -> Self {
        let (postgres, backends) = postgres_seconds(database);
        Self {
            stand_ins: stand_ins.and_then(|pid| cpu_seconds(pid).ok()),
            client: cpu_seconds(std::process::id()).ok(),
            postgres,
            backends,
            busy: busy_seconds(),
        }
    }
}

/// CPU seconds of the processes named `postgres` (server and backends),
/// and of each backend connected to `database` (a backend's process title,
/// `postgres: … USER DATABASE HOST(PORT) STATE`, names its database). A
/// backend that exits mid-scenario takes its time with it; the gateway's
/// pool keeps its connections open, so that is rare.
fn postgres_seconds(database: Option<&str>) -> (Option<f64>, HashMap<u32, f64>) {
    let mut total = None;
    let mut backends = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return (None, backends) };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let is_postgres = std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres");
        if !is_postgres {
            continue;
        }
        let Ok(s) = cpu_seconds(pid) else { continue };
        *total.get_or_insert(0.0) += s;
        if let Some(database) = database {
            let title = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&title)
                .split(|c: char| c.is_whitespace() || c == '\0')
                .any(|word| word == database)
            {
                backends.insert(pid, s);
            }
        }
    }
    (total, backends)
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
        let shares = Shares::start(None, None);
        // Burn a little CPU so the counters move past a clock tick.
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < std::time::Duration::from_millis(60) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let line = shares.finish_per_push(Line::new("test", None), StoreKind::Sqlite, "postgres_cpu_us_per_x", 1);
        let client = line.get("bench_client_cpu_s").and_then(serde_json::Value::as_f64).expect("client CPU");
        let busy = line.get("machine_busy_cpu_s").and_then(serde_json::Value::as_f64).expect("machine CPU");
        assert!(client > 0.0 && busy >= client * 0.5, "client {client} s, machine {busy} s");
        assert!(line.get("stand_ins_cpu_s").is_none(), "no child stand-ins were given");
        assert!(line.get("postgres_cpu_us_per_x").is_none(), "a SQLite line has no Postgres share per push");
    }
}
