"""Daemon configuration: defaults, the file form, overrides, errors."""

from __future__ import annotations

import json
import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.config import POLICIES, Config, load_config, parse_config
from corral.errors import QuantityError, ValidationError
from corral.resources import CPU, MEMORY, Resources

GI = 2**30


def fails(fn, *args, **kwargs) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)
    return info.value


def test_defaults():
    config = Config()
    assert config.simulate_gpus == 0
    assert config.reserve_cpu == 0
    assert config.reserve_memory is None
    assert config.default_requests == Resources({CPU: 1000})
    assert config.policy == "best-effort-fifo"
    assert config.kill_grace == 10
    assert config.node_name is None
    assert config.reserve == Resources()


def test_missing_file_means_defaults(tmp_path):
    assert load_config(tmp_path / "config.yaml") == Config()


@pytest.mark.parametrize("text", ["", "\n", "# nothing\n", "---\n"])
def test_empty_file_means_defaults(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert load_config(path) == Config()


def test_full_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent("""\
        simulate_gpus: 4
        reserve: {cpu: 500m, memory: 1Gi}
        defaults: {cpu: "2", memory: 512Mi}
        policy: strict-fifo
        kill_grace: 1m
        node_name: gpu-box-1
        """))
    config = load_config(str(path))
    assert config == Config(simulate_gpus=4, reserve_cpu=500, reserve_memory=GI,
                            default_requests=Resources({CPU: 2000, MEMORY: 512 * 2**20}),
                            policy="strict-fifo", kill_grace=60, node_name="gpu-box-1")
    assert config.reserve == Resources({CPU: 500, MEMORY: GI})


def test_parse_config_none_and_partial():
    assert parse_config(None, "c.yaml") == Config()
    assert parse_config({}, "c.yaml") == Config()
    assert parse_config({"reserve": {"cpu": 1}}, "c.yaml") == Config(reserve_cpu=1000)
    assert parse_config({"reserve": None, "defaults": None, "node_name": None}, "c.yaml") == Config()


def test_reserve_zero_allowed():
    config = parse_config({"reserve": {"cpu": 0, "memory": 0}}, "c.yaml")
    assert config.reserve_cpu == 0 and config.reserve_memory == 0


def test_defaults_replace_builtin_default():
    assert parse_config({"defaults": {}}, "c.yaml").default_requests == Resources()
    assert parse_config({"defaults": {"memory": "2Gi"}}, "c.yaml").default_requests == Resources({MEMORY: 2 * GI})
    assert parse_config({"defaults": {"cpus": "500m"}}, "c.yaml").default_requests == Resources({CPU: 500})


@pytest.mark.parametrize(("value", "seconds"), [(10, 10), ("10", 10), ("10s", 10), ("1m", 60), (0, 0),
                                                ("0s", 0), (2.5, 3), ("1:30", 90)])
def test_kill_grace_forms(value, seconds):
    assert parse_config({"kill_grace": value}, "c.yaml").kill_grace == seconds


