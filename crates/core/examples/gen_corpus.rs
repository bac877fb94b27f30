//! Writes distinct realistic traces for load runs: `gen_corpus SIZE COUNT PREFIX DIR` writes
//! `DIR/PREFIX-0.json` … `DIR/PREFIX-{COUNT-1}.json`, each about SIZE bytes of the labeled
//! corpus's traces (OTLP GenAI spans and agent step logs, dense with planted secrets, PII and
//! names, JSON in strings, Go-HTML escapes) from its own seed, under an agent-framework
//! `metadata` block (tenant `acme`) so row scopes and search see them as `gen-trace.py`'s.
//!
//! Why distinct documents: a load run that reads one document again and again measures a
//! masking engine whose regex automata have already met every state that text needs; a
//! gateway in front of a real store keeps meeting new text (`scripts/bench-http.sh`).

#[path = "../tests/corpus/mod.rs"]
#[allow(clippy::all, unused)]
mod corpus;

use serde_json::json;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [size, count, prefix, dir] = args.as_slice() else {
        eprintln!("usage: gen_corpus SIZE COUNT PREFIX DIR");
        std::process::exit(2);
    };
    let (Ok(size), Ok(count)) = (size.parse::<usize>(), count.parse::<u64>()) else {
        eprintln!("SIZE and COUNT are numbers");
        std::process::exit(2);
    };
    let per = if size < 10_000 { 1 } else { 20 };
    for k in 0..count {
        let id = format!("{prefix}-{k}");
        let mut doc = json!({
            "trace_id": id,
            "metadata": {"tenant": "acme", "project": "bench", "agent": "bench-agent", "user": "u-1", "started_at": "2026-11-20T10:00:00Z"},
            "traces": [],
        });
        let mut len = doc.to_string().len();
        let mut seed = 0x6c6f_6164_0000 + k * 104_729;
        while len < size {
            for t in corpus::generate(seed, 1, per).traces {
                len += t.to_string().len() + 1;
                if let Some(list) = doc["traces"].as_array_mut() {
                    list.push(t);
                }
            }
            seed += 1;
        }
        if let Err(e) = std::fs::write(format!("{dir}/{id}.json"), doc.to_string()) {
            eprintln!("{dir}/{id}.json: {e}");
            std::process::exit(1);
        }
    }
}
