"""A small declarative argument parser for the CLI.

Why not argparse: argparse imports ``re`` and ``gettext`` (and with them ``enum``,
``locale`` ...), which is most of a ``corral submit`` call's own time. This parser
handles what corral's commands need: ``--opt value``, ``--opt=value``, short aliases,
flags, repeatable options, typed positionals, ``--`` and a trailing command
(``submit ... -- cmd args``), with one-line errors and generated help.
"""

from __future__ import annotations

import sys


class UsageError(Exception):
    """Bad command line: printed as one line, exit status 2."""


class Opt:
    def __init__(self, names: str, help: str = "", *, flag: bool = False, repeat: bool = False,
                 type=str, metavar: str = "VALUE"):
        self.names = names.split("|")
        long = [n for n in self.names if n.startswith("--")]
        self.dest = (long or self.names)[0].lstrip("-").replace("-", "_")
        self.help, self.flag, self.repeat, self.type, self.metavar = help, flag, repeat, type, metavar

    def default(self):
        return False if self.flag else ([] if self.repeat else None)


class Pos:
    def __init__(self, dest: str, help: str = "", *, type=str, many: bool = False, rest: bool = False,
                 optional: bool = False):
        self.dest, self.help, self.type, self.many, self.rest = dest, help, type, many, rest
        #: ``many`` and may be left out (``corral cancel --name 'sweep-*'``): then ``[]``.
        self.optional = optional


class Command:
    def __init__(self, name: str, help: str, *items, usage: str = ""):
        self.name, self.help, self.usage = name, help, usage
        self.opts = [i for i in items if isinstance(i, Opt)] + [Opt("--json", "print JSON", flag=True)]
        self.pos = [i for i in items if isinstance(i, Pos)]

    def lookup(self, name: str) -> Opt | None:
        for opt in self.opts:
            if name in opt.names:
                return opt
        return None

    def help_text(self, prog: str) -> str:
        pos = " ".join((f"[{p.dest.upper()}...]" if p.many and p.optional else f"{p.dest.upper()}..." if p.many
                        else f"[-- {p.dest.upper()} ...]" if p.rest else p.dest.upper()) for p in self.pos)
        lines = [f"usage: {prog} {self.name} {self.usage or '[options] ' + pos}".rstrip(), "", self.help, ""]
        if self.pos:
            lines.append("arguments:")
            lines += [f"  {p.dest.upper():<24} {p.help}" for p in self.pos]
            lines.append("")
        lines.append("options:")
        for opt in self.opts:
            spec = ", ".join(opt.names) + ("" if opt.flag else f" {opt.metavar}")
            more = " (repeatable)" if opt.repeat else ""
            lines.append(f"  {spec:<24} {opt.help}{more}")
        return "\n".join(lines)


class Namespace:
    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __repr__(self) -> str:
        return f"Namespace({self.__dict__!r})"


def _convert(value: str, type_, what: str):
    try:
        digits = value[1:] if value[:1] == "-" else value
        if type_ is int and not (digits.isascii() and digits.isdigit()):
            raise ValueError(value)          # int() takes "1_0", " 1" and "+1": not what was meant
        return type_(value)
    except ValueError:
        kind = "an integer" if type_ is int else "a number" if type_ is float else "a value"
        shown = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in value[:80])
        raise UsageError(f"invalid value for {what}: \"{shown}\" (expected {kind})") from None


def parse(command: Command, argv: list[str], prog: str = "corral") -> Namespace:
    values = {opt.dest: opt.default() for opt in command.opts}
    positionals: list[str] = []
    rest: list[str] | None = None
    rest_pos = next((p for p in command.pos if p.rest), None)
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            if rest_pos is None:
                positionals.extend(argv[i + 1:])
            else:
                rest = argv[i + 1:]
            break
        if arg in ("-h", "--help"):
            print(command.help_text(prog))
            raise SystemExit(0)
        if arg.startswith("-") and len(arg) > 1 and not _is_number(arg):
            name, eq, inline = arg.partition("=")
            opt = command.lookup(name)
            if opt is None:
                raise UsageError(f"unknown option {name} for `{prog} {command.name}` "
                                 f"(see `{prog} {command.name} --help`)")
            if opt.flag:
                if eq:
                    raise UsageError(f"option {name} takes no value")
                values[opt.dest] = True
                i += 1
                continue
            if eq:
                raw = inline
                i += 1
            else:
                if i + 1 >= len(argv):
                    raise UsageError(f"option {name} needs a value ({opt.metavar})")
                raw = argv[i + 1]
                i += 2
            value = _convert(raw, opt.type, name)
            if opt.repeat:
                values[opt.dest].append(value)
            else:
                values[opt.dest] = value
            continue
        if rest_pos is not None and len(positionals) >= len([p for p in command.pos if not p.rest]):
            rest = argv[i:]  # the command starts here; everything after belongs to it
            break
        positionals.append(arg)
        i += 1
    fixed = [p for p in command.pos if not p.rest]
    for n, pos in enumerate(fixed):
        if pos.many:
            if len(positionals) <= n and pos.optional:
                values[pos.dest] = []
                break
            if len(positionals) <= n:
                raise UsageError(f"`{prog} {command.name}` needs {_what(pos)}{_example(pos, prog, command)}")
            values[pos.dest] = [_convert(v, pos.type, _singular(pos)) for v in positionals[n:]]
            positionals = positionals[:n]
            break
        if len(positionals) <= n:
            raise UsageError(f"`{prog} {command.name}` needs {_what(pos)}{_example(pos, prog, command)}")
        values[pos.dest] = _convert(positionals[n], pos.type, _singular(pos))
    else:
        if len(positionals) > len(fixed):
            raise UsageError(f"unexpected argument for `{prog} {command.name}`: {positionals[len(fixed)]}")
    if rest_pos is not None:
        values[rest_pos.dest] = rest or []
    return Namespace(**values)


def _what(pos: Pos) -> str:
    """A positional in words, from its help (``job ids``, ``a job id``), else its name."""
    words = pos.help.split(" (")[0].split(";")[0].split(":")[0].strip() or pos.dest.replace("_", " ")
    if pos.many:
        return f"at least one {_singular(pos)}"
    return words if words.split()[0] in ("a", "an", "the") else f"a {words}"


def _singular(pos: Pos) -> str:
    words = pos.help.split(" (")[0].split(";")[0].split(":")[0].strip() or pos.dest.replace("_", " ")
    return words[:-1] if pos.many and words.endswith("s") else words


def _example(pos: Pos, prog: str, command: Command) -> str:
    return f" (e.g. `{prog} {command.name} 12`)" if pos.type is int else ""


def _is_number(arg: str) -> bool:
    try:
        float(arg)
        return True
    except ValueError:
        return False


def die(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2
