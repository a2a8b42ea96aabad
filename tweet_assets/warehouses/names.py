"""Database, schema and table names that go into generated DDL: plain identifiers or refused.

The DDL of every dialect writes names unquoted or in the dialect's quotes (Athena backticks,
Redshift and Snowflake none for the defaults), so a name is accepted only when it needs no quoting
in any of them and means the same in all: ``[A-Za-z_][A-Za-z0-9_]*``, at most 127 characters.
The rules this follows: AWS Glue / Athena ("Names for tables, databases, and columns": lowercase
letters, numbers and underscore; Athena lowercases upper-case letters), Redshift ("Names and
identifiers": standard identifiers start with a letter or underscore, ASCII letters, digits,
underscore, up to 127 bytes), Snowflake ("Identifier requirements": unquoted identifiers start
with a letter or underscore and hold letters, digits, underscores, dollar signs, up to 255
characters). Everything else (spaces, quotes, backticks, semicolons, ``--``, dots, non-ASCII) is
refused with an error that names the value and says what is allowed, rather than quoted: a name
that needs quoting in one dialect is a different name, or an injection, in another.
"""

from __future__ import annotations

import re

#: What every dialect takes unquoted (Redshift's 127-byte limit is the smallest).
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,126}\Z")


def identifier(name: str, what: str = "table") -> str:
    """``name`` when it is a plain identifier (see the module docstring), else ValueError.

    Args:
        name: the database, schema, table, stage, integration or pipe name.
        what: what the name is, for the message (``table``, ``database``, ...).

    Raises:
        ValueError: ``name`` is not a string matching :data:`IDENTIFIER`; the message names it and
            the rule, in one line.
    """
    if isinstance(name, str) and IDENTIFIER.match(name):
        return name
    raise ValueError(
        f"invalid {what} name {name!r}: use 1-127 ASCII letters, digits and underscores, starting with a letter "
        "or underscore (a name every warehouse takes unquoted: Athena/Glue, Redshift, Snowflake)"
    )
