//! `/v1/service-accounts`: operators create, list, rotate and revoke API keys for non-human
//! callers. Admin-only: the caller must be in one of `[identity.service_accounts] admin_groups`
//! (and not be a service account). Every call is audited through [`finish`], the key itself
//! never: the record names the account, the key id and what changed.
//!
//! Also the server's half of a service account's authentication: its principal names policy
//! roles, which [`scope`] turns into the groups that reach exactly those roles.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};
use tracegate_core::{Policy, Principal};
use tracegate_identity::service_accounts::{Account, Issued, NewAccount, ServiceAccountError, ServiceAccounts};

use super::Caller;
use crate::audit::{finish, Audited, Reply};
use crate::error::ApiError;
use crate::state::AppState;

/// Largest request body: a name, roles and a few claims.
const MAX_BODY: usize = 16 * 1024;

/// Turns a service account's principal (whose `groups` hold its role names) into one whose
/// groups reach exactly those roles under `policy`. Fails closed: a role the policy no longer
/// has, or groups that would reach a role outside the account's scope, refuse the request.
pub fn scope(policy: &Policy, mut p: Principal) -> Result<Principal, ApiError> {
    let scoped = std::mem::take(&mut p.groups);
    let groups = groups_for_roles(policy, &scoped).map_err(|m| ApiError::new(StatusCode::FORBIDDEN, "service_account_scope", m))?;
    p.groups = groups;
    Ok(p)
}

/// The groups of `roles`, if they reach no other role.
fn groups_for_roles(policy: &Policy, roles: &[String]) -> Result<Vec<String>, String> {
    let mut groups: Vec<String> = Vec::new();
    for name in roles {
        let role = policy.roles.iter().find(|r| r.name == *name).ok_or_else(|| format!("the policy has no role `{name}`"))?;
        for g in &role.groups {
            if !groups.contains(g) {
                groups.push(g.clone());
            }
        }
    }
    if let Some(extra) = policy.roles_for_groups(&groups).into_iter().find(|r| !roles.contains(&r.name)) {
        return Err(format!(
            "the groups of roles {roles:?} also reach role `{}`, outside this service account's scope; give that role groups of its own",
            extra.name
        ));
    }
    Ok(groups)
}

/// `GET /v1/service-accounts`.
pub async fn list(State(state): State<Arc<AppState>>, ConnectInfo(client): ConnectInfo<SocketAddr>, caller: Result<Caller, ApiError>) -> Response {
    let mut audit = Audited::begin("GET", "/v1/service-accounts", None, Some(client));
    let outcome = async {
        admin(&state, &mut audit, caller)?;
        let auth = state.auth.clone();
        let accounts = run(async move { accounts(&auth)?.list().await }).await?;
        let now = SystemTime::now();
        let views: Vec<Value> = accounts.iter().map(|a| view(a, now)).collect();
        reply(StatusCode::OK, &json!({ "service_accounts": views }))
    }
    .await;
    finish(&state, audit, outcome).await
}

/// `POST /v1/service-accounts` with `{"name", "roles", "claims"?, "description"?, "ttl"?}`:
/// `201` with the account and its first key, shown this once.
pub async fn create(
    State(state): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    caller: Result<Caller, ApiError>,
    body: Body,
) -> Response {
    let mut audit = Audited::begin("POST", "/v1/service-accounts", None, Some(client));
    let outcome = async {
        let who = admin(&state, &mut audit, caller)?;
        let req: NewAccount = read_json(body).await?;
        audit.entry.event = Some(json!({ "change": "created", "service_account": req.name, "roles": req.roles }));
        let (auth, policy) = (state.auth.clone(), state.policy.clone());
        let issued = run(async move {
            let known = |r: &str| groups_for_roles(&policy, &[r.to_owned()]).map(|_| ());
            accounts(&auth)?.create(&req, &who.subject, &known, SystemTime::now()).await
        })
        .await?;
        record_key(&mut audit, &issued);
        reply(StatusCode::CREATED, &issued_view(&issued))
    }
    .await;
    finish(&state, audit, outcome).await
}

/// Body of rotate and revoke.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    /// rotate: the new key's lifetime.
    ttl: Option<String>,
    /// revoke: the one key to revoke; without it, the whole account.
    key_id: Option<String>,
}

