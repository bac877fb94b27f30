//! One request's path through the core, in phase order. The server, `policy test` and benchmarks
//! all call these, so what a golden scenario shows is what the gateway serves.

use std::time::SystemTime;

use serde_json::Value;

use crate::approval::{Party, RequestShape};
use crate::decision::{
    approval_needed, check_approval, check_count, check_rows, roles_for_action, Action, Denial, DenyCode,
};
use crate::mask::{MaskKey, MaskReport};
use crate::meta::{TraceMeta, META_KEYS};
use crate::policy::{ApprovalAsk, ApprovalRule, Policy, Role};
use crate::principal::Principal;
use crate::jsonpath::Limits;
use crate::path_trie::Seg;
use crate::project::{check_request, finish, narrow, view, FieldRequest, TooCostly};

/// A role that may serve a request, with the rules that admitted it so far.
#[derive(Debug)]
pub struct Candidate<'p> {
    pub role: &'p Role,
    pub rules: Vec<String>,
}

/// What a read returns once decided, projected and masked.
#[derive(Debug)]
pub struct Served {
    pub role: String,
    pub rules: Vec<String>,
    pub body: Value,
    pub masks: MaskReport,
}

/// What a read asks for, beyond the trace: the fields (none = the role's whole view) and the
/// caller's stated purpose.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadRequest<'a> {
    pub fields: Option<&'a [FieldRequest]>,
    pub purpose: Option<&'a str>,
}

/// The decide phase's answer for a read.
#[derive(Debug)]
#[expect(clippy::large_enum_variant, reason = "made once per request and matched at once; a box would only add an allocation")]
pub enum ReadDecision<'p> {
    /// Serve under the first of these roles whose view holds the request.
    Serve(Vec<Candidate<'p>>),
    /// Only roles whose approval rule gates this request admit it: it is served under `role`
    /// once an access request for exactly `shape` is approved.
    Approval(Gate<'p>),
}

/// A read that waits for approval.
#[derive(Debug)]
pub struct Gate<'p> {
    pub role: &'p Role,
    pub rule: &'p ApprovalRule,
    /// Rules that admitted the read, then the approval rules that gate it.
    pub rules: Vec<String>,
    /// Exactly what was asked; its fingerprint binds the grant.
    pub shape: RequestShape,
}

impl Gate<'_> {
    /// The candidate to serve under once the grant is found.
    pub fn candidate(&self) -> Candidate<'_> {
        Candidate { role: self.role, rules: self.rules.clone() }
    }
}

/// Decide phase of a read, before the body is fetched: the roles that may read this trace
/// (action, row scope), in policy order, or the approval gate it must pass.
///
/// Roles that serve without approval win: a caller in both `eng` and `sre` is served as an
/// engineer, never made to wait. Only when every admitting role gates the request does it wait,
/// under the first such role. A purpose that rule requires must be given before anything is
/// opened.
pub fn decide_read_gated<'p>(
    policy: &'p Policy,
    who: &Principal,
    meta: &TraceMeta,
    req: &ReadRequest<'_>,
    now: SystemTime,
) -> Result<ReadDecision<'p>, Denial> {
    let field_exprs: Option<Vec<String>> = req.fields.map(|f| f.iter().map(|r| r.expr.clone()).collect());
    let ask = ApprovalAsk { reads_documents: true, fields: field_exprs.as_deref(), count: 1, purpose: req.purpose };
    let mut first_denial = None;
    let mut ok = Vec::new();
    let mut gated = Vec::new();
    for role in roles_for_action(policy, who, Action::Read)? {
        // Requested fields that can only reach outside this role's view rule it out, from the
        // request and the policy alone.
        if let Some(Err(d)) = req.fields.map(|f| check_request(role, f)) {
            first_denial.get_or_insert(d);
            continue;
        }
        match check_rows(role, who, meta, now) {
            Ok(mut rules) => {
                rules.insert(0, role.rule("actions"));
                match (approval_needed(role, &ask), role.approval.as_ref()) {
                    (Some(gate_rules), Some(rule)) => gated.push((role, rule, rules, gate_rules)),
                    _ => ok.push(Candidate { role, rules }),
                }
            }
            Err(d) => {
                first_denial.get_or_insert(d);
            }
        }
    }
    if !ok.is_empty() {
        return Ok(ReadDecision::Serve(ok));
    }
    let Some((role, rule, mut rules, gate_rules)) = gated.into_iter().next() else {
        return Err(first_denial.unwrap_or_else(|| Denial::new(DenyCode::NoRole, None, "no role may read", vec![])));
    };
    if rule.reason_required && req.purpose.is_none_or(|p| p.trim().is_empty()) {
        return Err(Denial::new(
            DenyCode::PurposeRequired,
            Some(role),
            format!(
                "role `{}` needs approval for this read and a stated purpose: send header `x-tracegate-purpose` or `?purpose=`",
                role.name
            ),
            vec![role.rule("approval.reason_required")],
        ));
    }
    rules.extend(gate_rules);
    let requester = Party::of(who);
    let shape = RequestShape::new(
        requester,
        Action::Read,
        role.name.clone(),
        policy.version.clone(),
        [meta.trace_id.clone()],
        field_exprs,
        req.purpose,
    )
    .with_current_view(current_view(policy, who, meta, req.purpose, now).map(|r| r.name.clone()));
    Ok(ReadDecision::Approval(Gate { role, rule, rules, shape }))
}

