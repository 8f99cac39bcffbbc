"""The ``statehub`` command: thin commands over the same library functions the API calls.

Commands are loaded when they run (click's lazy group pattern, canon/ADR-033):
``COMMANDS`` names each top-level command's module and attribute and its one-line
help, so ``statehub --help`` and ``statehub tasks`` import only what they use,
never the web stack, the CRDT or the token library. Add a command by adding a row
(tests/statehub/cli/test_lazy.py checks each row's help is the command's own).
"""

from __future__ import annotations

import importlib

import click

__all__ = ["COMMANDS", "LazyGroup", "load_command", "main"]

COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("statehub.cli.serve:serve", "Serve the API and web UI."),
    "repos": ("statehub.cli.repos:repos", "Register, list, refresh and remove repos."),
    "rebuild": (
        "statehub.cli.repos:rebuild",
        "Drop the cache and index every registered repo from its files.",
    ),
    "tasks": ("statehub.cli.read:tasks", "List tasks across every registered repo."),
    "workplans": ("statehub.cli.read:workplans", "List workplans across every registered repo."),
    "canon": ("statehub.cli.read:canon", "List canon documents: ADRs, standards, runbooks, notes."),
    "show": (
        "statehub.cli.show:show",
        "Show one task (with its dependencies and dependents), workplan (with its...",
    ),
    "next": (
        "statehub.cli.show:next_",
        "The best task the actor can take now: todo, every dependency done, theirs or...",
    ),
    "event": (
        "statehub.cli.events:event",
        "Change workplans by sending events: they land in the files as git commits.",
    ),
    "events": (
        "statehub.cli.events:events",
        "List events in the write buffer, oldest first, with their state and reason.",
    ),
    "sweep": (
        "statehub.cli.sweep:sweep",
        "Pull, re-index, apply pending events and push, per repo; then list what is...",
    ),
    "fleet": (
        "statehub.cli.fleet:fleet",
        "Machines, workloads and lanes of the fleet registry, and the plans drawn from...",
    ),
    "token": (
        "statehub.cli.token:token",
        "Biscuit capability tokens: who may read, write, edit or administer which repos.",
    ),
    "buffer": (
        "statehub.cli.buffer:buffer",
        "The write buffer's relay to the upstream hub: what waits, what was refused.",
    ),
    "claim": (
        "statehub.cli.claims:claim",
        "Claim a task: nobody else can until you release it or the lease runs out.",
    ),
    "heartbeat": (
        "statehub.cli.claims:heartbeat",
        "Extend your lease on a task (by its own length unless --lease-s says);...",
    ),
    "release": (
        "statehub.cli.claims:release",
        "Release a task you claimed: it gets the status given and its owner from...",
    ),
    "watch": (
        "statehub.cli.watch:watch",
        "Follow the hub's changes as they happen: tasks, workplans, canon, events,...",
    ),
    "doctor": (
        "statehub.cli.doctor:doctor",
        "Say what stops writes or needs a person, per repo and for the hub, each with...",
    ),
    "mcp": (
        "statehub.cli.mcp:mcp",
        "Serve the hub's MCP tools and resources over stdio (JSON-RPC on stdin/stdout).",
    ),
}
"""name -> ("module:attribute", the command's short help as ``--help`` lists it)."""


def load_command(target: str) -> click.Command:
    """The click command at ``module:attribute``."""
    module, _, attribute = target.partition(":")
    command = getattr(importlib.import_module(module), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{target} is not a click command")
    return command


class LazyGroup(click.Group):
    """A group whose subcommands are imported when one is run or asked for by name.

    ``lazy``: name -> (``module:attribute``, short help); the help is what the
    group's ``--help`` lists, so listing commands imports none of them.
    """

    def __init__(
        self, *args: object, lazy: dict[str, tuple[str, str]] | None = None, **kwargs: object
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            self.add_command(load_command(self.lazy[cmd_name][0]), cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> object:
        """Run the subcommand; a usage error (a bad option value, a missing argument) of one given
        ``--json`` also prints the error envelope on stdout (exit 2, as without ``--json``)."""
        given = [*ctx._protected_args, *ctx.args]  # super().invoke empties both
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            if "--json" in given:
                from statehub.cli._output import command_name, print_json_error

                command = command_name(error.ctx or ctx)
                print_json_error(error.format_message(), 400, error.exit_code, None, command)
            raise

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows: list[tuple[str, str]] = []
        limit = formatter.width - 6 - max((len(name) for name in self.list_commands(ctx)), default=0)
        for name in self.list_commands(ctx):
            if name in self.lazy and name not in self.commands:
                rows.append((name, self.lazy[name][1]))
                continue
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """``--version``: the installed package's version, read only when asked."""
    if not value or ctx.resilient_parsing:
        return
    from statehub import __version__

    click.echo(f"statehub, version {__version__}")
    ctx.exit()


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_version,
    help="Show the version and exit.",
)
def main() -> None:
    """State Hub: plans, standards and fleet state kept in git, with a fast live view.

    Example: statehub repos add . && statehub tasks --ready
    """
