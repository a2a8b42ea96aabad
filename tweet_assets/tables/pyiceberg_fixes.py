"""One correction to pyiceberg 0.12.0, applied to the whole process when this module is imported
(:mod:`tweet_assets.tables.iceberg` imports it): it replaces ``ArrowProjectionVisitor.list`` on
pyiceberg's class, so every pyiceberg read in the process (also another library's) gets it.

pyiceberg's reader projects a list of structs by rebuilding the list from its offsets and its
projected values (``ArrowProjectionVisitor.list``, working around apache/arrow#38809) and drops the
list's validity bitmap on the way: a null ``list<struct>`` reads back as an empty list ``[]``. Every
read goes through it: ``Table.scan``, and the copy-on-write ``delete`` that rewrites a data file
without some rows, which would write ``[]`` for the nulls of every row it keeps (``media``,
``url_entities``, ``unavailable_referenced_tweets`` … of posts that are not deleted). The data files
themselves are right (pyarrow and ``polars.scan_iceberg`` read the nulls).

The fix puts the list's own null mask back on the projected list. A test reads a null list through
pyiceberg without the fix (:func:`uninstall`) and with it
(tests/tables/test_iceberg_schema.py::test_pyiceberg_needs_the_null_list_fix): when the unpatched
read keeps the null, pyiceberg is fixed and this module can go.
"""

from __future__ import annotations

from pyiceberg.io.pyarrow import ArrowProjectionVisitor

_original_list = ArrowProjectionVisitor.list


def _list_keeping_nulls(self, list_type, list_array, value_array):
    result = _original_list(self, list_type, list_array, value_array)
    if result is None or list_array is None or not list_array.null_count or result.null_count == list_array.null_count:
        return result
    rebuilt = type(result).from_arrays(result.offsets, result.values, type=result.type, mask=list_array.is_null())
    return rebuilt


def install() -> None:
    """Apply the fix (idempotent)."""
    ArrowProjectionVisitor.list = _list_keeping_nulls


def uninstall() -> None:
    """pyiceberg's own projection again (tests show it still needs the fix)."""
    ArrowProjectionVisitor.list = _original_list


install()