/// [`decide_read_gated`] for a read that needs no metadata: when every role `who` reaches for
/// reading admits every trace (no `rows.match`, no `rows.max_age`), the decision is the same
/// whatever the trace's metadata, and this returns it if it serves without approval. `None`
/// (some role's row scope reads the trace, or the read waits for approval, or is refused):
/// look the metadata up and call [`decide_read_gated`].
///
/// Why: the metadata lookup before the fetch is then only an existence check, which the fetch
/// itself answers (the same `404`); on a PostgreSQL index it was a round trip per read.
/// Approval and refusal still go through the lookup, so a trace that does not exist is never
/// answered with an access request or a refusal that a real lookup would have made a `404`.
pub fn decide_read_unscoped<'p>(
    policy: &'p Policy,
    who: &Principal,
    id: &crate::trace_id::TraceId,
    req: &ReadRequest<'_>,
    now: SystemTime,
) -> Option<Vec<Candidate<'p>>> {
    let roles = roles_for_action(policy, who, Action::Read).ok()?;
    if roles.iter().any(|r| r.rows.reads_trace()) {
        return None;
    }
    let bare = TraceMeta { trace_id: id.clone(), fields: Default::default(), started_at: None };
    match decide_read_gated(policy, who, &bare, req, now) {
        Ok(ReadDecision::Serve(c)) => Some(c),
        _ => None,
    }
}

/// The role that serves `who` a plain read (the role's whole view, no `fields=`) of this trace
/// without approval, if any: what the requester sees without a grant. From the requester's own
/// principal, never from whoever later looks at the request.
pub fn current_view<'p>(policy: &'p Policy, who: &Principal, meta: &TraceMeta, purpose: Option<&str>, now: SystemTime) -> Option<&'p Role> {
    let plain = ApprovalAsk { reads_documents: true, fields: None, count: 1, purpose };
    roles_for_action(policy, who, Action::Read)
        .ok()?
        .into_iter()
        .find(|role| check_rows(role, who, meta, now).is_ok() && approval_needed(role, &plain).is_none())
}

/// Why a decided read is not served after all.
#[derive(Debug)]
pub enum ServeError {
    /// No candidate's view admits the request.
    Denied(Denial),
    /// A requested query would cost more than the limits allow over this view.
    TooCostly(TooCostly),
    /// The stored bytes are not a JSON document (the store was written behind the gateway's back).
    NotJson(String),
}

impl From<Denial> for ServeError {
    fn from(d: Denial) -> Self {
        ServeError::Denied(d)
    }
}

