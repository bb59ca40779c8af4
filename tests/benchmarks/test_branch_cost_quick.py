"""The branch-cost benchmark's --quick mode end to end (tiny model, 96 px): it must finish, report every figure,
time the fusion block with gradients flowing into its inputs, and find the prefix cache exact with the branch."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_branch_cost_run_reports_every_figure_and_an_exact_cache():
    done = subprocess.run([sys.executable, "-m", "benchmarks.branch_cost", "--quick"], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    figures = json.loads(lines[-1])
    assert figures["cache_exact"] is True
    assert len(figures["rounds"]["branch"]) == len(figures["rounds"]["shared_gate"]) == 2
    assert len(figures["rounds"]["full"]) == 1
    for key in ("branch_vs_gate", "branch_vs_full", "memory_vs_full", "fusion_branch_vs_gate"):
        assert figures[key] > 0
    table = "\n".join(lines[:-1])
    for name in ("one fusion block", "branch step vs shared-gate step", "branch step vs full fine-tuning step",
                 "peak memory", "prefix cache with the branch"):
        assert name in table
