"""The result store of a sweep directory: one SQLite file, ``<dir>/results.sqlite``.

Why SQLite rather than Parquet: a sweep adds one small record at a time, for hours, and may be
killed between any two; SQLite commits each record as a transaction (write-ahead log,
``synchronous=FULL``), so a killed sweep loses only the records it had not yet received and the
file is never half-written, while a Parquet file is written whole (appending means rewriting it
or keeping a directory of fragments). SQLite is in Python's standard library (no dependency);
records are small JSON documents; readers (``accelgen sweep report``) may read while a sweep
writes. Only the sweep's own process writes: workers return records, they never open the
store, so nothing concurrent reaches it over a network file system.

Tables::

    records  key (primary) | block | digest | metric | status | config | context | tools
             | vals | reason | log | host | worker | seconds | finished
    points   ident (primary) | pos | params | digest | options | reason | keys
    meta     name (primary) | value

A record's ``key`` is a hash of what its result depends on: the block, the whole config, the
metric, the part of the sweep's context that metric reads (family, target, seed, run options)
and the versions of the tools it ran. A re-run therefore skips what is done, a run with other
tool versions redoes it, and two sweeps that meet the same point share its record. ``status``
is ``ok`` or ``failed`` (with ``reason`` and ``log``); a point whose config is refused has no
records, only its ``reason`` in ``points``.
"""

import hashlib
import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path

__all__ = ["Store", "record_key", "STORE_NAME"]

STORE_NAME = "results.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    key TEXT PRIMARY KEY, block TEXT NOT NULL, digest TEXT NOT NULL, metric TEXT NOT NULL,
    status TEXT NOT NULL, config TEXT NOT NULL, context TEXT NOT NULL, tools TEXT NOT NULL,
    vals TEXT NOT NULL, reason TEXT NOT NULL, log TEXT NOT NULL, host TEXT NOT NULL,
    worker TEXT NOT NULL, seconds REAL NOT NULL, finished REAL NOT NULL);