/// Project-and-mask phase of a read, served under the first candidate whose view admits every
/// requested field: the role's view, masked, then narrowed by the caller's queries evaluated
/// over that masked view (see [`crate::project`] for why in this order).
pub fn project_and_mask(
    candidates: &[Candidate<'_>],
    doc: Value,
    requested: Option<&[FieldRequest]>,
    key: &MaskKey,
) -> Result<Served, ServeError> {
    let mut first_denial = None;
    let chosen = candidates.iter().find(|c| match requested.map(|r| check_request(c.role, r)) {
        Some(Err(d)) => {
            first_denial.get_or_insert(d);
            false
        }
        _ => true,
    });
    let Some(c) = chosen else {
        return Err(ServeError::Denied(
            first_denial.unwrap_or_else(|| Denial::new(DenyCode::NoRole, None, "no role may serve this read", vec![])),
        ));
    };
    let mut v = view(doc, c.role);
    let masks = c.role.masking.apply_view(&mut v, key);
    if let Some(r) = requested {
        v = narrow(v, r, &Limits::DEFAULT).map_err(ServeError::TooCostly)?;
    }
    let mut rules = c.rules.clone();
    rules.push(c.role.rule("fields"));
    Ok(Served { role: c.role.name.clone(), rules, body: finish(v), masks })
}

/// Parses a stored trace. The bytes are checked as UTF-8 once, in one pass, and then parsed as
/// text, so the parser does not validate every string it meets again (that was a tenth of a
/// projected read's parse); bytes that are not UTF-8 get the byte parser's own error. The one
/// parse of stored bytes for every render, row-scope check and replay, so they cannot differ.
pub fn parse_stored(stored: &[u8]) -> Result<Value, serde_json::Error> {
    match std::str::from_utf8(stored) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(stored),
    }
}

/// A read's response body, rendered, with what served it.
#[derive(Debug)]
pub struct Rendered {
    pub role: String,
    pub rules: Vec<String>,
    /// Exactly the bytes sent; their digest goes in the audit record and replay reproduces them.
    pub body: Vec<u8>,
    pub masks: MaskReport,
}

/// True when `role` serving `requested` shows the whole stored document, masked: the byte
/// engine ([`crate::mask::Masker::apply_json`]) then masks the stored bytes in one pass, with no
/// parsed tree, no view and no re-serialisation. Decided from the policy and the request alone,
/// so replay, given the same role and fields, renders the same way.
pub fn renders_whole_document(role: &Role, requested: Option<&[FieldRequest]>) -> bool {
    requested.is_none() && role.fields.is_everything()
}

/// Phases 5 and 6 of a read from the stored bytes: the first candidate whose view holds the
/// request projects and masks, and the body is rendered. A whole-document read
/// ([`renders_whole_document`]) goes through the byte engine; anything else through the parsed
/// view ([`project_and_mask`]), from `parsed` when the caller has already parsed `stored` (for
/// row scope) or from `stored`. Both engines show the same values and report the same masks
/// (`tests/mask_differential.rs`); the bytes can differ only in how an unchanged JSON-in-string
/// is encoded, which is why the choice depends on nothing but the role and the request.
pub fn serve_read(
    candidates: &[Candidate<'_>],
    stored: &[u8],
    parsed: Option<Value>,
    requested: Option<&[FieldRequest]>,
    key: &MaskKey,
) -> Result<Rendered, ServeError> {
    let first = candidates.iter().find(|c| requested.is_none_or(|r| check_request(c.role, r).is_ok()));
    if let Some(c) = first.filter(|c| renders_whole_document(c.role, requested)) {
        let mut body = Vec::with_capacity(stored.len() + stored.len() / 16);
        let masks = c.role.masking.apply_json(stored, key, &mut body).map_err(|e| ServeError::NotJson(e.to_string()))?;
        let mut rules = c.rules.clone();
        rules.push(c.role.rule("fields"));
        return Ok(Rendered { role: c.role.name.clone(), rules, body, masks });
    }
    let doc = match parsed {
        Some(d) => d,
        None => parse_stored(stored).map_err(|e| ServeError::NotJson(e.to_string()))?,
    };
    let served = project_and_mask(candidates, doc, requested, key)?;
    let body = serde_json::to_vec(&served.body).map_err(|e| ServeError::NotJson(e.to_string()))?;
    Ok(Rendered { role: served.role, rules: served.rules, body, masks: served.masks })
}

/// Most withheld paths one read lists, and the most bytes their rendering may take (a key can be
/// long; what does not fit is counted in [`WithheldReport::more`]).
pub const MAX_WITHHELD_PATHS: usize = 64;
pub const MAX_WITHHELD_BYTES: usize = 4096;

/// What a read's view left out, for a caller who asked (`?explain=withheld`): normalized paths
/// of the top-most withheld nodes of the stored version served, keys masked by the serving
/// role's masker exactly as keys in the body are. It never holds a value. It is computed from
/// the role's view alone, so it is the same for every `fields=` (a filter over a withheld field
/// cannot change it); a narrowed read (`fields=`) lists no paths at all, since the view's list
/// would describe parts of the view the narrowed read does not show (`narrowed`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct WithheldReport {
    pub paths: Vec<String>,
    /// Withheld paths not listed (over [`MAX_WITHHELD_PATHS`] or [`MAX_WITHHELD_BYTES`]).
    pub more: u64,
    /// Values withheld because they were nested too deep to inspect.
    pub too_deep: u64,
    pub narrowed: bool,
}

