//! Socket channel storage: the replay log (`socket_messages`) and, on
//! Postgres, which instance holds which clients (`socket_instances`,
//! `socket_presence`). SQLite runs one instance, whose in-memory registry is
//! the whole presence, so the presence methods do nothing there.

use super::sql::{on_pool, BeginWrite, Pool};
use super::{Store, StoreResult};

/// A connected client as listed by `GET /v1/socket/clients`.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ClientPresence {
    /// The client id.
    pub client_id: String,
    /// The user of its connections, when given.
    pub user_id: Option<String>,
    /// Open connections.
    pub connections: i64,
}

/// A message kept for replay.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct StoredSocketMessage {
    /// The message id (the frame's `id`).
    pub id: String,
    /// The frame as sent.
    pub payload: String,
}

/// Where a message went: `client`, `user` or `all`, and the client or user id.
#[derive(Clone, Copy, Debug)]
pub struct SocketTarget<'a> {
    /// `client`, `user` or `all`.
    pub kind: &'static str,
    /// The client or user id; empty for `all`.
    pub id: &'a str,
}

impl Store {
    /// Keeps a sent message for replay; returns its position in the log.
    pub async fn insert_socket_message(
        &self,
        app_id: &str,
        id: &str,
        target: SocketTarget<'_>,
        payload: &str,
        now: i64,
    ) -> StoreResult<i64> {
        Ok(on_pool!(self.pool(), p => sqlx::query_scalar(
            "INSERT INTO socket_messages (id, app_id, target_kind, target, payload, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq"
        ).bind(id).bind(app_id).bind(target.kind).bind(target.id).bind(payload).bind(now).fetch_one(p).await?))
    }

    /// The frame of the message at `seq` (for payloads too large for NOTIFY).
    pub async fn socket_message(&self, seq: i64) -> StoreResult<Option<String>> {
        Ok(on_pool!(self.pool(), p => sqlx::query_scalar("SELECT payload FROM socket_messages WHERE seq = $1")
            .bind(seq).fetch_optional(p).await?))
    }

    /// What a client missed since message `since_id`, in order, at most
    /// `limit`; None when `since_id` is not in the log (unknown or pruned).
    pub async fn socket_replay(
        &self,
        app_id: &str,
        since_id: &str,
        client_id: &str,
        user_id: Option<&str>,
        limit: i64,
    ) -> StoreResult<Option<Vec<StoredSocketMessage>>> {
        // A notification may carry its own id and be sent twice: the last wins.
        let since: Option<i64> = on_pool!(self.pool(), p => sqlx::query_scalar(
            "SELECT MAX(seq) FROM socket_messages WHERE app_id = $1 AND id = $2"
        ).bind(app_id).bind(since_id).fetch_one(p).await?);
        let Some(since) = since else { return Ok(None) };
        let rows = on_pool!(self.pool(), p => sqlx::query_as::<_, StoredSocketMessage>(
            "SELECT id, payload FROM socket_messages
             WHERE app_id = $1 AND seq > $2
               AND (target_kind = 'all'
                    OR (target_kind = 'client' AND target = $3)
                    OR (target_kind = 'user' AND target = $4))
             ORDER BY seq LIMIT $5"
        ).bind(app_id).bind(since).bind(client_id).bind(user_id).bind(limit).fetch_all(p).await?);
        Ok(Some(rows))
    }

    /// Removes replay log rows created before `before` (ms).
    pub async fn prune_socket_messages(&self, before: i64) -> StoreResult<u64> {
        Ok(on_pool!(self.pool(), p => sqlx::query("DELETE FROM socket_messages WHERE created_at < $1")
            .bind(before).execute(p).await?.rows_affected()))
    }

    /// Publishes `payload` on a Postgres notification channel (no-op on SQLite).
    pub async fn notify(&self, channel: &str, payload: &str) -> StoreResult<()> {
        if let Pool::Postgres(p) = self.pool() {
            sqlx::query("SELECT pg_notify($1, $2)").bind(channel).bind(payload).execute(p).await?;
        }
        Ok(())
    }

    /// Marks `instance_id` alive at `now` (creates it on first call).
    pub async fn socket_heartbeat(&self, instance_id: &str, now: i64) -> StoreResult<()> {
        if let Pool::Postgres(p) = self.pool() {
            sqlx::query(
                "INSERT INTO socket_instances (instance_id, heartbeat_at) VALUES ($1, $2)
                 ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at",
            )
            .bind(instance_id)
            .bind(now)
            .execute(p)
            .await?;
        }
        Ok(())
    }

