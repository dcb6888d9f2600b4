"""``corral``: the command line.

Every call pays Python's start-up plus what it imports, so this module imports almost
nothing: its own small parser (:mod:`.args`), the API's transport (``_socket`` + ``json``)
and, lazily, the one command module it runs.
"""

from __future__ import annotations

import sys

from .args import Command, Opt, Pos, UsageError, parse
from .ids import selector_options

PROG = "corral"

COMMANDS = {c.name: c for c in (  # noqa: E501
    Command("up", "Start the daemon (any other command starts it too).",
            Opt("--simulate-gpus", "pretend the machine has N GPUs (kept across restarts)", type=int, metavar="N"),
            Opt("--foreground", "run in the foreground, logging to stderr", flag=True),
            Opt("--new-store", "the home's store was lost: kill what its jobs left running, keep their files "
                               "in jobs.lost-TIME and start on an empty store", flag=True)),
    Command("down", "Stop the daemon; running jobs keep running and are re-adopted later."),
    Command("submit", "Submit a job: a command with the resources it needs.",
            Opt("-f|--file", "job document(s), YAML; several documents make one batch; - reads stdin", metavar="FILE"),
            Opt("--cpus", "CPU request, e.g. 2, 500m, 0.5 (default 1)", metavar="CPU"),
            Opt("--mem", "memory request, e.g. 512Mi, 16Gi", metavar="MEM"),
            Opt("--gpus", "GPUs (nvidia.com/gpu): a count, or MODEL:COUNT for a model, e.g. 2 or A100:2",
                metavar="[MODEL:]N"),
            Opt("--node-selector", "run only on nodes with this label, e.g. zone=lab1 (all must match)",
                repeat=True, metavar="K=V"),
            Opt("-N|--nodes", "N replicas, one per node, each with the requests above (default 1)", metavar="N"),
            Opt("--limit-cpus", "CPU limit (default: the request)", metavar="CPU"),
            Opt("--limit-mem", "memory limit (default: the request)", metavar="MEM"),
            Opt("--requests", "Kubernetes spelling: cpu=2,memory=8Gi,nvidia.com/gpu=1", metavar="K=V,..."),
            Opt("--limits", "Kubernetes spelling: cpu=4,memory=12Gi", metavar="K=V,..."),
            Opt("--time", "time limit: 90m, 2h, 1-00:00:00 (a bare number is minutes)", metavar="TIME"),
            Opt("--priority", "integer; higher runs first (default 0)", metavar="N"),
            Opt("--name", "job name", metavar="NAME"),
            Opt("--env", "set an environment variable", repeat=True, metavar="K=V"),
            Opt("--label", "attach a label", repeat=True, metavar="K=V"),
            Opt("--workdir", "working directory (default: the current one)", metavar="DIR"),
            Opt("--signal", "sent when corral stops the job (time limit, cancel), e.g. USR1 to checkpoint; "
                "SIGKILL follows after the grace period (default TERM)", metavar="SIG"),
            Opt("--grace", "seconds between the stop signal and SIGKILL, e.g. 30s, 2m", metavar="TIME"),
            Opt("--idle-threshold", "GPU utilization under this counts as idle, e.g. 5%", metavar="PCT"),
            Opt("--idle-window", "idle this long before the first reclaim action, e.g. 30m", metavar="TIME"),
            Opt("--idle-actions", "reclaim chain, e.g. warn,signal,cancel (or requeue); none = off",
                metavar="LIST"),
            Opt("--queue", "the queue to charge (default: default)", metavar="NAME"),
            Opt("--array", "one job per index: 0-99, 1,3,5-7, 0-98:2; %N runs at most N at once", metavar="SPEC"),
            Opt("--after", "start after other jobs: ID[,ID] (succeeded), afterany:ID, afternotok:ID",
                metavar="DEPS"),
            Opt("--retries", "run again after a failure, with backoff (10s, 20s, 40s ...)", metavar="N"),
            Opt("--hold", "submit held: it waits until `corral release`", flag=True),
            Opt("--no-requeue", "if preempted, end (Cancelled) instead of queueing again", flag=True),
            Opt("--no-preempt", "never preempt this job", flag=True),
            Opt("--resumable", "it saves its work on its stop signal and resumes from it (CORRAL_SERVED > 0): "
                "policy las may preempt it by attained service", flag=True),
            Pos("argv", "the command; one argument with spaces or shell characters runs via /bin/sh -c", rest=True),
            usage="[options] [-f job.yaml | [--] COMMAND [ARGS...]]"),
    Command("ps", "List jobs: pending and running by default, with why each one waits.",
            Opt("-a|--all", "include finished jobs", flag=True),
            *selector_options(),
            Opt("-n|--limit", "the newest N jobs", type=int, metavar="N")),
    Command("show", "Everything about one job: state and reason, allocation, times, events; of an array "
            "(its id): a summary, tasks counted by state.",
            Pos("id", "job id, array id, or array task ID_INDEX (12_3)")),
    Command("logs", "Print a job's output.",
            Opt("-f|--follow", "keep printing until the job ends", flag=True),
            Opt("--stderr", "the job's stderr instead of its stdout", flag=True),
            Opt("--attempt", "only what attempt N wrote (1: the first run; each retry or requeue is the next)",
                type=int, metavar="N"),
            Pos("id", "job id, or an array task ID_INDEX (12_3)")),
    Command("cancel", "Cancel jobs: SIGTERM to the job's process group, SIGKILL after the grace period.",
            *selector_options(),
            Opt("-y|--yes", "do not ask before changing more than 5 jobs", flag=True),
            Pos("ids", "job ids (12; 12_3 an array task; 12-20; 12,14; an array's id is every task)",
                many=True, optional=True)),
    Command("wait", "Wait for jobs to end; exit status 0 only if all succeeded.",
            Pos("ids", "job ids (12; 12_3 an array task; 12-20; 12,14; an array's id is every task)", many=True)),
    Command("update", "Change jobs: priority, time limit, queue (pending); time limit (running). Users may "
            "only lower priorities and time limits.",
            Opt("--priority", "new priority", metavar="N"),
            Opt("--time", "new time limit, e.g. 2h", metavar="TIME"),
            Opt("--queue", "new queue", metavar="NAME"),
            Pos("ids", "job ids (12; 12_3 an array task; 12-20; 12,14; an array's id is every task)", many=True)),
    Command("hold", "Hold pending jobs: they are not started until released.",
            *selector_options(),
            Opt("-y|--yes", "do not ask before changing more than 5 jobs", flag=True),
            Pos("ids", "job ids (12; 12_3 an array task; 12-20; 12,14; an array's id is every task)",
                many=True, optional=True)),
    Command("release", "Release held jobs.",
            *selector_options(),
            Opt("-y|--yes", "do not ask before changing more than 5 jobs", flag=True),
            Pos("ids", "job ids (12; 12_3 an array task; 12-20; 12,14; an array's id is every task)",
                many=True, optional=True)),
    Command("nodes", "Each node's state, capacity, allocatable, allocated and free per resource; who holds "
                     "each GPU and core."),
    Command("drain", "Start nothing new on a node (admins); its running jobs run on. Kept across restarts.",
            Pos("node", "node name (see corral nodes)")),
    Command("undrain", "Let jobs start on a drained node again (admins).",
            Pos("node", "node name (see corral nodes)")),
    Command("queues", "Queues: quota (nominal, borrowing, lending), usage, borrowed, running and pending jobs."),
    Command("top", "Live view of running jobs and GPUs: CPU, memory, GPU utilization/memory/power per job "
            "(q quits).",
            Opt("--once", "print one frame and exit", flag=True),
            Opt("-d|--interval", "seconds between refreshes (default 2; the header shows it)", type=float,
                metavar="S")),
    Command("usage", "Accounting: CPU-, GPU-hours, energy, wasted GPU-hours and cost per user or job.",
            Opt("--since", "window, e.g. 7d, 24h, 30m (default 7d)", metavar="TIME"),
            Opt("--by", "user, job or queue (default user)", metavar="KEY")),
    Command("prune", "Delete finished jobs (records, usage, logs) older than the retention period.",
            Opt("--older-than", "age, e.g. 30d, 12h, 0 for every finished job (default: the configured "
                "retention, 30d)", metavar="TIME")),
    Command("sim", "Replay a cluster trace through corral's own scheduler in virtual time; compare policies.",
            Opt("--trace", "trace file", metavar="FILE"),
            Opt("--format", "philly, alibaba, swf or corral (a corral store, e.g. $CORRAL_HOME/corral.db)",
                metavar="FORMAT"),
            Opt("--cluster", "NxMgpu[,Ccpu[,MEM]] (e.g. 16x4gpu), a nodes YAML file or an Alibaba openb node "
                "list (.csv)", metavar="SPEC"),
            Opt("--policy", "best-effort-fifo (default), strict-fifo, sjf (oracle), sjf-history, sjf-aging, las "
                "(jobs taken as resumable), easy-backfill, fair-share, srtf (oracle), tiresias, config (see "
                "--config); repeat to compare", repeat=True,
                metavar="NAME"),
            Opt("--estimate-factor", "easy-backfill's run-time estimate: actual duration x K, for jobs "
                "without a requested time (default 1.0: exact, an oracle)", type=float, metavar="K"),
            Opt("--half-life", "fair-share: half-life of past usage, e.g. 7d (default), 12h", metavar="TIME"),
            Opt("--tiresias-thresholds", "tiresias: queue thresholds in attained GPU-seconds, e.g. 3250,7200 "
                "(default, the authors' simulator's) or 3200", metavar="LIST"),
            Opt("--tiresias-promote-knob", "tiresias: promote a job back to the first queue once it has waited "
                "K times its run time (default 0: never)", metavar="K"),
            Opt("--reference-rules", "srtf, tiresias: paper (default: the authors' simulator's order, every job "
                "preemptible) or corral (victims on one node, gang jobs never preempted, tiresias queues by "
                "submit time)", metavar="RULES"),
            Opt("--placement", "srtf, tiresias: best-fit (default, corral's) or first-fit (the papers': first "
                "node that fits, whole free nodes for a job larger than a node)", metavar="RULE"),
            Opt("--plot", "write PNG plots (JCT CDF; utilization and queue length) into DIR", metavar="DIR"),
            Opt("--load", "rescale inter-arrival times: 2.0 = arrivals twice as dense", type=float, metavar="X"),
            Opt("--jobs", "only the first N jobs (of the window, after the filters)", type=int, metavar="N"),
            Opt("--window", "replay only a window this long, e.g. 8h, whose start --seed draws at random",
                metavar="TIME"),
            Opt("--min-duration", "leave out jobs shorter than this, e.g. 60s (counted)", metavar="TIME"),
            Opt("--max-gpu-hours", "leave out jobs of this many GPU-hours or more (counted)", type=float,
                metavar="H"),
            Opt("--node-fraction", "use a random fraction of the nodes file's nodes, picked by --seed", type=float,
                metavar="F"),
            Opt("--seed", "seed of the random choices (--window start, --node-fraction); default 0; the replay "
                "itself is deterministic", type=int, metavar="N"),
            Opt("--config", "a daemon config file (queues with quotas, policy, fair_share, backfill, "
                "preemption): adds the policy 'config', which runs it", metavar="FILE"),
            Opt("--out", "write the metrics to FILE (.csv or .json)", metavar="FILE"),
            Opt("--per-job", "write each job's outcome to FILE (CSV: policy, id, submit, start, end, node, "
                "GPUs, share, model; with --packing: scorer, arrival, id, node, GPUs, share, model)",
                metavar="FILE"),
            Opt("--keep-running", "alibaba: keep the pods still Running at the trace's end (cut there) instead "
                "of leaving them out", flag=True),
            Opt("--packing", "the FGD paper's packing experiment instead of a replay: arrivals shuffled by --seed, "
                "no departures, until requests reach --fill; GPU allocation ratio of FGD, best fit and the FGD "
                "simulator's weighted best fit",
                flag=True),
            Opt("--fill", "--packing: stop arrivals once requests reach this share of the cluster's GPUs "
                "(default 1.3)", type=float, metavar="X")),
    Command("watch", "Follow jobs' state changes as they happen, a line each (Ctrl-C stops).",
            Opt("--job", "only this job", type=int, metavar="ID"),
            Opt("--all", "from the first change the store has, not from now", flag=True)),
    Command("token", "Bearer tokens for the TCP API: create (printed once), list, revoke ID|NAME.",
            Opt("--name", "a name for it, e.g. laptop", metavar="NAME"),
            Opt("--scope", "read (GET only), submit (default: also submit, cancel, hold ...) or admin",
                metavar="SCOPE"),
            Opt("--expires", "lifetime, e.g. 30d, 12h (default: until revoked)", metavar="TIME"),
            Pos("action", "create, list or revoke"),
            Pos("target", "the token to revoke: its id or name", many=True, optional=True),
            usage="create [--name N] [--scope read|submit|admin] [--expires 30d] | list | revoke ID|NAME"),
    Command("ui", "Open the web dashboard: prints (and opens, where a browser exists) a link with a 12 h token.",
            Opt("--no-browser", "only print the link", flag=True)),
    Command("export", "Print Kubernetes manifests: a job (file or id) as a batch/v1 Job, or the queues as Kueue "
            "objects (docs/kubernetes.md).",
            Opt("-f|--file", "kubernetes: job document(s), YAML; - reads stdin", metavar="FILE"),
            Opt("--image", "kubernetes: the container image the job runs in (required)", metavar="IMAGE"),
            Opt("--name", "kubernetes: the Job's name (default: the job's name, made a DNS-1123 label)",
                metavar="NAME"),
            Opt("--namespace", "the namespace of the Jobs (default: none, kubectl's) and LocalQueues "
                "(default: default)", metavar="NS"),
            Opt("--config", "the corral config whose queues, defaults and GPUs count (default: the home's "
                "config.yaml)", metavar="FILE"),
            Pos("kind", "kubernetes or kueue"),
            Pos("ids", "kubernetes: job ids instead of -f (12; an array's id is the whole array; 12_3 one task)",
                many=True, optional=True),
            usage="kubernetes (-f job.yaml | ID...) --image IMAGE [--name NAME] [--namespace NS] | "
                  "kueue [--config FILE] [--namespace NS]"),
    Command("completion", "Print a shell completion script: commands, options, job ids and queues.",
            Pos("shell", "bash, zsh or fish"),
            usage="bash|zsh|fish   (e.g. source <(corral completion bash))"),
)}


