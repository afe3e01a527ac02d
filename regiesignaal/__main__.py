"""``python -m regiesignaal``: the command line (the same as the ``regiesignaal`` command)."""

from regiesignaal.jobs.cli import run_cli

if __name__ == "__main__":
    run_cli()
