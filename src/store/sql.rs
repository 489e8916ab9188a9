//! The SQL dialect, in one place: which database the store runs on, how a
//! query runs on either, and the few fragments whose text differs.
//!
//! A store query is written once, with one placeholder style: `$1`, `$2`…
//! numbered in bind order, which both drivers read (SQLite takes `$N` as
//! parameter N). Conditions chosen at run time go through [`Sql`], which
//! numbers its placeholders itself. Where the dialects differ, a query asks
//! [`Dialect`] for the fragment instead of matching on the pool; the only
//! statements that branch are the hot paths (fan-out commit, single-send
//! insert, write-back) that Postgres runs as one statement by design and
//! SQLite as a short transaction.

use sqlx::postgres::PgPool;
use sqlx::query::QueryAs;
use sqlx::sqlite::SqlitePool;

use crate::domain::tags::TagValue;

/// Which database the store runs on; private to the store.
#[derive(Clone, Debug)]
pub(super) enum Pool {
    /// PostgreSQL: several gateway instances may share it.
    Postgres(PgPool),
    /// SQLite: one instance, one writer.
    Sqlite(SqlitePool),
}

/// Runs the same query text on whichever pool the store holds. The body is
/// type-checked once per driver, so binds and row types must suit both.
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            $crate::store::sql::Pool::Postgres($p) => $body,
            $crate::store::sql::Pool::Sqlite($p) => $body,
        }
    };
}
pub(super) use on_pool;

