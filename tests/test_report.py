from workbench.report import claims


def _capability(rows):
    return [{"method": m, "benchmark": b, "score": str(s), "n": "300"} for m, b, s in rows]


def test_the_capability_claim_reads_accuracy_not_the_gate_open_share():
    rows = _capability([("none", "mmlu_5shot", 0.46), ("conva", "mmlu_5shot", 0.455),
                        ("conva", "mmlu_5shot_gate_open_share", 0.02), ("conva-nogate", "mmlu_5shot", 0.30)])
    (claim,) = [c for c in claims([], rows, None) if c[0] == "capability"]
    assert "gated 0.455" in claim[2] and claim[3] == "confirmed"


def test_the_capability_claim_fails_when_the_ungated_model_keeps_its_accuracy():
    rows = _capability([("none", "mmlu_5shot", 0.46), ("conva", "mmlu_5shot", 0.46),
                        ("conva-nogate", "mmlu_5shot", 0.45)])
    (claim,) = [c for c in claims([], rows, None) if c[0] == "capability"]
    assert claim[3] == "not confirmed"
