"""Shell completion: ``corral completion bash|zsh|fish`` prints a script.

The commands, their options and which options take a value come from ``main.COMMANDS``
(the parser's own table, handed in as ``args.commands``: this module does not import
``main``), so the scripts never go stale. What only the daemon knows --
job ids, queue and node names -- the scripts ask ``corral __complete ids|queues|nodes``
for, a hidden helper that never starts a daemon and prints nothing when none runs.
"""

from __future__ import annotations

import sys

from .args import Command, Opt, UsageError

SHELLS = ("bash", "zsh", "fish")

#: Options' values that are one of a few words.
_WORDS = {
    "state": "Pending Running Succeeded Failed Cancelled",
    "by": "user job queue",
    "format": "philly alibaba swf corral",
    "policy": "best-effort-fifo strict-fifo priority sjf sjf-history easy-backfill fair-share srtf tiresias config",
    "idle_actions": "warn signal cancel requeue none",
    "signal": "TERM INT HUP USR1 USR2 QUIT KILL",
    "reference_rules": "paper corral",
    "placement": "best-fit first-fit",
}
#: Options whose value is a job id (or ids), a queue, a file or a directory.
_IDS = {"after"}
_QUEUES = {"queue"}
_FILES = {"FILE"}
_DIRS = {"DIR"}


def value_kind(opt: Opt) -> str:
    """What an option's value completes to: ``ids``, ``queues``, ``file``, ``dir``,
    ``words:...`` or ``""`` (anything: nothing to offer). Flags take no value."""
    if opt.dest in _IDS:
        return "ids"
    if opt.dest in _QUEUES:
        return "queues"
    if opt.dest in _WORDS:
        return "words:" + _WORDS[opt.dest]
    if opt.metavar in _FILES:
        return "file"
    if opt.metavar in _DIRS:
        return "dir"
    return ""


def positional_kind(command: Command) -> str:
    """What the command's arguments complete to: ``ids``, ``nodes``, ``words:...``,
    ``command`` (a job's command: programs and files) or ``""``."""
    for pos in command.pos:
        if pos.rest:
            return "command"
        if pos.dest in ("id", "ids"):
            return "ids"
        if pos.dest == "node":
            return "nodes"
        if pos.dest == "shell":
            return "words:" + " ".join(SHELLS)
        if pos.dest == "kind" and command.name == "export":
            return "words:kubernetes kueue"
    return ""


# the helper ------------------------------------------------------------------------------
def helper(argv: list[str], home: str | None) -> int:
    """``corral __complete ids|queues|nodes``: one name a line, from a running daemon only."""
    what = argv[0] if argv else ""
    if what not in ("ids", "queues", "nodes"):
        print(f"error: invalid value for __complete: \"{what}\" (expected ids, queues or nodes)", file=sys.stderr)
        return 2
    try:
        from ..client import Connection

        conn = Connection(home, autostart=False, timeout=5.0)
        if not conn.is_running():
            return 0
        if what == "ids":
            jobs = conn.request("GET", "/v1/jobs?state=Pending&state=Running")["jobs"]
            names = [str(j["id"]) for j in jobs]
        elif what == "queues":
            names = [q["name"] for q in conn.request("GET", "/v1/queues")["queues"]]
        else:
            names = [n["name"] for n in conn.request("GET", "/v1/nodes")["nodes"]]
    except Exception:  # noqa: BLE001 - completion never shows an error
        return 0
    if names:
        sys.stdout.write("\n".join(names) + "\n")
    return 0


# the scripts -----------------------------------------------------------------------------
def cmd_completion(args) -> int:
    shell = args.shell
    if shell not in SHELLS:
        raise UsageError(f"invalid value for SHELL: \"{shell}\" (expected one of: {', '.join(SHELLS)})")
    sys.stdout.write({"bash": bash, "zsh": zsh, "fish": fish}[shell](args.commands))
    return 0


def _value_opts(command: Command) -> list[Opt]:
    return [o for o in command.opts if not o.flag]


