"""python -m bilipop.sim (bilipop.sim.__main__): it prints a URL that answers and refuses bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests

from bilipop.sim.__main__ import main as sim_main


# -- python -m bilipop.sim -------------------------------------------------------------------------------------
def test_module_prints_a_url_that_answers():
    proc = subprocess.Popen([sys.executable, "-m", "bilipop.sim", "--port", "0", "--videos", "30", "--seed", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert requests.get(url + "/robots.txt", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0


@pytest.mark.parametrize(("argv", "message"), [
    (["--videos", "3"], "at least 10"),
    (["--robots", "/no/such/robots.txt"], "cannot read robots file"),
    (["--faults", "2"], "--faults is a probability"),
    (["--rate-limit", "0"], "rate_limit must be a positive number"),
])
def test_module_rejects_bad_input(argv, message, capsys):
    assert sim_main(["--port", "0", *argv]) == 1
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""