/// The [`WithheldReport`] of a read [`serve_read`] served: the same candidate (the first whose
/// view holds the request), the same stored bytes.
pub fn explain_withheld(
    candidates: &[Candidate<'_>],
    stored: &[u8],
    parsed: Option<Value>,
    requested: Option<&[FieldRequest]>,
    key: &MaskKey,
) -> Result<WithheldReport, ServeError> {
    let Some(c) = candidates.iter().find(|c| requested.is_none_or(|r| check_request(c.role, r).is_ok())) else {
        return Err(ServeError::Denied(Denial::new(DenyCode::NoRole, None, "no role may serve this read", vec![])));
    };
    if requested.is_some() {
        return Ok(WithheldReport { narrowed: true, ..WithheldReport::default() });
    }
    if c.role.fields.is_everything() {
        // Nothing is left out by the view; the byte engine inspects every depth it serves.
        return Ok(WithheldReport::default());
    }
    let doc = match parsed {
        Some(d) => d,
        None => parse_stored(stored).map_err(|e| ServeError::NotJson(e.to_string()))?,
    };
    let found = crate::project::withheld(doc, c.role, MAX_WITHHELD_PATHS);
    let mut report = WithheldReport { more: found.more, too_deep: found.too_deep, ..WithheldReport::default() };
    let mut seen = std::collections::HashSet::new();
    let mut bytes = 0;
    for segs in found.paths {
        let shown: Vec<Seg> = segs
            .into_iter()
            .map(|s| match s {
                Seg::Key(k) => Seg::Key(masked_key(&c.role.masking, &k, key)),
                i => i,
            })
            .collect();
        let p = crate::path_trie::display(&shown);
        if !seen.insert(p.clone()) {
            continue;
        }
        if bytes + p.len() > MAX_WITHHELD_BYTES {
            report.more += 1;
            continue;
        }
        bytes += p.len();
        report.paths.push(p);
    }
    Ok(report)
}

/// `k` as the role's masker shows a key: masked as the walk masks an object's keys, or
/// `[WITHHELD]` when the masker would drop the member the key names.
fn masked_key(m: &crate::mask::Masker, k: &str, key: &MaskKey) -> String {
    let mut probe = Value::Object(serde_json::Map::from_iter([(k.to_owned(), Value::Null)]));
    m.apply(&mut probe, key);
    match probe {
        Value::Object(o) if o.len() == 1 => o.into_iter().next().map_or_else(|| "[WITHHELD]".to_owned(), |(k, _)| k),
        _ => "[WITHHELD]".to_owned(),
    }
}

/// A metadata search.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    pub tenant: Option<String>,
    pub project: Option<String>,
    pub agent: Option<String>,
    pub user: Option<String>,
    #[serde(default, with = "opt_rfc3339")]
    pub since: Option<SystemTime>,
    #[serde(default, with = "opt_rfc3339")]
    pub until: Option<SystemTime>,
    pub limit: Option<u32>,
}

