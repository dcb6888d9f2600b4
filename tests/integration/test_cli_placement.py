"""GPU models, node labels and node counts through the real CLI and daemon: the config
gives the simulated GPUs a model and the node its labels; jobs ask with ``--gpus
MODEL:N``, ``--node-selector`` and ``--nodes``."""

from __future__ import annotations


SHOW_CVD_AND_SLEEP = ("sh", "-c", "echo cvd=$CUDA_VISIBLE_DEVICES; exec sleep 600")



def test_gpu_models_run_refuse_and_wait_by_model(corral):
    c = corral
    c.write_config("simulate_gpus: {count: 2, model: A100}\n")
    c.up()
    assert [g["model"] for g in c.node()["gpus"]] == ["A100", "A100"]
    first = c.submit("--gpus", "A100:1", "--cpus", "100m", "--", *SHOW_CVD_AND_SLEEP)
    view = c.wait_state(first, "Running")
    assert view["gpu_models"] == ["A100"] and len(view["gpus"]) == 1, view
    c.show_when(first, lambda v: "cvd=" in c.logs(first), "the job's output")
    assert c.logs(first).strip() == f"cvd={view['gpus'][0]}"          # one device, the allocated one
    # A model the machine does not have can never run: refused at submit, naming what there is.
    res = c.run("submit", "--gpus", "H100:1", "--", "true")
    assert res.returncode == 1
    assert res.stderr == "error: no node has 1 GPU of model H100 (GPUs here: 2 x A100)\n"
    # One A100 is taken: two more wait, and say for which model.
    second = c.submit("--gpus", "A100:2", "--cpus", "100m", "--", "true")
    waiting = c.show_when(second, lambda v: v["reason"] == "InsufficientResources", "the second job to wait")
    assert waiting["message"] == "insufficient nvidia.com/gpu (A100): requests 2, free 1 of 2", waiting
    assert "gpu=A100:2" in c.ok("ps")
    assert "GPU model: A100" in c.ok("show", str(second))
    c.ok("cancel", str(first))
    assert c.wait_done(second)[0]["state"] == "Succeeded"


def test_node_selector_runs_on_a_labelled_node(corral):
    c = corral
    c.write_config("node_labels: {zone: lab1, example.com/rack: r3}\n")
    c.up()
    assert c.node()["labels"] == {"zone": "lab1", "example.com/rack": "r3"}
    assert "Labels: example.com/rack=r3, zone=lab1" in c.ok("nodes")
    job = c.submit("--node-selector", "zone=lab1", "--node-selector", "example.com/rack=r3", "--cpus", "100m",
                   "--", "true")
    [done] = c.wait_done(job)
    assert done["state"] == "Succeeded" and done["node_selector"] == {"zone": "lab1", "example.com/rack": "r3"}
    res = c.run("submit", "--node-selector", "zone=lab2", "--", "true")
    assert res.returncode == 1
    assert res.stderr == ("error: no node matches node selector zone=lab2 "
                          "(labels here: example.com/rack=r3, zone=lab1)\n")


def test_without_labels_selectors_and_several_nodes_are_refused(corral):
    c = corral
    c.up("--simulate-gpus", "1")
    assert c.node()["labels"] == {}
    res = c.run("submit", "--node-selector", "zone=lab1", "--", "true")
    assert (res.returncode, res.stderr) == (1, "error: no node matches node selector zone=lab1 (labels here: none)\n")
    res = c.run("submit", "--nodes", "2", "--gpus", "1", "--", "true")
    assert res.returncode == 1
    assert res.stderr == "error: needs 2 nodes that can each hold cpu=1, nvidia.com/gpu=1; 1 of the 1 nodes can\n"
    res = c.run("submit", "--gpus", ":2", "--", "true")
    assert res.returncode == 1
    assert res.stderr == ('error: invalid value for --gpus: ":2" (expected a GPU model before the colon, '
                          'e.g. A100:2, or a count alone, e.g. 2)\n')
    assert c.ps() == []


def test_drain_stops_new_work_on_a_node_and_undrain_lets_it_start(corral):
    c = corral
    c.up("--simulate-gpus", "1")
    name = c.node()["name"]
    res = c.run("drain", "no-such-node")
    assert (res.returncode, res.stderr) == (1, f"error: no such node: no-such-node (nodes: {name})\n")
    assert c.ok("drain", name) == f"node {name}: draining; nothing runs there\n"
    assert c.ok("drain", name) == f"node {name}: already draining; nothing runs there\n"
    assert c.node()["state"] == "Draining"
    job = c.submit("--gpus", "1", "--", "true")
    waiting = c.show_when(job, lambda v: v["reason"] == "NodesDraining", "the job to wait for the drained node")
    assert waiting["message"] == f"the nodes that could hold it are draining: {name}", waiting
    c.down()                                          # drained across a restart
    c.up()
    assert c.node()["state"] == "Draining" and c.show(job)["state"] == "Pending"
    assert c.ok("undrain", name) == f"node {name}: undrained (Ready)\n"
    assert c.wait_done(job)[0]["state"] == "Succeeded"
