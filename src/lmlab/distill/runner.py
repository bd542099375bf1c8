"""``lmlab distill``: a small Transformer student trained on a teacher's soft targets, into an
ordinary run directory.

The teacher is anything :func:`lmlab.train.finetune.read_base` reads (a run directory, a
``.gguf`` file, a Hugging Face folder, ``builtin:smollm2``). The student shares its tokenizer:
the corpus is tokenised with it and the run's ``tokenizer.json`` is the teacher's. The
teacher's top-k targets are computed once and cached (:mod:`lmlab.distill.targets`); the
student is trained by lmlab's own trainer with the distillation objective
(:mod:`lmlab.distill.objective`), so checkpoints, resume, metrics and the card are those of
any run. ``alpha = 0`` is the from-scratch twin: the same windows and batches, plain
cross-entropy, and the teacher is never run. ``config.toml`` records the settings in its
``[distill]`` section.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lmlab.config import atomic_write_text, from_dict, load_toml, save_toml, to_dict
from lmlab.data.shards import Dataset
from lmlab.errors import LmlabError
from lmlab.models import LanguageModel, build_model, config_from_dict, for_depth
from lmlab.run import CONFIG_FILE, TOKENIZER_FILE
from lmlab.train import distributed as ddp
from lmlab.train.card import write_card
from lmlab.train.checkpoint import STATE_FILE
from lmlab.train.config import TrainConfig
from lmlab.train.loop import METRICS_FILE, TrainResult, train
from lmlab.train.plots import plot_losses

CACHE_DIR = "teacher_targets"  # inside the run directory, unless --cache says where
INIT_EMBEDDINGS = ("random", "project")


@dataclass
class DistillSettings:
    """The ``[distill]`` section of a distilled run's ``config.toml``."""

    teacher: str
    alpha: float = 0.5  # weight of the KL term; 0 = plain cross-entropy (no teacher run)
    temperature: float = 1.0
    top_k: int = 64
    cache: str | None = None  # folder of cached teacher targets; default: RUN/teacher_targets
    init_embeddings: str = "random"  # "random" | "project" (PCA of the teacher's table)
    init_from: str | None = None  # a student run to start from (same tokenizer)
    teacher_name: str = ""  # filled in when the run starts
    teacher_fingerprint: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise LmlabError(f"--alpha must be between 0 and 1, got {self.alpha}")
        if not self.temperature > 0:
            raise LmlabError(f"--temperature must be positive, got {self.temperature}")
        if self.top_k < 1:
            raise LmlabError(f"--top-k must be at least 1, got {self.top_k}")
        if self.init_embeddings not in INIT_EMBEDDINGS:
            raise LmlabError(
                f"--init-embeddings must be 'random' or 'project', got {self.init_embeddings!r}"
            )
        if self.init_from and self.init_embeddings == "project":
            raise LmlabError(
                "--init-from and --init-embeddings project both set the student's embeddings; "
                "use one of them"
            )

    def cache_dir(self, run_dir: Path) -> Path:
        return Path(self.cache) if self.cache else run_dir / CACHE_DIR


