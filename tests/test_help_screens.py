"""Every help screen reads at 80 columns: each option's description has room for a phrase,
and no default, choice or word is cut short with "…"."""

from __future__ import annotations

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from gpen_cli.cli import app

COLUMNS = 80
NARROWEST = 30  # characters of description per line, at the least


def commands() -> list[tuple[str, ...]]:
    """Every command and sub-command, as the words typed before --help."""
    found = [()]
    top = get_command(app)
    for name, command in top.commands.items():
        found.append((name,))
        if hasattr(command, "commands"):
            found += [(name, sub) for sub in command.commands]
    return found


def command_of(words: tuple[str, ...]):
    command = get_command(app)
    for word in words:
        command = command.commands[word]
    return command


def param_row(lines: list[str], names: set[str]) -> str | None:
    """The help line whose first word (after the panel's border) is one of `names`: the
    option's flag, or the argument's name or metavar (`[NAME]`, `inputs...`)."""
    for line in lines:
        words = [word for word in line.strip("│ ").split() if word != "*"]
        if line.startswith("│") and words and words[0].strip("[].").lower() in names:
            return line
    return None


@pytest.mark.parametrize("words", commands(), ids=lambda words: " ".join(words) or "gpen")
def test_help_at_80_columns_leaves_every_description_room(words):
    result = CliRunner().invoke(
        app, [*words, "--help"], env={"COLUMNS": str(COLUMNS)}, terminal_width=COLUMNS
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(map(len, lines)) <= COLUMNS
    command = command_of(words)
    subcommands = getattr(command, "commands", {}).values()
    helps = [param.help or "" for param in command.params] + [command.help or ""]
    helps += [(sub.help or "").split("\n\n")[0] for sub in subcommands]  # the listed part
    # An ellipsis the help texts do not hold is rich cutting a default or a choice short.
    assert result.output.count("…") == sum(text.count("…") for text in helps), result.output
    for param in command.params:
        if param.hidden or not param.help:
            continue
        name = next((o for o in param.opts if o.startswith("--")), param.name)
        row = param_row(lines, {name.lower(), str(param.metavar).strip("[].").lower()})
        assert row is not None, f"{name} has no row of its own:\n{result.output}"
        start = row.find(" ".join(param.help.split()[:2]))
        assert start > 0, f"{name}: its description is broken at once:\n{result.output}"
        room = len(row) - 2 - start  # from the description's start to the panel's border
        assert room >= NARROWEST, f"{name}: {room} columns of description\n{result.output}"


def test_a_markup_lookalike_in_a_help_text_is_printed():
    """`pip install 'gpen-cli[ray]'` must not lose its [ray] to rich's markup."""
    result = CliRunner().invoke(app, ["batch", "--help"], env={"COLUMNS": "200"})
    assert "'gpen-cli[ray]'" in result.output


def test_the_batch_progress_line_fits_80_columns():
    from rich.console import Console

    from gpen_cli.cli.common import rate_progress

    progress = rate_progress("images", quiet=False)
    progress.add_task("Restoring", total=120, completed=37, faces=412, rate=3.21)
    table = progress.make_tasks_table(progress.tasks)
    lines = Console(width=80).render_lines(table, pad=False)
    assert len(lines) == 1, lines
