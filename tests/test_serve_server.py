"""Starting bilipop serve (bilipop.serve.server): without a model, with its options, on a port in use, in its own
process, without the web extra; which hosts are this machine; and a --help that imports no web library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the web extra is not installed (pip install -e '.[web]')")

import httpx  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from bilipop.cli import app as cli_app  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------------------------------------------
# The command
def test_serve_without_a_model_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BILIPOP_MODEL", raising=False)
    res = CliRunner().invoke(cli_app, ["serve"])
    assert res.exit_code == 1
    assert "bilipop demo" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_serve_passes_its_options_on_and_warns_on_an_open_host(monkeypatch, tmp_path):
    seen = {}

    def fake(model, **kwargs):
        seen.update(model=model, **kwargs)

    monkeypatch.setattr("bilipop.serve.server.serve", fake)
    res = CliRunner().invoke(cli_app, ["serve", "--model", str(tmp_path), "--host", "0.0.0.0", "--port", "9000"])
    assert res.exit_code == 0, res.output
    assert seen["model"] == tmp_path and seen["host"] == "0.0.0.0" and seen["port"] == 9000
    assert "warning" in res.output and "0.0.0.0" in res.output
    quiet = CliRunner().invoke(cli_app, ["serve", "--model", str(tmp_path)])
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8765 and "warning" not in quiet.output


def test_a_port_in_use_is_one_line(tiny_run):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        res = CliRunner().invoke(cli_app, ["serve", "--model", str(tiny_run["run"]),
                                           "--port", str(taken.getsockname()[1])])
    assert res.exit_code == 1 and "pick another --port" in res.output and "Traceback" not in res.output


def test_serve_end_to_end_in_its_own_process(tiny_run):
    proc = subprocess.Popen([str(Path(sys.executable).with_name("bilipop")), "serve", "--model", str(tiny_run["run"]),
                             "--port", "0"], stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        assert "serving the model on http://127.0.0.1:" in line, line
        url = line.split(" on ", 1)[1].split()[0]
        assert httpx.get(f"{url}/api/model", timeout=30).json()["name"] == "run"
    finally:
        proc.terminate()
        proc.wait(30)


def test_without_the_web_extra_serve_says_what_to_install(tmp_path):
    code = ("import sys; sys.modules['uvicorn'] = None; from typer.testing import CliRunner; "
            "from bilipop.cli import app; r = CliRunner().invoke(app, ['serve', '--model', sys.argv[1]]); "
            "print(r.exit_code); print(r.output)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    code_line, message = out.stdout.split("\n", 1)
    assert code_line == "1" and "web extra" in message and "pip install" in message and "Traceback" not in message


@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True),
                                           ("localhost", True), ("0.0.0.0", False), ("192.168.1.20", False),
                                           ("::", False), ("example.org", False)])
def test_which_hosts_are_only_this_machine(host, loopback):
    from bilipop.serve.server import is_loopback

    assert is_loopback(host) is loopback


def test_help_imports_no_web_library_and_no_torch():
    code = ("import sys; from typer.testing import CliRunner; from bilipop.cli import app; "
            "CliRunner().invoke(app, ['--help']); CliRunner().invoke(app, ['serve', '--help']); "
            "print(sorted(m for m in ('torch', 'starlette', 'uvicorn', 'multipart', 'python_multipart') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
