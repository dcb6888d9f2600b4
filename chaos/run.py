"""corral's chaos suite: ``make chaos`` (everything, full size) or ``python chaos/run.py
--short`` (the version ``make test`` runs). Each scenario prints its figures; the exit
status is 1 when any guarantee failed.

    python chaos/run.py [--short] [--only NAME[,NAME]] [--json FILE]

Scenarios that need root (store faults on a tmpfs, system-mode attacks, cgroup limits)
are skipped without it -- and count as failed under ``CI=true``, where they must run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Result  # noqa: E402

#: In the order they run: name -> module (each has ``run(short: bool) -> Result``).
SCENARIOS = {
    "malformed": "malformed",
    "clients": "clients",
    "crash": "crash",
    "store": "store_faults",
    "exhaustion": "exhaustion",
    "attacks": "attacks",
}


def run_one(name: str, short: bool) -> Result:
    module = importlib.import_module(SCENARIOS[name])
    started = time.monotonic()
    try:
        result = module.run(short)
    except Exception:  # noqa: BLE001 - a scenario that breaks is a failure, with its traceback
        result = Result(name, failures=["the scenario itself failed:\n" + traceback.format_exc()])
    result.figures.setdefault("seconds", round(time.monotonic() - started, 1))
    return result


def render(result: Result) -> str:
    status = "skipped" if result.skipped else ("ok" if result.ok else "FAILED")
    lines = [f"== {result.name}: {status}" + (f" ({result.skipped})" if result.skipped else "")]
    width = max((len(k) for k in result.figures), default=0)
    lines += [f"   {key:<{width}}  {value}" for key, value in result.figures.items()]
    lines += [f"   ! {line}" for line in result.failures]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="the small version make test runs")
    parser.add_argument("--only", default="", help="comma-separated scenarios: " + ", ".join(SCENARIOS))
    parser.add_argument("--json", dest="json_out", help="also write the figures to this file")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r} (accepted: {', '.join(SCENARIOS)})")
    ci = os.environ.get("CI", "").lower() == "true"
    results = []
    for name in names:
        result = run_one(name, args.short)
        if result.skipped and ci:
            result.failures.append(f"skipped under CI=true: {result.skipped}")
        results.append(result)
        print(render(result), flush=True)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(
            [{"name": r.name, "ok": r.ok, "skipped": r.skipped, "figures": r.figures, "failures": r.failures}
             for r in results], indent=2, default=str))
    failed = [r.name for r in results if r.failures]
    print(f"chaos: {len(results) - len(failed)} of {len(results)} scenarios held"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