impl SearchQuery {
    fn filter(&self, key: &str) -> Option<&str> {
        match key {
            "tenant" => self.tenant.as_deref(),
            "project" => self.project.as_deref(),
            "agent" => self.agent.as_deref(),
            "user" => self.user.as_deref(),
            _ => None,
        }
    }
}

/// Search results: metadata only, as the role's view shows it, newest first.
#[derive(Debug, serde::Serialize)]
pub struct SearchResult {
    pub role: String,
    pub rules: Vec<String>,
    pub limit: u32,
    pub traces: Vec<TraceMeta>,
    /// More traces matched than `limit`.
    pub more: bool,
    /// What masking did to the results, for the audit record.
    #[serde(skip)]
    pub masks: MaskReport,
}

/// Which metadata fields a role's view shows: `metadata.<key>` (and `metadata.started_at`)
/// must be reachable inside its field view. Decided from the policy alone.
fn visible_meta(role: &Role, key: &str) -> Result<(), Denial> {
    let path = format!("$.metadata.{key}");
    let req = FieldRequest::parse_all([path.as_str()]).map_err(|e| Denial::new(DenyCode::NoRole, Some(role), e.to_string(), vec![]))?;
    check_request(role, &req)
}

/// The value the caller would see for metadata `key` = `value` under `role`'s maskers;
/// `None` when masking drops it.
fn masked_meta(role: &Role, key: &str, value: &str, mask_key: &MaskKey) -> Option<String> {
    let mut obj = serde_json::json!({ key: value });
    role.masking.apply(&mut obj, mask_key);
    obj.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// The role a search runs under: the first that may search with this limit, without approval,
/// with filters inside its row scope and on fields its view shows; and the limit it allows.
pub fn search_role<'p>(policy: &'p Policy, who: &Principal, query: &SearchQuery) -> Result<(&'p Role, u32), Denial> {
    let roles = roles_for_action(policy, who, Action::Search)?;
    let mut first_denial = None;
    for role in roles {
        let checked = check_count(role, query.limit).and_then(|limit| {
            // Searches return metadata only and do not wait: a gated search is refused.
            check_approval(role, &ApprovalAsk { reads_documents: false, fields: None, count: limit, purpose: None })?;
            check_filters(role, who, query)?;
            for key in META_KEYS {
                if query.filter(key).is_some() {
                    visible_meta(role, key)?;
                }
            }
            if query.since.is_some() || query.until.is_some() {
                visible_meta(role, "started_at")?;
            }
            Ok(limit)
        });
        match checked {
            Ok(limit) => return Ok((role, limit)),
            Err(d) => {
                first_denial.get_or_insert(d);
            }
        }
    }
    Err(first_denial.unwrap_or_else(|| Denial::new(DenyCode::NoRole, None, "no role may search", vec![])))
}

/// What a metadata index must return for [`search`] to give, over those rows, exactly what it
/// gives over every trace: the rows of the role's row scope that match the query's predicates,
/// in the search's order, at most `limit` of them. Predicates it cannot state exactly (a filter
/// whose value the role's masking could show for a stored value other than itself: the caller
/// filters by what it sees, which the index does not hold) are left to [`search`], and `limit`
/// is then `None`. Pure: the index turns it into its query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchScope {
    /// `(metadata key of META_KEYS, value)` that must be equal: the row scope's claims and the
    /// exact filters.
    pub equals: Vec<(&'static str, String)>,
    /// No row can match (a row-scope key no trace carries).
    pub empty: bool,
    /// Start time at or after (from `max_age` and `since`), and before (`until`).
    pub started_from: Option<SystemTime>,
    pub started_before: Option<SystemTime>,
    /// Newest first (then by id) when the role sees start times; else by id.
    pub by_time: bool,
    /// Rows enough for the search to decide (its limit + 1, to know whether there are more).
    pub limit: Option<u32>,
}