CREATE TABLE IF NOT EXISTS points (
    ident TEXT PRIMARY KEY, pos INTEGER NOT NULL, params TEXT NOT NULL, digest TEXT,
    options TEXT NOT NULL, reason TEXT NOT NULL, keys TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _dumps(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def record_key(block, config_data, metric, context_fields, tools):
    """24 hex digits naming one result: what it was computed from (see the module
    docstring)."""
    text = _dumps({"block": block, "config": config_data, "metric": metric,
                   "context": context_fields, "tools": tools})
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class Store:
    """A sweep's SQLite store (created on first open). Use as a context manager or call
    :meth:`close`.

    Members
    -------
    path : Path
    """

    def __init__(self, path, *, readonly=False):
        self.path = Path(path)
        self.readonly = readonly
        if readonly:    # never creates or changes the file
            self._db = sqlite3.connect(_read_only_uri(self.path), uri=True, timeout=60,
                                       isolation_level=None)
            return
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Close; a writer leaves the store as one file (the write-ahead log checkpointed
        and the journal back to DELETE mode), so later read-only opens create no ``-wal``
        or ``-shm`` file beside it."""
        if not self.readonly:
            try:
                self._db.execute("PRAGMA journal_mode=DELETE")
            except sqlite3.Error:       # another connection still uses the log: keep it
                pass
        self._db.close()

    # -- meta ---------------------------------------------------------------------------------

    def meta(self, name, default=None):
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_meta(self, name, value):
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, _dumps(value)))

    # -- points -------------------------------------------------------------------------------

    def add_points(self, rows):
        """``rows``: ``(ident, params, digest or None, options, reason, {metric: key})``;
        a point already in the store keeps its place and gets the new keys."""
        with self._db:
            self._db.execute("BEGIN")
            pos = self._db.execute("SELECT COALESCE(MAX(pos), -1) FROM points").fetchone()[0]
            for ident, params, digest, options, reason, keys in rows:
                found = self._db.execute("SELECT pos, keys FROM points WHERE ident = ?",
                                         (ident,)).fetchone()
                if found is None:
                    pos += 1
                    self._db.execute("INSERT INTO points VALUES (?, ?, ?, ?, ?, ?, ?)",
                                     (ident, pos, _dumps(params), digest, _dumps(options),
                                      reason, _dumps(keys)))
                else:
                    merged = {**json.loads(found[1]), **keys}
                    self._db.execute("UPDATE points SET digest = ?, options = ?, reason = ?, "
                                     "keys = ? WHERE ident = ?",
                                     (digest, _dumps(options), reason, _dumps(merged), ident))

    def set_point_keys(self, idents, metric, key):
        """Point the ``metric`` of the points ``idents`` at record ``key`` (a record whose
        worker had other tool versions than the sweep's process expected)."""
        with self._db:
            self._db.execute("BEGIN")
            for ident in idents:
                row = self._db.execute("SELECT keys FROM points WHERE ident = ?",
                                       (ident,)).fetchone()
                if row is not None:
                    keys = {**json.loads(row[0]), metric: key}
                    self._db.execute("UPDATE points SET keys = ? WHERE ident = ?",
                                     (_dumps(keys), ident))

    def points(self):
        """Every point, in the order first added: dicts with ``ident``, ``params`` (list of
        ``[key, value]``), ``digest``, ``options``, ``reason``, ``keys``."""
        rows = self._db.execute("SELECT ident, params, digest, options, reason, keys FROM "
                                "points ORDER BY pos").fetchall()
        return [{"ident": r[0], "params": json.loads(r[1]), "digest": r[2],
                 "options": json.loads(r[3]), "reason": r[4], "keys": json.loads(r[5])}
                for r in rows]

    # -- records ------------------------------------------------------------------------------

    def has(self, key, *, ok_only=False):
        sql = "SELECT status FROM records WHERE key = ?"
        row = self._db.execute(sql, (key,)).fetchone()
        return row is not None and (not ok_only or row[0] == "ok")

    def put(self, key, *, block, digest, config, context, record):
        """Commit one task record (a dict from :func:`~accelgen.explore.metrics.run_task`)
        under ``key``; a record already there is replaced."""
        self._db.execute(
            "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key, block, digest, record["metric"], record["status"], _dumps(config),
             _dumps(context), _dumps(record["tools"]), _dumps(record["values"]),
             record["reason"], record["log"], record["host"], record.get("worker", ""),
             float(record["seconds"]), time.time()))

    def records(self, keys=None):
        """``{key: record dict}`` of ``keys`` (all records when None)."""
        cols = ("key", "block", "digest", "metric", "status", "config", "context", "tools",
                "vals", "reason", "log", "host", "worker", "seconds", "finished")
        rows = self._db.execute(f"SELECT {', '.join(cols)} FROM records "
                                "ORDER BY key").fetchall()
        out = {}
        wanted = None if keys is None else set(keys)
        for row in rows:
            rec = dict(zip(cols, row))
            if wanted is not None and rec["key"] not in wanted:
                continue
            for name in ("config", "context", "tools", "vals"):
                rec[name] = json.loads(rec[name])
            rec["values"] = rec.pop("vals")
            out[rec["key"]] = rec
        return out

    def integrity(self):
        """SQLite's ``integrity_check`` answer (``"ok"`` for a sound file)."""
        return self._db.execute("PRAGMA integrity_check").fetchone()[0]


def open_store(directory):
    """The store of sweep directory ``directory``."""
    return Store(Path(directory) / STORE_NAME)


def _read_only_uri(path):
    """``file:`` URI of ``path`` opened read-only (``#``, ``?`` and ``%`` in the path
    escaped)."""
    return Path(path).resolve().as_uri() + "?mode=ro"


def read_only(path):
    """A read-only connection (for tests and tools that inspect a store)."""
    return closing(sqlite3.connect(_read_only_uri(path), uri=True))


def check_store(path, option):
    """``path`` if it is a sweep store (a SQLite file with the sweep tables), else
    :class:`~accelgen.numerics.ConfigError` naming ``option``; reads only."""
    from ..numerics import ConfigError
    try:
        with read_only(path) as db:
            names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = "
                                              "'table'")}
    except sqlite3.DatabaseError as err:
        raise ConfigError(f"{option}: {str(path)!r} is not allowed ({err}); expected a sweep "
                          f"store ({STORE_NAME})") from None
    if not {"records", "points", "meta"} <= names:
        raise ConfigError(f"{option}: {str(path)!r} is not allowed (not a sweep store: it "
                          f"lacks the sweep tables); expected a sweep store ({STORE_NAME})")
    try:
        with read_only(path) as db:
            found = {table: {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
                     for table in _schema_columns()}
    except sqlite3.DatabaseError as err:
        raise ConfigError(f"{option}: {str(path)!r} is not allowed ({err}); expected a sweep "
                          f"store ({STORE_NAME})") from None
    for table, columns in _schema_columns().items():
        if not columns <= found[table]:
            raise ConfigError(
                f"{option}: {str(path)!r} is not allowed (not a sweep store: its table "
                f"{table} lacks {', '.join(sorted(columns - found[table]))}); expected a "
                f"sweep store ({STORE_NAME})")
    return path


def _schema_columns():
    """``{table: {column}}`` of the store's schema."""
    with closing(sqlite3.connect(":memory:")) as db:
        db.executescript(_SCHEMA)
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = "
                                           "'table'")]
        return {t: {r[1] for r in db.execute(f"PRAGMA table_info({t})")} for t in tables}
