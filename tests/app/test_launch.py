"""`python app.py` offline: it falls back to the shipped small model, says so on the page, and serves quickly."""
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.app.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_app_starts_offline_with_the_shipped_model(tmp_path):
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    env.pop("SDPT_MODEL", None)
    log = tmp_path / "app.log"
    start = time.monotonic()
    with log.open("w") as output:
        process = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--data-dir", str(tmp_path / "d")],
                                   cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        config = None
        while time.monotonic() - start < 60 and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=2) as response:
                    config = response.read().decode()
                    break
            except OSError:
                time.sleep(0.5)
        assert config is not None, log.read_text()[-2000:]
        assert "shipped small model" in config and "Teach a detector your objects" in config
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            assert response.status == 200
        assert (tmp_path / "d" / "sdpt.sqlite").is_file()
    finally:
        process.terminate()
        process.wait(30)
