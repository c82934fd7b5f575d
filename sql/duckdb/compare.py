#!/usr/bin/env python3
"""Runs goldthread's KPI suite and exception rules in DuckDB over a table export.

The export (`goldthread kpi --export DIR`) holds each table as CSV and manifest.json with the
column types and the values the suite binds ($from, $to, $as_of, unit costs). This script
loads the tables into an in-memory DuckDB, creates the same views (sql/views/current.sql),
runs the same .sql files (sql/kpi/, sql/exceptions/) and prints JSON:

    {"kpis": [{"file", "kpi", "key", "value", "numerator", "denominator"}...],
     "exceptions": [{"rule", "record", "detail"}...],
     "seconds": {"<file>": best time of --repeat runs}, "load_seconds": ...}

Usage: compare.py EXPORT_DIR [--repeat N] [--threads N] [--materialize-kept]
"""
import argparse
import json
import pathlib
import time

import duckdb

SQL = pathlib.Path(__file__).resolve().parent.parent
# The views goldthread keeps as tables, updated as events arrive (sql::tables, sql::kept).
KEPT = ("latest_", "appointment_days", "repair_days", "order_days", "hazard_days")


def duckdb_type(arrow: str) -> str:
    if arrow.startswith("Timestamp"):
        return "TIMESTAMP"
    return {
        "Utf8": "VARCHAR",
        "Int64": "BIGINT",
        "Boolean": "BOOLEAN",
        "Date32": "DATE",
        "Float64": "DOUBLE",
    }[arrow]


def statements(text: str):
    for statement in text.split(";"):
        if any(line.strip() and not line.strip().startswith("--") for line in statement.splitlines()):
            yield statement


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("export", type=pathlib.Path)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--materialize-kept", action="store_true",
                        help="create the views goldthread keeps as tables (latest_*, "
                             "*_days) as tables before timing (a like-for-like "
                             "benchmark)")
    args = parser.parse_args()
    manifest = json.loads((args.export / "manifest.json").read_text())
    connection = duckdb.connect()
    connection.execute(f"SET threads = {args.threads}")
    started = time.perf_counter()
    for table, columns in manifest["tables"].items():
        types = ", ".join(f"'{name}': '{duckdb_type(kind)}'" for name, kind in columns)
        path = args.export / f"{table}.csv"
        if path.stat().st_size == 0:  # an empty table: no rows, no header
            definition = ", ".join(f"{name} {duckdb_type(kind)}" for name, kind in columns)
            connection.execute(f"CREATE TABLE {table} ({definition})")
            continue
        connection.execute(
            f"CREATE TABLE {table} AS SELECT * FROM read_csv('{path}', header = true, "
            f"delim = ',', quote = '\"', columns = {{{types}}}, "
            f"timestampformat = '%Y-%m-%d %H:%M:%S.%f')"
        )
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for statement in statements((SQL / "views" / "current.sql").read_text()):
        if args.materialize_kept and any(f"CREATE VIEW {name}" in statement for name in KEPT):
            statement = statement.replace("CREATE VIEW", "CREATE TABLE", 1)
        connection.execute(statement)
    views_seconds = time.perf_counter() - started

    def bind(text: str) -> str:
        for name, value in manifest["parameters"].items():
            text = text.replace(name, value)
        return text

    seconds = {}
    kpis = []
    for path in sorted((SQL / "kpi").glob("*.sql")):
        query = bind(path.read_text())
        best = None
        for _ in range(args.repeat):
            started = time.perf_counter()
            rows = connection.execute(query).fetchall()
            elapsed = time.perf_counter() - started
            best = elapsed if best is None else min(best, elapsed)
        seconds[path.name] = best
        for ordinal, kpi, key, value, numerator, denominator in rows:
            kpis.append({"file": path.name, "kpi": kpi, "key": key, "value": value,
                         "numerator": numerator, "denominator": denominator})
    exceptions = []
    for path in sorted((SQL / "exceptions").glob("*.sql")):
        started = time.perf_counter()
        for rule, record, detail in connection.execute(bind(path.read_text())).fetchall():
            exceptions.append({"rule": rule, "record": record, "detail": detail})
        seconds[path.name] = time.perf_counter() - started
    print(json.dumps({"kpis": kpis, "exceptions": exceptions, "seconds": seconds,
                      "load_seconds": load_seconds, "views_seconds": views_seconds}))


if __name__ == "__main__":
    main()