@pytest.mark.parametrize("policy", POLICIES)
def test_policies(policy):
    assert parse_config({"policy": policy}, "c.yaml").policy == policy


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"reserv": {}},
         "c.yaml: unknown field reserv (accepted: admin_group, backfill, cost, defaults, enforcement, engine, fair_share, idle_gpu, insecure, kill_grace, las, listen, log_limit, max_request, mode, node_labels, node_name, pids_limit, policy, preemption, priority_classes, queues, rate_limit, reserve, resources, retention, sample_interval, series_interval, simulate_gpus, socket_group, tls)"),
        ({"reserve": {"gpu": 1}}, "c.yaml: unknown field reserve.gpu (accepted: cpu, memory)"),
        ({"reserve": []}, "c.yaml: invalid value for reserve: [] (expected a mapping with fields cpu, memory)"),
        ({"reserve": {"memory": "1GG"}},
         'c.yaml: invalid quantity for reserve.memory: "1GG" (expected e.g. 512Mi, 16Gi)'),
        ({"reserve": {"cpu": "-1"}},
         'c.yaml: invalid quantity for reserve.cpu: "-1" (expected e.g. 2, 500m, 0.5; must not be negative)'),
        ({"defaults": {"gpu": 1}},
         'c.yaml: unsupported resource in defaults: "nvidia.com/gpu" (expected cpu or memory)'),
        ({"defaults": {"cpu": 0}},
         "c.yaml: invalid quantity for defaults.cpu: 0 (expected e.g. 2, 500m, 0.5; must be greater than zero)"),
        ({"defaults": {"cpu": "x"}}, 'c.yaml: invalid quantity for defaults.cpu: "x" (expected e.g. 2, 500m, 0.5)'),
        ({"defaults": "cpu=1"}, 'c.yaml: invalid value for defaults: "cpu=1" (expected a mapping of resource name '
                                'to quantity, e.g. {cpu: "2", memory: 8Gi, nvidia.com/gpu: 1})'),
        ({"policy": "lifo"}, 'c.yaml: invalid value for policy: "lifo" (expected one of: best-effort-fifo, strict-fifo, priority, sjf, fair-share, sjf-aging, las)'),
        ({"simulate_gpus": 65}, "c.yaml: invalid value for simulate_gpus: 65 (expected a whole number from 0 to 64, "
                                "or {count: N, model: NAME}, e.g. {count: 4, model: A100})"),
        ({"simulate_gpus": -1}, "c.yaml: invalid value for simulate_gpus: -1 (expected a whole number from 0 to 64, "
                                "or {count: N, model: NAME}, e.g. {count: 4, model: A100})"),
        ({"simulate_gpus": "2"}, 'c.yaml: invalid value for simulate_gpus: "2" (expected a whole number from 0 to 64, '
                                 'or {count: N, model: NAME}, e.g. {count: 4, model: A100})'),
        ({"simulate_gpus": True}, "c.yaml: invalid value for simulate_gpus: True (expected a whole number from 0 to 64, "
                                  "or {count: N, model: NAME}, e.g. {count: 4, model: A100})"),
        ({"kill_grace": "soon"},
         'c.yaml: invalid grace period for kill_grace: "soon" (expected seconds or a duration, e.g. 10, 10s, 1m)'),
        ({"kill_grace": -1},
         "c.yaml: invalid grace period for kill_grace: -1 "
         "(expected seconds or a duration, e.g. 10, 10s, 1m; must not be negative)"),
        ({"node_name": "a b"}, 'c.yaml: invalid value for node_name: "a b" (expected a host-like name of at most '
                               '253 letters, digits, -, _ and ., starting and ending with a letter or digit, '
                               'e.g. gpu-box-1)'),
        ([1], "c.yaml: invalid config: [1] (expected a mapping with fields admin_group, backfill, cost, defaults, "
              "enforcement, engine, fair_share, idle_gpu, insecure, kill_grace, las, listen, log_limit, max_request, mode, node_labels, "
              "node_name, pids_limit, policy, preemption, priority_classes, queues, rate_limit, reserve, resources, retention, "
              "sample_interval, series_interval, simulate_gpus, socket_group, tls)"),
    ],
)
def test_errors(data, message):
    assert str(fails(parse_config, data, "c.yaml")) == message


def test_error_keeps_type_and_field():
    err = fails(parse_config, {"reserve": {"memory": "1GG"}}, "c.yaml")
    assert isinstance(err, QuantityError)
    assert err.field == "reserve.memory"
    err = fails(parse_config, {"policy": 1}, "c.yaml")
    assert err.field == "policy" and err.value == 1


def test_node_name_ok():
    for name in ["gpu-box-1", "host.example.com", "A", "x" * 253]:
        assert parse_config({"node_name": name}, "c.yaml").node_name == name
    fails(parse_config, {"node_name": "x" * 254}, "c.yaml")
    fails(parse_config, {"node_name": "-x"}, "c.yaml")
    fails(parse_config, {"node_name": 5}, "c.yaml")


def test_file_errors_name_the_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("policy: lifo\n")
    err = fails(load_config, path)
    assert str(err) == f'{path}: invalid value for policy: "lifo" (expected one of: best-effort-fifo, strict-fifo, priority, sjf, fair-share, sjf-aging, las)'


