//! Fan-out: a group, user or `all` target expanded into deliveries in
//! batches, streaming through the registry in the database (never loading a
//! target into memory). Each batch inserts its deliveries and advances the
//! notification's `fanout_cursor` in one transaction, so a gateway stopped
//! mid fan-out resumes exactly where it was: no device missed, none twice.

use super::notifications::{fanout_param, fanout_source, initial_status, Dialect};
use super::{on_pool, BeginWrite, ClaimedDelivery, Pool, Store, StoreResult};
use crate::delivery::target::Target;

/// A notification whose target still needs expanding.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct FanoutJob {
    /// Notification id.
    pub id: String,
    /// Its app.
    pub app_id: String,
    /// JSON of the target.
    pub target: String,
    /// JSON NotificationInfo.
    pub info: String,
    /// JSON DeliveryOptions.
    pub options: String,
    /// End of the TTL (ms).
    pub expires_at: Option<i64>,
}

/// What one batch did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanoutStep {
    /// Inserted this many deliveries; more may follow.
    More(u64),
    /// Inserted this many and reached the end.
    Done(u64),
    /// Nothing to do: already done, or cancelled.
    Stopped,
}

impl Store {
    /// Takes one due notification to fan out, leased until `lease_until`.
    pub async fn claim_fanout(&self, now: i64, lease_until: i64) -> StoreResult<Option<FanoutJob>> {
        let lock = if self.is_postgres() { "FOR UPDATE SKIP LOCKED" } else { "" };
        let sql = format!(
            "UPDATE notifications SET fanout_lease_until = $2 WHERE id = (SELECT id FROM notifications \
             WHERE fanout_done = FALSE AND status IN ('scheduled', 'queued', 'sending') AND send_at <= $1 \
             AND (fanout_lease_until IS NULL OR fanout_lease_until < $1) ORDER BY send_at LIMIT 1 {lock}) \
             RETURNING id, app_id, target, info, options, expires_at"
        );
        Ok(on_pool!(self.pool(), p => sqlx::query_as::<_, FanoutJob>(&sql).bind(now).bind(lease_until)
            .fetch_optional(p).await?))
    }

    /// Expands the next `batch` devices of `job` in one transaction. The
    /// cursor is read under the notification's row lock (Postgres) or the
    /// write lock (SQLite), so two workers can never expand the same batch.
    /// With `born_claimed`, the new deliveries are leased to the caller
    /// until then and returned, to be sent without a claim.
    #[allow(clippy::too_many_arguments)]
    pub async fn fanout_batch(
        &self,
        job: &FanoutJob,
        target: &Target,
        providers: (bool, bool),
        batch: i64,
        now: i64,
        lease_until: i64,
        born_claimed: Option<i64>,
    ) -> StoreResult<(FanoutStep, Vec<ClaimedDelivery>)> {
        let d = Dialect::of(self.pool());
        let (source, key) = fanout_source(target, &d, 4);
        let param = fanout_param(target)?;
        let window = format!(
            "SELECT MAX(k), COUNT(*) FROM (SELECT {key} AS k {source} AND {key} > $2 ORDER BY {key} LIMIT $3) b"
        );
        let insert = format!(
            "INSERT INTO deliveries (app_id, notification_id, device_id, platform, token, status, reason, attempts, \
             next_attempt_at, lease_until, created_at, updated_at) \
             SELECT d.app_id, $5, d.id, d.platform, d.token, {}, 0, COALESCE($9, $8), $9, $8, $8 \
             {source} AND {key} > $2 AND {key} <= $3 \
             RETURNING id, app_id, notification_id, device_id, platform, token, attempts, status",
            initial_status("d.platform", 6, 7)
        );
        // Deliveries born failed (no provider) are counted at once; the
        // notification is `sending` from its first batch.
        let advance = "UPDATE notifications SET fanout_cursor = $2, fanned_out = fanned_out + $3, fanout_done = $4, \
             targeted = CASE WHEN $4 THEN fanned_out + $3 ELSE targeted END, updated_at = $5, failed = failed + $6, \
             status = CASE WHEN status = 'queued' THEN 'sending' ELSE status END WHERE id = $1";
        Ok(on_pool!(self.pool(), p => {
            let mut tx = p.begin_write().await?;
            let cursor: Option<Option<String>> = sqlx::query_scalar(
                "UPDATE notifications SET fanout_lease_until = $2 WHERE id = $1 AND fanout_done = FALSE \
                 AND status <> 'cancelled' RETURNING fanout_cursor"
            ).bind(&job.id).bind(lease_until).fetch_optional(&mut *tx).await?;
            match cursor {
                None => {
                    tx.rollback().await?;
                    (FanoutStep::Stopped, Vec::new())
                }
                Some(cursor) => {
                    let cursor = cursor.unwrap_or_default();
                    let (hi, count): (Option<String>, i64) = sqlx::query_as(&window).bind(&job.app_id).bind(&cursor)
                        .bind(batch).bind(param.as_deref()).fetch_one(&mut *tx).await?;
                    let mut rows: Vec<ClaimedDelivery> = Vec::new();
                    if let Some(hi) = &hi {
                        rows = sqlx::query_as(&insert).bind(&job.app_id).bind(&cursor).bind(hi)
                            .bind(param.as_deref()).bind(&job.id).bind(providers.0).bind(providers.1).bind(now)
                            .bind(born_claimed).fetch_all(&mut *tx).await?;
                    }
                    let inserted = rows.len() as u64;
                    let failed = rows.iter().filter(|r| r.status != "pending").count() as i64;
                    let done = count < batch;
                    sqlx::query(advance).bind(&job.id).bind(hi.unwrap_or(cursor)).bind(inserted as i64).bind(done)
                        .bind(now).bind(failed).execute(&mut *tx).await?;
                    tx.commit().await?;
                    rows.retain(|r| r.status == "pending");
                    if born_claimed.is_none() {
                        rows.clear();
                    }
                    (if done { FanoutStep::Done(inserted) } else { FanoutStep::More(inserted) }, rows)
                }
            }
        }))
    }

    /// Gives a fan-out lease back (shutdown), so another instance resumes at once.
    pub async fn release_fanout(&self, id: &str) -> StoreResult<()> {
        on_pool!(self.pool(), p => sqlx::query("UPDATE notifications SET fanout_lease_until = NULL WHERE id = $1")
            .bind(id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Tells other instances (Postgres) that work is waiting; sent after commit.
    pub async fn notify_work(&self, what: &str) -> StoreResult<()> {
        if let Pool::Postgres(p) = self.pool() {
            sqlx::query("SELECT pg_notify('pushgate_deliveries', $1)").bind(what).execute(p).await?;
        }
        Ok(())
    }
}
