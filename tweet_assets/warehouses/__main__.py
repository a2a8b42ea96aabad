"""``python -m tweet_assets.warehouses [ROOT]``: regenerate every dialect's checked-in DDL file
(``make ddl-files``; the tests compare the files with what the code generates)."""

import sys

from tweet_assets.warehouses import write_checked_in

if __name__ == "__main__":
    for path in write_checked_in(sys.argv[1] if len(sys.argv) > 1 else "."):
        print(f"wrote {path}")
