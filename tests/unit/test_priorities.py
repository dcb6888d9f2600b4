"""Priority classes at submit: who may use which class (users, groups, queues), and the
default a job that names none gets (its queue's class, else the global default)."""

from __future__ import annotations

import pytest

from corral.config import parse_config
from corral.daemon.auth import SYSTEM, Access, Principal, with_priorities
from corral.errors import PermissionDenied, ValidationError
from corral.priorities import Priorities, PriorityClass
from corral.spec import build_spec

ALICE = Principal(61001, 61001, "alice")
SYSTEM_ACCESS = Access(mode=SYSTEM, daemon_uid=0)

CONFIG = {
    "priority_classes": [
        {"name": "low", "value": -10, "default": True},
        {"name": "lab", "value": 20, "preempt": False, "queues": ["lab"]},
        {"name": "urgent", "value": 100, "users": ["bob"]},
    ],
    "queues": [{"name": "lab", "priority_class": "lab"}, {"name": "other"}],
}


def _priorities() -> Priorities:
    c = parse_config(CONFIG)
    return Priorities(c.priority_classes, {q.name: q.priority_class for q in c.queues if q.priority_class})


def _submit(priority=0, queue="default", who=ALICE):
    spec = build_spec(["true"], priority=priority, queue=queue)
    [out] = with_priorities([spec], _priorities(), who, SYSTEM_ACCESS, groups=lambda name, gid: [])
    return out.priority_class, out.priority, out.preempts


def test_a_job_that_names_no_class_gets_its_queues_class_else_the_global_default():
    assert _submit(queue="lab") == ("lab", 20, False)
    assert _submit(queue="other") == ("low", -10, True)
    assert _submit(queue="default") == ("low", -10, True)


def test_a_class_open_to_a_queue_is_open_to_that_queues_jobs_only():
    assert _submit("lab", queue="lab") == ("lab", 20, False)
    with pytest.raises(PermissionDenied) as err:
        _submit("lab", queue="other")
    assert str(err.value) == ("permission denied: priority class lab is not open to alice (classes you may use: "
                              "low=-10)")
    with pytest.raises(PermissionDenied, match="priority 21 is above what alice may use .at most 20;"):
        _submit(21, queue="lab")              # the ceiling counts the queue's classes
    assert _submit(-20, queue="other") == ("", -20, True)    # a raw value up to the ceiling (-10)


def test_without_classes_a_job_keeps_plain_zero():
    spec = build_spec(["true"])
    [out] = with_priorities([spec], Priorities(), ALICE, SYSTEM_ACCESS, groups=lambda name, gid: [])
    assert (out.priority_class, out.priority) == ("", 0)


def test_config_checks_queue_classes_and_one_default():
    c = parse_config(CONFIG)
    assert c.priority_classes[0] == PriorityClass("low", -10, default=True)
    assert c.priority_classes[1].queues == ("lab",)
    assert type(c).from_dict(c.to_dict()).priority_classes == c.priority_classes
    assert type(c).from_dict(c.to_dict()).queues[0].priority_class == "lab"
    bad = {
        'invalid value for queues[0].priority_class: "nosuch" (expected one of the priority_classes: lab, low, '
        'urgent)': {**CONFIG, "queues": [{"name": "q", "priority_class": "nosuch"}]},
        'invalid value for priority_classes[1].default: "true" (expected default: true on one class at most (a has '
        'it))':
            {"priority_classes": [{"name": "a", "value": 1, "default": True}, {"name": "b", "value": 2, "default": True}]},
        'invalid value for priority_classes[0].queues: "lab" (expected a list of queue names)':
            {"priority_classes": [{"name": "a", "value": 1, "queues": "lab"}]},
        'invalid value for queues[0].priority_class: 5 (expected the name of a priority class, lower-case letters, '
        'digits and -, starting with a letter, e.g. urgent)': {"queues": [{"name": "q", "priority_class": 5}]},
    }
    for message, data in bad.items():
        with pytest.raises(ValidationError) as err:
            parse_config(data, "c.yaml")
        assert str(err.value) == f"c.yaml: {message}"


def test_only_admins_may_shield_a_job_from_preemption_on_a_shared_machine():
    spec = build_spec(["true"], preemptible=False)
    with pytest.raises(PermissionDenied) as err:
        with_priorities([spec], Priorities(), ALICE, SYSTEM_ACCESS, groups=lambda name, gid: [])
    assert str(err.value) == ("permission denied: --no-preempt (preemptible: false) is for admins on a shared machine "
                              "(alice is not one); a priority class protects a job instead")
    root = Principal(0, 0, "root")
    [out] = with_priorities([spec], Priorities(), root, SYSTEM_ACCESS, groups=lambda name, gid: [])
    assert out.preemptible is False
    [mine] = with_priorities([spec], Priorities(), ALICE, Access(), groups=lambda name, gid: [])   # user mode
    assert mine.preemptible is False