def test_yaml_syntax_error(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("reserve: {cpu: 1\npolicy: x\n")
    err = fails(load_config, path)
    assert str(err).startswith(f"{path}: invalid YAML at line ")


def test_multiple_documents_rejected(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("policy: strict-fifo\n---\npolicy: strict-fifo\n")
    assert "expected a single YAML document" in str(fails(load_config, path))


def test_unreadable_file(tmp_path):
    err = fails(load_config, tmp_path)  # a directory
    assert str(err).startswith(f"{tmp_path}: cannot read config file")
    bad = tmp_path / "bin.yaml"
    bad.write_bytes(b"\xff\xfe\x00")
    assert "cannot read config file" in str(fails(load_config, bad))


def test_to_dict_from_dict_round_trip():
    config = Config(simulate_gpus=2, reserve_cpu=500, reserve_memory=GI,
                    default_requests=Resources({CPU: 2000, MEMORY: GI}), policy="strict-fifo",
                    kill_grace=30, node_name="n1")
    data = json.loads(json.dumps(config.to_dict()))
    assert Config.from_dict(data) == config
    assert Config.from_dict(Config().to_dict()) == Config()
    assert Config.from_dict({}) == Config()
    assert Config.from_dict({"default_requests": {}}).default_requests == Resources()


@given(st.integers(0, 64), st.integers(0, 64_000), st.none() | st.integers(0, 2**40),
       st.dictionaries(st.sampled_from([CPU, MEMORY]), st.integers(1, 2**40)),
       st.sampled_from(POLICIES), st.integers(0, 3600), st.none() | st.sampled_from(["a", "gpu-box-1"]))
def test_json_round_trip_property(gpus, cpu, memory, defaults, policy, grace, node):
    config = Config(gpus, cpu, memory, Resources(defaults), policy, grace, node)
    assert Config.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_merged_overrides():
    base = parse_config({"policy": "strict-fifo"}, "c.yaml")
    merged = base.merged(simulate_gpus=4, node_name=None, kill_grace="30s")
    assert merged.simulate_gpus == 4
    assert merged.kill_grace == 30
    assert merged.policy == "strict-fifo"        # untouched
    assert merged.node_name is None              # None leaves the field alone
    assert base.simulate_gpus == 0               # original untouched
    assert base.merged() is base
    assert base.merged(simulate_gpus=None) is base


def test_merged_units():
    config = Config().merged(reserve_cpu=250, reserve_memory=GI, kill_grace=5,
                             default_requests={"cpu": "500m"})
    assert config.reserve_cpu == 250            # ints are the field's own unit (millicores)
    assert config.reserve_memory == GI
    assert config.kill_grace == 5
    assert config.default_requests == Resources({CPU: 500})
    config = Config().merged(reserve_cpu="1", reserve_memory="2Gi", default_requests=Resources({MEMORY: GI}))
    assert config.reserve_cpu == 1000
    assert config.reserve_memory == 2 * GI
    assert config.default_requests == Resources({MEMORY: GI})


def test_merged_validates():
    assert str(fails(Config().merged, simulate_gpus=65)) == (
        "invalid value for simulate_gpus: 65 (expected a whole number from 0 to 64)")
    fails(Config().merged, policy="lifo")
    fails(Config().merged, kill_grace="soon")
    fails(Config().merged, reserve_cpu=-1)
    fails(Config().merged, default_requests=Resources({"nvidia.com/gpu": 1}))
    fails(Config().merged, node_name="bad name")
    with pytest.raises(TypeError):
        Config().merged(simulate_gpu=1)


def test_import_does_not_load_yaml():
    import subprocess
    import sys

    code = "import sys, corral.config; print('yaml' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- enforcement, monitoring, idle reclaim, retention, cost ------------------------------------

def test_monitoring_defaults():
    config = Config()
    assert config.enforcement == "auto" and config.pids_limit == 16384
    assert config.sample_interval == 2.0 and config.series_interval == 30.0
    assert config.idle_gpu.threshold == 5.0 and config.idle_gpu.window == 1800
    assert config.idle_gpu.actions == ("warn",)
    assert config.retention == 30 * 86400 and config.cost == {}


def test_monitoring_fields_parse():
    config = parse_config({
        "enforcement": "watchdog", "pids_limit": 0, "sample_interval": 0.5, "series_interval": "1m",
        "idle_gpu": {"threshold": "10%", "window": "2h", "step": "15m", "actions": ["warn", "signal", "requeue"],
                     "signal": "usr2"},
        "retention": "7d", "cost": {"cpu": 0.05, "gpu": 2, "energy": 0.2, "currency": "EUR"},
    }, "c.yaml")
    assert config.enforcement == "watchdog" and config.pids_limit == 0
    assert config.sample_interval == 0.5 and config.series_interval == 60.0
    policy = config.idle_gpu
    assert (policy.threshold, policy.window, policy.step) == (10.0, 7200, 900)
    assert policy.actions == ("warn", "signal", "requeue") and policy.signal == "SIGUSR2"
    assert config.retention == 7 * 86400
    assert config.cost == {"cpu": 0.05, "nvidia.com/gpu": 2.0, "energy": 0.2, "currency": "EUR"}
    assert Config.from_dict(config.to_dict()) == config
    assert parse_config({"retention": 0}, "c.yaml").retention == 0
    assert parse_config({"idle_gpu": {"actions": []}}, "c.yaml").idle_gpu.enabled is False


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"enforcement": "hard"}, 'c.yaml: invalid value for enforcement: "hard" (expected one of: auto, cgroup, watchdog)'),
        ({"pids_limit": -1}, "c.yaml: invalid value for pids_limit: -1 (expected a whole number from 0 (no limit) to 4194304)"),
        ({"sample_interval": 0.01}, "c.yaml: invalid value for sample_interval: 0.01 (expected seconds from 0.1 to 3600, e.g. 2, 0.5, 30s, 1m)"),
        ({"idle_gpu": {"threshold": 150}}, "c.yaml: invalid value for idle_gpu.threshold: 150 (expected a GPU utilization percentage from 0 to 100, e.g. 5 or 5%)"),
        ({"idle_gpu": {"actions": ["cancel", "warn"]}}, "c.yaml: invalid value for idle_gpu.actions: "),
        ({"idle_gpu": {"signal": "KILL"}}, 'c.yaml: invalid value for idle_gpu.signal: "KILL" (expected a signal name or number that a job can catch, e.g. SIGUSR1, USR2, TERM, 10)'),
        ({"idle_gpu": {"windw": "1h"}}, "c.yaml: unknown field idle_gpu.windw (accepted: threshold, window, step, actions, signal)"),
        ({"cost": {"disk": 1}}, "c.yaml: unknown field cost.disk (accepted: cpu, memory, nvidia.com/gpu, energy, currency)"),
        ({"cost": {"cpu": -1}}, "c.yaml: invalid value for cost.cpu: -1 (expected a non-negative number, the price per hour (energy: per kWh))"),
        ({"retention": "soon"}, 'c.yaml: invalid retention for retention: "soon" (expected e.g. 30d, 12h, or 0 to keep finished jobs forever)'),
    ],
)
def test_monitoring_errors(data, message):
    text = str(fails(parse_config, data, "c.yaml"))
    assert text.startswith(message) and "\n" not in text


