//! The metadata index in PostgreSQL, shared by every replica: one row per trace in
//! `trace_index`, upserted on every write, and search as one indexed SQL query inside the
//! caller's row scope ([`tracegate_core::pipeline::SearchScope`]). The core's search then runs
//! over the rows returned, as defence in depth: it re-checks row scope and every filter, so a
//! wrong or stale row can narrow a result, never widen it.
//!
//! [`MetaIndex`] is what the server holds: the in-memory [`TraceIndex`] of the embedded default,
//! or this one with `[state]`. An enum for the same reasons as the audit trail's: two backends,
//! async dispatch without boxing.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracegate_core::pipeline::SearchScope;
use tracegate_core::{TraceId, TraceMeta};
use tracegate_state::sqlx::{self, QueryBuilder, Row};
use tracegate_state::PgPool;

use crate::{StoreError, TraceIndex, TraceStore};

/// Rows per upsert statement when rebuilding.
pub const REBUILD_BATCH: usize = 500;

/// The index a gateway searches.
pub enum MetaIndex {
    Memory(TraceIndex),
    Postgres(PgTraceIndex),
}

impl MetaIndex {
    /// Records a write's metadata. With PostgreSQL it is committed when this returns.
    pub async fn upsert(&self, meta: TraceMeta) -> Result<(), StoreError> {
        match self {
            MetaIndex::Memory(ix) => {
                ix.upsert(meta);
                Ok(())
            }
            MetaIndex::Postgres(ix) => ix.upsert_batch(std::slice::from_ref(&meta)).await,
        }
    }

    pub async fn get(&self, id: &TraceId) -> Result<Option<TraceMeta>, StoreError> {
        match self {
            MetaIndex::Memory(ix) => Ok(ix.get(id)),
            MetaIndex::Postgres(ix) => ix.get(id).await,
        }
    }

    /// Number of indexed traces, where it is cheap to know (`None` for PostgreSQL).
    pub fn len_hint(&self) -> Option<usize> {
        match self {
            MetaIndex::Memory(ix) => Some(ix.len()),
            MetaIndex::Postgres(_) => None,
        }
    }
}

/// `trace_index` on the shared-state pool.
#[derive(Debug, Clone)]
pub struct PgTraceIndex {
    pool: PgPool,
}

fn db(e: sqlx::Error) -> StoreError {
    StoreError::Backend(format!("metadata index: {e}"))
}

fn to_ns(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn from_ns(ns: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}

/// Column of a metadata key; only the fixed keys of `META_KEYS` ever reach SQL text.
fn column(key: &str) -> Option<&'static str> {
    match key {
        "tenant" => Some("tenant"),
        "project" => Some("project"),
        "agent" => Some("agent"),
        "user" => Some("\"user\""),
        _ => None,
    }
}

impl PgTraceIndex {
    pub fn new(pool: PgPool) -> Self {
        PgTraceIndex { pool }
    }

