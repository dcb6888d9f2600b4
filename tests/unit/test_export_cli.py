"""``corral export`` through the CLI: what it prints, its exit codes, one-line errors, and
jobs read back from a daemon (the real API in-process, no socket) by id."""

from __future__ import annotations

import io
import json
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from asgi_client import call
from corral.capacity.node import make_node
from corral.cli.main import main
from corral.client import ApiError
from corral.daemon import auth
from corral.daemon.api import create_app
from corral.export.fromview import spec_from_view, view_document
from manager_helpers import GiB, FakeExecutor, manager

DATA = Path(__file__).resolve().parents[1] / "data" / "export"
CONFIG = str(DATA / "quotas.config.yaml")
ROOT = (1, 0, 0)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """A home of its own (no config.yaml: the defaults), never the user's."""
    monkeypatch.setenv("CORRAL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CORRAL_URL", raising=False)
    return tmp_path / "home"


def test_a_job_file_prints_valid_yaml(capsys):
    code, out, err = run(capsys, "export", "kubernetes", "-f", str(DATA / "basic.job.yaml"), "--image", "img:1",
                         "--config", CONFIG, "--namespace", "ml")
    assert (code, err) == (0, "")
    [job] = yaml.safe_load_all(out)
    assert job["metadata"]["namespace"] == "ml" and job["spec"]["template"]["spec"]["containers"][0]["image"] == "img:1"
    assert out.startswith("# metadata.name 'resnet-lr0.1' is resnet-lr0-1")
    kubernetes_validate.validate(job, kubernetes_validate.latest_version(), strict=True)


def test_json_prints_a_list_and_the_notes_on_stderr(capsys):
    code, out, err = run(capsys, "export", "kubernetes", "-f", str(DATA / "gang.job.yaml"), "--image", "img:1",
                         "--config", CONFIG, "--json")
    assert code == 0
    listed = json.loads(out)
    assert listed["kind"] == "List" and [i["kind"] for i in listed["items"]] == ["Service", "Job"]
    assert "corral: note: Job/llm-pretrain: retries 1: a batch/v1 Job restarts one pod" in err


