"""Durations: every accepted form, the bare-number rule, errors, formatting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.durations import MAX_SECONDS, format_duration, parse_duration
from corral.errors import ValidationError


def error(value, **kwargs) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        parse_duration(value, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return info.value


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        # numbers (YAML / API) are seconds
        (90, 90),
        (1, 1),
        (1.5, 2),           # fractions round up
        (0.001, 1),
        (86400, 86400),
        # unit strings
        ("45s", 45),
        ("90s", 90),
        ("90m", 5400),
        ("2h", 7200),
        ("1d", 86400),
        ("1h30m", 5400),
        ("1d2h3m4s", 93784),
        ("1.5h", 5400),
        ("2H", 7200),
        ("1h 30m", 5400),
        (" 90m ", 5400),
        # bare number strings (CLI) are minutes, like Slurm --time
        ("45", 2700),
        ("30", 1800),
        ("1.5", 90),
        # Slurm forms
        ("1:30", 90),                 # minutes:seconds
        ("90:00", 5400),              # minutes may exceed 59 when leading
        ("1:00:00", 3600),            # hours:minutes:seconds
        ("100:00:00", 360000),
        ("2-12", 216000),             # days-hours
        ("2-12:30", 217800),          # days-hours:minutes
        ("1-00:00:00", 86400),        # days-hours:minutes:seconds
        ("1-23:59:59", 172799),
        ("0-01:00:00", 3600),
    ],
)
def test_accepted_forms(value, seconds):
    assert parse_duration(value) == seconds


def test_bare_number_string_means_minutes_but_number_means_seconds():
    assert parse_duration("30") == 30 * 60
    assert parse_duration(30) == 30
    assert parse_duration(30.0) == 30


def test_bare_unit_seconds():
    assert parse_duration("10", bare_unit=1) == 10
    assert parse_duration("10s", bare_unit=1) == 10
    assert parse_duration("1m", bare_unit=1) == 60
    assert parse_duration("1:30", bare_unit=1) == 90  # colon forms do not depend on bare_unit


def test_exact_message_for_unparsable():
    err = error("2x")
    assert str(err) == 'invalid time limit for time: "2x" (expected e.g. 90m, 2h, 1-00:00:00)'
    assert err.field == "time"
    assert err.value == "2x"


def test_field_is_named():
    err = error("nope", field="spec.timeLimit")
    assert str(err) == 'invalid time limit for spec.timeLimit: "nope" (expected e.g. 90m, 2h, 1-00:00:00)'
    assert err.field == "spec.timeLimit"


@pytest.mark.parametrize("value", [0, 0.0, "0", "0s", "0m", "0:00", "0-00:00:00", "0h0m"])
def test_zero_is_an_error(value):
    err = error(value)
    assert "must be greater than zero" in str(err)
    assert "expected e.g. 90m, 2h, 1-00:00:00" in str(err)


@pytest.mark.parametrize("value", [-1, -0.5, "-5", "-1h", "-1:00"])
def test_negative_is_an_error(value):
    err = error(value)
    assert "must be greater than zero" in str(err)


def test_zero_allowed_when_asked():
    assert parse_duration(0, allow_zero=True) == 0
    assert parse_duration("0s", allow_zero=True) == 0
    err = error(-1, allow_zero=True)
    assert "must not be negative" in str(err)


@pytest.mark.parametrize(
    "value",
    ["", "  ", "2x", "h", "1h1h", "30m1h", "1:2:3:4", "1-2-3", "1-", "-", "1.5:00", "1e3",
     "abc", "1 2", "١٢", None, True, False, [], {}, float("nan"), float("inf")],
)
def test_unparsable(value):
    err = error(value)
    assert "expected e.g. 90m, 2h, 1-00:00:00" in str(err)
    assert "invalid time limit for time" in str(err)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("1:60", "seconds must be below 60"),
        ("1:60:00", "minutes must be below 60"),
        ("1:00:60", "seconds must be below 60"),
        ("1-24", "hours after days must be below 24"),
        ("1-00:60", "minutes must be below 60"),
        ("1-00:00:60", "seconds must be below 60"),
    ],
)
def test_out_of_range_parts(value, why):
    err = error(value)
    assert str(err) == f'invalid time limit for time: "{value}" (expected e.g. 90m, 2h, 1-00:00:00; {why})'


def test_too_large():
    assert parse_duration(MAX_SECONDS) == MAX_SECONDS
    err = error(MAX_SECONDS + 1)
    assert "at most 36500d" in str(err)
    assert "at most" in str(error("99999999999999999999d"))


def test_custom_wording():
    err = error("x", field="kill_grace", what="grace period", examples="expected e.g. 10s")
    assert str(err) == 'invalid grace period for kill_grace: "x" (expected e.g. 10s)'


def test_newlines_in_value_stay_on_one_line():
    err = error("1h\n2x")
    assert "\\n" in str(err)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(45, "45s"), (60, "1m"), (5400, "1h30m"), (183600, "2d3h"), (86400, "1d"), (93784, "1d2h3m4s"),
     (0, "0s"), (-90, "-1m30s")],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


@given(st.integers(min_value=1, max_value=MAX_SECONDS))
def test_format_parses_back(seconds):
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.integers(min_value=0, max_value=9999), st.integers(min_value=0, max_value=23),
       st.integers(min_value=0, max_value=59), st.integers(min_value=0, max_value=59))
def test_slurm_full_form(days, hours, minutes, seconds):
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    text = f"{days}-{hours:02d}:{minutes:02d}:{seconds:02d}"
    if total == 0:
        error(text)
    else:
        assert parse_duration(text) == total
