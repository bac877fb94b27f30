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

use futures::StreamExt;
use tracegate_core::pipeline::SearchScope;
use tracegate_core::{TraceId, TraceMeta};
use tracegate_state::sqlx::{self, QueryBuilder, Row};
use tracegate_state::warm::Warm;
use tracegate_state::PgPool;

use crate::{StoreError, TraceIndex, TraceStore};

/// Rows per upsert statement when rebuilding.
pub const REBUILD_BATCH: usize = 500;
/// Objects fetched at once when rebuilding (bucket reads are latency-bound).
pub const REBUILD_FETCHES: usize = 16;

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
    /// Connections for [`PgTraceIndex::get`], the lookup every read makes ([`tracegate_state::warm`]).
    warm: std::sync::Arc<Warm>,
}

/// Warm connections the lookup keeps: about as many lookups as are in flight at once under load,
/// few enough to leave the rest of the pool to everything else.
const WARM_LOOKUPS: usize = 4;

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
        PgTraceIndex { warm: std::sync::Arc::new(Warm::new(pool.clone(), WARM_LOOKUPS)), pool }
    }

    /// Upserts rows in one statement.
    pub async fn upsert_batch(&self, metas: &[TraceMeta]) -> Result<(), StoreError> {
        self.upsert_rows(metas, false).await
    }

    /// Upserts rows in one statement; `rebuilding` leaves alone rows indexed (by a gateway
    /// write) since the current rebuild started.
    async fn upsert_rows(&self, metas: &[TraceMeta], rebuilding: bool) -> Result<(), StoreError> {
        if metas.is_empty() {
            return Ok(());
        }
        let field = |k: &str| metas.iter().map(|m| m.field(k).map(str::to_owned)).collect::<Vec<_>>();
        let ids: Vec<String> = metas.iter().map(|m| m.trace_id.to_string()).collect();
        let started: Vec<Option<i64>> = metas.iter().map(|m| m.started_at.map(to_ns)).collect();
        let guard = if rebuilding { " WHERE trace_index.indexed_at < (SELECT started FROM trace_index_rebuild WHERE id = 1)" } else { "" };
        sqlx::query(&format!(
            "INSERT INTO trace_index (trace_id, tenant, project, agent, \"user\", started_ns)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[])
             ON CONFLICT (trace_id) DO UPDATE SET tenant = EXCLUDED.tenant, project = EXCLUDED.project,
                 agent = EXCLUDED.agent, \"user\" = EXCLUDED.\"user\", started_ns = EXCLUDED.started_ns, indexed_at = now(){guard}"
        ))
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
        const SQL: &str = "SELECT trace_id, tenant, project, agent, \"user\", started_ns FROM trace_index WHERE trace_id = $1";
        let id = id.to_string();
        let mut taken = self.warm.take().await.map_err(db)?;
        let mut row = sqlx::query(SQL).bind(&id).fetch_optional(&mut *taken.conn).await;
        if let Err(e) = &row {
            if taken.kept && tracegate_state::is_unavailable(e) {
                // A kept connection the database dropped since it last answered: the read once
                // more, on a connection the pool checks.
                taken = self.warm.fresh().await.map_err(db)?;
                row = sqlx::query(SQL).bind(&id).fetch_optional(&mut *taken.conn).await;
            }
        }
        let row = row.map_err(db)?;
        self.warm.keep(taken);
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

    /// Re-indexes every trace of `store`, walking its listing in key order
    /// ([`TraceStore::list_after`]: streamed page by page from a bucket, never the whole store at
    /// once) in batches of [`REBUILD_BATCH`], fetched [`REBUILD_FETCHES`] at a time. After each
    /// batch it commits where it got to, so an interrupted rebuild resumes after the last
    /// committed key, listing from there (`fresh` starts over). `progress` is told after each batch.
    ///
    /// Concurrent gateway writes win: a row indexed after this rebuild started is newer than
    /// anything the rebuild read, and is left alone. A rebuild that completes then removes the
    /// rows it neither indexed nor saw written since it started — traces no longer in the store.
    pub async fn rebuild(&self, store: &dyn TraceStore, fresh: bool, mut progress: impl FnMut(&RebuildProgress)) -> Result<RebuildReport, StoreError> {
        if fresh {
            sqlx::query("DELETE FROM trace_index_rebuild").execute(&self.pool).await.map_err(db)?;
        }
        let resume: Option<(String, i64)> = sqlx::query_as("SELECT last_key, indexed FROM trace_index_rebuild WHERE id = 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        let (after, mut done) = match resume {
            Some((key, n)) => (Some(key).filter(|k| !k.is_empty()), u64::try_from(n).unwrap_or(0)),
            None => {
                // Started now: the guard for concurrent writes and for the final clean-up.
                sqlx::query("INSERT INTO trace_index_rebuild (id, last_key, indexed) VALUES (1, '', 0)")
                    .execute(&self.pool)
                    .await
                    .map_err(db)?;
                (None, 0)
            }
        };
        let resumed = after.is_some();
        let after = match after {
            Some(k) => Some(TraceId::parse(&k).map_err(|e| StoreError::Backend(format!("rebuild resume point is not a trace id: {e}")))?),
            None => None,
        };
        let mut listing = store.list_after(after.as_ref()).chunks(REBUILD_BATCH);
        while let Some(chunk) = listing.next().await {
            let ids = chunk.into_iter().collect::<Result<Vec<TraceId>, StoreError>>()?;
            let Some(last) = ids.last().cloned() else { continue };
            let fetched: Vec<Result<Option<TraceMeta>, StoreError>> = futures::stream::iter(ids.iter().cloned())
                // Deleted since the listing: nothing to index.
                .map(|id| async move { crate::index::meta_of_read(id.clone(), store.get(&id).await) })
                .buffered(REBUILD_FETCHES)
                .collect()
                .await;
            let metas = fetched.into_iter().filter_map(Result::transpose).collect::<Result<Vec<_>, _>>()?;
            self.upsert_rows(&metas, true).await?;
            done += ids.len() as u64;
            sqlx::query("UPDATE trace_index_rebuild SET last_key = $1, indexed = $2, updated = now() WHERE id = 1")
                .bind(last.as_str())
                .bind(i64::try_from(done).unwrap_or(i64::MAX))
                .execute(&self.pool)
                .await
                .map_err(db)?;
            progress(&RebuildProgress { indexed: done, last: last.clone(), resumed });
        }
        // Complete: rows neither re-indexed nor written since the start name traces the store no
        // longer has. Then the next rebuild starts from the beginning.
        let removed = sqlx::query("DELETE FROM trace_index WHERE indexed_at < (SELECT started FROM trace_index_rebuild WHERE id = 1)")
            .execute(&self.pool)
            .await
            .map_err(db)?
            .rows_affected();
        sqlx::query("DELETE FROM trace_index_rebuild").execute(&self.pool).await.map_err(db)?;
        Ok(RebuildReport { indexed: done, removed, resumed })
    }
}

/// Where a rebuild is, after each committed batch.
#[derive(Debug, Clone)]
pub struct RebuildProgress {
    /// Traces listed and indexed so far, including before a resume.
    pub indexed: u64,
    /// The last trace of the committed batch (where a resume would start after).
    pub last: TraceId,
    /// This run resumed an interrupted one.
    pub resumed: bool,
}

/// What a completed rebuild did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    pub indexed: u64,
    /// Rows removed because their trace is no longer in the store.
    pub removed: u64,
    pub resumed: bool,
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
