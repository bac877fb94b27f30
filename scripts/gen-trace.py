#!/usr/bin/env python3
"""Writes a synthetic agent-framework trace of about SIZE bytes, with planted secrets and PII,
for load runs and benchmarks: gen-trace.py SIZE TRACE_ID > FILE"""
import json
import sys

size, trace_id = int(sys.argv[1]), sys.argv[2]
doc = {
    "trace_id": trace_id,
    "metadata": {"tenant": "acme", "project": "bench", "agent": "bench-agent", "user": "u-1",
                 "started_at": "2026-11-20T10:00:00Z"},
    "system_instructions": "You are a careful assistant. Internal key: sk-proj-Ab3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5bC7dE9fG",
    "steps": [],
    "final_output": "Done. The order shipped; a confirmation went to the customer.",
}
i = 0
total = len(json.dumps(doc))
while total < size:
    step = ({
        "index": i,
        "messages": [{"role": "user", "content": f"Step {i}: customer jane.doe{i}@example.com asks about order A-{1000 + i}; "
                                                 "call me on +44 20 7946 0958. Card 4111 1111 1111 1111 was charged."}],
        "reasoning": "Look up the order, check the ledger, answer without echoing the card number. " * 2,
        "tool_calls": [{"name": "query", "arguments": {"dsn": "postgres://app:hunter2-Secret@db.internal:5432/app",
                                                       "sql": f"SELECT * FROM orders WHERE id = 'A-{1000 + i}'"},
                        "result": {"status": "shipped", "eta": "2026-11-22", "version": "1.4.2"}}],
        "output": f"Order A-{1000 + i} has shipped and should arrive on 22 November.",
    })
    doc["steps"].append(step)
    total += len(json.dumps(step)) + 2
    i += 1
print(json.dumps(doc))