@pytest.mark.parametrize(("text", "seconds"), [("0.5", 0.5), ("0.5s", 0.5), ("1.5s", 1.5), ("250ms", 0.25),
                                               ("2m", 120.0), (" 3 s ", 3.0)])
def test_intervals_keep_fractions_of_a_second(text, seconds):
    assert parse_config({"sample_interval": text}, "c.yaml").sample_interval == seconds


def test_users_fields():
    assert (Config().mode, Config().socket_group, Config().admin_group) == ("auto", None, None)
    config = parse_config({"mode": "system", "socket_group": "corral", "admin_group": "corral-admin"}, "c.yaml")
    assert (config.mode, config.socket_group, config.admin_group) == ("system", "corral", "corral-admin")
    assert Config.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert Config().merged(mode="user", admin_group="wheel").admin_group == "wheel"
    assert parse_config({"socket_group": None}, "c.yaml").socket_group is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"mode": "shared"}, 'c.yaml: invalid value for mode: "shared" (expected one of: auto, user, system)'),
        ({"socket_group": "bad group"}, 'c.yaml: invalid value for socket_group: "bad group" (expected a group name, e.g. corral)'),
        ({"admin_group": 10}, "c.yaml: invalid value for admin_group: 10 (expected a group name, e.g. corral)"),
    ],
)
def test_users_field_errors(data, message):
    assert str(fails(parse_config, data, "c.yaml")) == message