    /// Forgets instances not seen since `before` (crashed), with their
    /// presence; and `instance_id` itself when `before` is None (shutdown).
    pub async fn socket_forget_instances(&self, instance_id: Option<&str>, before: i64) -> StoreResult<u64> {
        let Pool::Postgres(p) = self.pool() else { return Ok(0) };
        let res = sqlx::query("DELETE FROM socket_instances WHERE heartbeat_at < $1 OR instance_id = $2")
            .bind(before)
            .bind(instance_id)
            .execute(p)
            .await?;
        Ok(res.rows_affected())
    }

    /// Adds `delta` connections of (app, client, user) to this instance's presence.
    pub async fn socket_presence_add(
        &self,
        instance_id: &str,
        app_id: &str,
        client_id: &str,
        user_id: Option<&str>,
        delta: i32,
    ) -> StoreResult<()> {
        let Pool::Postgres(p) = self.pool() else { return Ok(()) };
        // user_id '' stands for none: it is part of the primary key.
        let user = user_id.unwrap_or("");
        sqlx::query(
            "INSERT INTO socket_presence (instance_id, app_id, client_id, user_id, connections)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (instance_id, app_id, client_id, user_id)
             DO UPDATE SET connections = socket_presence.connections + EXCLUDED.connections",
        )
        .bind(instance_id)
        .bind(app_id)
        .bind(client_id)
        .bind(user)
        .bind(delta)
        .execute(p)
        .await?;
        if delta < 0 {
            sqlx::query(
                "DELETE FROM socket_presence WHERE instance_id = $1 AND app_id = $2 AND client_id = $3
                   AND user_id = $4 AND connections <= 0",
            )
            .bind(instance_id)
            .bind(app_id)
            .bind(client_id)
            .bind(user)
            .execute(p)
            .await?;
        }
        Ok(())
    }

    /// Replaces this instance's presence with `rows` (app, client, user,
    /// connections): repairs drift after a failed update.
    pub async fn socket_presence_replace(
        &self,
        instance_id: &str,
        rows: &[(String, String, Option<String>, i32)],
    ) -> StoreResult<()> {
        let Pool::Postgres(p) = self.pool() else { return Ok(()) };
        let mut tx = p.begin_write().await?;
        sqlx::query("DELETE FROM socket_presence WHERE instance_id = $1").bind(instance_id).execute(&mut *tx).await?;
        for (app_id, client_id, user_id, n) in rows {
            sqlx::query(
                "INSERT INTO socket_presence (instance_id, app_id, client_id, user_id, connections)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(instance_id)
            .bind(app_id)
            .bind(client_id)
            .bind(user_id.as_deref().unwrap_or(""))
            .bind(n)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Connections of live instances other than `instance_id` that `target`
    /// reaches (0 on SQLite).
    pub async fn socket_remote_count(
        &self,
        instance_id: &str,
        app_id: &str,
        target: SocketTarget<'_>,
        alive_since: i64,
    ) -> StoreResult<i64> {
        let Pool::Postgres(p) = self.pool() else { return Ok(0) };
        let count: Option<i64> = sqlx::query_scalar(
            "SELECT SUM(s.connections)::BIGINT FROM socket_presence s
             JOIN socket_instances i ON i.instance_id = s.instance_id
             WHERE s.app_id = $1 AND s.instance_id <> $2 AND i.heartbeat_at >= $3
               AND ($4 = 'all' OR ($4 = 'client' AND s.client_id = $5) OR ($4 = 'user' AND s.user_id = $5))",
        )
        .bind(app_id)
        .bind(instance_id)
        .bind(alive_since)
        .bind(target.kind)
        .bind(target.id)
        .fetch_one(p)
        .await?;
        Ok(count.unwrap_or(0))
    }

    /// Connected clients of an app on every live instance, by client id
    /// after `after`, at most `limit` (Postgres; empty on SQLite).
    pub async fn socket_clients(
        &self,
        app_id: &str,
        after: Option<&str>,
        limit: i64,
        alive_since: i64,
    ) -> StoreResult<Vec<ClientPresence>> {
        let Pool::Postgres(p) = self.pool() else { return Ok(Vec::new()) };
        Ok(sqlx::query_as::<_, ClientPresence>(
            "SELECT s.client_id, MAX(NULLIF(s.user_id, '')) AS user_id, SUM(s.connections)::BIGINT AS connections
             FROM socket_presence s JOIN socket_instances i ON i.instance_id = s.instance_id
             WHERE s.app_id = $1 AND i.heartbeat_at >= $2 AND ($3::TEXT IS NULL OR s.client_id > $3)
             GROUP BY s.client_id HAVING SUM(s.connections) > 0
             ORDER BY s.client_id LIMIT $4",
        )
        .bind(app_id)
        .bind(alive_since)
        .bind(after)
        .bind(limit)
        .fetch_all(p)
        .await?)
    }
}