def bash(commands: dict[str, Command]) -> str:
    cmd_cases, value_cases = [], {}
    for name, command in commands.items():
        opts = " ".join(n for o in command.opts for n in o.names) + " --help"
        takes = " ".join(n for o in _value_opts(command) for n in o.names)
        cmd_cases.append(f'        {name}) opts="{opts}"; takes=" {takes} "; pos="{positional_kind(command)}" ;;')
        for opt in _value_opts(command):
            for n in opt.names:
                value_cases.setdefault(value_kind(opt), set()).add(f"{name}:{n}")
    lines = []
    for kind, keys in sorted(value_cases.items()):
        if kind:
            lines.append(f'        {"|".join(sorted(keys))}) _corral_values "{kind}"; return 0 ;;')
    return _BASH.format(commands=" ".join(commands), cmd_cases="\n".join(cmd_cases), value_cases="\n".join(lines))


_BASH = r'''# corral completion for bash: source <(corral completion bash)
# (or save it as ~/.local/share/bash-completion/completions/corral)
_corral_values() {{
    local kind="$1" list
    case "$kind" in
        ids|queues|nodes) list="$(command corral "${{_corral_home[@]}}" __complete "$kind" 2>/dev/null)"
                          COMPREPLY=($(compgen -W "$list" -- "$cur")) ;;
        words:*) COMPREPLY=($(compgen -W "${{kind#words:}}" -- "$cur")) ;;
        file) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur")) ;;
        dir) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- "$cur")) ;;
        command) compopt -o default 2>/dev/null; COMPREPLY=() ;;    # programs, then files
    esac
}}

_corral() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    local cmd="" i rest=0 opts="" takes="" pos=""
    local -a _corral_home=()
    COMPREPLY=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        local w="${{COMP_WORDS[i]}}"
        if [[ -z "$cmd" ]]; then
            case "$w" in
                --home) _corral_home=(--home "${{COMP_WORDS[i+1]}}"); ((i++)) ;;
                --home=*) _corral_home=("$w") ;;
                -*) ;;
                *) cmd="$w" ;;
            esac
        elif [[ "$w" == "--" ]]; then
            rest=1
        fi
    done
    if [[ -z "$cmd" ]]; then
        if [[ "$prev" == "--home" ]]; then
            _corral_values dir
        else
            COMPREPLY=($(compgen -W "{commands} --home --help --version" -- "$cur"))
        fi
        return 0
    fi
    case "$cmd" in
{cmd_cases}
        *) return 0 ;;
    esac
    if ((rest)); then
        _corral_values command
        return 0
    fi
    case "$cmd:$prev" in
{value_cases}
    esac
    if [[ "$takes" == *" $prev "* ]]; then
        return 0                       # a value nothing can be offered for
    fi
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
        return 0
    fi
    [[ -n "$pos" ]] && _corral_values "$pos"
    return 0
}}
complete -F _corral corral
'''


def _zsh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _zsh_desc(text: str) -> str:
    return text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]").replace(":", "\\:")


_ZSH_ACTIONS = {"ids": "_corral_helper ids", "queues": "_corral_helper queues", "nodes": "_corral_helper nodes",
                "file": "_files", "dir": "_files -/", "command": "_normal", "": " "}


def _zsh_action(kind: str) -> str:
    if kind.startswith("words:"):
        return "(" + kind[len("words:"):] + ")"
    return _ZSH_ACTIONS[kind]