# -- queues, fair share, backfill, preemption ------------------------------------------------

def test_queues_parse_with_zeros_and_round_trip():
    config = parse_config({
        "queues": [{"name": "research", "nominal": {"gpu": 4, "cpu": "8"}, "borrowing_limit": {"gpu": 0},
                    "lending_limit": {"gpu": 2}, "policy": "fair-share", "max_user_gpus": 2, "max_user_jobs": 8},
                   {"name": "default"}],
        "fair_share": {"half_life": "2d"}, "backfill": True, "preemption": True,
    }, "c.yaml")
    research, default = config.queues
    assert research.name == "research" and dict(research.nominal) == {"nvidia.com/gpu": 4, "cpu": 8000}
    assert dict(research.borrowing_limit) == {"nvidia.com/gpu": 0}           # zero kept: never borrow
    assert dict(research.lending_limit) == {"nvidia.com/gpu": 2} and research.policy == "fair-share"
    assert (research.max_user_gpus, research.max_user_jobs) == (2, 8)
    assert default.nominal is None and default.policy == "best-effort-fifo"
    assert config.half_life == 2 * 86400 and config.backfill and config.preemption
    assert Config.from_dict(config.to_dict()) == config
    scheduling = config.scheduling
    assert [q.name for q in scheduling.queues] == ["research", "default"] and scheduling.fair_share
    assert scheduling.backfill and scheduling.preemption and scheduling.half_life == 2 * 86400
    # Without queues: one default queue, the whole machine, ordered by ``policy``.
    alone = parse_config({"policy": "sjf"}, "c.yaml").scheduling
    assert [(q.name, q.policy, q.nominal) for q in alone.queues] == [("default", "sjf", None)]
    assert alone.uses_estimates and not Config().scheduling.fair_share


@pytest.mark.parametrize(("data", "message"), [
    ({"queues": {"name": "x"}}, "c.yaml: invalid value for queues: "),
    ({"queues": [{"nominal": {"gpu": 1}}]}, "c.yaml: missing field queues[0].name (expected a queue name, e.g. research)"),
    ({"queues": [{"name": "Research"}]}, 'c.yaml: invalid value for queues[0].name: "Research"'),
    ({"queues": [{"name": "a"}, {"name": "a"}]}, 'c.yaml: invalid value for queues[1].name: "a" (expected each queue name once)'),
    ({"queues": [{"name": "a", "policy": "lottery"}]}, 'c.yaml: invalid value for queues[0].policy: "lottery" (expected one of: best-effort-fifo, strict-fifo, priority, sjf, fair-share, sjf-aging, las)'),
    ({"queues": [{"name": "a", "nominal": {"gpu": "x"}}]}, 'c.yaml: invalid quantity for queues[0].nominal.gpu: "x"'),
    ({"queues": [{"name": "a", "nominal": {"gpu": 1}, "lending_limit": {"gpu": 2}}]},
     "c.yaml: invalid value for queues[0].lending_limit.nvidia.com/gpu: 2 (expected at most the nominal quota (1))"),
    ({"queues": [{"name": "a", "quota": 1}]}, "c.yaml: unknown field queues[0].quota (accepted: "),
    ({"backfill": "yes"}, 'c.yaml: invalid value for backfill: "yes" (expected true or false)'),
    ({"fair_share": {"half_life": "never"}}, 'c.yaml: invalid half-life for fair_share.half_life: "never"'),
])
def test_queue_errors(data, message):
    text = str(fails(parse_config, data, "c.yaml"))
    assert text.startswith(message) and "\n" not in text, text


