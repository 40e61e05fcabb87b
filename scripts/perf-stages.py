#!/usr/bin/env python3
"""CPU per call, by stage, from a profile of the warm path.

    scripts/perf-stages.py DIR

DIR is what `PROFILE=DIR cargo bench -p skiff --bench warm_proxy` leaves: `perf.data` (the
daemon under wrk, cpu-clock samples with DWARF call graphs) and `run.txt` (calls answered
and the daemon's CPU seconds in that run). Each sample is given to one stage: the innermost
frame of its stack that names one (frames of the kernel, libc, the allocator, the standard
library and the runtime say nothing of the stage and are passed over; hyper's HTTP/1 code,
shared by both sides, is told apart by the connection it runs under, further out). Samples
with no such frame are the runtime's (scheduling, timers, the I/O driver) when the runtime
is on their stack, else "other". Prints a Markdown table: the share of the daemon's samples
and the CPU microseconds per call of each stage, and the symbols that take most of the
samples of the larger stages.
"""
import collections
import re
import subprocess
import sys

# (stage, pattern) in the order they are tried on each frame.
STAGES = [
    ("call records (recorder, store, SQLite)",
     r"skiff_invoker::recorder|skiff_store::|sqlx|sqlite3|libsqlite3"),
    ("authorisation (token lookup)", r"skiff_gateway::auth|skiff_invoker::platform::access"),
    ("metrics", r"prometheus|skiff_invoker::metrics"),
    ("logging (tracing)", r"tracing"),
    ("proxy to the instance (hyper client)",
     r"hyper_util::client|hyper::client|role::Client|skiff_invoker::proxy"),
    ("the caller's request and answer (hyper server, axum)",
     r"role::Server|hyper::server|hyper_util::server|axum|tower|matchit"),
    ("call handling (admission, lease, call state, completion)", r"skiff_"),
]
# hyper's connection code serves both sides: decided by a frame further out.
SHARED = r"hyper::"
SHARED_STAGE = "HTTP/1 I/O (hyper, side unknown)"
RUNTIME = r"tokio::|mio::"
RUNTIME_STAGE = "runtime (scheduling, timers, I/O driver)"
COMPILED = [(stage, re.compile(p)) for stage, p in STAGES]
SHARED_RE = re.compile(SHARED)
RUNTIME_RE = re.compile(RUNTIME)
SIDE = [s for s in COMPILED if s[0].startswith(("proxy", "the caller"))]


def samples(data):
    """Each sample's frames, innermost first, as (symbol, dso)."""
    out = subprocess.run(
        ["perf", "script", "-i", data, "-F", "comm,tid,ip,sym,dso"],
        capture_output=True, text=True, check=True).stdout
    frames = []
    for line in out.splitlines():
        if not line.strip():
            if frames:
                yield frames
            frames = []
            continue
        if not line[0].isspace():
            if frames:
                yield frames
            frames = []
            continue
        parts = line.strip().split(None, 1)
        rest = parts[1] if len(parts) > 1 else ""
        dso = ""
        if rest.endswith(")") and "(" in rest:
            rest, dso = rest[:rest.rindex("(")].strip(), rest[rest.rindex("(") + 1:-1]
        sym = re.sub(r"\+0x[0-9a-f]+$", "", rest)
        frames.append((sym, dso))
    if frames:
        yield frames


def stage_of(frames):
    shared = False
    for sym, dso in frames:
        if "kernel" in dso:
            continue
        for stage, pattern in COMPILED:
            if pattern.search(sym):
                if shared and stage not in (s for s, _ in SIDE):
                    # Under hyper's shared code: only the side decides.
                    continue
                return stage, sym
        if SHARED_RE.search(sym):
            shared = True
    if shared:
        for sym, _ in frames:
            for stage, pattern in SIDE:
                if pattern.search(sym):
                    return stage, sym
        return SHARED_STAGE, frames[0][0]
    if any(RUNTIME_RE.search(sym) for sym, _ in frames):
        return RUNTIME_STAGE, frames[0][0]
    return "other", frames[0][0]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    run = dict(line.split() for line in open(f"{d}/run.txt") if line.strip())
    calls, cpu = int(run["calls"]), float(run["cpu_seconds"])
    counts = collections.Counter()
    kernel = 0
    tops = collections.defaultdict(collections.Counter)
    total = 0
    for frames in samples(f"{d}/perf.data"):
        total += 1
        if frames and "kernel" in frames[0][1]:
            kernel += 1
        stage, _ = stage_of(frames)
        counts[stage] += 1
        tops[stage][frames[0][0]] += 1
    if not total:
        sys.exit("no samples in the profile")
    per_call = cpu * 1e6 / max(calls, 1)
    print(f"{calls} calls, daemon CPU {cpu:.2f} s: {per_call:.1f} us per call; "
          f"{total} samples, {100 * kernel / total:.0f}% of them in the kernel\n")
    print("| stage | share of the daemon's CPU | us per call |")
    print("| --- | --- | --- |")
    for stage, n in counts.most_common():
        print(f"| {stage} | {100 * n / total:.1f}% | {per_call * n / total:.1f} |")
    print()
    for stage, n in counts.most_common(5):
        names = ", ".join(f"`{s[:60]}` {100 * c / total:.1f}%" for s, c in tops[stage].most_common(4))
        print(f"- {stage}: {names}")


if __name__ == "__main__":
    main()
