"""Create the Thing and Rule tables in a database and fill them with random ids.

.venv/bin/python -m demo.seed sqlite:///iota.db --things 3000 --rules 1200
"""

from __future__ import annotations

import argparse
import sys
import uuid

from reconciler.adapters.sql.inventory import create_tables, insert_ids


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("database_url", help="SQLAlchemy URL, e.g. sqlite:///iota.db")
    ap.add_argument("--things", type=int, default=3000)
    ap.add_argument("--rules", type=int, default=1200)
    args = ap.parse_args(argv)
    create_tables(args.database_url)
    for table, n in (("Thing", args.things), ("Rule", args.rules)):
        insert_ids(args.database_url, table, (str(uuid.uuid4()) for _ in range(n)))
        print(f"{table}: +{n} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
