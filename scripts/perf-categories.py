#!/usr/bin/env python3
"""Where a gateway's CPU goes, by category, from `perf script` output on stdin.

    perf record -F 999 --call-graph dwarf -p <gateway pid> -o perf.data -- sleep 6
    perf script -i perf.data | python3 scripts/perf-categories.py [CPU_US_PER_REQUEST]

Each sample is charged to one category: the audit flush if any frame of its stack is inside
`fdatasync` (the flush's own CPU and the scheduling while it waits), otherwise the first
category whose pattern matches a frame, walking from the leaf upward — so a `memcpy` called by
the masking engine is masking, one called by hyper is HTTP. With CPU_US_PER_REQUEST (the
gateway's CPU per request over the same kind of run, as `scripts/bench-http.sh` prints it),
each share is also given in µs per request. Prints a Markdown table. Used for the "where the
time goes" tables in docs/benchmarks.md."""
import re
import sys
from collections import Counter

FLUSH = re.compile(r"fdatasync|ext4_sync_file|vfs_fsync|blkdev_issue_flush|file_write_and_wait")
CATEGORIES = [
    ("masking (parse + detect + serialise)", re.compile(r"tracegate_core::mask|regex_automata|aho_corasick|tracegate_core::embedded")),
    ("projection and JSON tree (serde_json)", re.compile(r"tracegate_core::(project|jsonpath|pipeline)|serde_json")),
    ("SHA-256 (content version, body digest, pseudonyms)", re.compile(r"sha2::|sha256|Sha256|hmac|ring::digest|aws_lc.*sha")),
    ("audit record (canonical form, chain, log writer)", re.compile(r"tracegate_audit::")),
    ("allocation (mimalloc)", re.compile(r"^_?mi_|mimalloc|__rust_alloc|__rust_dealloc|__rust_realloc|^malloc$|^free$|^_int_(malloc|free)")),
    ("HTTP server (hyper, axum; user space)", re.compile(r"hyper::|axum::|tower|http::|h2::|httparse")),
    ("scheduling and wake-ups (kernel)", re.compile(r"^(schedule|__schedule|finish_task_switch|try_to_wake_up|futex_|__x64_sys_futex|do_futex|pick_next|enqueue_task|dequeue_task|ttwu|select_task_rq|native_queued_spin|__wake_up|wake_up_q|psi_|update_curr|epoll_wait|do_epoll_wait|ep_poll|schedule_hrtimeout)")),
    ("system calls (sockets, files; kernel)", re.compile(r"^(entry_SYSCALL|do_syscall_64|__x64_sys_|tcp_|sock_|inet_|ip_|__sys_|sys_|vfs_|ext4_|do_sys|ksys_|__fdget|__netif|net_rx|__dev_queue|loopback|syscall_exit|copy_user|_copy_|rep_movs|filemap_|page_cache|__lock_sock|release_sock|skb_|__alloc_skb|kmem_cache|kfree|__kmalloc|path_|link_path|do_filp_open|fput|__fput|dput|security_|apparmor|fsnotify|irq|__softirq|do_softirq|net_)")),
    ("page faults (kernel)", re.compile(r"^(asm_exc_page_fault|exc_page_fault|handle_mm_fault|__handle_mm_fault|do_anonymous_page|do_fault|clear_page)")),
    ("tokio runtime", re.compile(r"tokio::")),
    ("store read, decision, authentication, other gateway code", re.compile(r"tracegate|jsonwebtoken|ed25519|curve25519")),
]
OTHER = "other (libc, unresolved)"


def demangle(sym):
    """`_ZN14tracegate_core4mask…E` (Rust's legacy mangling, where perf left it) as
    `tracegate_core::mask::…`; anything else unchanged."""
    if not sym.startswith("_ZN"):
        return sym
    i, parts = 3, []
    while i < len(sym) and sym[i].isdigit():
        j = i
        while j < len(sym) and sym[j].isdigit():
            j += 1
        n = int(sym[i:j])
        parts.append(sym[j:j + n])
        i = j + n
    return "::".join(parts) or sym


def samples(lines):
    """Yields the list of frame symbols (leaf first) of each sample."""
    frames = []
    in_sample = False
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if in_sample:
                yield frames
            frames, in_sample = [], False
            continue
        if not line.startswith((" ", "\t")):
            in_sample = True  # the sample's header line
            continue
        parts = line.strip().split(None, 1)
        if len(parts) == 2:
            sym = re.sub(r"\+0x[0-9a-f]+$", "", parts[1].split(" (")[0])
            frames.append(demangle(sym))
    if in_sample:
        yield frames


def categorise(frames):
    if any(FLUSH.search(f) for f in frames):
        return "audit flush (`fdatasync`, kernel)"
    for f in frames:
        for name, pat in CATEGORIES:
            if pat.search(f):
                return name
    return OTHER


def main():
    per_req = float(sys.argv[1]) if len(sys.argv) > 1 else None
    counts = Counter(categorise(f) for f in samples(sys.stdin))
    total = sum(counts.values())
    if not total:
        sys.exit("no samples")
    print(f"| where ({total} samples) | share |" + (" µs/request |" if per_req else ""))
    print("|---|---:|" + ("---:|" if per_req else ""))
    for name, n in counts.most_common():
        share = n / total
        row = f"| {name} | {share * 100:.1f}% |"
        if per_req:
            row += f" {share * per_req:.0f} |"
        print(row)


if __name__ == "__main__":
    main()
