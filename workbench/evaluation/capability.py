"""General capability with and without steering: MMLU-format multiple choice and WikiText perplexity.

MMLU folders hold ``dev/<subject>_dev.csv`` and ``test/<subject>_test.csv`` with the header
``question,choice0,choice1,choice2,choice3,answer`` (answer 0-3). Prompts are k-shot from dev; the
prediction is the argmax over the logits of the answer letters. Steering (and its gate, which sees
the question) is applied exactly as in generation.

Example:
    >>> items = load_mmlu("../shared/data/mmlu", n=1000, seed=0)
    >>> mmlu_accuracy(model, items)
"""

from __future__ import annotations

import contextlib
import copy
import csv
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from workbench.activations import context_limit, last_token_index, position_ids, tokenize
from workbench.datasets import DataError
from workbench.model import twin_unless_hooked

__all__ = ["MCItem", "load_mmlu", "mmlu_accuracy", "mmlu_predictions", "shared_context_logits", "wikitext_perplexity"]

LETTERS = ("A", "B", "C", "D")


@dataclass(frozen=True)
class MCItem:
    subject: str
    question: str
    choices: tuple[str, str, str, str]
    answer: int
    prompt: str  # the full k-shot prompt ending in "Answer:"


def _read_mc(path: Path) -> list[tuple[str, tuple[str, str, str, str], int]]:
    rows = []
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        need = ["question", "choice0", "choice1", "choice2", "choice3", "answer"]
        if reader.fieldnames is None or any(c not in reader.fieldnames for c in need):
            raise DataError(f"{path}: header must be {','.join(need)} (got {reader.fieldnames}).")
        for n, row in enumerate(reader, 2):
            try:
                answer = int(row["answer"])
            except (TypeError, ValueError):
                raise DataError(f"{path}:{n}: answer {row['answer']!r} is not an integer 0-3.") from None
            if answer not in range(4):
                raise DataError(f"{path}:{n}: answer {answer} is not in 0-3.")
            rows.append((row["question"], (row["choice0"], row["choice1"], row["choice2"], row["choice3"]), answer))
    return rows


def _format(question: str, choices: Sequence[str], answer: int | None = None) -> str:
    lines = [question.strip()] + [f"{letter}. {c}" for letter, c in zip(LETTERS, choices, strict=True)]
    return "\n".join(lines) + "\nAnswer:" + (f" {LETTERS[answer]}\n\n" if answer is not None else "")


def load_mmlu(folder: str | Path, n: int | None = 1000, k_shot: int = 5, seed: int = 0) -> list[MCItem]:
    """Load MMLU-format data: a seeded sample of ``n`` test questions (None: all), each with k dev shots."""
    folder = Path(folder)
    tests = sorted((folder / "test").glob("*_test.csv"))
    if not tests:
        raise FileNotFoundError(f"No test/<subject>_test.csv files under {folder}. Point --mmlu at an MMLU folder.")
    items = []
    for path in tests:
        subject = path.name[: -len("_test.csv")]
        dev_path = folder / "dev" / f"{subject}_dev.csv"
        shots = _read_mc(dev_path)[:k_shot] if dev_path.is_file() and k_shot else []
        header = f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"
        context = header + "".join(_format(q, c, a) for q, c, a in shots)
        for q, c, a in _read_mc(path):
            items.append(MCItem(subject, q, c, a, context + _format(q, c)))
    if n is not None and n < len(items):
        idx = np.random.default_rng(seed).choice(len(items), size=n, replace=False)
        items = [items[i] for i in sorted(idx)]
    return items


SteerFactory = Callable[[Sequence[MCItem]], contextlib.AbstractContextManager[Any]]


def _no_steering(_: Sequence[MCItem]) -> contextlib.AbstractContextManager[Any]:
    return contextlib.nullcontext()


