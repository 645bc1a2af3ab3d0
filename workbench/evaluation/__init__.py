"""Evaluation: judges (offline encoder judge, LLM judge), metrics, capability checks and the suite."""

from workbench.evaluation.judges import EncoderJudge, LLMJudge, train_encoder_judge
from workbench.evaluation.metrics import control_success_rate, fluency_flags, repetition_ratio

__all__ = [
    "EncoderJudge",
    "LLMJudge",
    "control_success_rate",
    "fluency_flags",
    "repetition_ratio",
    "train_encoder_judge",
]
