"""Every ``--help`` text is whole: each command has a short help that the group listing does not cut,
each option says what it does, and the class count has one name (``--num-classes``) everywhere."""
from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from x3dsearch.cli.main import cli, main


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    """Every command below ``group``, sub-groups and their commands included, with its name path."""
    found = []
    for name, command in sorted(group.commands.items()):
        found.append((prefix + (name,), command))
        if isinstance(command, click.Group):
            found += _commands(command, prefix + (name,))
    return found


COMMANDS = _commands(cli)
OPTIONS = [(path, param) for path, command in COMMANDS for param in command.params
           if isinstance(param, click.Option) and not param.hidden]


def _help(*args: str) -> str:
    result = CliRunner().invoke(cli, [*args, "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.output


def test_every_command_has_a_short_help():
    missing = [" ".join(path) for path, command in COMMANDS if not (command.short_help or "").strip()]
    assert not missing, f"commands without short_help: {missing}"
    assert len(COMMANDS) >= 13  # 11 top-level commands plus data's synth and check


@pytest.mark.parametrize("group", [(), ("data",)], ids=["x3dsearch", "data"])
def test_group_listings_cut_nothing(group):
    text = _help(*group)
    listed = text.split("Commands:", 1)[1]
    assert "..." not in listed and "\u2026" not in listed, listed
    members = cli.commands if not group else cli.commands[group[0]].commands
    for name, command in members.items():  # each summary whole, wrapped at most
        assert " ".join(command.short_help.split()) in " ".join(listed.split()), name


@pytest.mark.parametrize("path, option", OPTIONS, ids=[f"{' '.join(p)} {o.opts[0]}" for p, o in OPTIONS])
def test_every_option_is_described(path, option):
    assert (option.help or "").strip(), f"x3dsearch {' '.join(path)} {option.opts[0]} has no help text"


def test_the_class_count_has_one_name():
    uses = {" ".join(path): option for path, option in OPTIONS
            if any("classes" in o for o in option.opts)}
    assert set(uses) == {"data synth", "expand", "flops", "convert"}
    for where, option in uses.items():
        assert option.opts[0] == "--num-classes", where
        assert "--classes" in option.opts, where  # the old spelling still parses
        shown = _help(*where.split())
        assert "--num-classes" in shown and "--classes " not in shown, where


def test_the_hidden_alias_parses_like_the_name(capsys):
    def plan(flag: str) -> dict:
        with pytest.raises(SystemExit) as exit_info:
            main(["expand", "--dry-run", "--json", "--target-gflops", "2", flag, "400"])
        out, err = capsys.readouterr()
        assert exit_info.value.code == 0, err
        return json.loads(out)

    by_name, by_alias = plan("--num-classes"), plan("--classes")
    assert by_name == by_alias and by_name["classes"] == 400


def test_targets_say_which_replaces_which():
    expand = {p.name: p for p in cli.commands["expand"].params}
    assert "--target-ms replaces it" in expand["target_gflops"].help
    assert "replaces --target-gflops" in expand["target_ms"].help
