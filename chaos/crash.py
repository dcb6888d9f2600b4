"""Crash under load: the daemon is SIGKILLed again and again while clients submit and
jobs start and end; every acknowledged job must run exactly once, end with its own exit
code, and no GPU or core may ever be held by two jobs at the same time. Now and then a
job's supervisor is SIGKILLed too while the daemon is down: that job ends SupervisorLost
(its exit code died with its supervisor), and what it ran must be killed all the same.
Every job leaves a detached child behind (``setsid sleep``): at the end no process and
no cgroup of any job may be left.

Each job writes a ledger entry when it starts (time, CUDA_VISIBLE_DEVICES, CORRAL_CPUS)
and when it ends, into a directory outside corral's home: the ledger is what really ran,
the store is what corral says ran, and the two must agree.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
import uuid
from pathlib import Path

from harness import Home, Result, job_cgroups, wait_for

TERMINAL = ("Succeeded", "Failed", "Cancelled")


def job_command(ledger: Path, seconds: float, code: int) -> str:
    return (f'L={ledger}/$CORRAL_JOB_ID.$$; echo "$(date +%s.%N)|$CUDA_VISIBLE_DEVICES|$CORRAL_CPUS" > $L.start; '
            f'setsid sleep 600 </dev/null >/dev/null 2>&1 & '
            f'sleep {seconds:.2f}; date +%s.%N > $L.end; exit {code}')


def supervisors(home: Home) -> dict[int, int]:
    """Job id -> the pid of its live supervisor, from the job directories."""
    from corral.executors.local.supervisor import proc_start_time, read_state

    found = {}
    for d in Path(home.home, "jobs").iterdir():
        try:
            state = read_state(str(d))
        except OSError:
            continue
        if state is not None and state.supervisor is not None and state.status is None \
                and proc_start_time(state.supervisor) is not None and d.name.isdigit():
            found[int(d.name)] = state.supervisor
    return found


def expected_code(index: int) -> int:
    return 3 if index % 5 == 0 else 0


class Submitter(threading.Thread):
    """A client that submits one job at a time, each with its own idempotency key, and
    asks again (same key) until the daemon answers -- as a careful user's script would."""

    def __init__(self, home: Home, ledger: Path, indexes: list[int], seed: int):
        super().__init__(daemon=True)
        self.home, self.ledger, self.indexes = home, ledger, indexes
        self.rng = random.Random(seed)
        self.acked: dict[int, int] = {}        # job id -> index
        self.retries = 0
        self.errors: list[str] = []

    def run(self) -> None:
        os.environ["CORRAL_HOME"] = self.home.home
        from corral.client import ApiError, Connection
        from corral.errors import CorralError

        conn = Connection(self.home.home, timeout=30.0)
        for index in self.indexes:
            gpus = self.rng.choice((0, 1, 1, 2))
            cpus = "1" if gpus == 0 and self.rng.random() < 0.5 else "100m"
            item = {"command": ["/bin/sh", "-c", job_command(self.ledger, self.rng.uniform(0.1, 0.8),
                                                            expected_code(index))],
                    "requests": {"cpu": cpus}, "name": f"c{index}", "workdir": self.home.workdir}
            if gpus:
                item["gpus"] = gpus
            body = {"jobs": [{"flags": item}], "idempotency_key": uuid.uuid4().hex}
            for attempt in range(200):
                try:
                    answer = conn.submit_request(body)
                    self.acked[answer["jobs"][0]["id"]] = index
                    break
                except ApiError as exc:
                    if exc.status < 500:           # refused: asking again would not help
                        self.errors.append(f"job {index}: {exc}")
                        break
                    self.retries += 1
                    time.sleep(0.1)
                except (CorralError, OSError) as exc:
                    self.retries += 1
                    if attempt == 199:
                        self.errors.append(f"job {index}: {exc}")
                    time.sleep(0.1)
            time.sleep(self.rng.uniform(0.0, 0.15))


def parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return int(data[data.rindex(b")") + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def cores_of(text: str) -> set[int]:
    """``0-2,5`` -> {0, 1, 2, 5}."""
    out: set[int] = set()
    for part in filter(None, text.split(",")):
        low, _, high = part.partition("-")
        out.update(range(int(low), int(high or low) + 1))
    return out


def run(short: bool) -> Result:
    result = Result("crash")
    kills_wanted = 8 if short else 40
    jobs_wanted = 40 if short else 240
    clients = 2 if short else 4
    home = Home(prefix="cxc")
    ledger = Path(home.home, "..", f"{Path(home.home).name}.ledger").resolve()
    ledger.mkdir()
    try:
        home.write_config("simulate_gpus: 4\n")
        home.up()
        rng = random.Random(7)
        indexes = list(range(jobs_wanted))
        submitters = [Submitter(home, ledger, indexes[i::clients], seed=i) for i in range(clients)]
        for s in submitters:
            s.start()
        kills, kill_times, cut = 0, [], {}
        while kills < kills_wanted:
            time.sleep(rng.uniform(0.2, 1.0))
            if wait_for(home.daemon_pid, timeout=30) and home.kill_daemon():
                kills += 1
                kill_times.append(time.time())
                live = supervisors(home)
                if live and rng.random() < 0.5:            # while the daemon is down
                    job_id = rng.choice(sorted(live))
                    try:
                        os.kill(live[job_id], signal.SIGKILL)
                        cut[job_id] = live[job_id]
                    except ProcessLookupError:
                        pass
            if rng.random() < 0.3:
                home.cli("up", "--json")        # sometimes restarted by hand, else by a client's autostart
        for s in submitters:
            s.join(timeout=600)
        home.cli("up", "--json")
        acked: dict[int, int] = {}
        for s in submitters:
            acked.update(s.acked)
        done = wait_for(lambda: all(j["state"] in TERMINAL for j in home.jobs()), timeout=600, interval=0.5)
        stored = {j["id"]: j for j in home.jobs()}
        check(result, acked, stored, ledger, submitters, kill_times, done, cut)
        nodes = home.request("GET", "/v1/nodes").json()["nodes"]
        held = [g["index"] for n in nodes for g in n["gpus"] if g.get("job") is not None]
        result.figures["GPUs held at the end"] = len(held)
        result.check(not held, f"GPUs still held after every job ended: {held}")
        left = wait_for(lambda: not job_cgroups(home.home), timeout=15) or job_cgroups(home.home)
        result.figures["cgroup directories left"] = 0 if left is True else len(left)
        result.check(left is True, f"job cgroups left after every job ended: {left if left is not True else ''}")
        daemon = home.daemon_pid()
        stray = [p for p in home.processes() if p != daemon and parent_of(p) != daemon]   # not its launcher
        result.figures["job processes left"] = len(stray)
        result.check(not stray, f"processes of ended jobs still alive: {stray}")
        result.check("Traceback" not in home.daemon_log(), "a traceback in daemon.log")
    finally:
        keep = bool(os.environ.get("CHAOS_KEEP"))
        home.close(remove=not keep)
        for f in ([] if keep else ledger.iterdir()):
            f.unlink()
        if not keep:
            ledger.rmdir()
    return result


def check(result: Result, acked: dict[int, int], stored: dict[int, dict], ledger: Path,
          submitters: list[Submitter], kill_times: list[float], done: bool, cut: dict[int, int]) -> None:
    starts: dict[int, list[tuple[float, float, set[str], set[str]]]] = {}
    for f in ledger.glob("*.start"):
        job_id = int(f.name.split(".")[0])
        stamp, cvd, cores = f.read_text().strip().split("|")
        begin = float(stamp)
        gpus = set(cvd.split(",")) - {""}
        cpus = cores_of(cores)
        end_file = f.with_suffix(".end")
        end = float(end_file.read_text()) if end_file.exists() else float("inf")
        starts.setdefault(job_id, []).append((begin, end, gpus, cpus))
    job = stored.get
    lost = [i for i in acked if i not in stored or i not in starts]
    orphans = [i for i in stored if i not in acked]
    double = [i for i, runs in starts.items() if len(runs) > 1]
    # A job whose supervisor was killed either ended first (its own code) or is lost.
    supervisor_lost = [i for i in cut if i in stored and job(i)["reason"] == "SupervisorLost"]
    wrong_code = [i for i in acked if i in stored and job(i)["exit_code"] != expected_code(acked[i])
                  and i not in supervisor_lost]
    exclusive_cpus = {i for i in stored if stored[i]["cpus"]}
    overlaps = []
    runs = [(i, *r) for i, rs in starts.items() for r in rs]
    for a in range(len(runs)):
        for b in range(a + 1, len(runs)):
            ia, sa, ea, ga, ca = runs[a]
            ib, sb, eb, gb, cb = runs[b]
            if sa < eb and sb < ea:
                if ga & gb:
                    overlaps.append(f"jobs {ia} and {ib} on GPU {sorted(ga & gb)}")
                if ia in exclusive_cpus and ib in exclusive_cpus and ca & cb:
                    overlaps.append(f"jobs {ia} and {ib} on core {sorted(ca & cb)}")
    across = sum(1 for rs in starts.values() for begin, end, *_ in rs if any(begin < k < end for k in kill_times))
    kills = len(kill_times)
    result.figures.update({
        "daemon kills": kills,
        "supervisors killed while the daemon was down": len(cut),
        "their jobs ended SupervisorLost": len(supervisor_lost),
        "runs a kill fell into": across,
        "jobs acknowledged": len(acked),
        "submits failed and asked again": sum(s.retries for s in submitters),
        "all ended": bool(done),
        "lost": len(lost),
        "stored but not acknowledged": len(orphans),
        "double runs": len(double),
        "exit codes wrong": len(wrong_code),
        "GPU/core overlaps": len(overlaps),
    })
    for s in submitters:
        for line in s.errors:
            result.failures.append(f"a submit never got through: {line}")
    result.check(kills > 0, "the daemon was never killed")
    result.check(bool(done), "jobs still not ended after 10 minutes")
    result.check(not lost, f"acknowledged jobs lost or never run: {lost[:10]}")
    result.check(not orphans, f"jobs stored that no client was told of (double submits): {orphans[:10]}")
    result.check(not double, f"jobs that ran more than once: {double[:10]}")
    result.check(not wrong_code, "jobs whose exit code was lost or wrong: "
                 + ", ".join(f"{i} ({job(i)['state']} {job(i)['reason']} {job(i)['exit_code']})" for i in wrong_code[:10]))
    result.check(not overlaps, "overlaps: " + "; ".join(overlaps[:10]))
