//! `GET /v1/traces`: metadata search within the caller's row scope.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use tracegate_core::pipeline::{search as search_core, search_scope, SearchQuery};
use tracegate_core::Action;
use tracegate_store::MetaIndex;

use super::{query_pairs, Caller};
use crate::audit::{finish, Audited, Reply};
use crate::error::ApiError;
use crate::state::AppState;

const PARAMS: [&str; 7] = ["tenant", "project", "agent", "user", "since", "until", "limit"];

pub async fn search(
    State(state): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    caller: Result<Caller, ApiError>,
) -> Response {
    let mut audit = Audited::begin("GET", "/v1/traces", Some(Action::Search), Some(client));
    let outcome = run(&state, &mut audit, query, caller).await;
    finish(&state, audit, outcome).await
}

async fn run(state: &AppState, audit: &mut Audited, query: Option<String>, caller: Result<Caller, ApiError>) -> Result<Reply, ApiError> {
    // Authenticate.
    let Caller(who) = caller?;
    audit.principal(state, &who);
    let q = parse_query(query.as_deref())?;
    // Decide and fetch: the index answers within the row scope the core applies. PostgreSQL
    // returns only the rows of the scope the core computes; the core then re-checks them all.
    let now = SystemTime::now();
    let result = match &state.index {
        MetaIndex::Memory(ix) => ix.with_all(|all| search_core(&state.policy, &who, &q, all, now, &state.mask_key))?,
        MetaIndex::Postgres(ix) => {
            let scope = search_scope(&state.policy, &who, &q, now, &state.mask_key)?;
            if scope.limit.is_some() {
                let rows = ix.candidates(&scope).await?;
                search_core(&state.policy, &who, &q, rows.iter(), now, &state.mask_key)?
            } else {
                masked_filter_search(state, &who, &q, scope, now, ix).await?
            }
        }
    };
    audit.request().trace_ids = result.traces.iter().map(|m| m.trace_id.to_string()).collect();
    // Results were masked and cut to the role's view by the core, as golden scenarios see them.
    let role = state
        .policy
        .role(&result.role)
        .ok_or_else(|| ApiError::internal("internal", "the serving role vanished from the policy"))?;
    let serialise_failed = || ApiError::internal("internal", "serialising the response failed");
    let body = serde_json::to_value(&result).map_err(|_| serialise_failed())?;
    audit.served(role, result.rules.clone(), result.masks.clone());
    // Respond.
    let body = serde_json::to_vec(&body).map_err(|_| serialise_failed())?;
    Ok(Reply::json(StatusCode::OK, body))
}

/// Rows of the scope read first when a filter must match masked values, then 4× more each round.
const MASKED_FIRST_ROWS: u32 = 1024;

/// A search whose filters match what the role's masking shows, which SQL cannot compute: the
/// scope comes back in the search's own order, so the core's result over the first `n` rows
/// equals its result over all of them as soon as it finds more matches than its limit (`more`),
/// or the prefix is the whole scope. `n` grows 4× per round, so a common match reads a small
/// prefix, and the rarest reads at most about 2.3× the scope — instead of always all of it.
async fn masked_filter_search(
    state: &AppState,
    who: &tracegate_core::Principal,
    q: &SearchQuery,
    mut scope: tracegate_core::pipeline::SearchScope,
    now: SystemTime,
    ix: &tracegate_store::PgTraceIndex,
) -> Result<tracegate_core::pipeline::SearchResult, ApiError> {
    let mut n = MASKED_FIRST_ROWS;
    loop {
        scope.limit = Some(n);
        let rows = ix.candidates(&scope).await?;
        let whole = rows.len() < n as usize;
        let result = search_core(&state.policy, who, q, rows.iter(), now, &state.mask_key)?;
        if result.more || whole {
            return Ok(result);
        }
        n = n.saturating_mul(4);
    }
}

fn parse_query(raw: Option<&str>) -> Result<SearchQuery, ApiError> {
    let mut q = SearchQuery::default();
    for (k, v) in query_pairs(raw, &PARAMS)? {
        let time = |v: &str| {
            humantime::parse_rfc3339_weak(v)
                .map_err(|e| ApiError::bad_request("bad_parameter", format!("`{k}` must be an RFC 3339 time: {e}")))
        };
        let slot_taken = || ApiError::bad_request("bad_parameter", format!("`{k}` given more than once"));
        match k.as_str() {
            "tenant" => set_once(&mut q.tenant, v, slot_taken)?,
            "project" => set_once(&mut q.project, v, slot_taken)?,
            "agent" => set_once(&mut q.agent, v, slot_taken)?,
            "user" => set_once(&mut q.user, v, slot_taken)?,
            "since" => set_once(&mut q.since, time(&v)?, slot_taken)?,
            "until" => set_once(&mut q.until, time(&v)?, slot_taken)?,
            _ => {
                let n = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| ApiError::bad_request("bad_parameter", "`limit` must be a positive integer"))?;
                set_once(&mut q.limit, n, slot_taken)?;
            }
        }
    }
    Ok(q)
}

fn set_once<T>(slot: &mut Option<T>, v: T, taken: impl Fn() -> ApiError) -> Result<(), ApiError> {
    if slot.is_some() {
        return Err(taken());
    }
    *slot = Some(v);
    Ok(())
}
