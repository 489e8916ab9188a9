//! Webhooks: an app's endpoints, the outbox of their events (filled by
//! the triggers of migration 0007 in the transaction of each change, and
//! here for events that change nothing stored), the messages sealed from
//! it, claimed with a lease like deliveries, and every attempt.

use serde::Serialize;

use super::sql::{on_pool, BeginWrite, Pool, Sql};
use super::{Store, StoreResult};
use crate::domain::ids::new_id;

/// A stored endpoint. `Debug` leaves the secrets out.
#[derive(Clone, sqlx::FromRow)]
pub struct WebhookRow {
    /// Webhook id.
    pub id: String,
    /// Its app.
    pub app_id: String,
    /// Where events are POSTed.
    pub url: String,
    /// The app's note about it.
    pub description: Option<String>,
    /// JSON array of the event types it receives.
    pub events: String,
    /// False once disabled (by the app, or after failing for too long).
    pub enabled: bool,
    /// Why the gateway disabled it.
    pub disabled_reason: Option<String>,
    /// The signing secret (`whsec_…`).
    pub secret: String,
    /// The secret before the last rotation, still signing until `previous_secret_until`.
    pub previous_secret: Option<String>,
    /// End of the previous secret's overlap (ms).
    pub previous_secret_until: Option<i64>,
    /// Since when its attempts fail (ms); `None` after a success.
    pub failing_since: Option<i64>,
    /// Creation time (ms).
    pub created_at: i64,
    /// Last change (ms).
    pub updated_at: i64,
}

impl std::fmt::Debug for WebhookRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookRow")
            .field("id", &self.id)
            .field("app_id", &self.app_id)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// What creating an endpoint takes.
pub struct NewWebhook<'a> {
    /// Its app.
    pub app_id: &'a str,
    /// Checked URL.
    pub url: &'a str,
    /// The app's note.
    pub description: Option<&'a str>,
    /// JSON array of event types.
    pub events: &'a str,
    /// The signing secret.
    pub secret: &'a str,
}

/// A change to an endpoint; `None` leaves a column as it is.
#[derive(Default)]
pub struct WebhookPatch<'a> {
    /// New URL (checked).
    pub url: Option<&'a str>,
    /// New note.
    pub description: Option<&'a str>,
    /// New JSON array of event types.
    pub events: Option<&'a str>,
    /// Enable (clearing the failure record) or disable.
    pub enabled: Option<bool>,
}

/// An event waiting in the outbox for one endpoint.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct OutboxItem {
    /// Outbox id (event order).
    pub id: i64,
    /// The endpoint.
    pub webhook_id: String,
    /// Event type.
    #[sqlx(rename = "type")]
    pub kind: String,
    /// The event's `data`, JSON.
    pub data: String,
    /// When it happened (ms).
    pub created_at: i64,
}

/// A message sealed from outbox events, ready to send.
#[derive(Clone, Debug, Serialize)]
pub struct NewWebhookMessage {
    /// The endpoint.
    pub webhook_id: String,
    /// `webhook-id` of every attempt.
    pub msg_id: String,
    /// Event type.
    pub kind: String,
    /// The signed body.
    pub body: String,
}

/// A message taken by a worker.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ClaimedMessage {
    /// Message row id.
    pub id: i64,
    /// The endpoint.
    pub webhook_id: String,
    /// `webhook-id`.
    pub msg_id: String,
    /// Event type.
    #[sqlx(rename = "type")]
    pub kind: String,
    /// The body to sign and send.
    pub body: String,
    /// Attempts made before this one.
    pub attempts: i32,
}

/// What one attempt came to.
#[derive(Clone, Debug)]
pub struct AttemptRecord {
    /// The message attempted.
    pub message: ClaimedMessage,
    /// A 2xx answer.
    pub succeeded: bool,
    /// The answer's status, if one came.
    pub http_status: Option<i32>,
    /// How long the attempt took.
    pub latency_ms: i64,
    /// Why it failed.
    pub error: Option<String>,
    /// When to try again; `None`: the message is final.
    pub retry_at: Option<i64>,
    /// An endpoint failing since before this instant (ms) is disabled.
    pub disable_if_failing_since: i64,
}

