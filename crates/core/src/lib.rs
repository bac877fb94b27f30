//! The pure core of tracegate: what a caller may see, decided and applied without I/O.
//!
//! **Architecture Invariant:** nothing in this crate does I/O, knows HTTP or SQL, or sees a raw
//! credential. It is driven by the server, the CLI, golden scenario tests and benchmarks alike, so a
//! decision made here is the same decision everywhere.
//!
//! The request phases this crate owns, in order:
//! 1. [`decision`] — which role serves the request, whether its action and row scope allow it;
//!    [`approval`] — whether it waits for a human, and the access request that tracks the wait;
//! 2. [`project`] — keep only the fields the granted view allows, blocking wider requests;
//! 3. [`mask`] — mask secrets and PII inside what remains.
//!
//! [`pipeline`] strings these together for one read so every caller runs the same code.

pub mod approval;
pub mod decision;
pub mod embedded;
pub mod jsonpath;
pub mod mask;
pub mod meta;
pub mod path_trie;
pub mod pipeline;
pub mod policy;
pub mod principal;
pub mod project;
pub mod scenario;
pub mod trace_id;
pub mod view_delta;

pub use decision::{Action, Denial, DenyCode};
pub use meta::TraceMeta;
pub use policy::{Policy, PolicyError, PolicyVersion, Role};
pub use principal::{AuthMethod, Credential, Principal};
pub use trace_id::{TraceId, TraceIdError};
