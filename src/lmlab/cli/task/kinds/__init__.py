"""One module per task kind, holding its ``lmlab task train KIND`` options.

Each ``kinds/<kind>.py`` (the kind as named in :data:`lmlab.tasks.KINDS`) defines

* ``HELP``: one line for ``lmlab task train --help``;
* ``add_arguments(parser)``: the kind's options (data, model, training, ``--out``);
* ``build_config(args) -> dict``: the run config (``[task]`` with ``kind`` and the data
  spec, ``[tokenizer]``, ``[model]``, ``[train]``) handed to the task module's ``train_run``;
* ``report(args, reports)``: what to print once the run is written.

and may define, for kinds whose use is not "text in, label out":

* ``add_predict_arguments(parser)`` / ``predict(args, task_run) -> int``: extra options of
  ``lmlab task predict`` (named so as not to collide with other kinds') and the command
  itself for runs of this kind;
* ``add_eval_arguments(parser)`` / ``evaluate(args, task_run) -> int``: the same for
  ``lmlab task eval``.

Nothing here imports PyTorch at parse time: ``lmlab --help`` stays fast.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from lmlab.tasks import KINDS


def kind_module(kind: str) -> ModuleType:
    """The CLI module of task kind ``kind``."""
    return importlib.import_module(f"{__name__}.{kind}")


def all_kind_modules() -> dict[str, ModuleType]:
    return {kind: kind_module(kind) for kind in KINDS}
