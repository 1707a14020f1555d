#!/usr/bin/env python3
"""Tests of kernel_summary.py on a small synthetic Kineto trace."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kernel_summary  # noqa: E402


def trace_events():
    """Stage A: a 10 ms kernel from 1 ms and a 2 ms one from 20 ms; stage B:
    a 10 ms kernel from 6 ms on another stream (overlapping A's by 5 ms)."""
    events = []

    def kernel(name, ts_ms, dur_ms, corr):
        events.append({"ph": "X", "cat": "kernel", "name": name,
                       "ts": ts_ms * 1000, "dur": dur_ms * 1000,
                       "args": {"correlation": corr}})

    def launch(ts_us, corr):
        events.append({"ph": "X", "cat": "cuda_runtime",
                       "name": "cudaLaunchKernel", "ts": ts_us, "dur": 1,
                       "args": {"correlation": corr}})

    def scope(name, ts_us, dur_us):
        events.append({"ph": "X", "cat": "user_annotation", "name": name,
                       "ts": ts_us, "dur": dur_us})

    scope("A", 0, 3)
    scope("B", 3, 2)
    scope("A", 18, 1)
    launch(1, 1)
    launch(4, 2)
    launch(18.5, 3)
    kernel("ka", 1, 10, 1)
    kernel("kb", 6, 10, 2)
    kernel("ka2", 20, 2, 3)
    return events


class SpanSharesTest(unittest.TestCase):
    def test_overlap_is_split_equally(self):
        shares = kernel_summary.span_shares([(1, 11), (6, 16), (20, 22)])
        self.assertEqual(shares, [7.5, 7.5, 2.0])

    def test_shares_sum_to_the_busy_time(self):
        intervals = [(0, 4), (1, 2), (1, 3), (5, 6), (5, 6)]
        self.assertAlmostEqual(sum(kernel_summary.span_shares(intervals)), 5.0)

    def test_touching_intervals_do_not_overlap(self):
        self.assertEqual(kernel_summary.span_shares([(0, 2), (2, 3)]),
                         [2.0, 1.0])


class SummaryTest(unittest.TestCase):
    def test_stage_table_has_durations_and_span_shares(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "trace.json")
            with open(path, "w") as f:
                json.dump({"traceEvents": trace_events()}, f)
            out = subprocess.run(
                [sys.executable, kernel_summary.__file__, path],
                capture_output=True, text=True, check=True).stdout
        self.assertIn("GPU busy 22.00 ms over a 21.00 ms span", out)
        self.assertIn("during 17.00 ms of it", out)
        self.assertIn("overlap by 5.00 ms", out)
        rows = {line.split()[0]: line.split() for line in out.splitlines()
                if line.startswith("  ") and "span" in line.split()}
        self.assertEqual(rows["A"][1], "12.00")  # kernel durations
        self.assertEqual(rows["A"][4], "9.50")   # 5 alone + 5 / 2 + 2
        self.assertEqual(rows["B"][4], "7.50")

    def test_unreadable_trace_is_refused_by_name(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "broken.json")
            with open(path, "w") as f:
                f.write("{not json")
            run = subprocess.run([sys.executable, kernel_summary.__file__, path],
                                 capture_output=True, text=True)
        self.assertNotEqual(run.returncode, 0)
        self.assertIn("broken.json", run.stderr)


if __name__ == "__main__":
    unittest.main()