def _last_token_logits(model: Any, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Logits at each row's last real token, from the wrapped HF model (LM head on that token only).

    The bridge's blocks are the wrapped model's decoder layers, so TransformerLens steering hooks
    fire here exactly as in ``model(ids)``; skipping the LM head on every other position is what
    makes this cheaper on long k-shot prompts.
    """
    hidden = model.original_model.model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask),
                                        use_cache=False).last_hidden_state
    return model.original_model.lm_head(hidden[torch.arange(ids.shape[0]), last_token_index(mask)])


def shared_context_logits(hf: Any, seqs: Sequence[Sequence[int]], batch_size: int = 8) -> torch.Tensor:
    """Next-token logits at the end of each token sequence, running their common prefix only once.

    ``hf`` is a plain Hugging Face causal LM. The longest common prefix of ``seqs`` (the k-shot context
    of one MMLU subject) is run once; its key/value cache is copied to every batch of the remaining
    suffixes, which are right-padded. Equals a full forward of each sequence up to float rounding.
    """
    if not seqs or min(len(s) for s in seqs) < 1:
        raise ValueError("Every sequence needs at least one token.")
    shortest = min(len(s) for s in seqs)
    n_prefix = 0
    while n_prefix < shortest - 1 and len({s[n_prefix] for s in seqs}) == 1:
        n_prefix += 1
    base, head = hf.base_model, hf.get_output_embeddings()
    device = head.weight.device
    cache = None
    if n_prefix:
        cache = base(input_ids=torch.tensor([list(seqs[0][:n_prefix])], device=device), use_cache=True).past_key_values
    out = torch.empty(len(seqs), head.out_features, dtype=head.weight.dtype, device=device)
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    for start in range(0, len(seqs), batch_size):
        idx = order[start : start + batch_size]
        suffixes = [list(seqs[i][n_prefix:]) for i in idx]
        width = max(len(s) for s in suffixes)
        ids = torch.tensor([s + [0] * (width - len(s)) for s in suffixes], device=device)
        real = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in suffixes], device=device)
        mask = torch.cat([torch.ones(len(idx), n_prefix, dtype=real.dtype, device=device), real], dim=1)
        past = None
        if cache is not None:
            past = copy.deepcopy(cache)
            past.batch_repeat_interleave(len(idx))
        hidden = base(input_ids=ids, attention_mask=mask, past_key_values=past, use_cache=past is not None,
                      position_ids=n_prefix + torch.arange(width, device=device).expand(len(idx), -1)).last_hidden_state
        out[idx] = head(hidden[torch.arange(len(idx)), real.sum(1) - 1])
    return out


def _unsteered_predictions(twin: Any, items: Sequence[MCItem], seqs: Sequence[Sequence[int]],
                           letter_ids: Sequence[int], batch_size: int, progress: bool) -> np.ndarray:
    """Predictions without steering, each subject's k-shot context run once (:func:`shared_context_logits`)."""
    groups: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        groups.setdefault(it.subject, []).append(i)
    preds = np.zeros(len(items), dtype=np.int64)
    for idx in tqdm(groups.values(), desc="mmlu subjects", disable=not progress, leave=False):
        with torch.no_grad():
            logits = shared_context_logits(twin, [seqs[i] for i in idx], batch_size=batch_size)
        preds[idx] = logits[:, letter_ids].argmax(-1).cpu().numpy()
    return preds


def mmlu_predictions(model: Any, items: Sequence[MCItem], steering: SteerFactory = _no_steering, batch_size: int = 4,
                     progress: bool = True) -> np.ndarray:
    """Predicted answer (0-3) per item: argmax over the answer letters' logits at the prompt's end.

    Items are batched by prompt length (less padding); ``steering(batch)`` wraps each forward pass.
    Without steering (and no hooks on the model), each subject's k-shot context is run once and its
    key/value cache reused for the subject's questions. The result is in the order of ``items``.
    """
    letter_ids = [model.tokenizer(f" {letter}", add_special_tokens=False)["input_ids"][-1] for letter in LETTERS]
    if steering is _no_steering:
        seqs = [model.tokenizer(it.prompt, add_special_tokens=False)["input_ids"] for it in items]
        # Too long for the context, or hooks on the model: the path below (which cuts, with a warning).
        if max(map(len, seqs), default=0) <= context_limit(model) and (twin := twin_unless_hooked(model)) is not None:
            return _unsteered_predictions(twin, items, seqs, letter_ids, 2 * batch_size, progress)
    order = sorted(range(len(items)), key=lambda i: len(items[i].prompt))
    preds = np.zeros(len(items), dtype=np.int64)
    for start in tqdm(range(0, len(items), batch_size), desc="mmlu", disable=not progress, leave=False):
        idx = order[start : start + batch_size]
        batch = [items[i] for i in idx]
        ids, mask = tokenize(model, [it.prompt for it in batch])
        with torch.no_grad(), steering(batch):
            logits = _last_token_logits(model, ids, mask)
        preds[idx] = logits[:, letter_ids].argmax(-1).cpu().numpy()
    return preds


def mmlu_accuracy(model: Any, items: Sequence[MCItem], steering: SteerFactory = _no_steering, batch_size: int = 4,
                  progress: bool = True) -> float:
    """Accuracy of :func:`mmlu_predictions` against the items' answers."""
    if not items:
        raise ValueError("No questions to evaluate.")
    preds = mmlu_predictions(model, items, steering, batch_size, progress)
    return float(np.mean(preds == np.array([it.answer for it in items])))


def _windows(path: Path, model: Any, n_windows: int, window: int) -> Iterator[torch.Tensor]:
    text = path.read_text(encoding="utf-8")
    ids = model.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][0]
    if len(ids) < window + 1:
        raise DataError(f"{path} is too short for one window of {window} tokens.")
    starts = np.linspace(0, len(ids) - window - 1, n_windows).astype(int)
    for s in starts:
        yield ids[s : s + window]


def wikitext_perplexity(model: Any, path: str | Path, n_windows: int = 16, window: int = 256,
                        steering: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext) -> float:
    """Token perplexity over ``n_windows`` evenly spaced windows of a raw text file (e.g. WikiText-2)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (expected WikiText-2 valid.txt).")
    nll, count = 0.0, 0
    for chunk in _windows(path, model, n_windows, window):
        ids = chunk[None].to(model.cfg.device)
        with torch.no_grad(), steering():
            logp = torch.log_softmax(model(ids).float(), dim=-1)
        nll -= logp[0, :-1].gather(1, ids[0, 1:, None]).sum().item()
        count += ids.shape[1] - 1
    return float(np.exp(nll / count))
