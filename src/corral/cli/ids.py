"""Job ids as users type them, parsed strictly (Slurm's forms).

* ``12`` -- job 12; when 12 is an array's id (its first task's job id), the whole array;
* ``12_3`` -- task 3 (its ``--array`` index) of array 12;
* ``12-20`` -- every job with an id from 12 to 20 (arrays among them whole);
* ``12,14,20-22`` -- a list of any of these (and several arguments add up).

ASCII digits only: ``1_2`` is task 2 of array 1, never job 12 (Python's ``int()``
accepts underscores, spaces and a sign, so it is not used on what users type). What is
parsed here is sent to the daemon as the API's ``ids``, ``tasks`` and ``ranges``
(:class:`corral.api.models.IdsRequest`), which resolves arrays: the CLI cannot know which
id is an array. No imports: the CLI pays for every one.
"""

from __future__ import annotations

#: What an id argument accepts, for error lines.
ACCEPTED = "job ids such as 12, an array task 12_3, a range 12-20 or a list 12,14,20-22"

#: Largest job id (SQLite integers).
MAX_ID = 2**63 - 1


class BadId(ValueError):
    """One argument that is not an id; ``str()`` is the one-line message."""


def _number(text: str) -> int | None:
    if not text or not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if value <= MAX_ID else None


def parse_refs(values: list[str], what: str = "ID") -> dict[str, list]:
    """``["12", "5_3", "20-22,30"]`` -> ``{"ids": [12, 30], "tasks": [[5, 3]], "ranges": [[20, 22]]}``
    (keys only where there is something); raises :class:`BadId` naming the value."""
    ids: list[int] = []
    tasks: list[list[int]] = []
    ranges: list[list[int]] = []
    for value in values:
        parts = value.split(",")
        for part in parts:
            bad = BadId(f'invalid value for {what}: "{value}" (expected {ACCEPTED})')
            if "_" in part:
                head, _, index = part.partition("_")
                job, idx = _number(head), _number(index)
                if job is None or idx is None or job < 1:
                    raise bad
                if [job, idx] not in tasks:
                    tasks.append([job, idx])
            elif "-" in part:
                lo_text, _, hi_text = part.partition("-")
                lo, hi = _number(lo_text), _number(hi_text)
                if lo is None or hi is None or lo < 1 or hi < lo:
                    raise bad
                if [lo, hi] not in ranges:
                    ranges.append([lo, hi])
            else:
                job = _number(part)
                if job is None or job < 1:
                    raise bad
                if job not in ids:
                    ids.append(job)
    out: dict[str, list] = {}
    for key, items in (("ids", ids), ("tasks", tasks), ("ranges", ranges)):
        if items:
            out[key] = items
    return out


def parse_one(value: str, what: str = "ID") -> dict[str, list]:
    """One job or one task (``12`` or ``12_3``), for ``show`` and ``logs``."""
    bad = BadId(f'invalid value for {what}: "{value}" (expected one job id such as 12, or an array task 12_3)')
    try:
        refs = parse_refs([value], what)
    except BadId:
        raise bad from None
    if "ranges" in refs or sum(len(v) for v in refs.values()) != 1:
        raise bad
    return refs


def selector_options():
    """The options that choose jobs by what they are: ``ps`` filters, and ``cancel``,
    ``hold`` and ``release`` take them too (the same Opt objects)."""
    from .args import Opt

    return (
        Opt("--name", "jobs whose name matches this glob, e.g. 'sweep-*'", metavar="GLOB"),
        Opt("--user", "jobs of this user", metavar="USER"),
        Opt("--mine", "your own jobs", flag=True),
        Opt("--queue", "jobs of this queue", metavar="NAME"),
        Opt("--label", "jobs with this label (all must match)", repeat=True, metavar="K=V"),
        Opt("--array", "the tasks of this array", metavar="ID"),
        Opt("--state", "Pending, Running, Succeeded, Failed or Cancelled (any of them)", repeat=True,
            metavar="STATE"),
        Opt("--since", "submitted within this long, e.g. 30m, 2h, 7d", metavar="TIME"),
    )


SELECTOR_KEYS = ("name", "user", "mine", "queue", "label", "array", "state", "since")
