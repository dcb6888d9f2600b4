"""The interactive field of a job (``spec.pty``): parsed, validated, kept, refused where
the engine cannot give a terminal."""

from __future__ import annotations

import pytest

from corral.errors import CorralError, ValidationError
from corral.spec import JobSpec, build_spec, parse_document, spec_to_document

from manager_helpers import manager


def test_pty_defaults_off_and_round_trips():
    assert build_spec(["sh"]).pty is False
    spec = build_spec(["sh"], pty=True)
    assert spec.pty is True
    assert JobSpec.from_dict(spec.to_dict()) == spec
    assert JobSpec.from_dict({k: v for k, v in spec.to_dict().items() if k != "pty"}).pty is False   # older rows
    doc = spec_to_document(spec)
    assert doc["spec"]["pty"] is True
    assert parse_document(doc) == spec
    assert "pty" not in spec_to_document(build_spec(["sh"]))["spec"]


def test_pty_in_a_document():
    assert parse_document({"spec": {"command": ["bash"], "pty": True}}).pty is True


@pytest.mark.parametrize("value", ["yes", 1, "true"])
def test_pty_must_be_a_boolean(value):
    with pytest.raises(ValidationError) as err:
        parse_document({"spec": {"command": ["bash"], "pty": value}})
    assert str(err.value).startswith("invalid value for spec.pty: ") and "expected true or false" in str(err.value)


@pytest.mark.parametrize("extra", [{"array": "0-3"}, {"nodes": 2}])
def test_pty_is_one_process(extra):
    with pytest.raises(ValidationError) as err:
        parse_document({"spec": {"command": ["bash"], "pty": True, **extra}})
    assert str(err.value) == ("invalid value for spec.pty: True (a job with a terminal is one process: not an "
                              "array and not on several nodes)")


def test_an_engine_without_terminals_refuses_pty_in_one_line():
    m = manager()          # its executor declares no interactive capability (like Ray's)
    with pytest.raises(CorralError) as err:
        m.submit([build_spec(["bash"], pty=True)])
    lines = getattr(err.value, "lines", None) or [str(err.value)]
    assert any("interactive jobs need the local engine" in line and "pty" in line for line in lines), lines
    assert m.store.get_jobs({1}) == []


def test_api_flags_take_pty():
    from corral.api.models import JobFlags
    from corral.daemon.api.specs import from_flags

    assert from_flags(JobFlags.model_validate({"command": ["sh"], "pty": True})).pty is True
    with pytest.raises(Exception):
        JobFlags.model_validate({"command": ["sh"], "pty": "yes"})
