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


def _suite(counts, n=23):
    """results.csv rows as the suite writes them (CSR rounded to 6 decimals) from {(method, condition): [k per value]}."""
    return [{"value": f"v{i}", "method": m, "condition": c, "csr": f"{k / n:.6f}", "fluency": "1.0", "n": str(n)}
            for (m, c), ks in counts.items() for i, k in enumerate(ks)]


def test_equal_counts_are_a_tie_not_a_win_despite_rounding():
    # 19 + 18 and 21 + 16 of 23 are both 37 answers, but their 6-decimal means differ by 5e-7.
    same, other = [19, 18], [21, 16]
    rows = _suite({(m, c): (same if m == "conva" else other if m in ("prompt", "none") else [0, 0])
                   for m in ("none", "prompt", "caa", "conva") for c in ("plain", "negative-prompt")})
    total = {m: sum(float(r["csr"]) for r in rows if r["method"] == m and r["condition"] == "plain") for m in ("conva", "prompt")}
    assert total["conva"] > total["prompt"]  # the rounding noise the verdict must not count
    verdicts = {c: v for c, _, _, v in claims(rows, [], None)}
    assert verdicts["csr"].startswith("not confirmed") and verdicts["negative"].startswith("not confirmed")


def test_one_more_answer_is_a_win():
    rows = _suite({(m, c): ([19, 19] if m == "conva" else [21, 16] if m in ("prompt", "none") else [0, 0])
                   for m in ("none", "prompt", "caa", "conva") for c in ("plain", "negative-prompt")})
    verdicts = {c: v for c, _, _, v in claims(rows, [], None)}
    assert verdicts["csr"].startswith("confirmed") and verdicts["negative"].startswith("confirmed")