def test_engine_block():
    from corral.config import parse_config

    c = parse_config({"engine": {"type": "ray", "address": "10.0.0.5:6379", "start_timeout": "2m"}})
    assert (c.engine, c.engine_address, c.engine_start_timeout) == ("ray", "10.0.0.5:6379", 120)
    assert parse_config({"engine": "local"}).engine == "local"
    s = parse_config({"engine": {"type": "slurm", "partition": "gpu", "conf": "/etc/slurm/slurm.conf",
                                 "start_timeout": "90s"}})
    assert (s.engine, s.engine_partition, s.engine_conf, s.engine_start_timeout) == (
        "slurm", "gpu", "/etc/slurm/slurm.conf", 90)
    assert parse_config({"engine": {"type": "ray", "address": "[::1]:6379"}}).engine_start_timeout == 60
    bad = {
        "missing field engine.address (expected the Ray cluster's GCS address, HOST:PORT, e.g. 10.0.0.5:6379)":
            {"type": "ray"},
        'invalid value for engine.address: "head" (expected HOST:PORT, e.g. 10.0.0.5:6379)':
            {"type": "ray", "address": "head"},
        'invalid value for engine.address: "h:70000" (expected HOST:PORT, e.g. 10.0.0.5:6379)':
            {"type": "ray", "address": "h:70000"},
        "unknown field engine.address (accepted: type)": {"type": "local", "address": "h:1"},
        'invalid value for engine.type: "k8s" (expected one of: local, ray, slurm)': {"type": "k8s"},
        "missing field engine.partition (expected the Slurm partition corral places jobs in, e.g. gpu)":
            {"type": "slurm"},
        'invalid value for engine.partition: "a b" (expected a Slurm partition name: letters, digits, -, _ or '
        '., at most 64)': {"type": "slurm", "partition": "a b"},
        'invalid value for engine.conf: "slurm.conf" (expected the absolute path of a slurm.conf)':
            {"type": "slurm", "partition": "gpu", "conf": "slurm.conf"},
        "unknown field engine.address (accepted: conf, partition, start_timeout, type)":
            {"type": "slurm", "partition": "gpu", "address": "h:1"},
    }
    for message, value in bad.items():
        with pytest.raises(ValidationError) as err:
            parse_config({"engine": value}, "c.yaml")
        assert str(err.value) == f"c.yaml: {message}"


def test_max_request():
    from corral.config import parse_config

    assert parse_config({}).max_request == 4 * 2**20
    assert parse_config({"max_request": "16Mi"}).max_request == 16 * 2**20
    for bad in ("1Ki", "2Gi", "lots", True):
        with pytest.raises(ValidationError) as err:
            parse_config({"max_request": bad}, "c.yaml")
        assert str(err.value).startswith("c.yaml: invalid value for max_request: ")
        assert str(err.value).endswith("(expected a size from 64Ki to 1Gi, e.g. 4Mi)")


def test_priority_classes():
    from corral.config import parse_config
    from corral.priorities import PriorityClass

    c = parse_config({"priority_classes": [{"name": "low", "value": -10},
                                           {"name": "urgent", "value": "100", "preempt": False,
                                            "users": ["alice"], "groups": ["leads"]}]})
    assert c.priority_classes == (PriorityClass("low", -10), PriorityClass("urgent", 100, False, ("alice",), ("leads",)))
    assert type(c).from_dict(c.to_dict()).priority_classes == c.priority_classes
    bad = {
        "missing field priority_classes[0].value (every class has a name and a value)": [{"name": "low"}],
        'invalid value for priority_classes[0].name: "Low" (expected lower-case letters, digits and -, starting '
        'with a letter, e.g. urgent)': [{"name": "Low", "value": 1}],
        'invalid value for priority_classes[1].name: "a" (expected each class name once)':
            [{"name": "a", "value": 1}, {"name": "a", "value": 2}],
        "invalid value for priority_classes[0].value: 2000000 (expected an integer from -1000000 to 1000000 or a "
        "priority class name)": [{"name": "a", "value": 2000000}],
        'invalid value for priority_classes[0].preempt: "no" (expected true or false)':
            [{"name": "a", "value": 1, "preempt": "no"}],
        'invalid value for priority_classes[0].users: "alice" (expected a list of user names)':
            [{"name": "a", "value": 1, "users": "alice"}],
    }
    for message, value in bad.items():
        with pytest.raises(ValidationError) as err:
            parse_config({"priority_classes": value}, "c.yaml")
        assert str(err.value) == f"c.yaml: {message}"


