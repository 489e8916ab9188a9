//! Who else used the machine's CPU during a scenario. The gateway is
//! measured by [`Meter`](crate::gateway::Meter); this adds the stand-ins,
//! the bench client itself, Postgres and the machine as a whole, so that a
//! throughput can be read as a budget of the cores everything shares.

use std::collections::{HashMap, HashSet};

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
    /// CPU seconds of each `postgres` process; `None` when there is none to read.
    postgres: Option<HashMap<u32, f64>>,
    /// Which of them are backends connected to the bench's database.
    backends: HashSet<u32>,
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
        let postgres_s = self.postgres_used(&end, |_| true);
        // No backend found: process titles are off (update_process_title) or Postgres is elsewhere; not a zero.
        let db_s =
            if end.backends.is_empty() { None } else { self.postgres_used(&end, |pid| end.backends.contains(&pid)) };
        let fields = [
            ("stand_ins_cpu_s", self.start.stand_ins.zip(end.stand_ins).map(|(s, e)| e - s)),
            ("bench_client_cpu_s", self.start.client.zip(end.client).map(|(s, e)| e - s)),
            ("postgres_cpu_s", postgres_s),
            ("machine_busy_cpu_s", self.start.busy.zip(end.busy).map(|(s, e)| e - s)),
            ("postgres_db_cpu_s", db_s),
        ];
        for (key, used) in fields {
            if let Some(used) = used {
                line = line.num(key, used, 2);
            }
        }
        (line, postgres_s)
    }

    /// CPU seconds the `postgres` processes chosen by `pick` used since the
    /// start, process by process: one that started since counts from zero
    /// (as does a reused pid whose counter went back), one that exited
    /// takes its time with it. A total of totals would instead subtract
    /// whatever exited (another database's test run, say), down to below zero.
    fn postgres_used(&self, end: &Snapshot, pick: impl Fn(u32) -> bool) -> Option<f64> {
        let (start, end) = (self.start.postgres.as_ref()?, end.postgres.as_ref()?);
        let used = end.iter().filter(|(pid, _)| pick(**pid)).map(|(pid, &e)| match start.get(pid) {
            Some(&s) if s <= e => e - s,
            _ => e,
        });
        Some(used.sum())
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

/// CPU seconds of each process named `postgres` (server and backends), and
/// which are backends connected to `database` (a backend's process title,
/// `postgres: … USER DATABASE HOST(PORT) STATE`, names its database). The
/// gateway's pool keeps its connections open, so its backends live through
/// a scenario.
fn postgres_seconds(database: Option<&str>) -> (Option<HashMap<u32, f64>>, HashSet<u32>) {
    let mut all = HashMap::new();
    let mut backends = HashSet::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return (None, backends) };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let is_postgres = std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres");
        if !is_postgres {
            continue;
        }
        let Ok(s) = cpu_seconds(pid) else { continue };
        all.insert(pid, s);
        if let Some(database) = database {
            let title = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&title)
                .split(|c: char| c.is_whitespace() || c == '\0')
                .any(|word| word == database)
            {
                backends.insert(pid);
            }
        }
    }
    ((!all.is_empty()).then_some(all), backends)
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

    #[test]
    fn postgres_processes_that_come_and_go_are_counted_one_by_one() {
        let snapshot = |postgres: &[(u32, f64)], backends: &[u32]| Snapshot {
            stand_ins: None,
            client: None,
            postgres: Some(postgres.iter().copied().collect()),
            backends: backends.iter().copied().collect(),
            busy: None,
        };
        // 1: the server; 2: a backend of the bench's database; 3: another
        // database's backend that exits; 4: a backend of the bench's that opens.
        let shares = Shares {
            stand_ins: None,
            database: Some("db".into()),
            start: snapshot(&[(1, 10.0), (2, 1.0), (3, 50.0)], &[2]),
        };
        let end = snapshot(&[(1, 10.5), (2, 1.25), (4, 0.25)], &[2, 4]);
        assert_eq!(shares.postgres_used(&end, |_| true), Some(1.0));
        assert_eq!(shares.postgres_used(&end, |pid| end.backends.contains(&pid)), Some(0.5));
    }
}
