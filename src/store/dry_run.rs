//! How many devices a send would target, sending nothing (`?dry_run=true`):
//! the same selection a send makes, counted.

use super::notifications::{fanout_source, GROUP_EXISTS};
use super::sql::{bind_args, on_pool};
use super::{Store, StoreResult};
use crate::domain::Target;

impl Store {
    /// The devices of `app_id` a send to `target` at `now` would target;
    /// `Err(what)` where the send would answer that `what` does not exist.
    pub async fn count_targets(
        &self,
        app_id: &str,
        target: &Target,
        now: i64,
    ) -> StoreResult<Result<i64, &'static str>> {
        let d = self.dialect();
        match target {
            Target::Tokens(tokens) => return Ok(Ok(tokens.len() as i64)),
            Target::DeviceIds(ids) => {
                let sql = format!(
                    "SELECT COUNT(*), COALESCE(SUM(CASE WHEN active THEN 1 ELSE 0 END), 0) FROM devices \
                     WHERE app_id = $1 AND {}",
                    d.in_strings("id", 2)
                );
                let list = serde_json::to_string(ids)?;
                let (found, active): (i64, i64) =
                    on_pool!(self.pool(), p => sqlx::query_as(&sql).bind(app_id).bind(&list).fetch_one(p).await?);
                return Ok(if (found as usize) < ids.len() { Err("device") } else { Ok(active) });
            }
            Target::Group(name) => {
                let exists: Option<i32> = on_pool!(self.pool(), p => sqlx::query_scalar(GROUP_EXISTS)
                    .bind(app_id).bind(name).fetch_optional(p).await?);
                if exists.is_none() {
                    return Ok(Err("group"));
                }
            }
            _ => {}
        }
        let source = fanout_source(target, &d, 2, now)?;
        let sql = format!("SELECT COUNT(*) {}", source.sql);
        let (count,): (i64,) =
            on_pool!(self.pool(), p => bind_args(sqlx::query_as(&sql).bind(app_id), &source.args).fetch_one(p).await?);
        Ok(Ok(count))
    }

    /// Whether a send to `target` at `now` reaches an active device of one
    /// of `platforms` (those a notification is too large for). Raw tokens
    /// name their platforms, so the caller answers for them.
    pub async fn targets_platforms(
        &self,
        app_id: &str,
        target: &Target,
        now: i64,
        platforms: &[&str],
    ) -> StoreResult<bool> {
        let d = self.dialect();
        let platforms = serde_json::to_string(platforms)?;
        let found: Option<(i32,)> = if let Target::DeviceIds(ids) = target {
            let sql = format!(
                "SELECT 1 FROM devices d WHERE d.app_id = $1 AND d.active = TRUE AND {} AND {} LIMIT 1",
                d.in_strings("d.id", 2),
                d.in_strings("d.platform", 3)
            );
            let ids = serde_json::to_string(ids)?;
            on_pool!(self.pool(), p => sqlx::query_as(&sql).bind(app_id).bind(&ids).bind(&platforms)
                .fetch_optional(p).await?)
        } else {
            let source = fanout_source(target, &d, 2, now)?;
            let sql =
                format!("SELECT 1 {} AND {} LIMIT 1", source.sql, d.in_strings("d.platform", 2 + source.args.len()));
            on_pool!(self.pool(), p => bind_args(sqlx::query_as(&sql).bind(app_id), &source.args)
                .bind(&platforms).fetch_optional(p).await?)
        };
        Ok(found.is_some())
    }
}
