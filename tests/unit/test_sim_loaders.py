"""Trace loaders for the simulator: Philly, Alibaba openb, SWF and corral's own store.

Every test writes its own small sample; only the last test reads a real trace (from the
shared traces folder, skipped when that folder is absent).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.capacity.node import Node
from corral.errors import CorralError, ValidationError
from corral.job import Allocation, Job, JobState, Reason
from corral.resources import CPU, GPU, MEMORY, Constraints, Resources
from corral.scheduler.shares import GPU_SHARE
from corral.sim.loaders import (
    TraceFormatError, downsample_nodes, load_alibaba, load_corral, load_philly, load_swf, load_trace,
)
from corral.sim.trace import Trace, TraceJob
from corral.spec import build_spec
from corral.store.sqlite import SqliteStore

GiB = 2**30
MiB = 2**20


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# Philly ---------------------------------------------------------------------------------

PHILLY = """\
timestamp,duration,num_gpus,gpu_time,cluster
2017-10-09 07:01:55,66.0,1,66.0,11cb48
2017-10-09 06:13:03,2951.0,2,5902.0,6214e9
2017-10-09 07:01:55,10.5,8,84.0,6214e9
2017-10-10 06:13:03,0,0,0,b436b2

"""


def test_philly_parses_every_field_sorted_by_submit_then_row(tmp_path):
    trace = load_philly(write(tmp_path, "philly.csv", PHILLY))
    assert isinstance(trace, Trace) and len(trace) == 4
    assert trace.skipped == 0 and trace.skip_reasons == {}
    assert trace.nodes is None
    assert trace.source.startswith("philly:") and trace.source.endswith("philly.csv")
    # 06:13:03 first; the two 07:01:55 jobs keep their file order (66 s before 10.5 s).
    assert [j.id for j in trace.jobs] == [0, 1, 2, 3]
    assert [j.submit for j in trace.jobs] == [0.0, 2932.0, 2932.0, 86400.0]
    assert [j.duration for j in trace.jobs] == [2951.0, 66.0, 10.5, 0.0]
    assert [j.user for j in trace.jobs] == ["6214e9", "11cb48", "6214e9", "b436b2"]
    first = trace.jobs[0]
    assert first == TraceJob(id=0, submit=0.0, duration=2951.0, user="6214e9", name="",
                             requests=Resources({CPU: 8000, MEMORY: 64 * GiB, GPU: 2}))
    assert trace.jobs[2].requests == Resources({CPU: 32000, MEMORY: 256 * GiB, GPU: 8})
    # No GPUs: one share of CPU and memory.
    assert trace.jobs[3].requests == Resources({CPU: 4000, MEMORY: 32 * GiB})
    assert all(j.time_limit is None and j.gpu_fraction is None and j.gpu_models == () for j in trace.jobs)


def test_philly_cpu_and_memory_per_gpu_options(tmp_path):
    path = write(tmp_path, "philly.csv", PHILLY)
    trace = load_philly(path, cpu_per_gpu="500m", memory_per_gpu="8Gi")
    assert trace.jobs[0].requests == Resources({CPU: 1000, MEMORY: 16 * GiB, GPU: 2})
    assert trace.jobs[3].requests == Resources({CPU: 500, MEMORY: 8 * GiB})
    via_dispatch = load_trace(path, "philly", cpu_per_gpu=2, memory_per_gpu="1Gi")
    assert via_dispatch.jobs[2].requests == Resources({CPU: 16000, MEMORY: 8 * GiB, GPU: 8})
    with pytest.raises(ValidationError, match="cpu"):
        load_philly(path, cpu_per_gpu="lots")


@pytest.mark.parametrize("row, line_problem", [
    ("2017-10-09 07:00:00,abc,1,1,c", 'line 3: invalid duration "abc" (expected a number of seconds)'),
    ("2017-10-09 07:00:00,-5,1,1,c", 'line 3: negative duration "-5"'),
    ("2017-10-09 07:00:00,nan,1,1,c", 'line 3: invalid duration "nan"'),
    ("yesterday,5,1,1,c", 'line 3: invalid timestamp "yesterday" (expected YYYY-MM-DD HH:MM:SS)'),
    ("2017-10-09 07:00:00,5,1.5,1,c", 'line 3: invalid num_gpus "1.5"'),
    ("2017-10-09 07:00:00,5,-1,1,c", 'line 3: invalid num_gpus "-1"'),
    ("2017-10-09 07:00:00,5,1,c", "line 3: wrong number of columns 4 (expected 5: timestamp,"),
])
def test_philly_malformed_row_raises_with_file_and_line(tmp_path, row, line_problem):
    text = ("timestamp,duration,num_gpus,gpu_time,cluster\n"
            "2017-10-09 06:00:00,5,1,5,c\n" + row + "\n2017-10-09 08:00:00,5,1,5,c\n")
    path = write(tmp_path, "philly.csv", text)
    with pytest.raises(TraceFormatError) as info:
        load_philly(path)
    message = str(info.value)
    assert message.startswith("philly.csv " + line_problem), message
    assert "\n" not in message
    assert isinstance(info.value, ValidationError) and isinstance(info.value, CorralError)
    assert info.value.line == 3
    # Skipped and counted, never silently.
    trace = load_philly(path, on_error="skip")
    assert len(trace) == 2 and trace.skipped == 1
    assert trace.skip_reasons == {info.value.reason: 1}
    assert [j.submit for j in trace.jobs] == [0.0, 7200.0]


def test_philly_skip_counts_each_reason(tmp_path):
    text = ("timestamp,duration,num_gpus,gpu_time,cluster\n"
            "2017-10-09 06:00:00,x,1,5,c\n"
            "2017-10-09 06:00:00,y,1,5,c\n"
            "2017-10-09 06:00:00,5,1\n"
            "2017-10-09 06:00:00,5,1,5,c\n")
    trace = load_trace(write(tmp_path, "p.csv", text), "philly", on_error="skip")
    assert len(trace) == 1
    assert trace.skipped == 3
    assert trace.skip_reasons == {"invalid duration": 2, "wrong number of columns": 1}


def test_philly_header_mismatch_lists_expected_columns(tmp_path):
    path = write(tmp_path, "p.csv", "time,duration,num_gpus,gpu_time,cluster\n2017-10-09 06:00:00,5,1,5,c\n")
    with pytest.raises(TraceFormatError) as info:
        load_philly(path, on_error="skip")   # a bad header cannot be skipped
    assert str(info.value) == ("p.csv line 1: missing column timestamp "
                               "(expected columns: timestamp,duration,num_gpus,gpu_time,cluster)")
    with pytest.raises(TraceFormatError, match="empty file, no header"):
        load_philly(write(tmp_path, "empty.csv", ""))
    # Extra columns and another column order are fine.
    other = write(tmp_path, "o.csv", "cluster,extra,num_gpus,duration,gpu_time,timestamp\n"
                                     "vc1,zz,4,100,400,2017-10-09 06:00:00\n")
    (job,) = load_philly(other).jobs
    assert (job.user, job.duration, job.requests[GPU]) == ("vc1", 100.0, 4)


def test_on_error_and_unknown_options_are_checked(tmp_path):
    path = write(tmp_path, "philly.csv", PHILLY)
    with pytest.raises(ValidationError, match="on_error"):
        load_philly(path, on_error="ignore")
    with pytest.raises(ValidationError, match="unknown option.*include_running.*accepted: cpu_per_gpu"):
        load_trace(path, "philly", include_running=True)
    with pytest.raises(ValidationError, match="trace format.*expected one of philly, alibaba, swf, corral"):
        load_trace(path, "csv")
    with pytest.raises(CorralError, match="no such trace file"):
        load_trace(tmp_path / "missing.csv", "philly")


# Alibaba --------------------------------------------------------------------------------

PODS = """\
name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time
openb-pod-0000,12000,16384,1,1000,,LS,Running,100,1000,100
openb-pod-0001,6000,12288,1,460,,BE,Succeeded,50,350,52
openb-pod-0002,88000,327680,8,1000,V100M16|V100M32,Burstable,Failed,150,160,150
openb-pod-0003,4000,15258,1,1000,,BE,Pending,200,260,
openb-pod-0004,2000,1024,0,0,nan,Guaranteed,Succeeded,50,70,50
"""

NODES = """\
sn,cpu_milli,memory_mib,gpu,model
openb-node-0000,32000,262144,0,
openb-node-0001,64000,262144,2,P100
openb-node-0002,96000,786432,8,V100M32
openb-node-0003,128000,786432,8,G3
"""


def test_alibaba_pods_fields_and_running_skipped(tmp_path):
    trace = load_alibaba(write(tmp_path, "pods.csv", PODS))
    assert trace.source.startswith("alibaba:")
    assert [j.name for j in trace.jobs] == ["openb-pod-0001", "openb-pod-0004", "openb-pod-0002"]
    assert [j.submit for j in trace.jobs] == [0.0, 0.0, 100.0]
    assert [j.duration for j in trace.jobs] == [300.0, 20.0, 10.0]
    assert [j.user for j in trace.jobs] == ["BE", "Guaranteed", "Burstable"]   # qos
    shared, cpu_only, multi = trace.jobs
    # A fractional pod asks for its share of one GPU; the fraction is kept beside it.
    assert shared.requests == Resources({CPU: 6000, MEMORY: 12288 * MiB, GPU_SHARE: 460})
    assert shared.gpu_fraction == pytest.approx(0.46)
    assert cpu_only.requests == Resources({CPU: 2000, MEMORY: 1024 * MiB})
    assert cpu_only.gpu_fraction is None and cpu_only.gpu_models == ()   # "nan" = any model
    # gpu_spec is the request's GPU-model constraint, as a daemon job's gpuModels.
    assert multi.requests == Resources({CPU: 88000, MEMORY: 327680 * MiB, GPU: 8},
                                       constraints=Constraints(gpu_models=("V100M16", "V100M32")))
    assert multi.gpu_fraction is None
    assert multi.gpu_models == ("V100M16", "V100M32")
    assert trace.skipped == 2
    assert trace.skip_reasons == {"still running at trace end": 1, "never scheduled": 1}


def test_alibaba_include_running(tmp_path):
    trace = load_trace(write(tmp_path, "pods.csv", PODS), "alibaba", include_running=True)
    assert [j.name for j in trace.jobs] == ["openb-pod-0001", "openb-pod-0004", "openb-pod-0000",
                                           "openb-pod-0002"]
    running = trace.jobs[2]
    assert (running.submit, running.duration, running.user) == (50.0, 900.0, "LS")
    assert running.gpu_fraction is None
    assert trace.skip_reasons == {"never scheduled": 1} and trace.skipped == 1


def test_alibaba_running_pods_are_cut_at_the_trace_end(tmp_path):
    pods = PODS + "openb-pod-0005,1000,1024,1,250,,LS,Running,900,5000,900\n" \
        + "openb-pod-0006,1000,1024,1,250,,LS,Running,400,,400\n"
    trace = load_trace(write(tmp_path, "pods.csv", pods), "alibaba", include_running=True)
    by_name = {j.name: j for j in trace.jobs}
    # The trace ends at its latest deletion time (5000); a Running pod without one ends there.
    assert by_name["openb-pod-0005"].duration == 4100.0
    assert by_name["openb-pod-0006"].duration == 4600.0
    with pytest.raises(TraceFormatError, match='line 8: invalid deletion_time ""'):
        load_alibaba(write(tmp_path, "pods.csv", pods))   # not kept: an empty time is an error


def test_alibaba_pod_list_without_time_columns(tmp_path):
    path = write(tmp_path, "pods.csv", "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n"
                 "a,4000,1024,1,500,T4\nb,8000,2048,2,1000,\nc,1000,512,0,0,\n")
    trace = load_alibaba(path)
    assert not trace.timed
    assert [(j.name, j.submit, j.duration, j.user) for j in trace.jobs] == [
        ("a", 0.0, 0.0, "-"), ("b", 0.0, 0.0, "-"), ("c", 0.0, 0.0, "-")]
    assert trace.jobs[0].requests == Resources({CPU: 4000, MEMORY: 1024 * MiB, GPU_SHARE: 500},
                                               constraints=Constraints(gpu_models=("T4",)))
    assert load_alibaba(write(tmp_path, "p.csv", PODS)).timed
    with pytest.raises(TraceFormatError, match="missing column gpu_milli"):
        load_alibaba(write(tmp_path, "q.csv", "name,cpu_milli,memory_mib,num_gpu\na,1,1,1\n"))


def test_alibaba_every_pod_keeps_all_phases(tmp_path):
    trace = load_trace(write(tmp_path, "pods.csv", PODS), "alibaba", every_pod=True)
    assert len(trace.jobs) == 5 and trace.skipped == 0


@pytest.mark.parametrize("row, problem", [
    ("p,abc,1,1,1000,,LS,Failed,1,2,1", 'line 3: invalid cpu_milli "abc"'),
    ("p,1000,1,1,1001,,LS,Failed,1,2,1", 'line 3: invalid gpu_milli "1001" (expected 0 to 1000)'),
    ("p,1000,1,1,1000,,LS,Failed,10,2,1", "line 3: negative duration"),
    ("p,1000,1,1,1000,,LS,Failed,x,2,1", 'line 3: invalid creation_time "x"'),
    ("p,1000,1,1,1000,,LS,Failed,1,2", "line 3: wrong number of columns 10 (expected 11"),
])
def test_alibaba_malformed_rows(tmp_path, row, problem):
    header, good = PODS.splitlines()[0], "q,1000,1024,0,0,,LS,Succeeded,5,9,5"
    path = write(tmp_path, "pods.csv", "\n".join([header, good, row, good]) + "\n")
    with pytest.raises(TraceFormatError) as info:
        load_alibaba(path)
    assert str(info.value).startswith("pods.csv " + problem), str(info.value)
    trace = load_alibaba(path, on_error="skip")
    assert len(trace) == 2 and trace.skipped == 1 and trace.skip_reasons == {info.value.reason: 1}


def test_alibaba_header_mismatch(tmp_path):
    path = write(tmp_path, "pods.csv", "name,cpu_milli\np,1\n")
    with pytest.raises(TraceFormatError, match=r"pods.csv line 1: missing columns memory_mib, num_gpu, .*"
                                               r"\(expected columns: name,cpu_milli,memory_mib,"):
        load_alibaba(path)


def test_alibaba_nodes(tmp_path):
    pods, nodes_path = write(tmp_path, "pods.csv", PODS), write(tmp_path, "nodes.csv", NODES)
    trace = load_trace(pods, "alibaba", nodes_path=nodes_path)
    nodes = trace.nodes
    assert [n.name for n in nodes] == ["openb-node-0000", "openb-node-0001", "openb-node-0002",
                                       "openb-node-0003"]
    assert all(isinstance(n, Node) for n in nodes)
    cpu_node, p100 = nodes[0], nodes[1]
    assert cpu_node.capacity == Resources({CPU: 32000, MEMORY: 256 * GiB})
    assert cpu_node.gpus == () and cpu_node.cores == ()
    assert p100.capacity == Resources({CPU: 64000, MEMORY: 256 * GiB, GPU: 2})
    assert p100.allocatable == p100.capacity
    assert [g.model for g in p100.gpus] == ["P100", "P100"]
    assert all(g.simulated for g in p100.gpus)
    assert len(nodes[3].gpus) == 8 and nodes[3].gpus[0].model == "G3"
    with pytest.raises(TraceFormatError, match="nodes.csv line 1: missing column model"):
        load_alibaba(pods, nodes_path=write(tmp_path, "nodes.csv", "sn,cpu_milli,memory_mib,gpu\nx,1,1,1\n"))
    with pytest.raises(TraceFormatError, match='nodes.csv line 3: invalid gpu "two"'):
        load_alibaba(pods, nodes_path=write(tmp_path, "nodes.csv", NODES.replace(",2,P100", ",two,P100")))


def test_downsample_nodes_is_deterministic(tmp_path):
    nodes = [Node(name=f"n{i}", capacity=Resources({CPU: 1000})) for i in range(100)]
    a = downsample_nodes(nodes, 0.25, seed=7)
    assert len(a) == 25
    assert [n.name for n in a] == [n.name for n in downsample_nodes(nodes, 0.25, seed=7)]
    assert [n.name for n in a] != [n.name for n in downsample_nodes(nodes, 0.25, seed=8)]
    assert [nodes.index(n) for n in a] == sorted(nodes.index(n) for n in a)   # original order
    assert len({n.name for n in a}) == 25
    assert len(downsample_nodes(nodes, 0.001, seed=1)) == 1       # at least one node
    assert downsample_nodes(nodes, 1.0, seed=3) == nodes
    for bad in (0, -0.5, 1.5, float("nan")):
        with pytest.raises(ValidationError, match="node fraction"):
            downsample_nodes(nodes, bad, seed=1)


# SWF -------------------------------------------------------------------------------------

SWF = """\
; Version: 2.2
; Computer: Example cluster
; MaxNodes: 4
; MaxProcs: 64
;
; comment lines anywhere are ignored
1   100  5  3600  16  -1  -1  32  7200  1024  1  7  1  -1  1  1  -1  -1
2    40  0   120   4  -1  -1  -1    -1    -1  1  3  1  -1  1  1  -1  -1
3    40  0   -1    4  -1  -1   4   600    -1  5  3  1  -1  1  1  -1  -1