def _with_run(commands: dict[str, Command]) -> dict[str, Command]:
    """``run`` (after ``submit``): every option of ``submit`` (the same Opt objects, so the
    two never drift apart) plus ``--pty``."""
    out: dict[str, Command] = {}
    for name, command in commands.items():
        out[name] = command
        if name == "submit":
            out["run"] = Command(
                "run", "Submit a job, stream its output, exit with its exit code; Ctrl-C cancels it (srun).",
                *[o for o in command.opts if o.dest != "json"],
                Opt("--pty", "interactive: the job gets a terminal, connected to this one (e.g. -- bash)",
                    flag=True),
                *command.pos, usage="[submit options] [--pty] [--] COMMAND [ARGS...]")
    return out


COMMANDS = _with_run(COMMANDS)


def _help() -> str:
    lines = [f"usage: {PROG} [--home DIR] COMMAND [options]", "",
             "Run ML jobs on a shared machine: submit, queue, and run each with exactly the",
             "CPUs, memory and GPUs it asks for.", "", "commands:"]
    lines += [f"  {c.name:<10} {c.help}" for c in COMMANDS.values()]
    lines += ["", "options:",
              "  --home DIR   state directory (default $CORRAL_HOME or $XDG_STATE_HOME/corral); a named",
              "               home that does not exist is created only by `corral --home DIR up`",
              "  --url URL    a remote daemon's TCP API, http(s)://HOST:PORT (or $CORRAL_URL), with",
              "               the token in $CORRAL_TOKEN",
              "  --version    print corral's version and exit",
              "  -h, --help   print this help and exit",
              "", f"`{PROG} COMMAND --help` describes a command; with --json, errors are a JSON object on stderr."]
    return "\n".join(lines)


