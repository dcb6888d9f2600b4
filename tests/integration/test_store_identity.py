"""A daemon never starts silently on a store that is not its home's: a deleted, emptied
or replaced corral.db with job directories beside it stops the start with one line
that says how to recover; ``corral up --new-store`` kills what the old jobs left
running, keeps their files and starts with ids above theirs."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

from corral_harness import proc_alive, wait_until


def _refusal(c) -> str:
    res = c.run("up")
    assert res.returncode == 1, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_a_deleted_store_stops_the_start_and_new_store_recovers(corral):
    c = corral
    c.up("--simulate-gpus", "1")
    job = c.submit("--gpus", "1", "--", "sh", "-c", "echo pid=$$; exec sleep 600")
    pid = c.job_main_pid(job)
    c.down()
    assert proc_alive(pid)                                 # it runs on while the daemon is down
    for name in os.listdir(c.home):
        if name.startswith("corral.db"):
            os.unlink(os.path.join(c.home, name))
    line = _refusal(c)
    assert line.startswith(f"error: corral daemon failed to start (exit 2): the store {c.home}/corral.db was "
                           "deleted, emptied or replaced; 1 job directories"), line
    assert "corral up --new-store" in line
    assert not c.socket_exists() and proc_alive(pid)       # nothing started, nothing touched
    assert _refusal(c) == line                             # and again: the refusal is not a one-time thing
    c.up("--new-store", "--simulate-gpus", "1")
    wait_until(lambda: not proc_alive(pid), what="the old job's process to be killed")
    lost = [n for n in os.listdir(c.home) if n.startswith("jobs.lost-")]
    assert len(lost) == 1 and (Path(c.home, lost[0], str(job), "stdout.log")).read_text().startswith("pid=")
    again = c.submit("--gpus", "1", "--", "true")
    assert again > job and c.wait_done(again)[0]["state"] == "Succeeded"   # ids above the old ones
    res = c.run("up", "--new-store")
    assert res.returncode == 1 and "the daemon is running on its store" in res.stderr


def test_a_replaced_store_is_named_and_a_lost_id_file_is_written_again(corral, corral_factory):
    c, other = corral, corral_factory()
    c.up()
    c.submit("--", "true")
    other.up()
    c.down()
    other.down()
    os.unlink(os.path.join(c.home, "store.id"))             # only the id file lost: nothing is
    c.up()
    assert Path(c.home, "store.id").read_text().startswith("corral store ")
    c.down()
    for name in os.listdir(c.home):
        if name.startswith("corral.db"):
            os.unlink(os.path.join(c.home, name))
    shutil.copy(os.path.join(other.home, "corral.db"), os.path.join(c.home, "corral.db"))
    ours = Path(c.home, "store.id").read_text().split()[-1]
    theirs = sqlite3.connect(os.path.join(c.home, "corral.db")).execute(
        "SELECT value FROM meta WHERE key = 'store_id'").fetchone()[0]
    line = _refusal(c)
    assert f"was replaced by another one (id {theirs}, this home's is {ours})" in line, line


def test_a_store_deleted_while_the_daemon_runs_refuses_submits_loudly(corral):
    c = corral
    c.up()
    first = c.submit("--", "true")
    os.unlink(os.path.join(c.home, "corral.db"))
    res = c.run("submit", "--", "true")
    assert res.returncode == 1
    assert res.stderr == (f"error: the store {c.home}/corral.db was deleted while the daemon ran: nothing can be "
                          "kept now; stop the daemon (corral down) and restore corral.db, or start again with "
                          "corral up --new-store\n")
    assert c.show(first)["id"] == first                    # reads are still served
    wait_until(lambda: "was deleted while the daemon ran" in Path(c.home, "daemon.log").read_text(),
               what="the daemon to log the fault")


def test_an_older_copy_of_the_store_names_the_jobs_it_does_not_know(corral):
    """A backup restored over a store that had jobs since: the jobs it does not know
    still run and hold GPUs, so the start stops; --new-store sets only those aside."""
    c = corral
    c.up("--simulate-gpus", "1")
    kept = c.submit("--", "true")
    c.wait_done(kept)
    backup = sqlite3.connect(os.path.join(c.home, "corral.db"))
    copy = sqlite3.connect(os.path.join(c.home, "old.db"))
    backup.backup(copy)
    backup.close()
    copy.close()
    job = c.submit("--gpus", "1", "--", "sh", "-c", "echo pid=$$; exec sleep 600")
    pid = c.job_main_pid(job)
    c.down()
    for name in os.listdir(c.home):
        if name.startswith("corral.db"):
            os.unlink(os.path.join(c.home, name))
    os.replace(os.path.join(c.home, "old.db"), os.path.join(c.home, "corral.db"))
    line = _refusal(c)
    assert f"corral.db knows no job {job}, although" in line and "corral up --new-store" in line, line
    assert proc_alive(pid) and not c.socket_exists()
    c.up("--new-store", "--simulate-gpus", "1")
    wait_until(lambda: not proc_alive(pid), what="the unknown job's process to be killed")
    assert c.show(kept)["state"] == "Succeeded"           # what the copy knows is kept, with its files
    assert Path(c.home, "jobs", str(kept)).is_dir()
    lost = [n for n in os.listdir(c.home) if n.startswith("jobs.lost-")]
    assert len(lost) == 1 and Path(c.home, lost[0], str(job), "stdout.log").read_text().startswith("pid=")
    again = c.submit("--gpus", "1", "--", "true")
    assert again > job and c.wait_done(again)[0]["state"] == "Succeeded"