/// Starting a transaction that will write.
pub(super) trait BeginWrite {
    /// The driver of the transaction.
    type Db: sqlx::Database;
    /// Begins a write transaction.
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>> + Send;
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>> + Send {
        self.begin()
    }
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    /// `BEGIN IMMEDIATE` takes the write lock at once: a deferred transaction
    /// that reads and then writes can meet another writer mid-way, and SQLite
    /// answers that lock upgrade with SQLITE_BUSY at once, whatever the busy
    /// timeout. Waiting for the lock up front is what the timeout covers.
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>> + Send {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

/// SQL fragments that differ between the dialects.
#[derive(Clone, Copy, Debug)]
pub(super) struct Dialect {
    pg: bool,
}

impl Dialect {
    /// The dialect of `pool`.
    pub(super) fn of(pool: &Pool) -> Self {
        Self { pg: matches!(pool, Pool::Postgres(_)) }
    }

    /// `col` is one of the strings of the JSON array in parameter `$n`.
    /// Postgres gets `= ANY(ARRAY(…))`, which looks each up by index; an
    /// `IN (SELECT …)` semi-join may scan the whole app instead.
    pub(super) fn in_strings(&self, col: &str, n: usize) -> String {
        if self.pg {
            format!("{col} = ANY(ARRAY(SELECT json_array_elements_text(${n}::json)))")
        } else {
            format!("{col} IN (SELECT value FROM json_each(${n}))")
        }
    }

    /// `col` is one of the integers of the JSON array in parameter `$n`.
    pub(super) fn in_ints(&self, col: &str, n: usize) -> String {
        if self.pg {
            format!("{col} = ANY(ARRAY(SELECT json_array_elements_text(${n}::json)::bigint))")
        } else {
            format!("{col} IN (SELECT value FROM json_each(${n}))")
        }
    }

    /// A row source `v(columns…)` from the JSON array of objects in `$n`;
    /// each column is `(name, Postgres type)`.
    pub(super) fn json_records(&self, n: usize, columns: &[(&str, &str)]) -> String {
        self.json_records_as(n, columns, "v")
    }

    /// [`json_records`](Self::json_records) named `alias`.
    pub(super) fn json_records_as(&self, n: usize, columns: &[(&str, &str)], alias: &str) -> String {
        if self.pg {
            let cols: Vec<String> = columns.iter().map(|(name, ty)| format!("{name} {ty}")).collect();
            format!("json_to_recordset(${n}::json) AS {alias}({})", cols.join(", "))
        } else {
            let cols: Vec<String> =
                columns.iter().map(|(name, _)| format!("json_extract(value, '$.{name}') AS {name}")).collect();
            format!("(SELECT {} FROM json_each(${n})) AS {alias}", cols.join(", "))
        }
    }

    /// What ends a claim's inner `SELECT`: Postgres skips rows another
    /// instance is claiming; SQLite has one writer and no row locks.
    pub(super) fn skip_locked(&self) -> &'static str {
        if self.pg {
            "FOR UPDATE SKIP LOCKED"
        } else {
            ""
        }
    }

    /// Device `d`'s tag `key` is `value` (Postgres: a containment the GIN
    /// index on the tags answers).
    pub(super) fn push_tag_is(&self, q: &mut Sql, key: &str, value: &TagValue) {
        if self.pg {
            let pair = serde_json::json!({ key: value.to_json() }).to_string();
            q.push("CAST(d.tags AS jsonb) @> CAST(").push_bind(pair).push(" AS jsonb)");
            return;
        }
        let path = tag_path(key);
        match value {
            TagValue::Text(s) => {
                q.push("(json_type(d.tags, ").push_bind(path.as_str()).push(") = 'text' AND json_extract(d.tags, ");
                q.push_bind(path).push(") = ").push_bind(s.as_str()).push(")");
            }
            TagValue::Number(n) => {
                q.push("(json_type(d.tags, ").push_bind(path.as_str());
                q.push(") IN ('integer', 'real') AND json_extract(d.tags, ").push_bind(path);
                q.push(") = CAST(").push_bind(n.to_string()).push(" AS REAL))");
            }
            TagValue::Bool(b) => {
                q.push("json_type(d.tags, ").push_bind(path).push(if *b { ") = 'true'" } else { ") = 'false'" });
            }
        }
    }

    /// Device `d` has tag `key`.
    pub(super) fn push_tag_exists(&self, q: &mut Sql, key: &str) {
        if self.pg {
            q.push("CAST(d.tags AS jsonb) ? ").push_bind(key);
        } else {
            q.push("json_type(d.tags, ").push_bind(tag_path(key)).push(") IS NOT NULL");
        }
    }

    /// Device `d`'s tag `key` is a number and compares with `value` by `op`
    /// (`>`, `<`, `>=`, `<=`); a tag of another type does not match.
    pub(super) fn push_tag_compare(&self, q: &mut Sql, key: &str, op: &str, value: &TagValue) {
        let number = match value {
            TagValue::Number(n) => n.to_string(),
            _ => {
                q.push("FALSE");
                return;
            }
        };
        if self.pg {
            // CASE, not AND: Postgres may evaluate AND's operands in any order,
            // and a text tag cast to numeric would fail the query.
            q.push("CASE WHEN jsonb_typeof(CAST(d.tags AS jsonb) -> ").push_bind(key);
            q.push(") = 'number' THEN CAST(CAST(d.tags AS jsonb) ->> ").push_bind(key);
            q.push(" AS numeric) ").push(op).push(" CAST(").push_bind(number).push(" AS numeric) ELSE FALSE END");
        } else {
            let path = tag_path(key);
            q.push("(json_type(d.tags, ").push_bind(path.as_str());
            q.push(") IN ('integer', 'real') AND json_extract(d.tags, ").push_bind(path);
            q.push(") ").push(op).push(" CAST(").push_bind(number).push(" AS REAL))");
        }
    }

    /// The Postgres dialect, for tests of query text.
    #[cfg(test)]
    pub(super) fn postgres() -> Self {
        Self { pg: true }
    }

    /// The SQLite dialect, for tests of query text.
    #[cfg(test)]
    pub(super) fn sqlite() -> Self {
        Self { pg: false }
    }
}

/// The SQLite JSON path of tag `key` (tag names hold no quotes).
fn tag_path(key: &str) -> String {
    format!("$.\"{key}\"")
}

/// A value bound to a query built at run time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Arg {
    /// Text.
    Text(String),
    /// An integer.
    Int(i64),
}

impl From<&str> for Arg {
    fn from(s: &str) -> Self {
        Self::Text(s.to_string())
    }
}

impl From<&String> for Arg {
    fn from(s: &String) -> Self {
        Self::Text(s.clone())
    }
}

impl From<String> for Arg {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}

impl From<i64> for Arg {
    fn from(i: i64) -> Self {
        Self::Int(i)
    }
}

