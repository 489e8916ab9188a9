//! `pushgate migrate`, with progress: which migrations will run, a line
//! every few seconds while they do (a backfill of a large log takes
//! minutes), and how long each took.

use std::time::{Duration, Instant};

use pushgate::store::{Store, StoreResult};

/// How often a running migration reports that it is still going.
const TICK: Duration = Duration::from_secs(5);

/// Applies the pending migrations of `store`, reporting on stderr.
pub async fn run(store: &Store) -> StoreResult<()> {
    let pending = store.pending_migrations().await?;
    if pending.is_empty() {
        eprintln!("pushgate: the database is up to date");
        return Ok(());
    }
    eprintln!("pushgate: applying {} migration(s):", pending.len());
    for (version, description) in &pending {
        eprintln!("  {version:04} {description}");
    }
    let started = Instant::now();
    let ticker = tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
        loop {
            tick.tick().await;
            eprintln!("pushgate: still migrating ({} s)", started.elapsed().as_secs());
        }
    });
    let result = store.migrate().await;
    ticker.abort();
    result?;
    let versions: Vec<i64> = pending.iter().map(|(v, _)| *v).collect();
    for (version, ms) in store.migration_times(&versions).await? {
        eprintln!("  {version:04} done in {ms} ms");
    }
    eprintln!("pushgate: migrations applied in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
