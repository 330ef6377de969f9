"""Copy a benchmark's SQLite store into a PostgreSQL database, row for row, with its embedded index files.

    python bench/sqlite_to_pg.py SQLITE_DATA_DIR PG_DATA_DIR --database-url postgresql+psycopg://... --name DB

Loading 100,000 generated chunks costs most of an hour on a shared machine (analysis and the companion
model's vectors for every chunk); a PostgreSQL copy of the same rows takes minutes and gives both dialects
the very same corpus. The database is created with ragstore's migrations, every table of the models is
copied (PostgreSQL computes its generated columns, such as the tsvector, itself), sequences are moved past
the copied ids, the index directory is copied (its keys are the same chunk ids) and the planner's
statistics gathered. The result is what `bench/search_speed.py --keep PG_DATA_DIR --keep-database DB` reuses.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, select, text

from ragstore import RagStore
from ragstore.config import Settings
from ragstore.db.models import Base

BATCH = 5_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--name", required=True)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from pgdb import kept_database

    started = time.perf_counter()
    with kept_database(args.database_url, args.name) as (url, existed):
        if existed:
            raise SystemExit(f"database {args.name} exists already: drop it first")
        settings = Settings(data_dir=args.target, database_url=url, query_log=False)
        with RagStore.open(settings):
            pass  # the schema, by the migrations
        source = create_engine(f"sqlite:///{args.source / 'ragstore.db'}")
        target = create_engine(url)
        tables = Base.metadata.sorted_tables
        with target.begin() as conn:
            for table in reversed(tables):
                conn.execute(table.delete())
        for table in tables:
            copied = 0
            with source.connect() as read, target.begin() as write:
                result = read.execution_options(stream_results=True).execute(select(table))
                while rows := result.fetchmany(BATCH):
                    write.execute(table.insert(), [dict(r._mapping) for r in rows])
                    copied += len(rows)
            if copied:
                print(f"{table.name}: {copied:,} rows")
        with target.begin() as conn:
            for table in tables:
                for column in table.primary_key.columns:
                    sequence = conn.execute(
                        text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column.name}
                    ).scalar()
                    if sequence:
                        highest = f"coalesce((SELECT max({column.name}) FROM {table.name}), 0) + 1"
                        conn.execute(text(f"SELECT setval('{sequence}', {highest}, false)"))
        with target.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
        shutil.rmtree(args.target / "index", ignore_errors=True)
        shutil.copytree(args.source / "index", args.target / "index", ignore=shutil.ignore_patterns(".lock"))
    print(f"copied in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