/// A row of the attempt log.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct WebhookAttemptRow {
    /// Attempt id (the cursor).
    pub id: i64,
    /// The message's `webhook-id`.
    pub msg_id: String,
    /// Event type.
    #[sqlx(rename = "type")]
    pub kind: String,
    /// 1 for the first attempt of a message.
    pub attempt: i32,
    /// `succeeded` or `failed`.
    pub status: String,
    /// The answer's status, if one came.
    pub http_status: Option<i32>,
    /// Duration (ms).
    pub latency_ms: i64,
    /// Why it failed.
    pub error: Option<String>,
    /// When (ms).
    pub at: i64,
}

const WEBHOOK_COLUMNS: &str = "id, app_id, url, description, events, enabled, disabled_reason, secret, \
     previous_secret, previous_secret_until, failing_since, created_at, updated_at";

/// An enabled endpoint `w` subscribed to the event type in `$2` (its
/// `events`, a JSON array, holds it quoted), as the triggers match it.
const SUBSCRIBED: &str = "w.enabled AND w.events LIKE '%\"' || $2 || '\"%'";

impl Store {
    /// Creates an endpoint.
    pub async fn create_webhook(&self, w: &NewWebhook<'_>, now: i64) -> StoreResult<WebhookRow> {
        let sql = format!(
            "INSERT INTO webhooks (id, app_id, url, description, events, secret, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {WEBHOOK_COLUMNS}"
        );
        Ok(on_pool!(self.pool(), p => sqlx::query_as::<_, WebhookRow>(&sql)
            .bind(new_id()).bind(w.app_id).bind(w.url).bind(w.description).bind(w.events).bind(w.secret).bind(now)
            .fetch_one(p).await?))
    }

    /// Reads an endpoint of `app_id`.
    pub async fn webhook(&self, app_id: &str, id: &str) -> StoreResult<Option<WebhookRow>> {
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE app_id = $1 AND id = $2");
        Ok(on_pool!(self.pool(), p => sqlx::query_as::<_, WebhookRow>(&sql).bind(app_id).bind(id)
            .fetch_optional(p).await?))
    }

