"""Score any language model on the lab's synthetic tasks, as text, zero- or few-shot.

The lab trains small models on each task's own vocabulary (:mod:`lmlab.lab.trainer`). A
pretrained model (``builtin:smollm2``), or any lmlab run trained on text, has its own
tokenizer instead, so each problem is rendered as text and the model is asked to continue
it:

* a problem is one line, ``prompt`` then ``answer`` then a newline; letters are written
  one per word (``a b c >`` then `` a b c``), so that a byte-level BPE gives every letter
  its own token and the boundary between prompt and answer falls between tokens; digits
  and operators are written as the task writes them (``123+456=`` then ``0579``);
* ``shots`` solved problems from the training half of the split come first, one per line,
  drawn afresh for every test problem; the test problems are the split's test half, the
  same problems (with the same seed) a model trained by ``lmlab lab sweep`` is tested on;
* the answer is scored with teacher forcing (log-likelihood of the answer and its newline,
  top-1 accuracy of each of the model's own tokens), written greedily (exact match and the
  edit distance, both in the task's symbols, of the text up to the first newline), and for
  multiple-choice tasks each choice is scored and renormalised (choice accuracy, Brier).

The metrics have the names and meanings of :mod:`lmlab.lab.metrics`, with two caveats:
``token_accuracy`` and ``loss`` count each model's own tokens (a task model's tokens are
the task's symbols), and ``answer_loglik`` includes the newline where a task model has
``<eos>``. :func:`scratch_scores` trains a small model from scratch on the same task for
comparison, scored by the lab's own :func:`lmlab.lab.metrics.evaluate`.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from lmlab.errors import LmlabError
from lmlab.lab.tasks import Example, Task, make_split
from lmlab.models.transformer import Transformer
from lmlab.run import Run

FORMATS = ("auto", "plain", "spaced")
N_TRAIN = 200  # training problems the demonstrations are drawn from


@dataclass(frozen=True)
class TextFormat:
    """How a task's symbols become text: ``sep`` joins the symbols of a prompt or answer."""

    sep: str

    def prompt(self, e: Example) -> str:
        return self.sep.join(e.prompt)

    def answer(self, symbols: tuple[str, ...]) -> str:
        """The answer as it follows its prompt (after a space when symbols are words)."""
        return (" " if self.sep == " " else "") + self.sep.join(symbols)

    def line(self, e: Example) -> str:
        return self.prompt(e) + self.answer(e.answer) + "\n"

    def parse(self, text: str) -> list[str]:
        """The symbols of a written answer: the text up to its first newline."""
        text = text.split("\n", 1)[0]
        return text.split() if self.sep == " " else list(text.strip())


def text_format(task: Task, mode: str = "auto") -> TextFormat:
    """``spaced``: one symbol per word; ``plain``: the task's own separator; ``auto``:
    spaced when the task's symbols include letters, else plain."""
    if mode not in FORMATS:
        raise LmlabError(f"--format must be one of {', '.join(FORMATS)}, got {mode!r}")
    if mode == "auto":
        mode = "spaced" if any(len(s) == 1 and s.isalpha() for s in task.symbols()) else "plain"
    return TextFormat(" " if mode == "spaced" else task.sep)


def edit_distance(a: list[str], b: list[str]) -> int:
    """Levenshtein distance between two symbol lists."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


@dataclass
class TextScore:
    """One model on one task: the mean of each metric over the test problems."""

    model: str
    task: str
    how: str  # "3-shot text", "trained from scratch: 64x2, 1000 steps on 20000 problems"
    n: int
    metrics: dict[str, float]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    examples: list[dict] = field(default_factory=list)  # a few rendered problems and outputs

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _start(run: Run) -> list[int]:
    tok = run.tokenizer
    return [tok.bos_id] if tok.add_bos and tok.bos_id is not None else []


def _continuation(tok, context: str, cont: str) -> tuple[list[int], list[int], bool]:
    """Token ids of ``context`` and of ``cont`` after it: the joint tokenisation split at
    the context's tokens when it starts with them (else each encoded alone, and False)."""
    ctx = tok.encode(context)
    full = tok.encode(context + cont)
    if full[: len(ctx)] == ctx and len(full) > len(ctx):
        return ctx, full[len(ctx) :], True
    return ctx, tok.encode(cont), False


