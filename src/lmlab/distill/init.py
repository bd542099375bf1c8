"""Student embeddings from the teacher's: its token-embedding table projected to the student's
width by PCA (``--init-embeddings project``).

The teacher's table ``E (V, D)`` is centred and projected on its top ``d`` principal
directions (an SVD), which keeps as much of the geometry between tokens as ``d`` dimensions
can: tokens the teacher treats alike start alike. The result is rescaled to the student's own
initial scale (a standard deviation of 0.02, as the random initialisation), so the first
steps behave as in a student started from scratch. With tied embeddings the same table is
the student's output head.
"""

from __future__ import annotations

import torch

from lmlab.errors import LmlabError

INIT_STD = 0.02  # lmlab's Transformer initialises embeddings with this standard deviation


def teacher_embedding(model: torch.nn.Module) -> torch.Tensor:
    """The teacher's token-embedding table ``(V, D)``."""
    for name in ("tok_emb", "embed", "embedding"):
        layer = getattr(model, name, None)
        if isinstance(layer, torch.nn.Embedding):
            return layer.weight.detach()
    raise LmlabError(
        f"--init-embeddings project needs a teacher with a token-embedding table; the "
        f"{getattr(model, 'family', type(model).__name__)} teacher has none"
    )


def project_embeddings(
    table: torch.Tensor, width: int, std: float = INIT_STD
) -> tuple[torch.Tensor, float]:
    """``table (V, D)`` projected to ``(V, width)`` by PCA, with standard deviation ``std``;
    and the share of the table's variance the projection keeps."""
    V, D = table.shape
    if width > D:
        raise LmlabError(
            f"--init-embeddings project needs a student no wider than the teacher ({D}); "
            f"the student is {width} wide: use --init-embeddings random or a narrower student"
        )
    e = table.float()
    e = e - e.mean(dim=0, keepdim=True)
    _, s, vh = torch.linalg.svd(e, full_matrices=False)  # rows of vh: principal directions
    p = e @ vh[:width].T
    share = float((s[:width] ** 2).sum() / (s**2).sum().clamp(min=1e-30))
    return p * (std / p.std().clamp(min=1e-12)), share


def init_from_teacher(student: torch.nn.Module, teacher: torch.nn.Module) -> str:
    """Copy the projected teacher embeddings into the student; returns a one-line report."""
    table = teacher_embedding(teacher)
    emb = student.tok_emb.weight
    if table.shape[0] != emb.shape[0]:
        raise LmlabError(
            f"the teacher's embedding has {table.shape[0]} rows, the student's vocabulary "
            f"{emb.shape[0]}; they must share the tokenizer"
        )
    p, share = project_embeddings(table, emb.shape[1])
    with torch.no_grad():
        emb.copy_(p.to(emb.dtype))
    return (
        f"embeddings projected from the teacher's {tuple(table.shape)} table by PCA to width "
        f"{emb.shape[1]} ({share:.0%} of its variance)"
    )
