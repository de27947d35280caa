"""``python -m bilipop`` runs the command line."""

from bilipop.cli import app

if __name__ == "__main__":
    app(prog_name="bilipop")
