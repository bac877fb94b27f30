//! What a grant would reveal compared with what its requester sees without it: the difference
//! between two roles' views, decided from the policy alone (never from a trace, and never from
//! whoever asks to see the difference). The approvals inbox shows it on each card.
//!
//! Field rules are compared as written: a rule of the requester's view that the granted view
//! lacks is listed as lifted (a `deny` the grant does not have unhides what it denied; an `allow`
//! the requester lacks adds what it selects). When the granted view is the whole document and
//! the requester's is not, the grant reveals everything outside the requester's view. Masking is
//! compared per detector: every detector whose operator differs, with both operators.

use serde::Serialize;

use crate::mask::{Detector, Op};
use crate::policy::Role;

/// The difference between the requester's current view (`None`: no role serves them this read
/// without approval, so they see nothing of it) and the view a grant would serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ViewDelta {
    /// The requester's role for this read without the grant, if any.
    pub current_role: Option<String>,
    pub granted_role: String,
    /// True when the requester sees nothing of this read without the grant.
    pub from_nothing: bool,
    /// The granted view is the whole document and the current one is not.
    pub reveals_everything: bool,
    /// `allow` rules of the granted view the current view lacks.
    pub allow_added: Vec<String>,
    /// `deny` rules of the current view the granted view lacks: what they hid is shown.
    pub deny_lifted: Vec<String>,
    /// `deny` rules of the granted view the current view lacks: hidden under the grant.
    pub deny_added: Vec<String>,
    /// Detectors whose operator changes; `lifted` when the grant masks less.
    pub masks: Vec<MaskChange>,
}

/// One detector's operator, now and under the grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaskChange {
    pub detector: &'static str,
    /// The operator now, or `not shown` when the requester sees nothing of the read.
    pub from: &'static str,
    pub to: &'static str,
    pub lifted: bool,
}

/// How much of a value an operator keeps hidden, for "does the grant mask less?". A keyed
/// pseudonym hides the value but lets it be joined, so it hides less than a redaction.
fn hides(op: Op) -> u8 {
    match op {
        Op::Off => 0,
        Op::Partial => 1,
        Op::Hash => 2,
        Op::Redact => 3,
        Op::Drop => 4,
    }
}

/// See the module header. `current` is the requester's role, found from the requester's own
/// principal when the request was opened.
pub fn compare(current: Option<&Role>, granted: &Role) -> ViewDelta {
    let rules = |r: Option<&Role>, deny: bool| -> Vec<String> {
        r.map(|r| if deny { &r.fields.deny } else { &r.fields.allow })
            .map(|v| v.iter().map(|f| f.expr.trim().to_owned()).collect())
            .unwrap_or_default()
    };
    let minus = |a: &[String], b: &[String]| -> Vec<String> { a.iter().filter(|x| !b.contains(x)).cloned().collect() };
    let (cur_allow, cur_deny) = (rules(current, false), rules(current, true));
    let (g_allow, g_deny) = (rules(Some(granted), false), rules(Some(granted), true));
    let masks = Detector::ALL
        .iter()
        .filter_map(|d| {
            let to = granted.masking.op(*d);
            // Seeing nothing now: every value the grant shows at all is new; list how it is masked
            // only where it is not masked (what an approver most needs to see).
            let from = match current {
                Some(c) => c.masking.op(*d),
                None => Op::Drop,
            };
            let from_name = if current.is_some() { from.name() } else { "not shown" };
            (from != to && (current.is_some() || to == Op::Off))
                .then(|| MaskChange { detector: d.name(), from: from_name, to: to.name(), lifted: hides(to) < hides(from) })
        })
        .collect();
    ViewDelta {
        current_role: current.map(|r| r.name.clone()),
        granted_role: granted.name.clone(),
        from_nothing: current.is_none(),
        reveals_everything: granted.fields.is_everything() && !current.is_some_and(|c| c.fields.is_everything()),
        allow_added: minus(&g_allow, &cur_allow),
        deny_lifted: minus(&cur_deny, &g_deny),
        deny_added: minus(&g_deny, &cur_deny),
        masks,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    fn example() -> Policy {
        Policy::parse("p", include_str!("../../../examples/policy.toml")).unwrap()
    }

    #[test]
    fn support_to_sre_unhides_fields_and_lifts_every_mask() {
        let p = example();
        let d = compare(p.role("support"), p.role("sre").unwrap());
        assert_eq!(d.current_role.as_deref(), Some("support"));
        assert!(d.reveals_everything && !d.from_nothing);
        assert_eq!(d.allow_added, ["$"]);
        assert!(d.deny_lifted.contains(&"$..reasoning".to_owned()), "{d:?}");
        assert!(d.deny_added.is_empty());
        let email = d.masks.iter().find(|m| m.detector == "email").unwrap();
        assert_eq!((email.from, email.to, email.lifted), ("redact", "off", true));
        assert!(d.masks.iter().all(|m| m.to == "off" && m.lifted), "{d:?}");
    }

    #[test]
    fn the_same_view_reveals_nothing_and_a_stricter_one_lifts_nothing() {
        let p = example();
        let sre = p.role("sre").unwrap();
        let same = compare(Some(sre), sre);
        assert!(!same.reveals_everything && same.allow_added.is_empty() && same.deny_lifted.is_empty() && same.masks.is_empty(), "{same:?}");
        // From the unmasked view to support's: more is hidden, nothing is lifted.
        let down = compare(Some(sre), p.role("support").unwrap());
        assert!(!down.reveals_everything && down.deny_lifted.is_empty());
        assert!(!down.deny_added.is_empty());
        assert!(down.masks.iter().all(|m| !m.lifted), "{down:?}");
    }

    #[test]
    fn engineer_to_sre_lifts_pseudonyms_and_redactions() {
        let p = example();
        let d = compare(p.role("engineer"), p.role("sre").unwrap());
        assert!(!d.reveals_everything, "both views are the whole document");
        assert!(d.allow_added.is_empty() && d.deny_lifted.is_empty());
        let email = d.masks.iter().find(|m| m.detector == "email").unwrap();
        assert_eq!((email.from, email.to, email.lifted), ("hash", "off", true));
    }

    #[test]
    fn from_nothing_everything_shown_is_new() {
        let p = example();
        let d = compare(None, p.role("sre").unwrap());
        assert!(d.from_nothing && d.reveals_everything && d.current_role.is_none());
        assert!(d.masks.iter().any(|m| m.detector == "email" && m.to == "off"));
    }
}