def _json_mode(argv: list[str]) -> bool:
    """``--json`` among the command's own options (not in a submitted command after ``--``)."""
    head = argv[:argv.index("--")] if "--" in argv else argv
    return "--json" in head[1:]


def _error(lines: list[str], code: int, as_json: bool) -> int:
    """Print an error: ``error: LINE`` per line, or under ``--json`` one JSON object on
    stderr, ``{"error": "LINE; LINE", "lines": [...], "exit_code": N}`` (stdout stays
    what a script parses on success only)."""
    if as_json:
        import json

        print(json.dumps({"error": "; ".join(lines), "lines": lines, "exit_code": code}), file=sys.stderr)
    else:
        for line in lines:
            print(f"error: {line}", file=sys.stderr)
    return code


#: The daemon names what was wrong by the request's field (``time_limit``, ``older_than``);
#: a person typed an option. Per command: field -> option, for ``... for FIELD:`` in its errors.
_OPTION_OF = {
    "submit": {"time_limit": "--time", "kill_grace": "--grace", "grace": "--grace", "stop_signal": "--signal",
               "signal": "--signal", "array": "--array", "after": "--after", "retries": "--retries",
               "priority": "--priority", "queue": "--queue", "workdir": "--workdir", "name": "--name",
               "node_selector": "--node-selector", "nodes": "--nodes", "gpus": "--gpus", "idle_gpu": "--idle-*",
               "idle_gpu.threshold": "--idle-threshold", "idle_gpu.window": "--idle-window",
               "idle_gpu.actions": "--idle-actions", "env": "--env", "labels": "--label"},
    "update": {"time": "--time", "priority": "--priority", "queue": "--queue"},
    "prune": {"older_than": "--older-than"},
    "usage": {"since": "--since", "by": "--by"},
}
_OPTION_OF["run"] = _OPTION_OF["submit"]