/// A query whose conditions are chosen at run time, in the same placeholder
/// style as every other: [`push_bind`](Self::push_bind) writes `$N` and
/// keeps the value, so text and binds cannot drift apart.
#[derive(Debug, Default)]
pub(super) struct Sql {
    text: String,
    args: Vec<Arg>,
    /// Placeholders bound before this text's own (`$1`…`$offset`).
    offset: usize,
}

impl Sql {
    /// A query starting with `text` (which binds nothing).
    pub(super) fn new(text: &str) -> Self {
        Self { text: text.to_string(), args: Vec::new(), offset: 0 }
    }

    /// A fragment for a statement that binds `offset` values before it:
    /// its first placeholder is `$offset+1`.
    pub(super) fn after(offset: usize) -> Self {
        Self { text: String::new(), args: Vec::new(), offset }
    }

    /// Appends SQL text.
    pub(super) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends the next placeholder (`$N`), bound to `value`.
    pub(super) fn push_bind(&mut self, value: impl Into<Arg>) -> &mut Self {
        self.args.push(value.into());
        self.text.push('$');
        self.text.push_str(&(self.offset + self.args.len()).to_string());
        self
    }

    /// The SQL text.
    pub(super) fn text(&self) -> &str {
        &self.text
    }

    /// The bound values, in placeholder order.
    pub(super) fn args(&self) -> &[Arg] {
        &self.args
    }

    /// The query, its rows read as `O`, with every value bound; runs on
    /// either driver.
    pub(super) fn query_as<'q, DB, O>(&'q self) -> sqlx::query::QueryAs<'q, DB, O, DB::Arguments<'q>>
    where
        DB: sqlx::Database,
        O: for<'r> sqlx::FromRow<'r, DB::Row>,
        &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        bind_args(sqlx::query_as(&self.text), &self.args)
    }
}

/// Postgres rows from one array parameter per column, `$params[i]` for
/// `columns[i]` (`name`, element type), as table `v`: binary arrays cost
/// Postgres less to read than JSON records (see `ResultArrays`).
pub(super) fn unnest(params: &[usize], columns: &[(&str, &str)]) -> String {
    let args: Vec<String> = params.iter().zip(columns).map(|(n, (_, ty))| format!("${n}::{ty}[]")).collect();
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    format!("UNNEST({}) AS v({})", args.join(", "), names.join(", "))
}

/// Binds `args` after the values `query` has bound already; on either driver.
pub(super) fn bind_args<'q, DB, O>(
    mut query: QueryAs<'q, DB, O, DB::Arguments<'q>>,
    args: &'q [Arg],
) -> QueryAs<'q, DB, O, DB::Arguments<'q>>
where
    DB: sqlx::Database,
    O: for<'r> sqlx::FromRow<'r, DB::Row>,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for arg in args {
        query = match arg {
            Arg::Text(s) => query.bind(s.as_str()),
            Arg::Int(i) => query.bind(*i),
        };
    }
    query
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_bind_order() {
        let mut q = Sql::new("SELECT id FROM devices WHERE TRUE");
        q.push(" AND app_id = ").push_bind("a").push(" AND id < ").push_bind(7_i64).push(" LIMIT ").push_bind(10_i64);
        assert_eq!(q.text(), "SELECT id FROM devices WHERE TRUE AND app_id = $1 AND id < $2 LIMIT $3");
        assert_eq!(q.args(), [Arg::Text("a".into()), Arg::Int(7), Arg::Int(10)]);
    }

    #[test]
    fn fragments_differ_only_where_the_dialects_do() {
        let (pg, lite) = (Dialect { pg: true }, Dialect { pg: false });
        assert_eq!(pg.in_strings("id", 2), "id = ANY(ARRAY(SELECT json_array_elements_text($2::json)))");
        assert_eq!(lite.in_strings("id", 2), "id IN (SELECT value FROM json_each($2))");
        assert_eq!(pg.json_records(1, &[("id", "bigint")]), "json_to_recordset($1::json) AS v(id bigint)");
        assert_eq!(
            lite.json_records(1, &[("id", "bigint")]),
            "(SELECT json_extract(value, '$.id') AS id FROM json_each($1)) AS v"
        );
        assert_eq!((pg.skip_locked(), lite.skip_locked()), ("FOR UPDATE SKIP LOCKED", ""));
    }
}
