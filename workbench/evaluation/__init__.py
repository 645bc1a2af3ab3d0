"""Evaluation: judges (offline encoder judge, LLM judge), metrics, capability checks and the suite."""

from workbench.evaluation.judges import EncoderJudge, LLMJudge, ToucheJudge, load_judge, train_encoder_judge
from workbench.evaluation.metrics import control_success_rate, fluency_flags, repetition_ratio

__all__ = [
    "EncoderJudge",
    "LLMJudge",
    "ToucheJudge",
    "control_success_rate",
    "fluency_flags",
    "load_judge",
    "repetition_ratio",
    "train_encoder_judge",
]
