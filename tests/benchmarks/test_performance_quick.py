"""The performance suite's --quick mode end to end (tiny model, small images, the app in a real browser): it
must finish, report every figure, and find the optimised and plain paths in agreement."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("chromium") is None and os.environ.get("SDPT_REQUIRE_BROWSER") != "1",
                    reason="the app figures need Debian's chromium")
def test_quick_performance_run_agrees_and_reports(tmp_path):
    out = tmp_path / "table.md"
    done = subprocess.run([sys.executable, "-m", "benchmarks.performance", "--quick", "--write", str(out)],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["agree"] is True
    assert figures["detection"]["prompt_changes_output"] is True  # the agreement check compares different outputs
    assert figures["app"]["saves"] >= 8 and figures["app"]["tune_to_progress_s"] > 0
    table = out.read_text()
    for name in ("SDPT step vs full fine-tuning step", "SDPT with activation checkpointing vs full: peak memory",
                 "prefix cache, last fusion layer", "p95 box save",
                 "prompt file size", "batch 4 vs 1"):
        assert name in table
    assert "<!-- performance:start -->" in table
