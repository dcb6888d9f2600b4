"""The SQLite :class:`~corral.store.base.Store`: corral's embedded database.

Connection settings, chosen once at open (no per-call pragmas):

* ``journal_mode=WAL``: readers never block the writer and several processes may open
  the same file (the daemon, and e.g. a CLI reading state directly).
* ``synchronous=NORMAL``: in WAL mode a committed transaction survives the process
  crashing or being killed with SIGKILL, which is what corral promises. A power loss or
  OS crash may lose the last few transactions, but never corrupts the database.
* ``foreign_keys=ON`` and a busy timeout, so a second process waits for the write lock
  instead of failing at once.
* ``isolation_level=None`` (autocommit) with explicit ``BEGIN IMMEDIATE`` / ``COMMIT``
  around every write: each write method is one transaction that takes the write lock up
  front, so it can never fail half-way with SQLITE_BUSY on lock upgrade.

The file is created with mode 0600 (SQLite gives its ``-wal``/``-shm`` files the same
mode). The schema version lives in the ``meta`` table; :data:`MIGRATIONS` are applied at
open, in one transaction, and a database from a newer corral is refused.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import CorralError
from ..job import Allocation, Job, JobState, Reason, check_transition
from ..resources import Resources
from ..spec import JobSpec
from .base import (Event, Finish, JobUsage, Requeue, Store, UsageRow, array_ids, check_finish, check_holdable,
                   check_live, check_reason, first_message, first_reason, not_found)
from .filters import JobFilter, glob_match

#: Seconds a connection waits for another process's write lock before giving up.
BUSY_TIMEOUT_S = 10.0

#: ``(version, statements)``: each migration brings the schema from ``version - 1``.
MIGRATIONS: list[tuple[int, list[str]]] = [
    (1, [
        """CREATE TABLE jobs (
            id               INTEGER PRIMARY KEY AUTOINCREMENT,
            name             TEXT    NOT NULL DEFAULT '',
            state            TEXT    NOT NULL,
            reason           TEXT    NOT NULL,
            message          TEXT    NOT NULL DEFAULT '',
            priority         INTEGER NOT NULL DEFAULT 0,
            seq              INTEGER NOT NULL,
            spec_json        TEXT    NOT NULL,
            base_env_json    TEXT    NOT NULL DEFAULT '{}',
            submitted_at     REAL    NOT NULL,
            started_at       REAL,
            ended_at         REAL,
            exit_code        INTEGER,
            signal           INTEGER,
            supervisor_pid   INTEGER,   -- never used; dropped by schema 4
            supervisor_start INTEGER
        )""",
        "CREATE INDEX jobs_state ON jobs(state)",
        """CREATE TABLE allocations (
            job_id        INTEGER PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
            node          TEXT    NOT NULL,
            requests_json TEXT    NOT NULL,
            gpus_json     TEXT    NOT NULL DEFAULT '[]',
            cores_json    TEXT    NOT NULL DEFAULT '[]',
            allocated_at  REAL    NOT NULL,
            released_at   REAL
        )""",
        "CREATE INDEX allocations_active ON allocations(job_id) WHERE released_at IS NULL",
        """CREATE TABLE events (
            id         INTEGER PRIMARY KEY AUTOINCREMENT,
            job_id     INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            ts         REAL    NOT NULL,
            from_state TEXT,
            to_state   TEXT    NOT NULL,
            reason     TEXT    NOT NULL,
            message    TEXT    NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX events_job ON events(job_id)",
    ]),
    (2, [
        "ALTER TABLE jobs ADD COLUMN user TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0",
        """CREATE TABLE usage_series (
            job_id           INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            t0               REAL    NOT NULL,
            t1               REAL    NOT NULL,
            cpu_seconds      REAL    NOT NULL DEFAULT 0,
            memory           INTEGER NOT NULL DEFAULT 0,
            memory_peak      INTEGER NOT NULL DEFAULT 0,
            gpu_util         REAL,
            gpu_memory       INTEGER,
            energy_j         REAL    NOT NULL DEFAULT 0,
            gpu_seconds      REAL    NOT NULL DEFAULT 0,
            idle_gpu_seconds REAL    NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX usage_series_t1 ON usage_series(t1)",
        "CREATE INDEX usage_series_job ON usage_series(job_id)",
        """CREATE TABLE job_usage (
            job_id           INTEGER PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
            rows             INTEGER NOT NULL,
            first            REAL    NOT NULL,
            last             REAL    NOT NULL,
            cpu_seconds      REAL    NOT NULL,
            memory_peak      INTEGER NOT NULL,
            gpu_util_sum     REAL    NOT NULL,
            gpu_util_dt      REAL    NOT NULL,
            gpu_memory_peak  INTEGER,
            energy_j         REAL    NOT NULL,
            gpu_seconds      REAL    NOT NULL,
            idle_gpu_seconds REAL    NOT NULL
        )""",
        "CREATE INDEX jobs_ended ON jobs(ended_at)",
    ]),
    (3, [
        "ALTER TABLE jobs ADD COLUMN uid INTEGER",
        "ALTER TABLE jobs ADD COLUMN gid INTEGER",
        "ALTER TABLE jobs ADD COLUMN queue TEXT NOT NULL DEFAULT 'default'",
        "ALTER TABLE jobs ADD COLUMN array_id INTEGER",
        "ALTER TABLE jobs ADD COLUMN array_index INTEGER",
        "ALTER TABLE jobs ADD COLUMN held INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE jobs ADD COLUMN not_before REAL",
        "CREATE INDEX jobs_array ON jobs(array_id) WHERE array_id IS NOT NULL",
    ]),
    (4, [
        "ALTER TABLE jobs ADD COLUMN retried INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE jobs DROP COLUMN supervisor_pid",
        "ALTER TABLE jobs DROP COLUMN supervisor_start",
        # NULL: one piece, in node/requests_json/gpus_json/cores_json; else every piece.
        "ALTER TABLE allocations ADD COLUMN pieces_json TEXT",
    ]),
    (5, [
        # A client's idempotency key -> the ids its batch got: a retried submit finds them.
        "CREATE TABLE submit_keys (key TEXT PRIMARY KEY, ids_json TEXT NOT NULL, at REAL NOT NULL)",
    ]),
    (6, [
        # Seconds run in attempts whose work the job kept (resumable, preempted by service).
        "ALTER TABLE jobs ADD COLUMN served REAL NOT NULL DEFAULT 0",
    ]),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]

_JOB_COLUMNS = (
    "j.id, j.state, j.reason, j.message, j.seq, j.spec_json, j.base_env_json, j.submitted_at, "
    "j.started_at, j.ended_at, j.exit_code, j.signal, j.user, j.attempts, j.uid, j.gid, j.array_id, "
    "j.array_index, j.held, j.not_before, j.retried, j.served, "
    "a.node, a.requests_json, a.gpus_json, a.cores_json, a.pieces_json"
)
_SELECT_JOBS = f"SELECT {_JOB_COLUMNS} FROM jobs j LEFT JOIN allocations a ON a.job_id = j.id"
_SELECT_EVENTS = "SELECT id, job_id, ts, from_state, to_state, reason, message FROM events"
_INSERT_EVENT = ("INSERT INTO events (job_id, ts, from_state, to_state, reason, message) "
                 "VALUES (?, ?, ?, ?, ?, ?)")
_SERIES_COLUMNS = ("job_id, t0, t1, cpu_seconds, memory, memory_peak, gpu_util, gpu_memory, energy_j, "
                   "gpu_seconds, idle_gpu_seconds")
_USAGE_COLUMNS = ("job_id, rows, first, last, cpu_seconds, memory_peak, gpu_util_sum, gpu_util_dt, "
                  "gpu_memory_peak, energy_j, gpu_seconds, idle_gpu_seconds")


def _series_tuple(r: UsageRow) -> tuple:
    return (r.job_id, r.t0, r.t1, r.cpu_seconds, r.memory, r.memory_peak, r.gpu_util, r.gpu_memory,
            r.energy_j, r.gpu_seconds, r.idle_gpu_seconds)


def _usage_tuple(u: JobUsage) -> tuple:
    return (u.job_id, u.rows, u.first, u.last, u.cpu_seconds, u.memory_peak, u.gpu_util_sum, u.gpu_util_dt,
            u.gpu_memory_peak, u.energy_j, u.gpu_seconds, u.idle_gpu_seconds)


#: Ids per ``IN (...)`` query, well under SQLite's bound-parameter limit.
_CHUNK = 500


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _allocation(node: str, requests_json: str, gpus_json: str, cores_json: str, pieces_json: str | None) -> Allocation:
    if pieces_json is not None:
        return Allocation.from_dict({"pieces": json.loads(pieces_json)})
    return Allocation(node=node, requests=Resources(json.loads(requests_json)),
                      gpus=tuple(json.loads(gpus_json)), cores=tuple(json.loads(cores_json)))


def _allocation_row(job_id: int, a: Allocation, now: float) -> tuple:
    first = a.pieces[0]
    pieces = None if a.single else _dumps([p.to_dict() for p in a.pieces])
    return (job_id, first.node, _dumps(a.requests.as_dict()), _dumps(list(first.gpus)), _dumps(list(first.cores)),
            pieces, now)


def _row_to_job(row: tuple) -> Job:
    (job_id, state, reason, message, seq, spec_json, base_env_json, submitted_at, started_at,
     ended_at, exit_code, signal, user, attempts, uid, gid, array_id, array_index, held, not_before, retried,
     served, node, requests_json, gpus_json, cores_json, pieces_json) = row
    allocation = None
    if node is not None:
        allocation = _allocation(node, requests_json, gpus_json, cores_json, pieces_json)
    return Job(
        id=job_id, spec=JobSpec.from_dict(json.loads(spec_json)), state=JobState(state),
        reason=Reason(reason), message=message, submitted_at=submitted_at,
        started_at=started_at, ended_at=ended_at, exit_code=exit_code, signal=signal,
        allocation=allocation, base_env=json.loads(base_env_json),
        seq=seq, user=user, attempts=attempts, uid=uid, gid=gid, array_id=array_id, array_index=array_index,
        held=bool(held), not_before=not_before, retried=retried, served=served,
    )


def _glob(name: str | None, pattern: str | None) -> bool:
    return name is not None and pattern is not None and glob_match(name, pattern)


def _where(query: JobFilter) -> tuple[list[str], list[Any]]:
    """``query`` as SQL conditions on ``jobs j`` and their parameters."""
    where: list[str] = []
    params: list[Any] = []
    if query.states is not None:
        if not query.states:
            return ["0"], []
        where.append(f"j.state IN ({','.join('?' * len(query.states))})")
        params += sorted(JobState(s).value for s in query.states)
    for column, value in (("j.user", query.user), ("j.queue", query.queue), ("j.array_id", query.array),
                          ("j.array_index", query.index)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if query.name is not None:
        where.append("corral_glob(j.name, ?)")
        params.append(query.name)
    for key, value in query.labels:
        where.append("json_extract(j.spec_json, ?) = ?")
        params += ['$.labels."' + key.replace('"', "") + '"', value]
    for column, op, value in (("j.submitted_at", ">=", query.since), ("j.id", ">=", query.id_min),
                              ("j.id", "<=", query.id_max)):
        if value is not None:
            where.append(f"{column} {op} ?")
            params.append(value)
    return where, params


def _row_to_event(row: tuple) -> Event:
    event_id, job_id, ts, from_state, to_state, reason, message = row
    return Event(event_id, job_id, ts, JobState(from_state) if from_state is not None else None,
                 JobState(to_state), Reason(reason), message)


class SqliteStore(Store):
    """A :class:`Store` in one SQLite file (``":memory:"`` for a private in-memory one)."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = BUSY_TIMEOUT_S):
        self.path = str(path)
        if self.path != ":memory:" and not self.path.startswith("file:"):
            _create_private(Path(self.path))
        self._lock = threading.RLock()
        self._busy_ms = int(busy_timeout * 1000)
        self._contended = False
        self._conn = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None,
                                     check_same_thread=False)
        self._closed = False
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._conn.create_function("corral_glob", 2, _glob, deterministic=True)
            self._migrate()
        except BaseException:
            self._conn.close()
            raise

    # Plumbing ------------------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction holding the write lock from its start."""
        conn = self._conn
        with self._lock:
            self._begin(conn)
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _begin(self, conn: sqlite3.Connection) -> None:
        """Take the write lock. While another process holds it past the busy timeout
        (someone's ``sqlite3`` shell in a transaction), later writes fail at once rather
        than each waiting the whole timeout -- a daemon's event loop would stall on
        every one -- until a write gets the lock again."""
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if not self._contended and "locked" in str(exc):
                self._contended = True
                conn.execute("PRAGMA busy_timeout = 0")
            raise
        if self._contended:
            self._contended = False
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")

    def _schema_version(self) -> int:
        try:
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError:  # no meta table yet: a new database
            return 0
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        if self._schema_version() == SCHEMA_VERSION:
            return
        with self._tx() as c:
            c.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            version = self._schema_version()  # again, now under the write lock
            if version > SCHEMA_VERSION:
                raise CorralError(
                    f"database {self.path} has schema version {version}, newer than this corral "
                    f"supports ({SCHEMA_VERSION}); upgrade corral"
                )
            for target, statements in MIGRATIONS:
                if target > version:
                    for statement in statements:
                        c.execute(statement)
            c.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                      "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (str(SCHEMA_VERSION),))

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    # Jobs ----------------------------------------------------------------------------
    def add_jobs(self, jobs: list[Job], now: float, key: str | None = None) -> list[Job]:
        specs = [job.spec.to_dict() for job in jobs]
        payload = [(spec.get("name", ""), spec.get("priority", 0), _dumps(spec), _dumps(dict(job.base_env)),
                    job.user, job.uid, job.gid, job.spec.queue, job.array_index, int(job.held))
                   for spec, job in zip(specs, jobs)]
        with self._tx() as c:
            base = c.execute(
                "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'jobs'), 0), "
                "COALESCE((SELECT MAX(id) FROM jobs), 0))"
            ).fetchone()[0]
            ids = range(base + 1, base + 1 + len(jobs))
            arrays = array_ids(jobs, ids)
            c.executemany(
                "INSERT INTO jobs (id, name, state, reason, message, priority, seq, spec_json, "
                "base_env_json, submitted_at, user, uid, gid, queue, array_id, array_index, held) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(job_id, name, JobState.PENDING.value, first_reason(job).value, first_message(job), priority,
                  job_id, spec_json, env_json, now, user, uid, gid, queue, array_id, index, held)
                 for job_id, job, array_id, (name, priority, spec_json, env_json, user, uid, gid, queue, index, held)
                 in zip(ids, jobs, arrays, payload)],
            )
            c.executemany(_INSERT_EVENT, [(job_id, now, None, JobState.PENDING.value,
                                           first_reason(job).value, first_message(job))
                                          for job_id, job in zip(ids, jobs)])
            if key is not None:
                c.execute("INSERT INTO submit_keys (key, ids_json, at) VALUES (?, ?, ?)",
                          (key, _dumps(list(ids)), now))
        return [Job(id=job_id, spec=JobSpec.from_dict(spec), submitted_at=now, reason=first_reason(job),
                    message=first_message(job), base_env=dict(job.base_env), seq=job_id, user=job.user,
                    uid=job.uid, gid=job.gid, array_id=array_id, array_index=job.array_index, held=job.held)
                for job_id, spec, job, array_id in zip(ids, specs, jobs, arrays)]

    def jobs_for_key(self, key: str) -> list[Job] | None:
        rows = self._query("SELECT ids_json FROM submit_keys WHERE key = ?", (key,))
        if not rows:
            return None
        return self.get_jobs(json.loads(rows[0][0]))

    def forget_keys(self, before: float) -> int:
        with self._tx() as c:
            return c.execute("DELETE FROM submit_keys WHERE at < ?", (before,)).rowcount

    def get_job(self, job_id: int) -> Job:
        rows = self._query(f"{_SELECT_JOBS} WHERE j.id = ?", (job_id,))
        if not rows:
            raise not_found(job_id)
        return _row_to_job(rows[0])

    def get_jobs(self, ids: Iterable[int]) -> list[Job]:
        wanted = sorted(set(ids))
        rows: list[tuple] = []
        for i in range(0, len(wanted), _CHUNK):
            chunk = wanted[i:i + _CHUNK]
            rows += self._query(f"{_SELECT_JOBS} WHERE j.id IN ({','.join('?' * len(chunk))})", chunk)
        rows.sort(key=lambda r: r[0])
        return [_row_to_job(r) for r in rows]

    def list_jobs(self, states: set[JobState] | None = None, limit: int | None = None) -> list[Job]:
        sql, params = _SELECT_JOBS, []
        if states is not None:
            if not states:
                return []
            sql += f" WHERE j.state IN ({','.join('?' * len(states))})"
            params += [JobState(s).value for s in states]
        sql += " ORDER BY j.id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(limit, 0))
        return [_row_to_job(r) for r in self._query(sql, params)]

    def find_jobs(self, query: JobFilter) -> list[Job]:
        where, params = _where(query)
        sql = _SELECT_JOBS + (" WHERE " + " AND ".join(where) if where else "")
        if query.limit is None:
            return [_row_to_job(r) for r in self._query(sql + " ORDER BY j.id", params)]
        if query.newest:
            rows = self._query(sql + " ORDER BY j.id DESC LIMIT ?", [*params, max(query.limit, 0)])
            return [_row_to_job(r) for r in reversed(rows)]
        return [_row_to_job(r) for r in self._query(sql + " ORDER BY j.id LIMIT ?", [*params, max(query.limit, 0)])]

    def array_counts(self, array_ids: Iterable[int]) -> dict[int, dict[JobState, int]]:
        wanted = sorted(set(array_ids))
        out: dict[int, dict[JobState, int]] = {}
        for i in range(0, len(wanted), _CHUNK):
            chunk = wanted[i:i + _CHUNK]
            for array_id, state, n in self._query(
                    f"SELECT array_id, state, COUNT(*) FROM jobs WHERE array_id IN ({','.join('?' * len(chunk))}) "
                    "GROUP BY array_id, state", chunk):
                out.setdefault(array_id, {})[JobState(state)] = n
        return out

    def recent_run_times(self, limit: int) -> list[tuple[str, float]]:
        rows = self._query("SELECT user, ended_at - started_at + served FROM jobs WHERE state = ? AND started_at IS NOT NULL "
                           "AND ended_at IS NOT NULL ORDER BY ended_at DESC, id DESC LIMIT ?",
                           [JobState.SUCCEEDED.value, max(limit, 0)])
        return [(user, float(seconds)) for user, seconds in reversed(rows)]

    # Lifecycle -----------------------------------------------------------------------
    def commit_cycle(self, starts: list[tuple[int, Allocation]], reasons: list[tuple[int, Reason, str]],
                     now: float) -> None:
        reasons = [(job_id, Reason(reason), message) for job_id, reason, message in reasons]
        with self._lock:
            if not starts:
                # Look first without the write lock: most cycles change no reason.
                if not reasons or not self._changed_reasons(self._conn, reasons):
                    return
            with self._tx() as c:
                started: set[int] = set()
                for job_id, _ in starts:
                    found = c.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
                    if found is None:
                        raise not_found(job_id)
                    old = JobState.RUNNING if job_id in started else JobState(found[0])
                    check_transition(job_id, old, JobState.RUNNING)
                    started.add(job_id)
                changes = self._changed_reasons(c, reasons) if reasons else []
                if starts:
                    c.executemany(
                        "UPDATE jobs SET state = ?, reason = ?, message = '', started_at = ?, "
                        "attempts = attempts + 1 WHERE id = ?",
                        [(JobState.RUNNING.value, Reason.LAUNCHED.value, now, job_id) for job_id, _ in starts])
                    c.executemany(
                        "INSERT INTO allocations (job_id, node, requests_json, gpus_json, cores_json, pieces_json, "
                        "allocated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [_allocation_row(job_id, a, now) for job_id, a in starts])
                    c.executemany(_INSERT_EVENT, [(job_id, now, JobState.PENDING.value, JobState.RUNNING.value,
                                                   Reason.LAUNCHED.value, "") for job_id, _ in starts])
                if changes:
                    c.executemany("UPDATE jobs SET reason = ?, message = ? WHERE id = ?",
                                  [(new.value, message, job_id) for job_id, _, _, new, message in changes])
                    c.executemany(_INSERT_EVENT, [
                        (job_id, now, state.value, state.value, new.value, message)
                        for job_id, state, old, new, message in changes if new is not old
                    ])

    def apply_ends(self, finishes: list[Finish], requeues: list[Requeue], usage: list[UsageRow] = ()) -> None:
        if not finishes and not requeues and not usage:
            return
        with self._tx() as c:
            if usage:
                self._record_usage(c, list(usage))
            ended: set[int] = set()
            for f in finishes:
                found = c.execute("SELECT state FROM jobs WHERE id = ?", (f.job_id,)).fetchone()
                if found is None:
                    raise not_found(f.job_id)
                old = JobState.SUCCEEDED if f.job_id in ended else JobState(found[0])
                check_finish(f.job_id, old, f.state, f.reason)
                ended.add(f.job_id)
                c.execute(
                    "UPDATE jobs SET state = ?, reason = ?, message = ?, exit_code = ?, signal = ?, "
                    "ended_at = ? WHERE id = ?",
                    (f.state.value, f.reason.value, f.message, f.exit_code, f.signal, f.ended_at, f.job_id),
                )
                c.execute("UPDATE allocations SET released_at = ? WHERE job_id = ? AND released_at IS NULL",
                          (f.ended_at, f.job_id))
                c.execute(_INSERT_EVENT, (f.job_id, f.ended_at, old.value, f.state.value, f.reason.value,
                                          f.message))
            for r in requeues:
                found = c.execute("SELECT state FROM jobs WHERE id = ?", (r.job_id,)).fetchone()
                if found is None:
                    raise not_found(r.job_id)
                old = JobState.PENDING if r.job_id in ended else JobState(found[0])
                check_transition(r.job_id, old, JobState.PENDING)
                check_reason(r.job_id, JobState.PENDING, r.reason)
                ended.add(r.job_id)
                c.execute("UPDATE jobs SET state = ?, reason = ?, message = ?, started_at = NULL, not_before = ?, "
                          "retried = retried + ?, served = served + ? WHERE id = ?",
                          (JobState.PENDING.value, r.reason.value, r.message, r.not_before, int(r.retry),
                           float(r.served), r.job_id))
                c.execute("DELETE FROM allocations WHERE job_id = ?", (r.job_id,))
                c.execute(_INSERT_EVENT, (r.job_id, r.at, old.value, JobState.PENDING.value, r.reason.value,
                                          r.message))

    def set_reason(self, job_id: int, reason: Reason, message: str = "", *,
                   now: float | None = None, event: bool = False) -> None:
        if not event:
            self.set_reasons([(job_id, reason, message)], now=now)
            return
        reason = Reason(reason)
        ts = time.time() if now is None else now
        with self._tx() as c:
            found = c.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if found is None:
                raise not_found(job_id)
            state = JobState(found[0])
            check_live(job_id, state)
            check_reason(job_id, state, reason)
            c.execute("UPDATE jobs SET reason = ?, message = ? WHERE id = ?", (reason.value, message, job_id))
            c.execute(_INSERT_EVENT, (job_id, ts, state.value, state.value, reason.value, message))

    def _changed_reasons(self, c: sqlite3.Connection, updates: list[tuple[int, Reason, str]]
                         ) -> list[tuple[int, JobState, Reason, Reason, str]]:
        """Check ``updates``; return those that change something, as
        ``(job_id, state, old_reason, new_reason, message)``."""
        current: dict[int, tuple[JobState, Reason, str]] = {}
        wanted = sorted({job_id for job_id, _, _ in updates})
        for i in range(0, len(wanted), _CHUNK):
            chunk = wanted[i:i + _CHUNK]
            for job_id, state, reason, message in c.execute(
                f"SELECT id, state, reason, message FROM jobs WHERE id IN ({','.join('?' * len(chunk))})",
                chunk,
            ):
                current[job_id] = (JobState(state), Reason(reason), message)
        changes = []
        for job_id, reason, message in updates:
            if job_id not in current:
                raise not_found(job_id)
            state, old_reason, old_message = current[job_id]
            check_live(job_id, state)
            check_reason(job_id, state, reason)
            if reason is not old_reason or message != old_message:
                changes.append((job_id, state, old_reason, reason, message))
                current[job_id] = (state, reason, message)
        return changes

    def active_allocations(self) -> dict[int, Allocation]:
        rows = self._query(
            "SELECT job_id, node, requests_json, gpus_json, cores_json, pieces_json FROM allocations "
            "WHERE released_at IS NULL ORDER BY job_id"
        )
        return {job_id: _allocation(node, requests_json, gpus_json, cores_json, pieces_json)
                for job_id, node, requests_json, gpus_json, cores_json, pieces_json in rows}

    def update_spec(self, job_id: int, spec: JobSpec, message: str, now: float) -> None:
        data = spec.to_dict()
        with self._tx() as c:
            found = c.execute("SELECT state, reason FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if found is None:
                raise not_found(job_id)
            state = JobState(found[0])
            check_live(job_id, state)
            c.execute("UPDATE jobs SET spec_json = ?, name = ?, priority = ?, queue = ? WHERE id = ?",
                      (_dumps(data), data.get("name", ""), data.get("priority", 0), spec.queue, job_id))
            c.execute(_INSERT_EVENT, (job_id, now, state.value, state.value, found[1], message))

    def set_held(self, ids: Iterable[int], held: bool, message: str, now: float) -> list[int]:
        changed = []
        with self._tx() as c:
            for job_id in sorted(set(ids)):
                found = c.execute("SELECT state, held FROM jobs WHERE id = ?", (job_id,)).fetchone()
                if found is None:
                    raise not_found(job_id)
                check_holdable(job_id, JobState(found[0]))
                if bool(found[1]) == held:
                    continue
                reason = Reason.HELD if held else Reason.QUEUED
                c.execute("UPDATE jobs SET held = ?, reason = ?, message = ? WHERE id = ?",
                          (int(held), reason.value, message, job_id))
                c.execute(_INSERT_EVENT, (job_id, now, JobState.PENDING.value, JobState.PENDING.value,
                                          reason.value, message))
                changed.append(job_id)
        return changed

    # Usage ---------------------------------------------------------------------------
    @staticmethod
    def _record_usage(c: sqlite3.Connection, rows: list[UsageRow]) -> None:
        totals: dict[int, JobUsage] = {}
        for job_id in sorted({r.job_id for r in rows}):
            if c.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is None:
                raise not_found(job_id)
            found = c.execute(f"SELECT {_USAGE_COLUMNS} FROM job_usage WHERE job_id = ?", (job_id,)).fetchone()
            totals[job_id] = JobUsage(*found) if found else JobUsage(job_id)
        for r in rows:
            totals[r.job_id] = totals[r.job_id].plus(r)
        c.executemany(f"INSERT INTO usage_series ({_SERIES_COLUMNS}) VALUES ({','.join('?' * 11)})",
                      [_series_tuple(r) for r in rows])
        c.executemany(f"INSERT OR REPLACE INTO job_usage ({_USAGE_COLUMNS}) VALUES ({','.join('?' * 12)})",
                      [_usage_tuple(u) for u in totals.values()])

    def job_usage(self, ids: Iterable[int]) -> dict[int, JobUsage]:
        wanted = sorted(set(ids))
        out: dict[int, JobUsage] = {}
        for i in range(0, len(wanted), _CHUNK):
            chunk = wanted[i:i + _CHUNK]
            for row in self._query(f"SELECT {_USAGE_COLUMNS} FROM job_usage WHERE job_id IN "
                                   f"({','.join('?' * len(chunk))})", chunk):
                out[row[0]] = JobUsage(*row)
        return dict(sorted(out.items()))

    def usage_rows(self, since: float | None = None, job_id: int | None = None) -> list[UsageRow]:
        sql, params, where = f"SELECT {_SERIES_COLUMNS} FROM usage_series", [], []
        if since is not None:
            where.append("t1 >= ?")
            params.append(since)
        if job_id is not None:
            where.append("job_id = ?")
            params.append(job_id)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [UsageRow(*row) for row in self._query(sql + " ORDER BY t1, job_id", params)]

    # Retention -----------------------------------------------------------------------
    def prune(self, before: float) -> list[int]:
        terminal = [s.value for s in JobState if s.terminal]
        with self._tx() as c:
            ids = [row[0] for row in c.execute(
                f"SELECT id FROM jobs WHERE ended_at < ? AND state IN ({','.join('?' * len(terminal))}) ORDER BY id",
                (before, *terminal))]
            for i in range(0, len(ids), _CHUNK):
                chunk = ids[i:i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                for table, column in (("usage_series", "job_id"), ("job_usage", "job_id"),
                                      ("events", "job_id"), ("allocations", "job_id"), ("jobs", "id")):
                    c.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", chunk)
        return ids

    # History -------------------------------------------------------------------------
    def events(self, job_id: int | None = None, limit: int | None = None) -> list[Event]:
        sql, params = _SELECT_EVENTS, []
        if job_id is not None:
            sql += " WHERE job_id = ?"
            params.append(job_id)
        if limit is None:
            rows = self._query(sql + " ORDER BY id", params)
        else:
            rows = self._query(sql + " ORDER BY id DESC LIMIT ?", [*params, max(limit, 0)])
            rows.reverse()
        return [_row_to_event(r) for r in rows]

    def events_after(self, after: int, limit: int = 1000) -> list[Event]:
        rows = self._query(_SELECT_EVENTS + " WHERE id > ? ORDER BY id LIMIT ?", [int(after), max(limit, 0)])
        return [_row_to_event(r) for r in rows]

    def last_event_id(self) -> int:
        row = self._query("SELECT COALESCE(MAX(id), 0) FROM events", [])
        return int(row[0][0])

    # Settings ------------------------------------------------------------------------
    def reserve_ids_above(self, job_id: int) -> None:
        with self._tx() as c:
            current = c.execute("SELECT seq FROM sqlite_sequence WHERE name = 'jobs'").fetchone()
            if current is None:
                c.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('jobs', ?)", (int(job_id),))
            elif current[0] < job_id:
                c.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'jobs'", (int(job_id),))

    def get_meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"meta value for {key} must be a string, got {type(value).__name__}")
        with self._tx() as c:
            c.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                      "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._conn.execute("PRAGMA optimize")
            except sqlite3.Error:
                pass
            self._conn.close()


def _create_private(path: Path) -> None:
    """Create the database file (and its directory) readable by its owner only."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
