"""``serve``: the web page and JSON API of the optional web extra, in the foreground until Ctrl+C."""

from __future__ import annotations

from typing import Annotated

import typer

from bilipop.cli.console import note, user_errors, warn
from bilipop.cli.main import app
from bilipop.cli.options import DeviceOpt, ModelOpt, QuantizeOpt


@app.command("serve", epilog="Example: bilipop serve --model bilipop-demo/runs/demo --port 8765")
def serve_cmd(
    model: ModelOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 opens the page to the whole network.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8765,
    device: DeviceOpt = "cpu",
    quantize: QuantizeOpt = None,
) -> None:
    """Serve a web page that compares covers and titles, and a JSON API (needs: pip install "bilipop\\[web]")."""
    from bilipop.serve.server import is_loopback, serve

    if not is_loopback(host):
        warn(f"--host {host}: anyone who can reach this machine can use the page and the API; there is no login")
    with user_errors():
        try:
            serve(model, host=host, port=port, device=device, quantize=quantize,
                  ready=lambda url: note(f"serving the model on {url} (Ctrl+C to stop)"))
        except KeyboardInterrupt:  # Ctrl+C is how a server is stopped: not an error
            note("stopped")