    /// Upserts rows in one statement.
    pub async fn upsert_batch(&self, metas: &[TraceMeta]) -> Result<(), StoreError> {
        if metas.is_empty() {
            return Ok(());
        }
        let field = |k: &str| metas.iter().map(|m| m.field(k).map(str::to_owned)).collect::<Vec<_>>();
        let ids: Vec<String> = metas.iter().map(|m| m.trace_id.to_string()).collect();
        let started: Vec<Option<i64>> = metas.iter().map(|m| m.started_at.map(to_ns)).collect();
        sqlx::query(
            "INSERT INTO trace_index (trace_id, tenant, project, agent, \"user\", started_ns)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[])
             ON CONFLICT (trace_id) DO UPDATE SET tenant = EXCLUDED.tenant, project = EXCLUDED.project,
                 agent = EXCLUDED.agent, \"user\" = EXCLUDED.\"user\", started_ns = EXCLUDED.started_ns, indexed_at = now()",
        )
        .bind(&ids)
        .bind(field("tenant"))
        .bind(field("project"))
        .bind(field("agent"))
        .bind(field("user"))
        .bind(&started)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    pub async fn get(&self, id: &TraceId) -> Result<Option<TraceMeta>, StoreError> {
        let row = sqlx::query("SELECT trace_id, tenant, project, agent, \"user\", started_ns FROM trace_index WHERE trace_id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.map(|r| meta_of(&r)).transpose()
    }

    pub async fn count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM trace_index").fetch_one(&self.pool).await.map_err(db)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The rows of `scope`, in the search's order: feed them to `pipeline::search`.
    pub async fn candidates(&self, scope: &SearchScope) -> Result<Vec<TraceMeta>, StoreError> {
        if scope.empty {
            return Ok(Vec::new());
        }
        let mut b = QueryBuilder::new("SELECT trace_id, tenant, project, agent, \"user\", started_ns FROM trace_index WHERE true");
        for (key, value) in &scope.equals {
            let Some(col) = column(key) else { return Ok(Vec::new()) };
            b.push(" AND ").push(col).push(" = ").push_bind(value.clone());
        }
        if let Some(from) = scope.started_from {
            b.push(" AND started_ns >= ").push_bind(to_ns(from));
        }
        if let Some(before) = scope.started_before {
            b.push(" AND started_ns < ").push_bind(to_ns(before));
        }
        b.push(if scope.by_time { " ORDER BY started_ns DESC NULLS LAST, trace_id" } else { " ORDER BY trace_id" });
        if let Some(limit) = scope.limit {
            b.push(" LIMIT ").push_bind(i64::from(limit));
        }
        let rows = b.build().fetch_all(&self.pool).await.map_err(db)?;
        rows.iter().map(meta_of).collect()
    }

    /// Re-indexes every trace of `store`, in id order and batches of [`REBUILD_BATCH`],
    /// committing after each batch where it got to, so an interrupted rebuild resumes after the
    /// last committed key (`fresh` starts over). `progress(indexed so far, total)` after each batch.
    pub async fn rebuild(&self, store: &dyn TraceStore, fresh: bool, mut progress: impl FnMut(u64, u64)) -> Result<u64, StoreError> {
        if fresh {
            sqlx::query("DELETE FROM trace_index_rebuild").execute(&self.pool).await.map_err(db)?;
        }
        let resume: Option<(String, i64)> = sqlx::query_as("SELECT last_key, indexed FROM trace_index_rebuild WHERE id = 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        let (last, mut done) = resume.map_or((None, 0u64), |(k, n)| (Some(k), u64::try_from(n).unwrap_or(0)));
        let mut ids = store.list().await?;
        ids.sort();
        let total = ids.len() as u64;
        let todo: Vec<TraceId> = ids.into_iter().filter(|id| last.as_deref().is_none_or(|l| id.as_str() > l)).collect();
        for chunk in todo.chunks(REBUILD_BATCH) {
            let mut metas = Vec::with_capacity(chunk.len());
            for id in chunk {
                let stored = match store.get(id).await {
                    Ok(s) => s,
                    // Deleted since the listing: nothing to index.
                    Err(StoreError::NotFound(_)) => continue,
                    Err(e) => return Err(e),
                };
                metas.push(crate::index::meta_of_bytes(id.clone(), &stored.bytes));
            }
            self.upsert_batch(&metas).await?;
            done += chunk.len() as u64;
            if let Some(last) = chunk.last() {
                sqlx::query(
                    "INSERT INTO trace_index_rebuild (id, last_key, indexed) VALUES (1, $1, $2)
                     ON CONFLICT (id) DO UPDATE SET last_key = EXCLUDED.last_key, indexed = EXCLUDED.indexed, updated = now()",
                )
                .bind(last.as_str())
                .bind(i64::try_from(done).unwrap_or(i64::MAX))
                .execute(&self.pool)
                .await
                .map_err(db)?;
            }
            progress(done, total);
        }
        // Finished: the next rebuild starts from the beginning.
        sqlx::query("DELETE FROM trace_index_rebuild").execute(&self.pool).await.map_err(db)?;
        Ok(done)
    }
}

fn meta_of(r: &sqlx::postgres::PgRow) -> Result<TraceMeta, StoreError> {
    let id: String = r.try_get(0).map_err(db)?;
    let trace_id = TraceId::parse(&id).map_err(|e| StoreError::Backend(format!("metadata index holds a bad trace id: {e}")))?;
    let mut fields = BTreeMap::new();
    for (i, key) in tracegate_core::meta::META_KEYS.iter().enumerate() {
        let v: Option<String> = r.try_get(i + 1).map_err(db)?;
        if let Some(v) = v {
            fields.insert((*key).to_owned(), v);
        }
    }
    let started: Option<i64> = r.try_get(5).map_err(db)?;
    Ok(TraceMeta { trace_id, fields, started_at: started.map(from_ns) })
}