def zsh(commands: dict[str, Command]) -> str:
    described = "\n".join(f"        {_zsh_quote(name + ':' + _zsh_desc(c.help))}" for name, c in commands.items())
    cases = []
    for name, command in commands.items():
        specs = []
        for opt in command.opts:
            desc = _zsh_desc(opt.help.split("; ")[0])
            value = "" if opt.flag else f":{_zsh_desc(opt.metavar)}:{_zsh_action(value_kind(opt))}"
            star = "*" if opt.repeat else ""
            if len(opt.names) > 1:        # '(-f --file)'{-f,--file}'[help]:FILE:_files'
                group = "(" + " ".join(opt.names) + ")"
                specs.append(_zsh_quote(f"{star}{group}") + "{" + ",".join(opt.names) + "}"
                             + _zsh_quote(f"[{desc}]{value}"))
            else:
                specs.append(_zsh_quote(f"{star}{opt.names[0]}[{desc}]{value}"))
        kind = positional_kind(command)
        if kind == "command":
            specs.append(_zsh_quote("*::command:_normal"))
        elif kind:
            specs.append(_zsh_quote(f"*:{command.pos[0].dest}:{_zsh_action(kind)}"))
        cases.append(f"        {name}) _arguments -s -S \\\n            " + " \\\n            ".join(specs) + " ;;")
    return _ZSH.format(described=described, cases="\n".join(cases))


_ZSH = r'''#compdef corral
# corral completion for zsh: source <(corral completion zsh)  (after compinit)
_corral_helper() {{
    local -a items
    items=(${{(f)"$(command corral "${{_corral_home[@]}}" __complete $1 2>/dev/null)"}})
    compadd -a items
}}

_corral() {{
    local -a _corral_home
    local i=2
    while [[ "$words[i]" == --home* ]]; do
        if [[ "$words[i]" == --home ]]; then
            _corral_home=(--home "$words[i+1]"); (( i += 2 ))
        else
            _corral_home=("$words[i]"); (( i += 1 ))
        fi
    done
    if (( CURRENT <= i )); then
        local -a cmds
        cmds=(
{described}
        )
        _describe -t commands 'corral command' cmds
        return
    fi
    local cmd="$words[i]"
    shift $(( i - 1 )) words
    (( CURRENT -= i - 1 ))
    case "$cmd" in
{cases}
    esac
}}
compdef _corral corral
'''


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def fish(commands: dict[str, Command]) -> str:
    out = ["# corral completion for fish: corral completion fish | source",
           "# (or save it as ~/.config/fish/completions/corral.fish)",
           "function __corral_helper",
           "    set -l home",
           "    set -l words (commandline -opc)",
           "    for i in (seq 2 (count $words))",
           "        if test \"$words[$i]\" = --home; and test $i -lt (count $words)",
           "            set home --home $words[(math $i + 1)]",
           "        else if string match -q -- '--home=*' $words[$i]",
           "            set home $words[$i]",
           "        end",
           "    end",
           "    command corral $home __complete $argv 2>/dev/null",
           "end",
           "complete -c corral -f",
           "complete -c corral -n __fish_use_subcommand -l home -r -F -d 'state directory'"]
    for name, command in commands.items():
        out.append(f"complete -c corral -n __fish_use_subcommand -a {name} -d {_fish_quote(command.help)}")
    for name, command in commands.items():
        cond = _fish_quote(f"__fish_seen_subcommand_from {name}")
        for opt in command.opts:
            parts = ["complete -c corral -n", cond]
            for n in opt.names:
                parts.append(f"-s {n[1:]}" if not n.startswith("--") else f"-l {n[2:]}")
            if not opt.flag:
                parts.append("-r")
                kind = value_kind(opt)
                if kind in ("ids", "queues"):
                    parts.append(f"-a {_fish_quote('(__corral_helper ' + kind + ')')}")
                elif kind.startswith("words:"):
                    parts.append(f"-a {_fish_quote(kind[len('words:'):])}")
                elif kind in ("file", "dir"):
                    parts.append("-F")
            parts.append(f"-d {_fish_quote(opt.help.split('; ')[0])}")
            out.append(" ".join(parts))
        kind = positional_kind(command)
        if kind in ("ids", "nodes"):
            out.append(f"complete -c corral -n {cond} -a {_fish_quote('(__corral_helper ' + kind + ')')}")
        elif kind.startswith("words:"):
            out.append(f"complete -c corral -n {cond} -a {_fish_quote(kind[len('words:'):])}")
        elif kind == "command":
            out.append(f"complete -c corral -n {cond} -F -a '(__fish_complete_subcommand)'")
    return "\n".join(out) + "\n"
