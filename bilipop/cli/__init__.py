"""The ``bilipop`` command line: one short function per command, each a thin layer over one core function.

Results go to stdout, messages and progress to stderr. A BilipopError becomes a one-line message and exit code 1
(the traceback only with ``--debug``); usage errors are Typer's own (exit code 2).

The modules:

- ``main``: the Typer ``app``, the order ``--help`` lists the commands in, and the root options;
- ``console``: stdout and stderr, the error boundary (``user_errors``), notes, warnings and progress bars;
- ``options``: the options several commands share (``--data``, ``--json``, ``--device``, ``--model``...) and the
  parsers of comma lists;
- ``views``: how results look on a terminal (rich tables and lines, user text made safe);
- one module per command or group of commands: ``crawl``, ``stages`` (filter, score, label), ``train``,
  ``evaluate``, ``predict``, ``export``, ``demo``, ``serve``.

A new command goes in a module of its own here: a function decorated with ``@app.command(...)`` from
``bilipop.cli.main``, its core import inside the function (``bilipop --help`` imports no torch), its core call
inside ``with user_errors():``, and its output through ``views``. Import the module below, and name the command in
``main._PipelineOrder.order`` where it belongs in ``--help`` (commands not named there come last).
"""

# Importing a command's module registers the command on ``app``.
from bilipop.cli import crawl, demo, evaluate, export, predict, serve, stages, train  # noqa: F401
from bilipop.cli.main import app

__all__ = ["app"]