@dataclass
class _Problem:
    ids: list[int]  # start token, demonstrations and prompt
    conts: list[list[int]]  # the right answer's tokens (with its newline), then each choice's
    max_new: int  # tokens the greedy answer may take
    # filled in by scoring: per continuation its log-likelihood and which tokens ranked first
    logliks: list[float] = field(default_factory=list)
    right: list[list[bool]] = field(default_factory=list)
    written: str = ""


def _record(p: _Problem, logits: torch.Tensor) -> None:
    """Log-likelihoods and top-1 hits of ``p.conts`` from the logits predicting each token:
    ``logits[j]`` is ``(len(cont_j), V)``."""
    for cont, lg in zip(p.conts, logits, strict=True):
        lg = lg.float()
        target = torch.tensor(cont, device=lg.device)
        p.logliks.append(float(F.log_softmax(lg, -1).gather(-1, target[:, None]).sum()))
        p.right.append((lg.argmax(-1) == target).tolist())


def _ends_line(tok, ids: list[int]) -> bool:
    return "\n" in tok.decode(ids[-4:])


@torch.no_grad()
def _score_one(model, tok, p: _Problem, device) -> None:
    """Any model family, one problem at a time: the prompt once, then each continuation and
    the greedy answer from copies of its decoding state."""
    state = model.new_state(1, device)
    last = model(torch.tensor([p.ids], device=device), state)[0, -1]
    per_cont = []
    for cont in p.conts:
        lg = last[None]
        if len(cont) > 1:
            more = model(torch.tensor([cont[:-1]], device=device), copy.deepcopy(state))[0]
            lg = torch.cat([lg, more])
        per_cont.append(lg)
    _record(p, per_cont)
    s, ids, nxt = copy.deepcopy(state), [], int(last.argmax())
    for i in range(p.max_new):
        if nxt in tok.end_ids:
            break
        ids.append(nxt)
        if _ends_line(tok, ids) or i + 1 == p.max_new:
            break
        nxt = int(model(torch.tensor([[nxt]], device=device), s)[0, -1].argmax())
    p.written = tok.decode(ids)


@torch.no_grad()
def _score_kv(model, tok, probs: list[_Problem], device) -> None:
    """Transformers, many problems at once: the prompts right-padded through one forward
    pass into a ragged KV cache (each row at its own length, as the server batches), then
    every continuation and greedy answer one token per row per step, so a 135M model reads
    its weights once per step for all rows rather than once per token."""
    from lmlab.serve.states import select

    lengths = torch.tensor([len(p.ids) for p in probs], device=device)
    longest = int(lengths.max())
    pad = tok.eos_id
    ids = torch.tensor([p.ids + [pad] * (longest - len(p.ids)) for p in probs], device=device)
    steps = max(max(p.max_new, *map(len, p.conts)) for p in probs)
    state = model.new_state(len(probs), device, capacity=longest + steps)
    h = model.hidden_states(ids, state)
    last = model.head(h[torch.arange(len(probs), device=device), lengths - 1])
    state.lengths, state.pos = lengths.clone(), longest
    # one row per (problem, continuation) and one greedy row per problem
    rows = [(i, j) for i, p in enumerate(probs) for j in range(len(p.conts) + 1)]
    state = select(state, [i for i, _ in rows])
    logits = last[[i for i, _ in rows]]
    seen: list[list[torch.Tensor]] = [[] for _ in rows]
    written: list[list[int]] = [[] for _ in probs]
    done = [False] * len(rows)
    for t in range(steps):
        feed = []
        for r, (i, j) in enumerate(rows):
            p = probs[i]
            if done[r]:
                feed.append(pad)
            elif j < len(p.conts):  # teacher forcing
                seen[r].append(logits[r])
                cont = p.conts[j]
                done[r] = t + 1 == len(cont)
                feed.append(pad if done[r] else cont[t])
            else:  # greedy
                nxt = int(logits[r].argmax())
                if nxt in tok.end_ids:
                    done[r] = True
                else:
                    written[i].append(nxt)
                    done[r] = _ends_line(tok, written[i]) or len(written[i]) == p.max_new
                feed.append(pad if done[r] else nxt)
        if all(done):
            break
        x = torch.tensor(feed, device=device)[:, None]
        logits = model.head(model.hidden_states(x, state))[:, 0]
    for i, p in enumerate(probs):
        _record(
            p,
            [torch.stack(seen[r]) for r, (k, j) in enumerate(rows) if k == i and j < len(p.conts)],
        )
        p.written = tok.decode(written[i])


