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


def test_pooled_csr_counts_every_values_answers_once():
    from workbench.report import _pooled_table

    results = [{"value": v, "method": "conva", "condition": "plain", "csr": str(k / 20), "fluency": str(f), "n": "20"}
               for v, k, f in (("power", 5, 1.0), ("security", 15, 0.5))]
    ((method, condition, values, k, n, csr, lo, hi, fluency),) = _pooled_table(results)
    assert (method, condition, values, k, n, csr, fluency) == ("conva", "plain", 2, 20, 40, 0.5, 0.75)
    assert lo < 0.5 < hi