    /// Endpoints of `app_id` by id, after the cursor id.
    pub async fn list_webhooks(&self, app_id: &str, after: Option<&str>, limit: i64) -> StoreResult<Vec<WebhookRow>> {
        let sql = format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE app_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
        );
        Ok(on_pool!(self.pool(), p => sqlx::query_as::<_, WebhookRow>(&sql).bind(app_id).bind(after).bind(limit)
            .fetch_all(p).await?))
    }

    /// Endpoints by id, whatever their app (the worker).
    pub async fn webhooks_by_ids(&self, ids: &[String]) -> StoreResult<Vec<WebhookRow>> {
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE {}", self.dialect().in_strings("id", 1));
        let ids = serde_json::to_string(ids)?;
        Ok(on_pool!(self.pool(), p => sqlx::query_as::<_, WebhookRow>(&sql).bind(&ids).fetch_all(p).await?))
    }

    /// Applies `patch`; `None` when there is no such endpoint. Enabling
    /// forgets past failures, so the five days count afresh.
    pub async fn update_webhook(
        &self,
        app_id: &str,
        id: &str,
        patch: &WebhookPatch<'_>,
        now: i64,
    ) -> StoreResult<Option<WebhookRow>> {
        let sql = format!(
            "UPDATE webhooks SET url = COALESCE($3, url), description = COALESCE($4, description), \
             events = COALESCE($5, events), enabled = COALESCE($6, enabled), \
             disabled_reason = CASE WHEN $6 IS NULL THEN disabled_reason END, \
             failing_since = CASE WHEN $6 IS NULL OR NOT $6 THEN failing_since END, updated_at = $7 \
             WHERE app_id = $1 AND id = $2 RETURNING {WEBHOOK_COLUMNS}"
        );
        Ok(on_pool!(self.pool(), p => sqlx::query_as::<_, WebhookRow>(&sql)
            .bind(app_id).bind(id).bind(patch.url).bind(patch.description).bind(patch.events).bind(patch.enabled)
            .bind(now).fetch_optional(p).await?))
    }

    /// Removes an endpoint with its pending events and attempt log;
    /// whether it existed.
    pub async fn delete_webhook(&self, app_id: &str, id: &str) -> StoreResult<bool> {
        let n = on_pool!(self.pool(), p => sqlx::query("DELETE FROM webhooks WHERE app_id = $1 AND id = $2")
            .bind(app_id).bind(id).execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// Replaces the secret; the current one keeps signing until `until` (ms).
    pub async fn rotate_webhook_secret(
        &self,
        app_id: &str,
        id: &str,
        secret: &str,
        until: i64,
        now: i64,
    ) -> StoreResult<Option<WebhookRow>> {
        let sql = format!(
            "UPDATE webhooks SET previous_secret = secret, previous_secret_until = $4, secret = $3, updated_at = $5 \
             WHERE app_id = $1 AND id = $2 RETURNING {WEBHOOK_COLUMNS}"
        );
        Ok(on_pool!(self.pool(), p => sqlx::query_as::<_, WebhookRow>(&sql)
            .bind(app_id).bind(id).bind(secret).bind(until).bind(now).fetch_optional(p).await?))
    }

    /// Puts an event of `app_id` that changes nothing stored (socket
    /// events) in the outbox of every endpoint subscribed to `kind`;
    /// returns how many. A read first, so an app without such endpoints
    /// costs no write (SQLite has one writer).
    pub async fn webhook_event(&self, app_id: &str, kind: &str, data: &str, now: i64) -> StoreResult<u64> {
        let exists = format!("SELECT COUNT(*) FROM webhooks w WHERE w.app_id = $1 AND {SUBSCRIBED}");
        let subscribed: i64 =
            on_pool!(self.pool(), p => sqlx::query_scalar(&exists).bind(app_id).bind(kind).fetch_one(p).await?);
        if subscribed == 0 {
            return Ok(0);
        }
        let sql = format!(
            "INSERT INTO webhook_outbox (webhook_id, type, data, created_at) \
             SELECT w.id, $2, $3, $4 FROM webhooks w WHERE w.app_id = $1 AND {SUBSCRIBED}"
        );
        Ok(on_pool!(self.pool(), p => sqlx::query(&sql).bind(app_id).bind(kind).bind(data).bind(now)
            .execute(p).await?.rows_affected()))
    }

    /// Queues `message` to be sent at once (a test event).
    pub async fn enqueue_webhook_message(&self, message: &NewWebhookMessage, now: i64) -> StoreResult<()> {
        on_pool!(self.pool(), p => sqlx::query(
            "INSERT INTO webhook_messages (webhook_id, msg_id, type, body, next_attempt_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $5)"
        ).bind(&message.webhook_id).bind(&message.msg_id).bind(&message.kind).bind(&message.body).bind(now)
            .execute(p).await?.rows_affected());
        Ok(())
    }

    /// Seals outbox events into messages in one transaction: the first
    /// `limit` events (Postgres skips those another instance is sealing)
    /// go to `seal`, which answers the messages and the events they hold;
    /// those events leave the outbox as their messages are written, the
    /// others stay for a later round. Returns the messages written.
    pub async fn seal_webhook_outbox(
        &self,
        limit: i64,
        now: i64,
        seal: impl FnOnce(Vec<OutboxItem>) -> (Vec<NewWebhookMessage>, Vec<i64>),
    ) -> StoreResult<usize> {
        let d = self.dialect();
        let select = format!(
            "SELECT id, webhook_id, type, data, created_at FROM webhook_outbox ORDER BY id LIMIT $1 {}",
            d.skip_locked()
        );
        let records =
            d.json_records(1, &[("webhook_id", "text"), ("msg_id", "text"), ("kind", "text"), ("body", "text")]);
        let insert = format!(
            "INSERT INTO webhook_messages (webhook_id, msg_id, type, body, next_attempt_at, created_at) \
             SELECT v.webhook_id, v.msg_id, v.kind, v.body, $2, $2 FROM {records}"
        );
        let delete = format!("DELETE FROM webhook_outbox WHERE {}", d.in_ints("id", 1));
        // A read first: an empty outbox (the usual case) takes no write lock.
        let any: Option<i64> = on_pool!(self.pool(), p => sqlx::query_scalar("SELECT id FROM webhook_outbox LIMIT 1")
            .fetch_optional(p).await?);
        if any.is_none() {
            return Ok(0);
        }
        macro_rules! run {
            ($p:expr) => {{
                let mut tx = $p.begin_write().await?;
                let items: Vec<OutboxItem> = sqlx::query_as(&select).bind(limit).fetch_all(&mut *tx).await?;
                if items.is_empty() {
                    return Ok(0);
                }
                let (messages, sealed) = seal(items);
                if !messages.is_empty() {
                    sqlx::query(&insert).bind(serde_json::to_string(&messages)?).bind(now).execute(&mut *tx).await?;
                    sqlx::query(&delete).bind(serde_json::to_string(&sealed)?).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                messages.len()
            }};
        }
        Ok(match self.pool() {
            Pool::Postgres(p) => run!(p),
            Pool::Sqlite(p) => run!(p),
        })
    }

    /// Whether some message of an enabled endpoint is due at `now`: a read,
    /// so an idle worker's rounds take no write lock.
    pub async fn webhook_messages_due(&self, now: i64) -> StoreResult<bool> {
        let due: Option<i64> = on_pool!(self.pool(), p => sqlx::query_scalar(
            "SELECT id FROM webhook_messages WHERE status = 'pending' AND next_attempt_at <= $1 \
             AND webhook_id IN (SELECT w.id FROM webhooks w WHERE w.enabled) LIMIT 1"
        ).bind(now).fetch_optional(p).await?);
        Ok(due.is_some())
    }

    /// Claims up to `limit` due messages of enabled endpoints, leased until
    /// `lease_until` (as [`claim_deliveries`](Self::claim_deliveries)).
    pub async fn claim_webhook_messages(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> StoreResult<Vec<ClaimedMessage>> {
        let sql = format!(
            "UPDATE webhook_messages SET lease_until = $2, next_attempt_at = $2 WHERE id IN (SELECT m.id \
             FROM webhook_messages m WHERE m.status = 'pending' AND m.next_attempt_at <= $1 \
             AND m.webhook_id IN (SELECT w.id FROM webhooks w WHERE w.enabled) \
             ORDER BY m.next_attempt_at LIMIT $3 {}) RETURNING id, webhook_id, msg_id, type, body, attempts",
            self.dialect().skip_locked()
        );
        Ok(on_pool!(self.pool(), p => sqlx::query_as::<_, ClaimedMessage>(&sql)
            .bind(now).bind(lease_until).bind(limit).fetch_all(p).await?))
    }

    /// Gives claimed messages back (shutdown before sending): due at once.
    pub async fn release_webhook_messages(&self, ids: &[i64], now: i64) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "UPDATE webhook_messages SET lease_until = NULL, next_attempt_at = $1 WHERE status = 'pending' AND {}",
            self.dialect().in_ints("id", 2)
        );
        on_pool!(self.pool(), p => sqlx::query(&sql).bind(now).bind(serde_json::to_string(ids)?)
            .execute(p).await?.rows_affected());
        Ok(())
    }

    /// Records an attempt in one transaction: its log row, the message's
    /// next state, and the endpoint's failure record, disabling an
    /// endpoint that has failed for too long. Returns whether it was disabled now.
    pub async fn record_webhook_attempt(&self, r: &AttemptRecord, now: i64) -> StoreResult<bool> {
        let m = &r.message;
        let (status, message_status) = match (r.succeeded, r.retry_at) {
            (true, _) => ("succeeded", "delivered"),
            (false, Some(_)) => ("failed", "pending"),
            (false, None) => ("failed", "failed"),
        };
        let reason = "failing for too long: every attempt failed since failing_since";
        macro_rules! run {
            ($p:expr) => {{
                let mut tx = $p.begin_write().await?;
                sqlx::query(
                    "INSERT INTO webhook_attempts (webhook_id, msg_id, type, attempt, status, http_status, latency_ms, \
                     error, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&m.webhook_id)
                .bind(&m.msg_id)
                .bind(&m.kind)
                .bind(m.attempts + 1)
                .bind(status)
                .bind(r.http_status)
                .bind(r.latency_ms)
                .bind(&r.error)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE webhook_messages SET status = $2, attempts = attempts + 1, lease_until = NULL, \
                     next_attempt_at = $3 WHERE id = $1",
                )
                .bind(m.id)
                .bind(message_status)
                .bind(r.retry_at.unwrap_or(now))
                .execute(&mut *tx)
                .await?;
                let disabled = if r.succeeded {
                    sqlx::query("UPDATE webhooks SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL")
                        .bind(&m.webhook_id)
                        .execute(&mut *tx)
                        .await?;
                    false
                } else {
                    sqlx::query("UPDATE webhooks SET failing_since = COALESCE(failing_since, $2) WHERE id = $1")
                        .bind(&m.webhook_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(
                        "UPDATE webhooks SET enabled = FALSE, disabled_reason = $3, updated_at = $4 \
                         WHERE id = $1 AND enabled AND failing_since < $2",
                    )
                    .bind(&m.webhook_id)
                    .bind(r.disable_if_failing_since)
                    .bind(reason)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1
                };
                tx.commit().await?;
                disabled
            }};
        }
        Ok(match self.pool() {
            Pool::Postgres(p) => run!(p),
            Pool::Sqlite(p) => run!(p),
        })
    }

    /// Attempts at `webhook_id`'s messages, newest first.
    pub async fn list_webhook_attempts(
        &self,
        webhook_id: &str,
        status: Option<&str>,
        before_id: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<WebhookAttemptRow>> {
        let mut q = Sql::new(
            "SELECT id, msg_id, type, attempt, status, http_status, latency_ms, error, at FROM webhook_attempts \
             WHERE webhook_id = ",
        );
        q.push_bind(webhook_id);
        if let Some(s) = status {
            q.push(" AND status = ").push_bind(s);
        }
        if let Some(id) = before_id {
            q.push(" AND id < ").push_bind(id);
        }
        q.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
        Ok(on_pool!(self.pool(), p => q.query_as::<_, WebhookAttemptRow>().fetch_all(p).await?))
    }

    /// Removes sent and given-up messages, and attempts, older than `before` (ms).
    pub async fn prune_webhooks(&self, before: i64) -> StoreResult<u64> {
        let messages = on_pool!(self.pool(), p => sqlx::query(
            "DELETE FROM webhook_messages WHERE status <> 'pending' AND created_at < $1"
        ).bind(before).execute(p).await?.rows_affected());
        let attempts = on_pool!(self.pool(), p => sqlx::query("DELETE FROM webhook_attempts WHERE at < $1")
            .bind(before).execute(p).await?.rows_affected());
        Ok(messages + attempts)
    }

    /// Events not yet delivered: in the outbox, and messages pending.
    pub async fn webhook_backlog(&self) -> StoreResult<i64> {
        Ok(on_pool!(self.pool(), p => sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM webhook_outbox) + (SELECT COUNT(*) FROM webhook_messages WHERE status = 'pending')"
        ).fetch_one(p).await?))
    }
}
