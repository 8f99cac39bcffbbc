"""The ``statehub`` command: thin commands over the same library functions the API calls."""

from __future__ import annotations

import click

from statehub.cli.buffer import buffer
from statehub.cli.doctor import doctor
from statehub.cli.events import event, events
from statehub.cli.fleet import fleet
from statehub.cli.mcp import mcp
from statehub.cli.read import canon, tasks, workplans
from statehub.cli.repos import rebuild, repos
from statehub.cli.serve import serve
from statehub.cli.sweep import sweep
from statehub.cli.token import token

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="statehub")
def main() -> None:
    """State Hub: plans, standards and fleet state kept in git, with a fast live view.

    Example: statehub repos add . && statehub tasks --ready
    """


for command in (
    serve,
    repos,
    rebuild,
    tasks,
    workplans,
    canon,
    event,
    events,
    sweep,
    fleet,
    token,
    buffer,
    doctor,
    mcp,
):
    main.add_command(command)
