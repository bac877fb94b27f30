//! Golden scenarios: a caller, a request and the expected decision, rules and body.
//!
//! The same format is the operator-facing `tracegate policy test DIR` and this project's own
//! regression suite for the example policy. A scenario file is TOML:
//!
//! ```toml
//! description = "support reads an agent trace: final outputs only"
//! now = "2026-11-25T12:00:00Z"          # optional; fixes the clock for max_age
//! [principal]
//! subject = "sam"
//! groups = ["support"]
//! claims = { tenant = "acme" }
//! [request]
//! action = "read"                       # read | search | write
//! trace = "demo-agent-1"
//! fields = ["$.final_output"]           # optional
//! purpose = "incident-4711"             # optional
//! approved = true                       # optional: serve a read that needs approval as if approved
//! [expect]
//! decision = "allow"                    # allow | deny | pending (held for approval)
//! role = "support"
//! rules = ["roles.support.actions", "roles.support.fields"]   # optional, exact
//! code = "field_denied"                 # deny only
//! body = "support-reads-agent.body.json" # optional golden file beside the scenario
//! ```

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Deserialize;
use serde_json::Value;

use crate::decision::{Action, DenyCode};
use crate::mask::MaskKey;
use crate::meta::TraceMeta;
use crate::pipeline::{decide_read_gated, decide_write, search, serve_read, ReadDecision, ReadRequest, SearchQuery, ServeError};
use crate::policy::Policy;
use crate::principal::{AuthMethod, Principal};
use crate::project::FieldRequest;
use crate::trace_id::TraceId;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub description: String,
    pub now: Option<String>,
    pub principal: ScenarioPrincipal,
    pub request: ScenarioRequest,
    pub expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioPrincipal {
    pub subject: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioRequest {
    pub action: Action,
    pub trace: Option<TraceId>,
    pub fields: Option<Vec<String>>,
    /// The purpose the caller states (bound into an approval).
    pub purpose: Option<String>,
    /// Treat a read that needs approval as approved for exactly this request, to see what the
    /// grant would serve.
    #[serde(default)]
    pub approved: bool,
    pub search: Option<SearchQuery>,
    /// For a write: the scenario trace already stored under `trace`'s id, which the write
    /// would replace (its row scope is checked too).
    pub current: Option<TraceId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allow,
    Deny,
    /// Held for approval: the gateway answers 202 with an access request.
    Pending,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub decision: Verdict,
    pub role: Option<String>,
    pub code: Option<DenyCode>,
    pub rules: Option<Vec<String>>,
    /// Golden body file, relative to the scenario file.
    pub body: Option<String>,
}

/// What the core actually decided for a scenario.
#[derive(Debug, serde::Serialize)]
pub struct Observed {
    pub decision: Verdict,
    pub role: Option<String>,
    pub code: Option<DenyCode>,
    pub rules: Vec<String>,
    pub message: Option<String>,
    pub body: Option<Value>,
}

/// A scenario that cannot be run as written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    #[error("`request.trace` is required for `{0}`")]
    MissingTrace(&'static str),
    #[error("trace `{0}` is not among the scenario traces")]
    UnknownTrace(TraceId),
    #[error("`now` `{0}` is not an RFC 3339 time")]
    BadNow(String),
    #[error(transparent)]
    Field(#[from] crate::project::FieldRequestError),
    #[error(transparent)]
    TooCostly(#[from] crate::project::TooCostly),
    /// The read's body could not be rendered (a trace that is not a JSON document).
    #[error("rendering the read: {0}")]
    Render(String),
}

impl Scenario {
    pub fn parse(text: &str) -> Result<Scenario, toml::de::Error> {
        toml::from_str(text)
    }

    /// Runs the scenario through the same pipeline the gateway uses.
    pub fn run(&self, policy: &Policy, traces: &BTreeMap<TraceId, Value>, key: &MaskKey) -> Result<Observed, ScenarioError> {
        let now = match &self.now {
            Some(s) => humantime::parse_rfc3339_weak(s).map_err(|_| ScenarioError::BadNow(s.clone()))?,
            None => SystemTime::now(),
        };
        let who = Principal {
            subject: self.principal.subject.clone(),
            issuer: "scenario".into(),
            groups: self.principal.groups.clone(),
            claims: self.principal.claims.clone(),
            auth_method: AuthMethod::Dev,
            person: None,
            credential: Default::default(),
        };
        let doc_for = |what: &'static str| -> Result<(&TraceId, &Value), ScenarioError> {
            let id = self.request.trace.as_ref().ok_or(ScenarioError::MissingTrace(what))?;
            let doc = traces.get(id).ok_or_else(|| ScenarioError::UnknownTrace(id.clone()))?;
            Ok((id, doc))
        };
        let outcome = match self.request.action {
            Action::Read => {
                let (id, doc) = doc_for("read")?;
                let fields = self
                    .request
                    .fields
                    .as_ref()
                    .map(|f| FieldRequest::parse_all(f.iter().map(String::as_str)))
                    .transpose()?;
                let meta = TraceMeta::extract(id.clone(), doc);
                let ask = ReadRequest { fields: fields.as_deref(), purpose: self.request.purpose.as_deref() };
                // The bytes the gateway would send, from the stored text, read back for comparison.
                let stored = serde_json::to_vec(doc).map_err(|e| ScenarioError::Render(e.to_string()))?;
                let served = |c: &[crate::pipeline::Candidate<'_>]| match serve_read(c, &stored, None, fields.as_deref(), key) {
                    Ok(s) => {
                        let body: Value = serde_json::from_slice(&s.body).map_err(|e| ScenarioError::Render(e.to_string()))?;
                        Ok(Ok((s.role, s.rules, Some(body))))
                    }
                    Err(ServeError::Denied(d)) => Ok(Err(d)),
                    Err(ServeError::TooCostly(e)) => Err(ScenarioError::TooCostly(e)),
                    Err(ServeError::NotJson(e)) => Err(ScenarioError::Render(e)),
                };
                match decide_read_gated(policy, &who, &meta, &ask, now) {
                    Ok(ReadDecision::Serve(c)) => served(&c)?,
                    Ok(ReadDecision::Approval(gate)) if self.request.approved => served(&[gate.candidate()])?,
                    Ok(ReadDecision::Approval(gate)) => {
                        return Ok(Observed {
                            decision: Verdict::Pending,
                            role: Some(gate.role.name.clone()),
                            code: None,
                            rules: gate.rules,
                            message: None,
                            body: None,
                        })
                    }
                    Err(d) => Err(d),
                }
            }
            Action::Search => {
                let metas: Vec<TraceMeta> = traces.iter().map(|(id, d)| TraceMeta::extract(id.clone(), d)).collect();
                let q = self.request.search.clone().unwrap_or_default();
                search(policy, &who, &q, metas.iter(), now, key).map(|r| {
                    let rows = serde_json::to_value(&r.traces).unwrap_or(Value::Null);
                    (r.role, r.rules, Some(rows))
                })
            }
            Action::Write => {
                let (id, doc) = doc_for("write")?;
                let meta = TraceMeta::extract(id.clone(), doc);
                let current = match &self.request.current {
                    Some(cur) => {
                        let d = traces.get(cur).ok_or_else(|| ScenarioError::UnknownTrace(cur.clone()))?;
                        Some(TraceMeta::extract(id.clone(), d))
                    }
                    None => None,
                };
                decide_write(policy, &who, &meta, current.as_ref(), now).map(|c| {
                    // What would be stored: the writer's maskers run before the store sees it.
                    let mut stored = doc.clone();
                    c.role.masking.apply(&mut stored, key);
                    (c.role.name.clone(), c.rules, Some(stored))
                })
            }
            Action::Audit => crate::decision::roles_for_action(policy, &who, Action::Audit)
                .map(|r| (r.first().map(|r| r.name.clone()).unwrap_or_default(), vec![], None)),
        };
        Ok(match outcome {
            Ok((role, rules, body)) => Observed { decision: Verdict::Allow, role: Some(role), code: None, rules, message: None, body },
            Err(d) => Observed {
                decision: Verdict::Deny,
                role: d.role,
                code: Some(d.code),
                rules: d.rules,
                message: Some(d.message),
                body: None,
            },
        })
    }
}

impl Expect {
    /// Differences between what was expected and what happened; empty when the scenario passes.
    /// `golden` is the parsed golden body, when the scenario names one.
    pub fn mismatches(&self, seen: &Observed, golden: Option<&Value>) -> Vec<String> {
        let mut out = Vec::new();
        if self.decision != seen.decision {
            out.push(format!(
                "decision: expected {:?}, got {:?}{}",
                self.decision,
                seen.decision,
                match (&seen.code, &seen.message) {
                    (Some(c), Some(m)) => format!(" ({}: {m})", c.as_str()),
                    _ => String::new(),
                }
            ));
        }
        if self.role.is_some() && self.role != seen.role {
            out.push(format!("role: expected {:?}, got {:?}", self.role, seen.role));
        }
        if self.code.is_some() && self.code != seen.code {
            out.push(format!("code: expected {:?}, got {:?}", self.code, seen.code));
        }
        if let Some(rules) = &self.rules {
            if rules != &seen.rules {
                out.push(format!("rules: expected {rules:?}, got {:?}", seen.rules));
            }
        }
        if let Some(g) = golden {
            if seen.body.as_ref() != Some(g) {
                out.push("body: differs from the golden file".into());
            }
        }
        out
    }
}
