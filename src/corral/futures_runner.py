"""What a :class:`corral.futures.Executor` job runs: ``python -m corral.futures_runner
TASKDIR``. It loads the pickled call (``task.pkl``, or ``task-N.pkl`` for array task N),
calls it, and writes the answer next to it, atomically: ``("ok", value)`` or ``("err",
exception, traceback text)``. Its exit status is 0 either way once an answer is written
(the exception travels in the answer), 1 when none could be."""

from __future__ import annotations

import os
import sys
import traceback


def main(argv: list[str]) -> int:
    import cloudpickle

    if len(argv) != 1:
        print("usage: python -m corral.futures_runner TASKDIR", file=sys.stderr)
        return 2
    taskdir = argv[0]
    index = os.environ.get("CORRAL_ARRAY_INDEX")
    task = os.path.join(taskdir, "task.pkl" if index is None else f"task-{index}.pkl")
    answer_path = os.path.join(taskdir, "answer.pkl" if index is None else f"answer-{index}.pkl")
    try:
        with open(task, "rb") as f:
            fn, args, kwargs = cloudpickle.load(f)
        answer = ("ok", fn(*args, **kwargs))
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
        traceback.print_exc()
        answer = ("err", exc, "".join(traceback.format_exception(exc)))
    try:
        data = cloudpickle.dumps(answer)
    except Exception as exc:  # noqa: BLE001 - a result that cannot be pickled
        text = f"the function's {answer[0] == 'ok' and 'result' or 'exception'} cannot be pickled: {exc!r}"
        print(text, file=sys.stderr)
        data = cloudpickle.dumps(("err", RuntimeError(text), text))
    tmp = answer_path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, answer_path)
    except OSError as exc:
        print(f"cannot write the answer to {answer_path}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