def demos_and_tests(task: Task, n: int, seed: int) -> tuple[list[Example], list[Example]]:
    """Up to 200 training problems to draw demonstrations from, and ``n`` test problems
    (the first ``n`` of the test half of ``make_split(task, ..., seed)``)."""
    problems = task.all_problems()
    if problems is not None and len(problems) - n < 1:
        raise LmlabError(f"task {task.spec} has too few problems for {n} test problems")
    n_train = N_TRAIN if problems is None else min(N_TRAIN, len(problems) - n)
    for k in (n_train, 50, 10):  # a small space may not hold 200 training problems
        try:
            split = make_split(task, min(k, n_train), n, seed)
            return split.train, split.test
        except LmlabError:
            if k == 10:
                raise
    raise AssertionError("unreachable")


@torch.no_grad()
def score_text(
    run: Run,
    task: Task,
    n: int = 100,
    shots: int = 3,
    seed: int = 0,
    fmt: str = "auto",
    describe: bool = False,
    name: str | None = None,
    progress: bool = False,
    keep_examples: int = 3,
    chunk: int = 8,
) -> TextScore:
    """Score ``run`` on ``n`` test problems of ``task`` rendered as text (module doc);
    a Transformer takes ``chunk`` problems at a time."""
    t0 = time.perf_counter()
    model, tok = run.model, run.tokenizer
    model.eval()
    form = text_format(task, fmt)
    train, test = demos_and_tests(task, n, seed)
    rng = np.random.default_rng([seed, 11])
    header = f"{task.description}; answer: {task.answer_format}.\n" if describe else ""
    device = next(iter(model.parameters()), torch.empty(0)).device
    limit = model.context_length
    start = _start(run)
    problems: list[_Problem] = []
    split_boundaries = 0
    for e in test:
        demos = [
            train[i] for i in rng.choice(len(train), size=min(shots, len(train)), replace=False)
        ]
        context = header + "".join(form.line(d) for d in demos) + form.prompt(e)
        ctx, cont, joint = _continuation(tok, context, form.answer(e.answer) + "\n")
        split_boundaries += not joint
        ids = start + ctx
        conts = [cont] + [
            _continuation(tok, context, form.answer(c) + "\n")[1] for c in e.choices or ()
        ]
        room = None if limit is None else limit - len(ids)
        if room is not None and max(map(len, conts)) > room:
            raise LmlabError(
                f"a {shots}-shot prompt of {len(ids)} tokens leaves no room for the answer in "
                f"the context of {limit} tokens of {name or run.name}; use fewer --shots"
            )
        max_new = 2 * len(cont) + 2 if room is None else min(2 * len(cont) + 2, room)
        problems.append(_Problem(ids, conts, max_new))

    batched = isinstance(model, Transformer)
    chunks = [problems[i : i + chunk] for i in range(0, len(problems), chunk if batched else 1)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(problems), desc=f"{name or run.name} {task.spec}", leave=False)
    for c in chunks:
        need = max(len(p.ids) for p in c) + max(max(p.max_new, *map(len, p.conts)) for p in c)
        if batched and (limit is None or need <= limit):  # rows advance together
            _score_kv(model, tok, c, device)
        elif batched:
            for p in c:
                _score_one(model, tok, p, device)
        else:
            _score_one(model, tok, c[0], device)
        if bar is not None:
            bar.update(len(c))
    if bar is not None:
        bar.close()

    rows: dict[str, list[float]] = {}
    examples = []
    for e, p in zip(test, problems, strict=True):
        got, want = form.parse(p.written), list(e.answer)
        row = {
            "exact_match": float(got == want),
            "token_accuracy": float(np.mean(p.right[0])),
            "edit_distance": float(edit_distance(got, want)),
            "answer_loglik": p.logliks[0],
            "n_tokens": float(len(p.conts[0])),
        }
        if e.choices:
            probs = torch.softmax(torch.tensor(p.logliks[1:], dtype=torch.float64), 0)
            onehot = torch.zeros_like(probs)
            onehot[e.correct] = 1.0
            row["choice_accuracy"] = float(int(probs.argmax()) == e.correct)
            row["brier"] = float(((probs - onehot) ** 2).sum())
        for k, v in row.items():
            rows.setdefault(k, []).append(v)
        if len(examples) < keep_examples:
            examples.append(
                {"prompt": form.prompt(e), "answer": form.answer(e.answer), "written": p.written}
            )
    metrics = {k: float(np.mean(v)) for k, v in rows.items() if k != "n_tokens"}
    metrics["loss"] = -float(np.sum(rows["answer_loglik"]) / np.sum(rows["n_tokens"]))
    notes = []
    if split_boundaries:
        notes.append(
            f"{split_boundaries} of {n} answers tokenised apart from their prompt (the joint "
            "tokenisation merged across the boundary)"
        )
    how = f"{shots}-shot text" + (", described" if describe else "")
    return TextScore(
        model=name or str(run.path),
        task=task.spec,
        how=how,
        n=len(test),
        metrics=metrics,
        notes=notes,
        seconds=time.perf_counter() - t0,
        examples=examples,
    )