/// The [`SearchScope`] of a search, under the role [`search`] would choose.
pub fn search_scope(
    policy: &Policy,
    who: &Principal,
    query: &SearchQuery,
    now: SystemTime,
    mask_key: &MaskKey,
) -> Result<SearchScope, Denial> {
    let (role, limit) = search_role(policy, who, query)?;
    let mut scope = SearchScope {
        equals: Vec::new(),
        empty: false,
        started_from: None,
        started_before: query.until,
        by_time: visible_meta(role, "started_at").is_ok(),
        limit: Some(limit.saturating_add(1)),
    };
    for (key, claim) in &role.rows.matches {
        match (META_KEYS.iter().find(|k| **k == key.as_str()), who.claim(claim)) {
            (Some(k), Some(v)) => scope.equals.push((k, v.to_owned())),
            _ => scope.empty = true,
        }
    }
    if let Some(max_age) = role.rows.max_age {
        // `now - started <= max_age`, and a start in the future is fresh: `started >= now - max_age`.
        scope.started_from = Some(now.checked_sub(max_age).unwrap_or(std::time::UNIX_EPOCH));
    }
    if let Some(since) = query.since {
        scope.started_from = Some(scope.started_from.map_or(since, |f| f.max(since)));
    }
    for key in META_KEYS {
        if let Some(want) = query.filter(key) {
            if role.masking.is_off() || shown_only_as_itself(role, key, want, mask_key) {
                scope.equals.push((key, want.to_owned()));
            } else {
                scope.limit = None;
            }
        }
    }
    Ok(scope)
}

/// Whether the role shows `want` under `key` exactly for the stored value `want` and no other,
/// so a filter on it is an equality SQL can run. It is when masking leaves `want` unchanged and
/// `want` holds no mark an operator writes: every masked value carries such a mark (a label, a
/// star, a pseudonym, re-encoded JSON), so a stored value shown as `want` was left unchanged,
/// and is `want`. Anything else — `bob@example.com` under a role that hashes emails, or a filter
/// that is itself a pseudonym — stays with [`search`], which compares what the caller sees.
fn shown_only_as_itself(role: &Role, key: &str, want: &str, mask_key: &MaskKey) -> bool {
    !crate::mask::operators::may_hold_operator_output(want) && masked_meta(role, key, want, mask_key).as_deref() == Some(want)
}

/// Searches `all` under the first role that may search with this limit, through the role's
/// view: a filter on a field the view hides is refused, a filter on a masked field matches
/// what the caller sees (a pseudonym, never the raw value), and results show only visible
/// fields, masked. A filter that names a value the role's row scope excludes is refused, not
/// silently emptied.
pub fn search<'a>(
    policy: &Policy,
    who: &Principal,
    query: &SearchQuery,
    all: impl Iterator<Item = &'a TraceMeta>,
    now: SystemTime,
    mask_key: &MaskKey,
) -> Result<SearchResult, Denial> {
    let (role, limit) = search_role(policy, who, query)?;
    let shown: Vec<&str> = META_KEYS.iter().copied().filter(|k| visible_meta(role, k).is_ok()).collect();
    let time_shown = visible_meta(role, "started_at").is_ok();
    let filters: Vec<(&str, &str)> = META_KEYS.iter().filter_map(|k| query.filter(k).map(|v| (*k, v))).collect();
    let mut hits: Vec<&TraceMeta> = all
        .filter(|m| check_rows(role, who, m, now).is_ok())
        .filter(|m| {
            filters.iter().all(|(k, want)| {
                m.field(k).and_then(|have| masked_meta(role, k, have, mask_key)).is_some_and(|seen| seen == *want)
            })
        })
        .filter(|m| query.since.is_none_or(|s| m.started_at.is_some_and(|t| t >= s)))
        .filter(|m| query.until.is_none_or(|u| m.started_at.is_some_and(|t| t < u)))
        .collect();
    if time_shown {
        hits.sort_by(|a, b| b.started_at.cmp(&a.started_at).then_with(|| a.trace_id.cmp(&b.trace_id)));
    } else {
        hits.sort_by(|a, b| a.trace_id.cmp(&b.trace_id));
    }
    let more = hits.len() > limit as usize;
    hits.truncate(limit as usize);
    // The results, as the view shows them: visible fields only, masked in one pass.
    let mut rows = Value::Array(
        hits.iter()
            .map(|m| {
                let fields: serde_json::Map<String, Value> = shown
                    .iter()
                    .filter_map(|k| m.field(k).map(|v| ((*k).to_owned(), Value::String(v.to_owned()))))
                    .collect();
                Value::Object(fields)
            })
            .collect(),
    );
    let masks = role.masking.apply(&mut rows, mask_key);
    let traces = hits
        .iter()
        .zip(rows.as_array().map(Vec::as_slice).unwrap_or_default())
        .map(|(m, row)| TraceMeta {
            trace_id: m.trace_id.clone(),
            fields: row
                .as_object()
                .map(|o| o.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned()))).collect())
                .unwrap_or_default(),
            started_at: if time_shown { m.started_at } else { None },
        })
        .collect();
    let mut rules = vec![role.rule("actions"), role.rule("rows.max_count")];
    rules.extend(role.rows.matches.iter().map(|(k, _)| role.rule(&format!("rows.match.{k}"))));
    if role.rows.max_age.is_some() {
        rules.push(role.rule("rows.max_age"));
    }
    rules.push(role.rule("fields"));
    Ok(SearchResult { role: role.name.clone(), rules, limit, traces, more, masks })
}