def test_log_limit():
    from corral.config import parse_config

    assert parse_config({}).log_limit == 2**30
    assert parse_config({"log_limit": "10Gi"}).log_limit == 10 * 2**30 and parse_config({"log_limit": 0}).log_limit == 0
    for bad in ("100Ki", "big", -1):
        with pytest.raises(ValidationError) as err:
            parse_config({"log_limit": bad}, "c.yaml")
        assert str(err.value).endswith("(expected a size of at least 1Mi, e.g. 1Gi, or 0 for no limit)")


# -- daily use (issue 13): extended resources on the node, the default memory, simulate_gpus -------

def test_extended_resources_on_the_node():
    config = parse_config({"resources": {"vendor.example/fpga": 2, "example.com/tpu": "4"}}, "c.yaml")
    assert config.node_resources == {"vendor.example/fpga": 2, "example.com/tpu": 4}
    assert Config.from_dict(config.to_dict()).node_resources == config.node_resources
    assert parse_config(None).node_resources == {}


@pytest.mark.parametrize("value, line", [
    ({"cpu": 4}, 'c.yaml: invalid resource in resources: "cpu" (expected an extended resource such as '
                 "vendor.example/fpga: cpu is detected (reserve keeps some back))"),
    ({"gpu": 4}, 'c.yaml: invalid resource in resources: "gpu" (expected an extended resource such as '
                 "vendor.example/fpga: nvidia.com/gpu is detected (simulate_gpus fakes GPUs))"),
    ({"fpga": 1}, 'c.yaml: invalid resource name in resources: "fpga" (expected an extended resource name '
                  "such as vendor.example/fpga)"),
    ({"vendor.example/fpga": "1.5"}, 'c.yaml: invalid quantity for resources.vendor.example/fpga: "1.5" '
                                     "(expected a whole number, e.g. 1, 2; whole numbers only)"),
    ({"vendor.example/fpga": True}, "c.yaml: invalid value for resources.vendor.example/fpga: True "
                                    "(expected a whole count, e.g. 2)"),
    ([1], "c.yaml: invalid value for resources: [1] (expected a mapping of extended resource to a whole "
          "count, e.g. {vendor.example/fpga: 2})"),
])
def test_bad_node_resources_are_one_line(value, line):
    with pytest.raises(ValidationError) as err:
        parse_config({"resources": value}, "c.yaml")
    assert str(err.value) == line


def test_default_memory_request_and_its_floor():
    config = parse_config({"defaults": {"cpu": "1", "memory": "4Gi"}}, "c.yaml")
    assert config.default_requests == {CPU: 1000, MEMORY: 4 * 2**30}
    with pytest.raises(ValidationError) as err:
        parse_config({"defaults": {"memory": 4}}, "c.yaml")
    assert "below the floor of 1Mi" in str(err.value) and "did you mean 4Gi?" in str(err.value)


def test_simulate_gpus_from_up_wins_over_the_file_and_says_so(caplog):
    import logging

    file = parse_config({"simulate_gpus": 3}, "c.yaml")
    with caplog.at_level(logging.WARNING, logger="corral.config"):
        assert file.merged(simulate_gpus=2).simulate_gpus == 2
        assert file.merged(simulate_gpus=3).simulate_gpus == 3          # the same: nothing to say
        assert Config().merged(simulate_gpus=2).simulate_gpus == 2      # the file says nothing
    assert [r.getMessage() for r in caplog.records] == [
        "simulate_gpus: 2 from `corral up --simulate-gpus 2` (kept in the store) wins over "
        "simulate_gpus: 3 in config.yaml"]