def scratch_scores(
    task: Task,
    size: str,
    n: int,
    seed: int = 0,
    data: int = 10_000,
    steps: int = 1000,
    threads: int = 1,
    progress: bool = False,
) -> TextScore:
    """Train a ``size`` model (``WIDTHxLAYERS``) from scratch on ``data`` problems of
    ``task`` for ``steps`` steps (the lab's trainer and defaults) and score it on the same
    ``n`` test problems with the lab's own metrics."""
    from lmlab.lab.trainer import RunSpec, train_and_evaluate

    problems = task.all_problems()
    if problems is not None and data + n > len(problems):
        data = len(problems) - n
    spec = RunSpec(task=task.spec, size=size, data=data, steps=steps, n_test=n, evals=1,
                   data_seed=seed, seed=seed, threads=threads)  # fmt: skip
    res = train_and_evaluate(spec, progress=progress)
    last = dict(res.evals[-1])
    metrics = {
        k: float(v) for k, v in last.items() if k not in ("step", "tokens", "compute", "train_loss")
    }
    return TextScore(
        model=f"scratch {size}",
        task=task.spec,
        how=f"trained from scratch: {res.n_params:,} parameters, {steps} steps on {data:,} "
        "problems",
        n=n,
        metrics=metrics,
        seconds=res.wall_s,
    )


COLUMNS = [
    ("exact_match", "exact", "{:.3f}"),
    ("token_accuracy", "tok acc", "{:.3f}"),
    ("edit_distance", "edit", "{:.2f}"),
    ("answer_loglik", "loglik", "{:.2f}"),
    ("choice_accuracy", "choice", "{:.3f}"),
    ("brier", "brier", "{:.3f}"),
]


def score_table(scores: list[TextScore]) -> list[str]:
    """Markdown table rows: one per model, the metrics the task has."""
    cols = [c for c in COLUMNS if any(c[0] in s.metrics for s in scores)]
    lines = [
        "| model | how | " + " | ".join(c[1] for c in cols) + " | time |",
        "|---|---|" + "---:|" * len(cols) + "---:|",
    ]
    for s in scores:
        cells = [fmt.format(s.metrics[key]) if key in s.metrics else "-" for key, _, fmt in cols]
        lines.append(f"| {s.model} | {s.how} | " + " | ".join(cells) + f" | {s.seconds:.0f} s |")
    return lines
