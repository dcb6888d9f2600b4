"""The store's identity: a daemon never starts silently on a store that is not its home's.

When a home's store is made, a random id goes into the database (meta ``store_id``) and
into ``store.id`` beside it. At every start both are compared, and the job directories
(``jobs/N``) are counted:

* the same id: the store is the home's;
* the database has an id and ``store.id`` is missing: written again (nothing is lost);
* ``store.id`` names an id the database does not have (the database was deleted,
  emptied or replaced by another one), or there is neither id but job directories
  exist and the database knows no job (a store emptied before ids existed): the daemon
  does not start, and says what happened and how to recover.

The way forward when no backup of ``corral.db`` exists is ``corral up --new-store``:
the processes of the old jobs (everything with a file of ``jobs/`` open: supervisors,
jobs) are killed, their GPUs free again, ``jobs/`` is kept as ``jobs.lost-TIME`` (logs
and exit codes, for a person to read), and the daemon starts on the empty store. Job
ids start above every old one, so nothing collides.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from typing import TYPE_CHECKING

from ..errors import CorralError

if TYPE_CHECKING:
    from ..paths import Paths
    from ..store.base import Store

ID_FILE = "store.id"
META_KEY = "store_id"


class StoreMismatch(CorralError):
    """The store is not the one this home had."""


def _read_file(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read().strip()
    except FileNotFoundError:
        return None
    return text.split()[-1] if text else ""


def _write_file(path: str, ident: str) -> None:
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(f"corral store {ident}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def job_dirs(paths: "Paths") -> list[int]:
    try:
        return sorted(int(n) for n in os.listdir(paths.jobs) if n.isdigit())
    except FileNotFoundError:
        return []


def check(paths: "Paths", store: "Store", *, new_store: bool = False) -> str:
    """Make sure ``store`` is this home's (see the module docstring); its id."""
    id_path = os.path.join(paths.home, ID_FILE)
    in_db = store.get_meta(META_KEY)
    in_file = _read_file(id_path)
    dirs = job_dirs(paths)
    known = bool(store.list_jobs(limit=1))
    problem = None
    if in_file and in_db != in_file:
        problem = ("was deleted, emptied or replaced" if in_db is None else
                   f"was replaced by another one (id {in_db}, this home's is {in_file})")
    elif in_db is None and in_file is None and dirs and not known:
        problem = "knows no job although the home has job directories (it was emptied or replaced)"
    if problem is not None:
        if not new_store:
            raise StoreMismatch(
                f"the store {paths.db} {problem}; {len(dirs)} job directories in {paths.jobs} are not "
                f"tracked by it and their processes may still run. Nothing was started. Restore corral.db "
                f"from a backup, or run `corral up --new-store` to kill what the old jobs left running, keep "
                f"their logs in jobs.lost-TIME and start on an empty store")
        _start_over(paths, store, dirs)
        in_db = None
    else:
        orphans = _orphans(store, dirs)
        if orphans and not new_store:
            raise StoreMismatch(
                f"the store {paths.db} knows no job {_some(orphans)}, although {paths.jobs} has their "
                f"directories: it was replaced by an older copy (or restored from a backup), and those jobs' "
                f"processes may still run and hold GPUs. Nothing was started. Run `corral up --new-store` to "
                f"kill what they left running, keep their directories in jobs.lost-TIME and go on with this "
                f"store's {len(dirs) - len(orphans)} known jobs")
        if orphans:
            _set_aside(paths, store, orphans)
    if in_db is None:
        in_db = uuid.uuid4().hex
        store.set_meta(META_KEY, in_db)
    if in_file != in_db:
        _write_file(id_path, in_db)
    return in_db


def _orphans(store: "Store", dirs: list[int]) -> list[int]:
    """Job directories the store has no job for (pruned jobs' directories are removed
    with them, so these were made by jobs of another, newer copy of the store)."""
    if not dirs:
        return []
    known = {job.id for job in store.get_jobs(dirs)}
    return [d for d in dirs if d not in known]


def _some(ids: list[int]) -> str:
    shown = ", ".join(map(str, ids[:5]))
    return shown + (f" (and {len(ids) - 5} more)" if len(ids) > 5 else "")


def _set_aside(paths: "Paths", store: "Store", orphans: list[int]) -> None:
    """--new-store on a store that is older than its job directories: stop what the
    unknown jobs left running, move their directories aside, keep everything else."""
    lost = f"{paths.jobs}.lost-{time.strftime('%Y%m%d-%H%M%S')}"
    os.makedirs(lost, exist_ok=True)
    killed = 0
    for job_id in orphans:
        where = os.path.join(paths.jobs, str(job_id))
        killed += kill_holders(where)
        os.replace(where, os.path.join(lost, str(job_id)))
    store.reserve_ids_above(max(orphans))
    import logging

    logging.getLogger("corral.daemon").warning(
        "--new-store: %d job director(y/ies) the store did not know moved to %s; killed %d process(es)",
        len(orphans), lost, killed)


def _start_over(paths: "Paths", store: "Store", dirs: list[int]) -> None:
    killed = kill_holders(paths.jobs)
    if os.path.isdir(paths.jobs):
        os.replace(paths.jobs, f"{paths.jobs}.lost-{time.strftime('%Y%m%d-%H%M%S')}")
    if dirs:
        store.reserve_ids_above(max(dirs))
    import logging

    logging.getLogger("corral.daemon").warning(
        "--new-store: killed %d process(es) of the old jobs; their directories are kept as %s.lost-*",
        killed, paths.jobs)


def kill_holders(directory: str) -> int:
    """SIGKILL every process (and its process group) with a file under ``directory``
    open or as its working directory; how many."""
    prefix = os.path.realpath(directory) + os.sep
    me = os.getpid()
    hit: set[int] = set()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        pid = int(name)
        try:
            targets = [os.readlink(f"/proc/{pid}/cwd")]
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
                except OSError:
                    continue
        except OSError:
            continue
        if any(t.startswith(prefix) for t in targets):
            hit.add(pid)
    for pid in hit:
        try:
            pgid = os.getpgid(pid)
            if pgid != os.getpgid(me):
                os.killpg(pgid, signal.SIGKILL)
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return len(hit)


class StoreGone(CorralError):
    """The store's file was deleted or replaced while the daemon ran."""

    status = 503


class Watch:
    """While the daemon runs: is ``corral.db`` still the file it opened? (SQLite writes on
    happily into a deleted file, and whatever it acknowledges then is gone at the next
    start.)"""

    def __init__(self, db: str):
        self.db = db
        self.inode = self._inode()
        self.reported = False

    def _inode(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.db)
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino

    def fault(self) -> str | None:
        now = self._inode()
        if now == self.inode:
            return None
        return "was deleted" if now is None else "was replaced"

    def require(self) -> None:
        """Raise :class:`StoreGone` (503) when the store's file is not the one opened."""
        why = self.fault()
        if why is not None:
            raise StoreGone(f"the store {self.db} {why} while the daemon ran: nothing can be kept now; stop the "
                            "daemon (corral down) and restore corral.db, or start again with corral up --new-store")
