"""Quantities in Kubernetes syntax and the resource vector's arithmetic."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from corral.errors import CorralError, QuantityError, ValidationError
from corral.resources import (CPU, GPU, MAX_AMOUNT, MEMORY, Resources, canonical_name, format_quantity,
                              parse_quantity)


@pytest.mark.parametrize("resource, value, expected", [
    ("cpu", "2", 2000), ("cpu", 2, 2000), ("cpu", "500m", 500), ("cpu", "0.5", 500), ("cpu", 0.5, 500),
    ("cpu", "1.5", 1500), ("cpu", "0.0001", 1),            # finer than 1m rounds up, like Kubernetes
    ("cpu", "2e3", 2_000_000), ("cpu", "100m", 100),
    ("memory", "512Mi", 512 * 2**20), ("memory", "16Gi", 16 * 2**30), ("memory", "1G", 10**9),
    ("memory", "1e9", 10**9), ("memory", "1E9", 10**9), ("memory", 1024, 1024), ("memory", "1024", 1024),
    ("memory", "1.5Gi", 3 * 2**29), ("memory", "128k", 128_000), ("memory", "1Ki", 1024), ("memory", "2Ti", 2 * 2**40),
    ("memory", "1E", 10**18), ("memory", "1Ei", 2**60),
    ("nvidia.com/gpu", "2", 2), ("gpu", 1, 1), ("gpus", "4", 4), ("example.com/fpga", "3", 3),
])
def test_parse(resource, value, expected):
    assert parse_quantity(resource, value) == expected


@pytest.mark.parametrize("resource, value, message", [
    ("memory", "16GG", 'invalid quantity for memory: "16GG" (expected e.g. 512Mi, 16Gi)'),
    ("memory", "16 Gi", 'invalid quantity for memory: "16 Gi" (expected e.g. 512Mi, 16Gi)'),
    ("memory", "gi", 'invalid quantity for memory: "gi" (expected e.g. 512Mi, 16Gi)'),
    ("cpu", "two", 'invalid quantity for cpu: "two" (expected e.g. 2, 500m, 0.5)'),
    ("cpu", "-1", 'invalid quantity for cpu: "-1" (expected e.g. 2, 500m, 0.5; must not be negative)'),
    ("cpu", True, "invalid quantity for cpu: True (expected e.g. 2, 500m, 0.5)"),
    ("cpu", float("nan"), "invalid quantity for cpu: nan (expected e.g. 2, 500m, 0.5)"),
    ("nvidia.com/gpu", "1.5",
     'invalid quantity for nvidia.com/gpu: "1.5" (expected a whole number, e.g. 1, 2; whole numbers only)'),
    ("gpu", "500m",
     'invalid quantity for nvidia.com/gpu: "500m" (expected a whole number, e.g. 1, 2; whole numbers only)'),
    ("memory", "9e30", 'invalid quantity for memory: "9e30" (expected e.g. 512Mi, 16Gi; too large)'),
    ("memory", "1e999999999", 'invalid quantity for memory: "1e999999999" (expected e.g. 512Mi, 16Gi)'),
    ("cpu", "2e3m", 'invalid quantity for cpu: "2e3m" (expected e.g. 2, 500m, 0.5)'),
])
def test_parse_errors_name_field_value_and_example(resource, value, message):
    with pytest.raises(QuantityError) as err:
        parse_quantity(resource, value)
    assert str(err.value) == message
    assert "\n" not in str(err.value)


def test_resource_names():
    assert canonical_name("gpu") == GPU
    assert canonical_name("GPU") == GPU
    assert canonical_name("vendor.example/name") == "vendor.example/name"
    with pytest.raises(ValidationError) as err:
        canonical_name("fpga")
    assert str(err.value).startswith('unknown resource name: "fpga" (expected cpu, memory, nvidia.com/gpu')


@pytest.mark.parametrize("resource, amount, text", [
    (CPU, 2000, "2"), (CPU, 500, "0.5"), (CPU, 1500, "1.5"), (CPU, 250, "250m"), (CPU, 1, "1m"),
    (MEMORY, 8 * 2**30, "8Gi"), (MEMORY, 512 * 2**20, "512Mi"), (MEMORY, 0, "0"), (MEMORY, 100, "100"),
    (MEMORY, int(3.1 * 2**30), "3.1Gi"), (GPU, 3, "3"),
])
def test_format(resource, amount, text):
    assert format_quantity(resource, amount) == text


def test_vector_arithmetic_and_fit():
    a = Resources.parse({"cpu": "2", "memory": "4Gi", "gpu": 1})
    b = Resources.parse({"cpu": "500m", "gpu": 1})
    assert a.add(b) == {CPU: 2500, MEMORY: 4 * 2**30, GPU: 2}
    assert a.sub(b) == {CPU: 1500, MEMORY: 4 * 2**30}       # zero entries vanish
    assert b.fits_in(a) and not a.fits_in(b)
    assert a.shortfalls(b) == [CPU, MEMORY]
    assert Resources() == {} and Resources({CPU: 0}) == Resources()
    assert hash(Resources({CPU: 1})) == hash(Resources({CPU: 1}))
    assert a.format() == "cpu=2, memory=4Gi, nvidia.com/gpu=1"


def test_vector_rejects_bad_amounts_and_overflow():
    with pytest.raises(CorralError):
        Resources({CPU: 1.5})  # type: ignore[dict-item]
    big = Resources({MEMORY: MAX_AMOUNT})
    with pytest.raises(CorralError, match="overflow"):
        big.add({MEMORY: 1})
    with pytest.raises(QuantityError):
        Resources.parse({"gpu": 1, "nvidia.com/gpu": 2})   # the same resource twice


@given(st.integers(min_value=1, max_value=10**15))
def test_cpu_format_round_trips(milli):
    assert parse_quantity(CPU, format_quantity(CPU, milli)) == milli


@given(st.integers(min_value=1, max_value=2**40), st.sampled_from([2**10, 2**20, 2**30, 2**40]))
def test_memory_display_is_exact_or_within_a_tenth_of_a_unit(n, unit):
    amount = n * unit
    assume(amount <= 2**62)            # display rounding near the int64 bound may round past it
    shown = parse_quantity(MEMORY, format_quantity(MEMORY, amount))
    if n < 1024:
        assert shown == amount           # a whole number of the largest unit: exact
    assert abs(shown - amount) <= 0.05 * amount


@pytest.mark.parametrize("value, hint", [
    ("16g", "expected e.g. 16Gi or 16G (units are case-sensitive)"),
    ("16GB", "expected e.g. 16Gi or 16G (units are case-sensitive)"),
    ("512mb", "expected e.g. 512Mi or 512M (units are case-sensitive)"),
    ("1.5gib", "expected e.g. 1.5Gi or 1.5G (units are case-sensitive)"),
    ("4K", "expected e.g. 4Ki or 4k (units are case-sensitive)"),
    ("16 Gi", "expected e.g. 512Mi, 16Gi"),
])
def test_memory_units_in_the_wrong_case_get_a_hint(value, hint):
    with pytest.raises(QuantityError) as err:
        parse_quantity("memory", value)
    assert str(err.value) == f'invalid quantity for memory: "{value}" ({hint})'