fn check_filters(role: &Role, who: &Principal, query: &SearchQuery) -> Result<(), Denial> {
    for (key, claim) in &role.rows.matches {
        let rule = role.rule(&format!("rows.match.{key}"));
        let Some(mine) = who.claim(claim) else {
            return Err(Denial::new(
                DenyCode::OutsideRowScope,
                Some(role),
                format!("role `{}` limits traces by `{key}` to the caller's `{claim}` claim, which the caller's token does not carry", role.name),
                vec![rule],
            ));
        };
        if let Some(asked) = query.filter(key) {
            if asked != mine {
                return Err(Denial::new(
                    DenyCode::OutsideRowScope,
                    Some(role),
                    format!("search for {key} `{asked}` is outside role `{}`'s scope ({key} must equal the caller's `{claim}` claim)", role.name),
                    vec![rule],
                ));
            }
        }
    }
    Ok(())
}

/// Decide phase of a write: a role that may write, whose row scope admits the new document
/// and — when the id already holds a trace — the trace it would replace. A writer can neither
/// create into another tenant nor overwrite another tenant's trace by claiming its own tenant
/// in the new body.
pub fn decide_write<'p>(
    policy: &'p Policy,
    who: &Principal,
    meta: &TraceMeta,
    current: Option<&TraceMeta>,
    now: SystemTime,
) -> Result<Candidate<'p>, Denial> {
    let mut first_denial = None;
    for role in roles_for_action(policy, who, Action::Write)? {
        // max_age is about reading old traces; a write is judged on the match rules only.
        let scoped = TraceMeta { started_at: Some(now), ..meta.clone() };
        let admitted = check_rows(role, who, &scoped, now).and_then(|rules| match current {
            None => Ok(rules),
            Some(cur) => {
                let cur = TraceMeta { started_at: Some(now), ..cur.clone() };
                check_rows(role, who, &cur, now).map(|_| rules).map_err(|d| {
                    Denial::new(
                        DenyCode::OutsideRowScope,
                        Some(role),
                        format!("trace `{}` already exists outside role `{}`'s row scope; it cannot be replaced", meta.trace_id, role.name),
                        d.rules,
                    )
                })
            }
        });
        match admitted {
            Ok(mut rules) => {
                rules.insert(0, role.rule("actions"));
                return Ok(Candidate { role, rules });
            }
            Err(d) => {
                first_denial.get_or_insert(d);
            }
        }
    }
    Err(first_denial.unwrap_or_else(|| Denial::new(DenyCode::NoRole, None, "no role may write", vec![])))
}

mod opt_rfc3339 {
    use std::time::SystemTime;

    use serde::Deserialize;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| humantime::parse_rfc3339_weak(&s).map_err(|e| serde::de::Error::custom(format!("`{s}` is not an RFC 3339 time: {e}"))))
            .transpose()
    }
}