def test_stdin(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("apiVersion: corral/v1\nkind: Job\nmetadata: {name: a}\n"
                                                 "spec: {command: [echo, hi]}\n"))
    code, out, _ = run(capsys, "export", "kubernetes", "-f", "-", "--image", "img")
    assert code == 0 and yaml.safe_load(out)["metadata"]["name"] == "a"
    # the home's defaults (cpu 1, no config) and kill_grace (10 s)
    pod = yaml.safe_load(out)["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 10
    assert pod["containers"][0]["resources"] == {"requests": {"cpu": "1"}, "limits": {"cpu": "1"}}


@pytest.mark.parametrize("argv, code, line", [
    (["kubernetes", "-f", "J"], 2, "error: `corral export kubernetes` needs --image IMAGE: corral jobs run on the "
                                   "machine's own files, a pod runs a container image (e.g. --image "
                                   "nvcr.io/nvidia/pytorch:24.08-py3)"),
    (["kubernetes", "--image", "x"], 2, "error: `corral export kubernetes` needs -f job.yaml or job ids (e.g. "
                                        "corral export kubernetes -f job.yaml --image IMAGE)"),
    (["kubernetes", "-f", "J", "12", "--image", "x"], 2, "error: `corral export kubernetes` needs -f job.yaml or "
                                                         "job ids, not both (e.g. corral export kubernetes -f "
                                                         "job.yaml --image IMAGE)"),
    (["kubernetes", "-f", "J", "--image", "my image"], 1,
     'error: invalid value for --image: "my image" (expected a container image reference without spaces, e.g. '
     '--image nvcr.io/nvidia/pytorch:24.08-py3)'),
    (["kubernetes", "-f", "J", "--image", "x", "--namespace", "ML"], 1,
     'error: invalid value for --namespace: "ML" (expected a DNS-1123 label: at most 63 lower-case letters, '
     'digits and -, starting and ending with a letter or digit, e.g. resnet-lr0-1)'),
    (["kubernetes", "-f", "nope.yaml", "--image", "x"], 1,
     'error: invalid value for file: "nope.yaml" (expected a readable YAML file (No such file or directory))'),
    (["kubernetes", "-f", "J", "--image", "x", "--config", "nope.yaml"], 1,
     'error: invalid value for --config: "nope.yaml" (expected a corral config file, e.g. $CORRAL_HOME/config.yaml)'),
    (["kueue", "--image", "x"], 2, "error: --image is for `corral export kubernetes`; `corral export kueue` takes "
                                   "--config, --namespace and --json"),
    (["kueue", "12"], 2, "error: job id 12 is for `corral export kubernetes`; `corral export kueue` takes "
                         "--config, --namespace and --json"),
    (["kubernetes", "12", "--image", "x", "--config", "c.yaml"], 2,
     "error: --config is for -f: a job read by id is the daemon's, with its own config"),
    (["helm"], 2, 'error: invalid value for KIND: "helm" (expected one of: kubernetes, kueue)'),
    (["kubernetes", "x1", "--image", "x"], 2,
     'error: invalid value for ID: "x1" (expected one job id such as 12, or an array task 12_3)'),
])
def test_bad_command_lines_are_one_line(capsys, argv, code, line):
    argv = [str(DATA / "basic.job.yaml") if a == "J" else a for a in argv]
    got, out, err = run(capsys, "export", *argv)
    assert (got, out, err) == (code, "", line + "\n")


def test_a_bad_job_names_the_document_and_field(capsys, tmp_path):
    path = tmp_path / "jobs.yaml"
    path.write_text("apiVersion: corral/v1\nkind: Job\nmetadata: {name: a}\nspec: {command: [x]}\n---\n"
                    "apiVersion: corral/v1\nkind: Job\nmetadata: {name: b}\nspec: {command: [x], queue: gpu}\n")
    code, out, err = run(capsys, "export", "kubernetes", "-f", str(path), "--image", "x")
    assert (code, out) == (1, "")
    assert err == (f'error: {path} (document 2): unknown queue in spec.queue: "gpu" (expected one of the queues '
                   f'of {Path(str(home_config(path)))}: default; --config FILE reads another corral config)\n')


def home_config(path: Path) -> Path:
    return path.parent / "home" / "config.yaml"


def test_names_that_collide_and_one_name_for_many_are_refused(capsys, tmp_path):
    path = tmp_path / "jobs.yaml"
    doc = "apiVersion: corral/v1\nkind: Job\nmetadata: {name: %s}\nspec: {command: [x]}\n"
    path.write_text(doc % "Train_1" + "---\n" + doc % "train-1")
    code, _, err = run(capsys, "export", "kubernetes", "-f", str(path), "--image", "x")
    assert code == 1 and err.startswith("error: conflicting names in metadata.name: ") and "train-1" in err
    code, _, err = run(capsys, "export", "kubernetes", "-f", str(path), "--image", "x", "--name", "n")
    assert (code, err) == (1, 'error: invalid value for --name: "n" (expected one job to name; there are 2 '
                              '(name them in the file))\n')


def test_kueue_from_the_homes_config(capsys, home):
    home.mkdir()
    (home / "config.yaml").write_text("simulate_gpus: {count: 2, model: NVIDIA L4}\n"
                                      "queues: [{name: research, nominal: {nvidia.com/gpu: 1}, max_user_gpus: 1}]\n")
    code, out, err = run(capsys, "export", "kueue", "--namespace", "team")
    assert (code, err) == (0, "")
    docs = list(yaml.safe_load_all(out))
    assert [d["kind"] for d in docs] == ["ResourceFlavor", "ResourceFlavor", "ClusterQueue", "ClusterQueue",
                                         "LocalQueue", "LocalQueue"]
    assert docs[1]["spec"]["nodeLabels"] == {"nvidia.com/gpu.product": "NVIDIA-L4"}
    assert "# max_user_gpus: 1 (no Kueue equivalent" in out
    assert {d["metadata"]["namespace"] for d in docs if d["kind"] == "LocalQueue"} == {"team"}


# -- jobs by id, from a daemon -------------------------------------------------------------------

@pytest.fixture
def daemon(monkeypatch, tmp_path):
    """The daemon's API in-process; ``corral.client.Connection`` talks to it."""
    m = manager(executor=FakeExecutor([make_node("n1", cores=8, memory=64 * GiB, gpus=4,
                                                 gpu_model="NVIDIA A100-SXM4-80GB")]))
    app = create_app(m, {"home": str(tmp_path)}, lambda: None, access=auth.Access(mode=auth.SYSTEM, daemon_uid=0))

    class Connection:
        def __init__(self, home=None, **kw):
            pass

        def request(self, method, path, body=None):
            answer = call(app, method, path, body, peer=ROOT)
            if answer.status >= 400:
                raise ApiError(answer.status, answer.json()["lines"])
            return answer.json()

    monkeypatch.setattr("corral.client.Connection", Connection)
    return Connection()


def submit(conn, spec: dict, name: str = "") -> list[dict]:
    doc = {"spec": spec, **({"metadata": {"name": name}} if name else {})}
    return conn.request("POST", "/v1/jobs", {"jobs": [doc]})["jobs"]


def test_a_job_by_id(capsys, daemon):
    [job] = submit(daemon, {"command": ["python", "train.py"], "timeLimit": "1h", "env": {"A": "1"},
                            "gpuModels": ["A100"], "stopSignal": "USR1", "workingDir": "/tmp",
                            "resources": {"requests": {"cpu": "2", "memory": "3Gi", "nvidia.com/gpu": 1}}})
    code, out, err = run(capsys, "export", "kubernetes", str(job["id"]), "--image", "img")
    assert (code, err) == (0, "")
    body = yaml.safe_load(out)
    assert body["metadata"]["name"] == f"corral-{job['id']}"
    pod = body["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}   # the daemon's GPUs
    assert pod["terminationGracePeriodSeconds"] == 10 and body["spec"]["activeDeadlineSeconds"] == 3600
    [c] = pod["containers"]
    assert c["resources"]["limits"] == {"cpu": "2", "memory": "3Gi", "nvidia.com/gpu": "1"}
    assert {"name": "A", "value": "1"} in c["env"] and c["workingDir"] == "/tmp"
    assert f"# from job {job['id']} as the daemon shows it" in out
    kubernetes_validate.validate(body, kubernetes_validate.latest_version(), strict=True)


def test_an_arrays_id_is_the_whole_array_and_a_task_is_one_job(capsys, daemon):
    tasks = submit(daemon, {"command": ["echo"], "array": "2,4,6-8%2"}, name="sweep")
    first = tasks[0]["id"]
    code, out, _ = run(capsys, "export", "kubernetes", str(first), "--image", "img")
    body = yaml.safe_load(out)
    assert code == 0 and (body["spec"]["completions"], body["spec"]["parallelism"]) == (5, 2)
    code, out, _ = run(capsys, "export", "kubernetes", f"{first}_4", "--image", "img", "--name", "one")
    body = yaml.safe_load(out)
    assert code == 0 and body["metadata"]["name"] == "one" and "completions" not in body["spec"]


def test_a_job_that_does_not_exist(capsys, daemon):
    code, out, err = run(capsys, "export", "kubernetes", "999", "--image", "img")
    assert (code, out) == (1, "") and err.startswith("error: ") and "999" in err and "\n" not in err.rstrip("\n")


def test_a_view_becomes_the_same_document():
    view = {"id": 3, "name": "n", "command": ["a", "b"], "priority": 2, "queue": "q", "held": True,
            "requests": {"cpu": "1", "memory": "3.1Gi"}, "limits": {"cpu": "1", "memory": "3.1Gi"},
            "dependencies": ["afterany:2"], "retries": 1, "time_limit": 90, "kill_grace": 5.0,
            "stop_signal": "SIGTERM", "env": {"X": "y"}, "labels": {"t": "v"}, "workdir": "/w", "nodes": 2}
    doc = view_document(view)
    assert doc["spec"]["dependencies"] == [{"type": "afterany", "job": "2"}]
    assert "stopSignal" not in doc["spec"] and doc["spec"]["gracePeriod"] == 5
    spec = spec_from_view(view)
    assert (spec.name, spec.queue, spec.hold, spec.nodes, spec.time_limit, spec.dependencies) == \
        ("n", "q", True, 2, 90, (("afterany", 2),))
