"""Synthetic tasks for the emergence lab, one module per family, and their registry.

``get_task("add", digits=4)`` or ``task_from_spec("add:digits=4,reversed=true")`` builds a
task; ``make_split(task, n_train, n_test, seed)`` draws disjoint training and test problems;
``encode(examples, task.vocab())`` turns them into tensors. See :mod:`.base` for the parts
every task shares.
"""

from __future__ import annotations

from typing import Any

from lmlab.config import from_dict, parse_value
from lmlab.errors import LmlabError
from lmlab.lab.tasks.arithmetic import Addition, Modular, Multiplication
from lmlab.lab.tasks.base import (
    Encoded,
    Example,
    Split,
    Task,
    Vocab,
    encode,
    make_split,
    seq_len_for,
)
from lmlab.lab.tasks.dyck import Dyck
from lmlab.lab.tasks.fewshot import FewShot
from lmlab.lab.tasks.sequences import Copy, Induction, Recall, Reverse

TASKS: dict[str, type[Task]] = {
    cls.name: cls
    for cls in (
        Addition,
        Multiplication,
        Modular,
        Copy,
        Reverse,
        Recall,
        Induction,
        Dyck,
        FewShot,
    )
}

__all__ = [
    "TASKS",
    "Encoded",
    "Example",
    "Split",
    "Task",
    "Vocab",
    "encode",
    "get_task",
    "make_split",
    "parse_task_spec",
    "seq_len_for",
    "task_from_spec",
]


def get_task(name: str, **params: Any) -> Task:
    """The task ``name`` with ``params`` (checked: unknown names and wrong types are errors)."""
    if name not in TASKS:
        raise LmlabError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return from_dict(TASKS[name], params, where=f"task {name}")


def parse_task_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"add:digits=4,reversed=true"`` -> ``("add", {"digits": 4, "reversed": True})``."""
    name, _, rest = spec.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        if "=" not in item:
            raise LmlabError(f"task parameter {item!r} is not KEY=VALUE (e.g. add:digits=4)")
        key, value = item.split("=", 1)
        params[key.strip()] = parse_value(value.strip())
    return name.strip(), params


def task_from_spec(spec: str) -> Task:
    name, params = parse_task_spec(spec)
    return get_task(name, **params)