/// `POST /v1/service-accounts/{name}/rotate` (`{"ttl"?}`: a new key, the old one still live)
/// and `/revoke` (`{"key_id"?}`: one key, or the whole account).
pub async fn action(
    State(state): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path((name, verb)): Path<(String, String)>,
    caller: Result<Caller, ApiError>,
    body: Body,
) -> Response {
    let known = matches!(verb.as_str(), "rotate" | "revoke");
    let route = if known { format!("/v1/service-accounts/{{name}}/{verb}") } else { "/v1/service-accounts/{name}/{verb}".to_owned() };
    let mut audit = Audited::begin("POST", &route, None, Some(client));
    let outcome = async {
        let who = admin(&state, &mut audit, caller)?;
        if !known {
            return Err(ApiError::new(StatusCode::NOT_FOUND, "no_route", "expected rotate or revoke"));
        }
        let b: ActionBody = read_json(body).await?;
        let change = if verb == "rotate" { "rotated" } else if b.key_id.is_some() { "key_revoked" } else { "account_revoked" };
        audit.entry.event = Some(json!({ "change": change, "service_account": name }));
        if let (Some(event), Some(k)) = (audit.entry.event.as_mut(), &b.key_id) {
            event["key_id"] = json!(k);
        }
        let auth = state.auth.clone();
        let now = SystemTime::now();
        if verb == "rotate" {
            let issued = run(async move { accounts(&auth)?.rotate(&name, b.ttl.as_deref(), &who.subject, now).await }).await?;
            record_key(&mut audit, &issued);
            reply(StatusCode::OK, &issued_view(&issued))
        } else {
            let account = run(async move { accounts(&auth)?.revoke(&name, b.key_id.as_deref(), &who.subject, now).await }).await?;
            reply(StatusCode::OK, &json!({ "service_account": view(&account, now) }))
        }
    }
    .await;
    finish(&state, audit, outcome).await
}

/// Authenticates the caller and checks they may manage service accounts.
fn admin(state: &AppState, audit: &mut Audited, caller: Result<Caller, ApiError>) -> Result<Principal, ApiError> {
    let Caller(who) = caller?;
    audit.principal(state, &who);
    let sa = state
        .auth
        .service_accounts()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no_route", "service accounts are not configured (`[identity.service_accounts]`)"))?;
    if !sa.is_admin(&who) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_admin",
            "managing service accounts needs membership of one of `identity.service_accounts.admin_groups`",
        ));
    }
    Ok(who)
}

fn accounts(auth: &tracegate_identity::Authenticator) -> Result<&ServiceAccounts, ServiceAccountError> {
    auth.service_accounts().ok_or_else(|| ServiceAccountError::Invalid("service accounts are not configured".into()))
}

fn record_key(audit: &mut Audited, issued: &Issued) {
    if let Some(event) = audit.entry.event.as_mut() {
        event["key_id"] = json!(issued.key_id);
        event["expires_at"] = json!(issued.expires_at);
    }
}

/// An account as the API shows it: no hashes, and which keys are live now.
fn view(a: &Account, now: SystemTime) -> Value {
    let mut v = serde_json::to_value(a).unwrap_or(Value::Null);
    if let Some(keys) = v["keys"].as_array_mut() {
        for (k, rec) in keys.iter_mut().zip(&a.keys) {
            k["live"] = json!(a.revoked_at.is_none() && rec.is_live(now));
        }
    }
    v["live_keys"] = json!(a.live_keys(now));
    v
}

fn issued_view(i: &Issued) -> Value {
    json!({
        "service_account": view(&i.account, SystemTime::now()),
        "key_id": i.key_id,
        "key": i.key,
        "expires_at": i.expires_at,
        "message": "this key is shown once: store it now; the gateway keeps only its hash",
    })
}

async fn read_json<T: serde::de::DeserializeOwned + Default>(body: Body) -> Result<T, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", format!("the body is at most {MAX_BODY} bytes")))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request("invalid_json", format!("invalid body: {e}")))
}

fn reply(status: StatusCode, body: &Value) -> Result<Reply, ApiError> {
    let bytes = serde_json::to_vec(body).map_err(|_| ApiError::internal("internal", "serialising the response failed"))?;
    Ok(Reply::json(status, bytes).header("cache-control", "no-store"))
}

/// Runs a store operation as a task of its own, so a client hanging up cannot cut a change off
/// half way.
async fn run<T: Send + 'static>(f: impl std::future::Future<Output = Result<T, ServiceAccountError>> + Send + 'static) -> Result<T, ApiError> {
    let result = tokio::spawn(f).await.map_err(|_| ApiError::internal("internal", "the service-accounts task failed"))?;
    result.map_err(|e| {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(error = %e, "service-account store failed");
            return ApiError::unavailable(e.code(), "the service-account store is unavailable; nothing changed");
        }
        ApiError::new(status, e.code(), e.to_string())
    })
}
