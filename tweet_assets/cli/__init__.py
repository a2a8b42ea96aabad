"""tweet-assets: the commands of the tweet_assets pipeline (demo, ddl, catalog, replay, stream, materialize).

One module per command, each with ``add_parser(sub)`` (its options, help and the environment
variables it reads) and ``run(args, parser) -> exit status``; :mod:`.main` builds the parser from
:data:`tweet_assets.cli.main.COMMANDS` and dispatches. Shared pieces:

- :mod:`.checks`: settings and days checked before any run, each problem one line (exit status 2);
- :mod:`.runs`: the Dagster instance (``DAGSTER_HOME``) and running a job in process;
- :mod:`.output`: tables, first lines of an error, the runs' warnings once.

Output: one line per run, warnings once, a summary; Dagster's event log with ``--verbose`` (and
always in ``DAGSTER_HOME``, where Dagit shows it). A wrong setting is one line, before any run.
A new command is a new module here plus one entry in :data:`~tweet_assets.cli.main.COMMANDS`.
"""

from tweet_assets.cli.demo import NO_ROWS, read_back
from tweet_assets.cli.main import build_parser, main
from tweet_assets.cli.output import run_warnings
from tweet_assets.cli.runs import materialize_day, run_job

__all__ = ["NO_ROWS", "build_parser", "main", "materialize_day", "read_back", "run_job", "run_warnings"]
