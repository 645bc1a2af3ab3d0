"""The context-control audit of a pair set: how many of each side's top content words the other side lacks."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.datasets import ContrastPair

__all__ = ["AuditResult", "audit"]


@dataclass(frozen=True)
class AuditResult:
    """Context-control audit of one pair set.

    ``unique_share`` is the share of each side's ``top_k`` most frequent content words that never
    occur on the other side (averaged over both sides): high means the sides differ in topic, not
    only in the value.
    """

    value: str
    dataset: str
    unique_share: float
    positive_only: tuple[str, ...]
    negative_only: tuple[str, ...]
    n_pairs: int

    def to_frame(self) -> Any:
        """This audit as a one-row pandas DataFrame (``pd.concat`` several to compare values)."""
        from workbench.tables import rows_frame

        return rows_frame([self])


_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def _content_words(texts: Sequence[str]) -> Counter[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS  # sklearn is slow to import; only the audit needs it

    words = (w for t in texts for w in _WORD.findall(t.lower()))
    return Counter(w for w in words if len(w) > 2 and w not in ENGLISH_STOP_WORDS and "'" not in w)


def audit(pairs: Sequence[ContrastPair], dataset: str = "controlled", top_k: int = 25) -> AuditResult:
    """Context-control audit: share of each side's top-``top_k`` content words absent from the other side."""
    if not pairs:
        raise ValueError("Cannot audit an empty pair set.")
    pos = _content_words([p.positive for p in pairs])
    neg = _content_words([p.negative for p in pairs])
    pos_top = [w for w, _ in pos.most_common(top_k)]
    neg_top = [w for w, _ in neg.most_common(top_k)]
    pos_only = tuple(w for w in pos_top if w not in neg)
    neg_only = tuple(w for w in neg_top if w not in pos)
    share = (len(pos_only) + len(neg_only)) / max(1, len(pos_top) + len(neg_top))
    return AuditResult(pairs[0].value, dataset, share, pos_only, neg_only, len(pairs))
