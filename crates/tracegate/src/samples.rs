//! The quickstart's sample data, compiled into the binary so `quickstart` works anywhere.

/// The example policy, also the starting point operators copy.
pub const POLICY: &str = include_str!("../../../examples/policy.toml");

/// Sample traces: `(trace id, JSON)`.
pub const TRACES: [(&str, &str); 3] = [
    ("demo-otlp-1", include_str!("../../../examples/traces/demo-otlp-1.json")),
    ("demo-agent-1", include_str!("../../../examples/traces/demo-agent-1.json")),
    ("demo-agent-2", include_str!("../../../examples/traces/demo-agent-2.json")),
];