@dataclass
class Student:
    """The student's shape: ``for_depth(depth)`` with an optional width and block style."""

    depth: int | None = None
    width: int | None = None
    block: str = "gpt2"

    def config(self, vocab_size: int, context: int):
        if self.depth is None:
            raise LmlabError("give the student's size: --student-depth N (or --init-from RUN)")
        if self.depth < 1:
            raise LmlabError(f"--student-depth must be at least 1, got {self.depth}")
        cfg = for_depth(self.depth, vocab_size, context, self.block)
        if self.width is None or self.width == cfg.d_model:
            return cfg
        if self.width < 8:
            raise LmlabError(f"--student-width must be at least 8, got {self.width}")
        heads = max(1, self.width // 64)  # heads of about 64, as for_depth makes them
        return dataclasses.replace(cfg, d_model=self.width, n_head=heads, n_kv_head=None)


def teacher_model(base) -> LanguageModel:
    """The teacher's model from its tensors (a Transformer shares them: no copy), in eval mode."""
    from lmlab.models import Transformer

    if base.family == "transformer":
        return Transformer.from_tensors(base.config, base.tensors).eval()
    model = build_model(base.family, base.config)
    model.load_tensors(base.tensors)
    return model.eval()


def _vocab(base) -> int:
    return int(getattr(base.config, "vocab_size", 0) or base.tokenizer.vocab_size)


def _check_teacher_context(base, context: int) -> None:
    limit = getattr(base.config, "context_length", None) if base.family == "transformer" else None
    if limit and context > limit:
        raise LmlabError(
            f"--context {context} exceeds the teacher's context length ({limit}); use at most {limit}"
        )


def _where(spec: str) -> str:
    """A model source as the run records it: ``builtin:NAME`` as it is, a path absolute."""
    return spec if spec.startswith("builtin:") else str(Path(spec).resolve())


def _check_sizes(settings: DistillSettings, base, mcfg) -> None:
    """Settings that do not fit the teacher, caught before the run directory is touched."""
    if settings.alpha > 0 and settings.top_k > _vocab(base):
        raise LmlabError(f"--top-k {settings.top_k} exceeds the teacher's vocabulary "
                         f"({_vocab(base)}); use a smaller --top-k")  # fmt: skip
    width = getattr(base.config, "d_model", None)
    if settings.init_embeddings == "project" and width and mcfg.d_model > width:
        raise LmlabError(
            f"--init-embeddings project needs a student no wider than the teacher ({width}); "
            f"the student is {mcfg.d_model} wide: use --init-embeddings random or a narrower "
            "student"
        )


def _student_start(settings: DistillSettings, student: Student, teacher, context: int):
    """The student's config and, with ``--init-from``, the run it starts from."""
    if not settings.init_from:
        return student.config(_vocab(teacher), context), None
    from lmlab.train.finetune import read_base

    start = read_base(settings.init_from)
    if start.tokenizer.to_dict() != teacher.tokenizer.to_dict():
        raise LmlabError(
            f"--init-from {settings.init_from} uses another tokenizer ({start.tokenizer.kind}, "
            f"{start.tokenizer.vocab_size} tokens) than the teacher {settings.teacher} "
            f"({teacher.tokenizer.kind}, {teacher.tokenizer.vocab_size}); a student must share "
            "its teacher's tokenizer"
        )
    if start.family != "transformer":
        raise LmlabError(f"--init-from {settings.init_from}: the student must be a transformer run")
    if student.depth is not None and student.depth != start.config.n_layer:
        raise LmlabError(
            f"--student-depth {student.depth} contradicts --init-from {settings.init_from} "
            f"({start.config.n_layer} layers); drop --student-depth"
        )
    if student.width is not None and student.width != start.config.d_model:
        raise LmlabError(
            f"--student-width {student.width} contradicts --init-from {settings.init_from} "
            f"(width {start.config.d_model}); drop --student-width"
        )
    if start.config.vocab_size != _vocab(teacher):
        raise LmlabError(
            f"--init-from {settings.init_from} predicts {start.config.vocab_size} tokens, the "
            f"teacher {_vocab(teacher)}; a student must share its teacher's vocabulary"
        )
    cfg = dataclasses.replace(
        start.config, context_length=max(context, start.config.context_length)
    )
    return cfg, start


def run_distill(
    settings: DistillSettings | None,
    out: str | Path,
    corpus: list[str] | None = None,
    student: Student | None = None,
    train_options: dict[str, Any] | None = None,
    val_fraction: float = 0.1,
    overwrite: bool = False,
    resume: bool = False,
    steps: int | None = None,
    progress: bool = True,
    quiet: bool = False,
) -> tuple[LanguageModel, TrainResult]:
    """Distil into the run directory ``out`` (or continue it with ``resume``: the settings
    come from its ``config.toml``, ``steps`` is the new total)."""
    from lmlab.train.finetune import read_base
    from lmlab.train.runner import load_or_prepare_data, prepare_run_dir

    out = Path(out)
    say = (lambda s: None) if quiet else (lambda s: print(s, flush=True))
    created, backup, started, checkpointed = not out.exists(), None, False, False
    try:
        if resume:
            prepare_run_dir(out, overwrite, resume=True)
            cfg = load_toml(out / CONFIG_FILE)
            if "distill" not in cfg:
                raise LmlabError(
                    f"{out} is not a distilled run (no [distill] in {CONFIG_FILE}); "
                    f"continue it with lmlab train --out {out} --resume"
                )
            settings = from_dict(DistillSettings, cfg["distill"], where="[distill]")
            if steps is not None:
                cfg["train"]["steps"] = steps
            tcfg = from_dict(TrainConfig, cfg["train"], where="[train]")
            # stopped before its first checkpoint (e.g. during the teacher pass): start over
            checkpointed = (out / STATE_FILE).is_file()
            need_teacher = settings.alpha > 0 or (
                not checkpointed and settings.init_embeddings == "project"
            )
            base = read_base(settings.teacher) if need_teacher else None
            if base is not None and base.record["fingerprint"] != settings.teacher_fingerprint:
                raise LmlabError(
                    f"the teacher {settings.teacher} is not the one {out} was distilled from "
                    "(its weights changed); resume needs the same teacher"
                )
            mcfg = config_from_dict("transformer", {k: v for k, v in cfg["model"].items()
                                                    if k != "family"})  # fmt: skip
            start = None
            if settings.init_from and not checkpointed:
                start = read_base(settings.init_from)
        else:
            assert settings is not None
            if not corpus:
                raise LmlabError("no training text: pass --corpus FILE|FOLDER|GLOB|builtin:NAME")
            tcfg = from_dict(TrainConfig, train_options or {}, where="[train]")
            if not overwrite and out.is_dir() and any(out.iterdir()):  # before reading models
                prepare_run_dir(out, overwrite=False, resume=False)
            base = read_base(settings.teacher)
            _check_teacher_context(base, tcfg.context)
            mcfg, start = _student_start(settings, student or Student(), base, tcfg.context)
            _check_sizes(settings, base, mcfg)
            settings = dataclasses.replace(
                settings,
                teacher=_where(settings.teacher),
                init_from=_where(settings.init_from) if settings.init_from else None,
                teacher_name=str(base.record.get("name", "")),
                teacher_fingerprint=str(base.record["fingerprint"]),
                cache=str(Path(settings.cache).resolve()) if settings.cache else None,
            )
            cfg = {
                "distill": {k: v for k, v in to_dict(settings).items() if v is not None},
                "data": {"corpus": list(corpus), "val_fraction": val_fraction},
                "tokenizer": dict(base.tokenizer_config),
                "model": {"family": "transformer", **to_dict(mcfg)},
                "train": to_dict(tcfg),
            }
            backup = prepare_run_dir(out, overwrite, resume=False)
        if tcfg.threads:
            torch.set_num_threads(tcfg.threads)
        data = load_or_prepare_data(cfg, out, ddp.DistInfo(), base.tokenizer if base else None)
        torch.manual_seed(tcfg.seed)
        model = build_model("transformer", mcfg)
        teacher: LanguageModel | None = None
        fresh = not resume or not checkpointed
        if fresh:
            if start is not None:
                model.load_tensors(start.tensors)
                say(f"lmlab: the student starts from {settings.init_from}")
            elif settings.init_embeddings == "project":
                from lmlab.distill.init import init_from_teacher

                teacher = teacher_model(base)
                say("lmlab: " + init_from_teacher(model, teacher))
        save_toml(out / CONFIG_FILE, cfg)  # on resume: the new total of steps
        if not resume:
            data.tokenizer.save(out / TOKENIZER_FILE)
            if backup is not None:
                shutil.rmtree(backup, ignore_errors=True)
                backup = None
        started = True
        objective, teacher_seconds = _objective(settings, base, teacher, data, tcfg, out,
                                                progress, say)  # fmt: skip
        teacher = base = start = None  # the teachers' weights are not needed from here on
        if fresh:
            say(_opening(settings, model, data, out))
        result = train(model, data, tcfg, out, resume=not fresh, progress=progress,
                       announce=not quiet, objective=objective)  # fmt: skip
        if result.already_complete:
            return model, result
        what = "distilled student" if settings.alpha > 0 else "student from scratch"
        plot_losses(out / METRICS_FILE, out / "loss.png", title=f"{out.name}: {what}")
        if not result.interrupted:
            write_card(out, cfg, model.num_params(), dataclasses.asdict(data.meta),
                       result.final, dataclasses.asdict(result))  # fmt: skip
            _card_section(out, settings, teacher_seconds, data)
        return model, result
    except BaseException:
        if not started and not resume:  # undo a failed start
            if created or backup is not None:
                shutil.rmtree(out, ignore_errors=True)
            if backup is not None:
                backup.rename(out)
        raise


def _objective(settings, base, teacher, data: Dataset, tcfg: TrainConfig, out: Path,
               progress: bool, say) -> tuple[Any, float | None]:  # fmt: skip
    """The distillation objective, with the teacher's targets read or computed."""
    from lmlab.distill.objective import DistillObjective
    from lmlab.distill.targets import TargetSpec, open_targets, tokens_digest

    if settings.alpha == 0.0:
        return DistillObjective(data.train, tcfg.context, 0.0, settings.temperature, None), None
    spec = TargetSpec(
        teacher=settings.teacher_fingerprint,
        tokens=tokens_digest(data.train),
        n_tokens=len(data.train),
        context=tcfg.context,
        top_k=settings.top_k,
        temperature=float(settings.temperature),
        vocab_size=_vocab(base),
    )

    def make_teacher() -> LanguageModel:
        return teacher if teacher is not None else teacher_model(base)

    targets, seconds = open_targets(settings.cache_dir(out), spec, make_teacher, data.train,
                                    progress=progress, say=say)  # fmt: skip
    return DistillObjective(
        data.train, tcfg.context, settings.alpha, settings.temperature, targets
    ), (seconds or None)


def _opening(settings: DistillSettings, model: LanguageModel, data: Dataset, out: Path) -> str:
    c = model.config
    what = (f"a transformer student ({model.num_params():,} parameters; {c.n_layer} layers, "
            f"width {c.d_model})")  # fmt: skip
    if settings.alpha == 0.0:
        how = "from scratch (alpha 0: cross-entropy only; the teacher is not run)"
    else:
        how = (f"from {settings.teacher_name or settings.teacher} (alpha {settings.alpha:g}, "
               f"temperature {settings.temperature:g}, top-{settings.top_k})")  # fmt: skip
    return (f"lmlab: training {what} {how} on {data.meta.train_tokens:,} tokens "
            f"(the teacher's tokenizer, vocabulary {data.meta.vocab_size:,}) into {out}")  # fmt: skip


def _card_section(out: Path, s: DistillSettings, teacher_seconds: float | None, data) -> None:
    """A "Distillation" section at the end of ``card.md``."""
    card = out / "card.md"
    text = card.read_text(encoding="utf-8")
    if s.alpha == 0.0:
        lines = [f"- from scratch: alpha 0 (plain cross-entropy on the same windows); tokenizer "
                 f"of the teacher `{s.teacher}`"]  # fmt: skip
    else:
        lines = [
            f"- teacher: `{s.teacher}` ({s.teacher_name}, weights {s.teacher_fingerprint})",
            f"- loss: {s.alpha:g} x T^2 x KL(teacher_T || student_T) + {1 - s.alpha:g} x "
            f"cross-entropy, T = {s.temperature:g}",
            f"- teacher targets: top-{s.top_k} log-probabilities + the remainder mass, cached in "
            f"`{s.cache_dir(out)}`"
            + (f" (teacher pass {teacher_seconds:.0f} s)" if teacher_seconds else " (reused)"),
        ]
    lines.append(
        f"- student embeddings: {'from --init-from ' + s.init_from if s.init_from else s.init_embeddings}"
    )  # noqa: E501
    atomic_write_text(card, text.rstrip("\n") + "\n\n## Distillation\n\n" + "\n".join(lines) + "\n")
