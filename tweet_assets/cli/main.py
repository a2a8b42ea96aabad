"""The ``tweet-assets`` command: the parser built from the command modules, and the dispatch."""

from __future__ import annotations

import argparse
import sys

from tweet_assets.cli import catalog, ddl, demo, iceberg, materialize, plan, replay, stream

#: The commands, in the order ``--help`` lists them: each module has ``NAME``, ``add_parser(sub,
#: formatter, epilog)`` and ``run(args, parser) -> exit status``.
COMMANDS = (demo, ddl, catalog, replay, stream, materialize, plan, iceberg)
DESCRIPTION = "the commands of the tweet_assets pipeline (demo, ddl, catalog, replay, stream, materialize, plan, iceberg)."


def _epilog(variables: list[str]) -> str:
    return "environment variables read:\n" + "\n".join(f"  {line}" for line in variables)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: ``tweet-assets COMMAND``, each command with its help, its options' help
    and the environment variables it reads (``--help``)."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="tweet-assets", description=DESCRIPTION, formatter_class=formatter,
                                     epilog="Run `tweet-assets COMMAND --help` for a command's options and variables. Docs: README.md, docs/.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser._tweet_assets_subparsers = {module.NAME: module.add_parser(sub, formatter, _epilog) for module in COMMANDS}  # noqa: SLF001
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command of ``argv`` (default ``sys.argv[1:]``); returns its exit status (argparse
    exits with 2 on a wrong option or day)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command = parser._tweet_assets_subparsers[args.command]  # noqa: SLF001 - errors show the subcommand's usage
    return {module.NAME: module for module in COMMANDS}[args.command].run(args, command)


if __name__ == "__main__":
    sys.exit(main())