def _as_typed(command: str, line: str) -> str:
    """An error line from the daemon in the words of the command line that was typed:
    ``invalid age for older_than: "x"`` -> ``invalid age for --older-than: "x"``."""
    options = _OPTION_OF.get(command)
    if not options:
        return line
    for field, option in options.items():
        for head in (" for ", "invalid value for "):
            at = line.find(f"{head}{field}:")
            if at >= 0:
                return line[:at] + f"{head}{option}:" + line[at + len(head) + len(field) + 1:]
    if command == "update" and line.startswith("nothing to change"):
        return "nothing to change (give at least one of --priority, --time, --queue)"
    return line


def _unknown_command(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(COMMANDS), n=1, cutoff=0.6)
    if close:
        return f"unknown command \"{name}\" (did you mean {close[0]}?)"
    return f"unknown command \"{name}\" (expected one of: {', '.join(COMMANDS)}; see `{PROG} --help`)"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    home = None
    as_json = _json_mode(argv)
    leading_json = False
    while argv and (argv[0] in ("--home", "--json", "--url") or argv[0].startswith(("--home=", "--url="))):
        if argv[0] == "--json":              # `corral --json ps` is `corral ps --json`
            leading_json, as_json, argv = True, True, argv[1:]
            continue
        if argv[0] == "--url" or argv[0].startswith("--url="):   # a remote daemon: what CORRAL_URL says
            if argv[0] == "--url" and len(argv) < 2:
                return _error(["option --url needs a value (http(s)://HOST:PORT)"], 2, as_json)
            url, argv = (argv[1], argv[2:]) if argv[0] == "--url" else (argv[0].split("=", 1)[1], argv[1:])
            import os

            os.environ["CORRAL_URL"] = url
            continue
        if argv[0] == "--home":
            if len(argv) < 2:
                return _error(["option --home needs a value (DIR)"], 2, as_json)
            home, argv = argv[1], argv[2:]
        else:
            home, argv = argv[0].split("=", 1)[1], argv[1:]
        if not home:
            return _error(["invalid value for --home: \"\" (expected a directory)"], 2, as_json)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_help())
        return 0 if argv else 2
    if argv[0] in ("--version", "-V", "version"):
        from .. import __version__

        print(f"corral {__version__}")
        return 0
    if argv[0] == "__complete":              # hidden: what shell completion asks (completion.py)
        from .completion import helper

        return helper(argv[1:], home)
    command = COMMANDS.get(argv[0])
    if command is None:
        return _error([_unknown_command(argv[0])], 2, as_json)
    try:
        args = parse(command, (["--json"] if leading_json else []) + argv[1:], PROG)
    except UsageError as exc:
        return _error([str(exc)], 2, as_json)
    args.home = home
    from ..errors import CorralError

    try:
        if command.name in ("up", "down", "nodes", "drain", "undrain"):
            from . import daemon_cmds as mod
        elif command.name in ("top", "usage", "prune", "queues"):
            from . import usage_cmds as mod  # type: ignore[no-redef]
        elif command.name == "run":
            from . import run_cmd as mod  # type: ignore[no-redef]
        elif command.name == "completion":
            from . import completion as mod  # type: ignore[no-redef]
            args.commands = COMMANDS
        elif command.name == "token":
            from . import token_cmd as mod  # type: ignore[no-redef]
        elif command.name == "ui":
            from . import ui_cmd as mod  # type: ignore[no-redef]
        elif command.name == "watch":
            from . import watch_cmd as mod  # type: ignore[no-redef]
        elif command.name == "export":
            from . import export_cmd as mod  # type: ignore[no-redef]
        elif command.name == "sim":
            from . import sim_cmd as mod  # type: ignore[no-redef]
            args.format = args.format or "philly"
            args.cluster = args.cluster or "16x4gpu"
            args.load = 1.0 if args.load is None else args.load
        else:
            from . import job_cmds as mod  # type: ignore[no-redef]
        if command.name != "sim":
            from .. import client

            client.ANNOUNCE_AUTOSTART = True      # `corral: started a daemon for HOME (pid N)`, once
        if command.name in ("submit", "run"):
            from .conflicts import check_submit

            check_submit(args)
        return getattr(mod, "cmd_" + command.name)(args)
    except UsageError as exc:
        return _error([str(exc)], 2, as_json)
    except CorralError as exc:
        typed = "" if getattr(args, "file", None) else command.name    # -f: the file's own field paths
        lines = [_as_typed(typed, line) for line in getattr(exc, "lines", None) or [str(exc)]]
        return _error(lines, 1, as_json)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
