#!/usr/bin/env python3
"""Sums the GPU kernels of a Kineto Chrome trace (`l2m_bench --profile`).

Each kernel is attributed to the innermost l2m stage scope (ScopedStage:
"p1.dinov2", "p2.s4.refiner", ...) that was open on the CPU when it was
launched (matched through the launch's correlation id), so the table says
where the GPU time goes without synchronising the device at each stage.

Kernels of different streams run at the same time (the fine VGG runs on a
side stream beside the coarse decoder), and a kernel that shares the GPU
takes longer than it would alone, so kernel durations overstate a stage. The
"span" column splits every moment of the trace between the kernels running
then, in equal parts: the shares add up to the time the GPU ran kernels at
all instead of counting shared moments twice.

Usage: kernel_summary.py TRACE.json [--top N] [--per_stage N] [--ops STAGE ...]

--ops STAGE: for the kernels of that stage, the chain of CPU ops (outer to
inner, with the innermost op's input shapes where the trace has them) that
was open when each was launched, so a stray copy can be traced to its op.
"""

import argparse
import bisect
import collections
import gzip
import json
import sys


def short(name, width=90):
    name = name.replace("void ", "")
    return name if len(name) <= width else name[: width - 3] + "..."


def span_shares(intervals):
    """Splits each moment equally between the intervals (start, end) open
    then; returns each interval's share, in the intervals' time unit."""
    points = []
    for i, (t0, t1) in enumerate(intervals):
        points.append((t0, 1, i))
        points.append((t1, 0, i))  # ends sort before starts at equal times
    points.sort()
    shares = [0.0] * len(intervals)
    active = set()
    last = None
    for t, is_start, i in points:
        if active and t > last:
            part = (t - last) / len(active)
            for j in active:
                shares[j] += part
        last = t
        if is_start:
            active.add(i)
        else:
            active.discard(i)
    return shares


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--per_stage", type=int, default=1,
                        help="kernels listed under each stage")
    parser.add_argument("--ops", nargs="*", default=[],
                        help="stages whose kernels are listed by launching op")
    args = parser.parse_args()
    try:
        opener = gzip.open if args.trace.endswith(".gz") else open
        with opener(args.trace, "rt") as f:
            events = json.load(f)["traceEvents"]
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"{args.trace}: not a readable Chrome trace ({e})")

    kernels, launches, scopes, ops = [], {}, [], []
    for e in events:
        if e.get("ph") != "X":
            continue
        cat = e.get("cat", "")
        if cat in ("kernel", "gpu_memcpy", "gpu_memset"):
            kernels.append(e)
        elif cat == "cuda_runtime" or cat == "cuda_driver":
            corr = e.get("args", {}).get("correlation")
            if corr is not None:
                launches[corr] = e["ts"]
        elif cat == "user_annotation":
            scopes.append((e["ts"], e["ts"] + e["dur"], e["name"]))
        elif cat == "cpu_op" and args.ops:
            dims = e.get("args", {}).get("Input Dims")
            ops.append((e["ts"], e["ts"] + e["dur"], e["name"], dims))
    if not kernels:
        sys.exit(f"{args.trace}: no GPU kernels in the trace")

    # Innermost scope open at time t: the latest-starting one that contains it.
    scopes.sort()
    starts = [s[0] for s in scopes]

    def stage_at(t):
        i = bisect.bisect_right(starts, t) - 1
        while i >= 0:
            s0, s1, name = scopes[i]
            if s0 <= t <= s1:
                return name
            i -= 1
        return "(outside any stage)"

    shares = span_shares([(k["ts"], k["ts"] + k["dur"]) for k in kernels])
    by_stage = collections.defaultdict(float)
    span_stage = collections.defaultdict(float)
    count_stage = collections.Counter()
    by_kernel = collections.defaultdict(float)
    count_kernel = collections.Counter()
    stage_kernels = collections.defaultdict(lambda: collections.defaultdict(float))
    for k, share in zip(kernels, shares):
        corr = k.get("args", {}).get("correlation")
        t = launches.get(corr)
        stage = stage_at(t) if t is not None else "(no launch record)"
        ms = k["dur"] / 1000.0
        by_stage[stage] += ms
        span_stage[stage] += share / 1000.0
        count_stage[stage] += 1
        by_kernel[k["name"]] += ms
        count_kernel[k["name"]] += 1
        stage_kernels[stage][k["name"]] += ms

    busy = sum(by_stage.values())
    covered = sum(span_stage.values())
    t0 = min(k["ts"] for k in kernels)
    t1 = max(k["ts"] + k["dur"] for k in kernels)
    print(f"{args.trace}: {len(kernels)} kernels, GPU busy {busy:.2f} ms "
          f"over a {((t1 - t0) / 1000.0):.2f} ms span")
    print(f"  the GPU ran kernels during {covered:.2f} ms of it; kernel "
          f"durations overlap by {busy - covered:.2f} ms")
    print("\nGPU time by stage (kernels launched inside it): kernel "
          "durations, and their share of the span")
    for stage, span in sorted(span_stage.items(), key=lambda x: -x[1]):
        top = sorted(stage_kernels[stage].items(), key=lambda x: -x[1])
        print(f"  {stage:32s} {by_stage[stage]:8.2f} ms  span {span:8.2f} ms "
              f"{count_stage[stage]:6d} kernels")
        for name, kms in top[: args.per_stage]:
            print(f"      {kms:8.2f} ms  {short(name, 100)}")
    if args.ops:
        ops.sort()
        op_starts = [o[0] for o in ops]

        def op_chain(t):
            # Every op open at t, outermost first (ops nest on a thread).
            open_ops = [o for o in ops[: bisect.bisect_right(op_starts, t)]
                        if o[1] >= t]
            if not open_ops:
                return "(no op)"
            names = " > ".join(o[2] for o in open_ops[-4:])
            dims = open_ops[-1][3]
            return names + (f" {dims}" if dims else "")

        for wanted in args.ops:
            by_op = collections.defaultdict(float)
            count_op = collections.Counter()
            for k in kernels:
                t = launches.get(k.get("args", {}).get("correlation"))
                if t is None or stage_at(t) != wanted:
                    continue
                key = (op_chain(t), short(k["name"], 70))
                by_op[key] += k["dur"] / 1000.0
                count_op[key] += 1
            print(f"\nKernels of {wanted} by launching op:")
            for (chain, name), ms in sorted(by_op.items(), key=lambda x: -x[1]):
                print(f"  {ms:8.2f} ms {count_op[(chain, name)]:4d}x  {name}")
                print(f"             from {chain}")
    print(f"\nTop {args.top} kernels:")
    for name, ms in sorted(by_kernel.items(), key=lambda x: -x[1])[: args.top]:
        print(f"  {ms:8.2f} ms {count_kernel[name]:5d}x  {short(name)}")


if __name__ == "__main__":
    main()