; a trailing comment
4   700  1  10.5   2  -1  -1   2   600.0  -1  0  -1  1  -1  1  1  -1  -1
5   800  1  10     -1 -1  -1  -1   600    -1  0  2  1  -1  1  1  -1  -1
"""


def test_swf_fields_comments_and_unknowns(tmp_path):
    trace = load_swf(write(tmp_path, "log.swf", SWF))
    assert trace.source.startswith("swf:") and trace.nodes is None
    assert [j.name for j in trace.jobs] == ["2", "1", "4"]
    assert [j.submit for j in trace.jobs] == [0.0, 60.0, 660.0]
    assert [j.duration for j in trace.jobs] == [120.0, 3600.0, 10.5]
    two, one, four = trace.jobs
    # Requested processors unknown: the allocated ones; no memory, no time limit.
    assert two.requests == Resources({CPU: 4000})
    assert two.time_limit is None and two.user == "u3"
    # Requested processors win; memory = 1024 KB per processor x 32.
    assert one.requests == Resources({CPU: 32000, MEMORY: 32 * 1024 * 1024})
    assert one.time_limit == 7200.0 and one.user == "u7"
    assert four.requests == Resources({CPU: 2000}) and four.time_limit == 600.0
    assert four.user == "unknown"
    assert all(GPU not in j.requests and j.gpu_fraction is None for j in trace.jobs)
    assert trace.skipped == 2
    assert trace.skip_reasons == {"unknown run time": 1, "unknown processor count": 1}


def test_swf_nodes_from_header(tmp_path):
    path = write(tmp_path, "log.swf", SWF)
    nodes = load_trace(path, "swf", cpus_per_node=16).nodes
    assert len(nodes) == 4                      # MaxProcs 64 / 16
    # Memory never binds before CPU: 16 x the largest per-processor request (1024 KB).
    assert nodes[0].capacity == Resources({CPU: 16000, MEMORY: 16 * 1024 * 1024})
    nodes = load_swf(path, cpus_per_node="48", memory_per_node="192Gi").nodes
    assert len(nodes) == 2 and nodes[1].capacity == Resources({CPU: 48000, MEMORY: 192 * GiB})
    bare = write(tmp_path, "bare.swf", "\n".join(SWF.splitlines()[6:]))
    assert load_swf(bare).nodes is None
    with pytest.raises(TraceFormatError, match="bare.swf header: no MaxProcs or MaxNodes"):
        load_swf(bare, cpus_per_node=8)
    with pytest.raises(ValidationError, match="cpus_per_node"):
        load_swf(path, cpus_per_node="1.5")


@pytest.mark.parametrize("row, problem", [
    ("9 100 5 3600 16 -1 -1 32 7200 1024 1 7 1 -1 1 1 -1", "line 2: wrong number of fields 17 (expected 18"),
    ("9 soon 5 3600 16 -1 -1 32 7200 1024 1 7 1 -1 1 1 -1 -1", 'line 2: invalid submit time "soon"'),
    ("9 100 5 long 16 -1 -1 32 7200 1024 1 7 1 -1 1 1 -1 -1", 'line 2: invalid run time "long"'),
    ("9 100 5 3600 16 -1 -1 3.5 7200 1024 1 7 1 -1 1 1 -1 -1", 'line 2: invalid requested processors "3.5"'),
])
def test_swf_malformed_rows(tmp_path, row, problem):
    good = "1 0 0 10 1 -1 -1 1 -1 -1 1 1 1 -1 1 1 -1 -1"
    path = write(tmp_path, "w.swf", "; header\n" + row + "\n" + good + "\n")
    with pytest.raises(TraceFormatError) as info:
        load_swf(path)
    assert str(info.value).startswith("w.swf " + problem), str(info.value)
    trace = load_swf(path, on_error="skip")
    assert len(trace) == 1 and trace.skipped == 1 and trace.skip_reasons == {info.value.reason: 1}


# corral's own store ------------------------------------------------------------------------

def test_corral_store_history(tmp_path):
    db = tmp_path / "corral.db"
    store = SqliteStore(db)
    specs = [
        build_spec(["train"], name="a", requests={"cpu": "2", "memory": "4Gi", "gpu": 1},
                   labels={"user": "alice"}, time_limit=600),
        build_spec(["eval"], name="b", requests={"cpu": "1"}),
        build_spec(["never"], name="c", requests={"cpu": "1"}),
        build_spec(["long"], name="d", requests={"cpu": "1"}),
        build_spec(["pending"], name="e", requests={"cpu": "1"}),
    ]
    first = store.add_jobs([Job(id=0, spec=s) for s in specs[:2]], now=1000.0)
    later = store.add_jobs([Job(id=0, spec=s) for s in specs[2:]], now=1010.0)
    a, b = first
    c, d, _ = later
    alloc = Allocation(node="n", requests=Resources({CPU: 1000}))
    store.start_jobs([(a.id, alloc), (b.id, alloc)], now=1005.0)
    store.start_jobs([(d.id, alloc)], now=1020.0)
    store.finish_job(a.id, JobState.SUCCEEDED, Reason.COMPLETED, exit_code=0, ended_at=1065.0)
    store.finish_job(b.id, JobState.FAILED, Reason.ERROR, exit_code=1, ended_at=1007.5)
    store.finish_job(c.id, JobState.CANCELLED, Reason.CANCELLED, ended_at=1012.0)   # never ran
    store.close()

    trace = load_trace(db, "corral")
    assert trace.source.startswith("corral:")
    assert [j.name for j in trace.jobs] == ["a", "b"]
    ja, jb = trace.jobs
    assert (ja.id, ja.submit, ja.duration, ja.user, ja.time_limit) == (0, 0.0, 60.0, "alice", 600.0)
    assert ja.requests == Resources({CPU: 2000, MEMORY: 4 * GiB, GPU: 1})
    assert (jb.id, jb.submit, jb.duration, jb.user, jb.time_limit) == (1, 0.0, 2.5, "local", None)
    assert trace.skipped == 3
    assert trace.skip_reasons == {"never started": 2, "still running": 1}
    with pytest.raises(CorralError, match="no corral database"):
        load_corral(tmp_path / "nope.db")
    assert not (tmp_path / "nope.db").exists()


# Trace helpers -------------------------------------------------------------------------------

def small_trace() -> Trace:
    r = Resources({GPU: 1})
    jobs = [TraceJob(i, s, d, r, "u") for i, (s, d) in enumerate([(0, 5), (10, 6), (30, 7), (70, 8)])]
    return Trace(jobs=jobs, source="test", skipped=2, skip_reasons={"x": 2})


def test_rescale_load_divides_gaps_keeps_durations():
    trace = small_trace()
    double = trace.rescale_load(2.0)
    assert [j.submit for j in double.jobs] == [0, 5, 15, 35]
    assert [j.duration for j in double.jobs] == [5, 6, 7, 8]
    half = trace.rescale_load(0.5)
    assert [j.submit for j in half.jobs] == [0, 20, 60, 140]
    gaps = [b.submit - a.submit for a, b in zip(trace.jobs, trace.jobs[1:])]
    assert [b.submit - a.submit for a, b in zip(double.jobs, double.jobs[1:])] == [g / 2 for g in gaps]
    assert [j.submit for j in trace.jobs] == [0, 10, 30, 70]          # the original is untouched
    assert double.skipped == 2 and double.skip_reasons == {"x": 2}
    for bad in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValidationError, match="load factor"):
            trace.rescale_load(bad)


def test_head_and_window_renumber_and_rebase():
    trace = small_trace()
    head = trace.head(2)
    assert [(j.id, j.submit, j.duration) for j in head.jobs] == [(0, 0, 5), (1, 10, 6)]
    assert len(trace.head(0)) == 0 and len(trace.head(10)) == 4
    win = trace.window(10, 70)          # [10, 70): the jobs at 10 and 30
    assert [(j.id, j.submit, j.duration) for j in win.jobs] == [(0, 0, 6), (1, 20, 7)]
    assert [(j.id, j.submit) for j in trace.window(30).jobs] == [(0, 0), (1, 40)]
    assert len(trace.window(71, 100)) == 0
    assert "window" in win.source and "first 2" in head.source
    with pytest.raises(ValidationError):
        trace.window(50, 10)
    with pytest.raises(ValidationError):
        trace.head(-1)


def test_loading_is_deterministic(tmp_path):
    philly = write(tmp_path, "philly.csv", PHILLY)
    pods = write(tmp_path, "pods.csv", PODS)
    swf = write(tmp_path, "log.swf", SWF)
    for path, fmt in ((philly, "philly"), (pods, "alibaba"), (swf, "swf")):
        a, b = load_trace(path, fmt), load_trace(path, fmt)
        assert a.jobs == b.jobs and a.skip_reasons == b.skip_reasons


# The real Philly trace -----------------------------------------------------------------------

def _shared_traces() -> Path | None:
    root = Path(__file__).resolve().parents[2]
    for folder in (root.parent / "shared" / "traces", Path("/work/shared/traces")):
        if (folder / "philly.csv").is_file():
            return folder
    return None


def test_real_philly_trace():
    folder = _shared_traces()
    if folder is None:
        pytest.skip("shared traces not found (../shared/traces from the repository root); "
                    "they are data files kept outside the repository")
    trace = load_trace(folder / "philly.csv", "philly")
    assert len(trace) == 82_247 and trace.skipped == 0
    histogram: dict[int, int] = {}
    for job in trace.jobs:
        histogram[job.requests[GPU]] = histogram.get(job.requests[GPU], 0) + 1
    assert histogram[1] == 76_627 and histogram[8] == 1_643
    assert histogram == {1: 76_627, 2: 1_818, 4: 1_870, 8: 1_643, 16: 199, 32: 67, 12: 7, 24: 7,
                         64: 6, 128: 3}
    assert trace.jobs[0].submit == 0.0
    assert all(a.submit <= b.submit for a, b in zip(trace.jobs, trace.jobs[1:]))


def test_alibaba_bad_node_rows_are_counted_when_skipped(tmp_path):
    pods = write(tmp_path, "pods.csv", PODS)
    nodes_path = write(tmp_path, "nodes.csv", NODES.replace(",2,P100", ",two,P100"))
    trace = load_alibaba(pods, nodes_path=nodes_path, on_error="skip")
    assert [n.name for n in trace.nodes] == ["openb-node-0000", "openb-node-0002", "openb-node-0003"]
    assert trace.skip_reasons["node list: invalid gpu"] == 1
    assert trace.skipped == 3 and sum(trace.skip_reasons.values()) == 3
