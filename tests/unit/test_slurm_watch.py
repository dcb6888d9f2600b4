"""The Slurm executor's threads against a fake Slurm client: a call that waits on a dead
node (``sstat`` asks the node's slurmd) never holds up reading the nodes, so a lost
node's jobs end NodeLost as soon as Slurm says so."""

from __future__ import annotations

import asyncio
import threading

from corral.executors.slurm import SlurmExecutor
from corral.job import Allocation, Piece

from test_slurm_parts import entry, make_job


class FakeSlurm:
    """Three nodes; every job corral submits runs on the nodes it was pinned to; ``sstat``
    waits until released, as it does on a node whose slurmd is dead."""

    def __init__(self):
        self.states = {f"n{i}": "idle" for i in range(3)}
        self.jobs: dict[int, dict] = {}
        self.sstat_waiting = threading.Event()
        self.release = threading.Event()
        self.sstat_returned = threading.Event()
        self.cancelled: list[int] = []

    def sinfo(self):
        return {"nodes": [entry(name, state=s, flags=("NOT_RESPONDING",) if s == "lost" else (),
                                gres="gpu:a100:2", partitions=("p",)) for name, s in self.states.items()]}

    def squeue(self, job_ids=None):
        return [j for i, j in self.jobs.items() if job_ids is None or i in job_ids]

    def squeue_named(self, name):
        return [j for j in self.jobs.values() if j["name"] == name]

    def sbatch(self, args, script, env):
        slurm_id = 100 + len(self.jobs)
        name = next(a.split("=", 1)[1] for a in args if a.startswith("--job-name="))
        nodes = next(a.split("=", 1)[1] for a in args if a.startswith("--nodelist="))
        self.jobs[slurm_id] = {"job_id": slurm_id, "name": name, "job_state": "RUNNING", "nodes": nodes,
                               "start_time": 1, "state_reason": "None"}
        return slurm_id

    def scancel(self, slurm_id, signal=None):
        self.cancelled.append(slurm_id)
        self.jobs.pop(slurm_id, None)

    def sstat(self, slurm_ids):
        self.sstat_waiting.set()
        self.release.wait(60)
        self.sstat_returned.set()
        return ""

    def completed(self, name):
        return []


def test_a_lost_node_is_noticed_while_sstat_waits_on_it(tmp_path):
    fake = FakeSlurm()
    loop = asyncio.new_event_loop()
    ends: dict[int, object] = {}
    done = threading.Event()

    def on_exit(job_id, status):
        ends[job_id] = (status, fake.sstat_returned.is_set())
        done.set()

    ex = SlurmExecutor("p", on_exit, loop, home=str(tmp_path), client=fake, job_poll=0.05, node_poll=0.05)
    try:
        job, alloc = make_job(gpus=1, command=("sleep", "600"))
        alloc = Allocation(pieces=(Piece("n2", alloc.pieces[0].requests, gpus=(0,)),))
        ex.launch(job, alloc)
        assert fake.sstat_waiting.wait(20), "the usage reader never asked sstat about the running job"
        fake.states["n2"] = "lost"                       # Slurm: not responding, while sstat hangs
        for _ in range(400):                             # the loop runs what the threads hand it
            loop.run_until_complete(asyncio.sleep(0.05))
            if done.is_set():
                break
        status, sstat_had_returned = ends[job.id]
        assert not sstat_had_returned, "the lost node was noticed only once sstat gave up"
        assert status.node_lost == "n2" and "n2 was lost" in status.stop_message
        assert fake.cancelled, "the lost node's job was not cancelled in Slurm"
    finally:
        fake.release.set()
        ex.close()
        loop.close()


def test_the_hand_off_writes_to_a_waiting_scripts_fifo_else_leaves_the_go_file(tmp_path):
    import os
    import time as _time

    loop = asyncio.new_event_loop()
    ex = SlurmExecutor("p", lambda *a: None, loop, home=str(tmp_path), client=FakeSlurm())
    try:
        here, elsewhere = "7.1", "8.1"
        for name in (here, elsewhere):
            ex._make_fifo(name)
            ex._handoff[name] = _time.monotonic() + 10
        script_end = os.open(ex.wake / here, os.O_RDONLY | os.O_NONBLOCK)   # a script on this host
        try:
            ex._release([here, elsewhere])
            assert os.read(script_end, 16) == b"go\n"
        finally:
            os.close(script_end)
        assert not (ex.ended / f"{here}.go").exists()          # woken through the FIFO alone
        assert (ex.ended / f"{elsewhere}.go").exists()         # nobody on the FIFO here: the file
        assert os.listdir(ex.wake) == [] and not ex._handoff
    finally:
        ex.close()
        loop.close()
