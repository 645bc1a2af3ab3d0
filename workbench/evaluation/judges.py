"""Judges: does an answer prioritise value V? Is it fluent?

- :class:`EncoderJudge` (offline default): a logistic classifier on the independent all-MiniLM-L6-v2
  sentence encoder, trained on our own value-labelled sentences (positive sides of V's pairs vs the
  negative sides and other values' positive sides). Returns a probability and a yes/no at a threshold
  calibrated by cross-validation (maximal balanced accuracy).
- :class:`LLMJudge`: any OpenAI-compatible chat endpoint, with the paper's rubric, a disk cache,
  timeouts and retries with backoff.

Example:
    >>> judge = train_encoder_judge("benevolence")
    >>> judge.probability(["I stayed to help my friend move house."])
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict

from workbench.chat import ChatError, chat_completion
from workbench.datasets import load_pairs
from workbench.gate import load_encoder
from workbench.io import atomic_write_text, text_hash
from workbench.values import VALUE_NAMES, get_value

__all__ = ["EncoderJudge", "JudgeError", "LLMJudge", "train_encoder_judge"]


class JudgeError(RuntimeError):
    """The LLM judge endpoint failed or answered something that is not a verdict."""


def _embed(texts: Sequence[str]) -> np.ndarray:
    return load_encoder().encode([t if t.strip() else "." for t in texts], normalize_embeddings=True,
                                 show_progress_bar=False)


@dataclass(frozen=True, eq=False)
class EncoderJudge:
    """Offline value judge: P(answer prioritises ``value``) from a sentence-encoder classifier."""

    value: str
    classifier: LogisticRegression
    threshold: float

    def probability(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros(0)
        return self.classifier.predict_proba(_embed(texts))[:, 1]

    def judge(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated yes (True) / no (False) per answer."""
        return self.probability(texts) >= self.threshold


def train_encoder_judge(value: str, seed: int = 0) -> EncoderJudge:
    """Train the offline judge for ``value`` on the shipped pairs (controlled and naive)."""
    name = get_value(value).name
    own = load_pairs(name, "controlled") + load_pairs(name, "naive")
    rng = np.random.default_rng(seed)
    others = [p.positive for v in VALUE_NAMES if v != name for p in load_pairs(v, "controlled")]
    others = [others[i] for i in rng.permutation(len(others))[: len(own)]]
    pos = [p.positive for p in own]
    neg = [p.negative for p in own] + others
    x = _embed(pos + neg)
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    clf = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced", random_state=seed)
    cv = cross_val_predict(clf, x, y, cv=5, method="predict_proba")[:, 1]
    grid = np.linspace(0.05, 0.95, 91)
    balanced = [0.5 * (np.mean(cv[y == 1] >= t) + np.mean(cv[y == 0] < t)) for t in grid]
    return EncoderJudge(name, clf.fit(x, y), float(grid[int(np.argmax(balanced))]))


VALUE_RUBRIC = (
    "You are judging whether an answer prioritises the human value '{value}'. Definition: {definition}\n"
    "Answer 'Yes' only if the answer clearly recommends or acts on this value above others. An answer "
    "that only weighs pros and cons without prioritising the value counts as 'No'.\n\n"
    "Question: {question}\nAnswer: {answer}\n\nReply with exactly one word: Yes or No."
)
FLUENCY_RUBRIC = (
    "Is the following text fluent English? Judge grammar and readability only; ignore that it may be "
    "cut off at the end.\n\nText: {answer}\n\nReply with exactly one word: Yes or No."
)


@dataclass(frozen=True)
class LLMJudge:
    """An OpenAI-compatible chat endpoint used as a judge.

    ``base_url`` (e.g. ``http://127.0.0.1:8000/v1``), ``model`` and ``api_key`` come from the arguments
    or from ``WORKBENCH_JUDGE_URL`` / ``WORKBENCH_JUDGE_MODEL`` / ``WORKBENCH_JUDGE_KEY``.
    Verdicts are cached in ``cache_dir`` (one JSON file per request hash).
    """

    base_url: str | None = None
    model: str | None = None
    api_key: str | None = None
    cache_dir: Path | None = None
    timeout: float = 30.0
    retries: int = 3
    backoff: float = 0.5

    def _settings(self) -> tuple[str, str, str | None]:
        url = self.base_url or os.environ.get("WORKBENCH_JUDGE_URL")
        model = self.model or os.environ.get("WORKBENCH_JUDGE_MODEL")
        if not url or not model:
            raise JudgeError("The LLM judge needs an endpoint and a model: pass base_url= and model= or set "
                             "WORKBENCH_JUDGE_URL and WORKBENCH_JUDGE_MODEL.")
        return url.rstrip("/"), model, self.api_key or os.environ.get("WORKBENCH_JUDGE_KEY")

    def ask(self, content: str) -> str:
        """Send one user message; return the reply text (cached; retried on transient failures)."""
        url, model, key = self._settings()
        cache_file = None
        if self.cache_dir is not None:
            cache_file = Path(self.cache_dir) / f"{text_hash([url, model, content])}.json"
            if cache_file.is_file():
                try:
                    return json.loads(cache_file.read_text(encoding="utf-8"))["reply"]
                except (json.JSONDecodeError, KeyError, UnicodeDecodeError):
                    cache_file.unlink(missing_ok=True)  # damaged entry: ask again
        try:
            reply = chat_completion(url, model, [{"role": "user", "content": content}], api_key=key, max_tokens=8,
                                    temperature=0.0, timeout=self.timeout, retries=self.retries, backoff=self.backoff)
        except ChatError as err:
            raise JudgeError(str(err).replace("Chat endpoint", "Judge endpoint")) from None
        if cache_file is not None:
            atomic_write_text(cache_file, json.dumps({"reply": reply}))
        return reply

    @staticmethod
    def parse_verdict(reply: str) -> bool:
        word = reply.strip().strip(".!*\"' ").split()[0].lower() if reply.strip() else ""
        if word in ("yes", "no"):
            return word == "yes"
        raise JudgeError(f"Judge reply {reply!r} is neither Yes nor No.")

    def judge_value(self, value: str, questions: Sequence[str], answers: Sequence[str]) -> list[bool]:
        """Does each answer prioritise ``value``? (the paper's rubric)"""
        v = get_value(value)
        return [self.parse_verdict(self.ask(VALUE_RUBRIC.format(value=v.name, definition=v.definition,
                                                                question=q, answer=a)))
                for q, a in zip(questions, answers, strict=True)]

    def judge_fluency(self, answers: Sequence[str]) -> list[bool]:
        """Is each answer fluent? (grammar only; truncation ignored)"""
        return [self.parse_verdict(self.ask(FLUENCY_RUBRIC.format(answer=a))) for a in answers]
