import json

import pytest

from workbench.datasets import ContrastPair, DataError, audit, load_pairs, read_pairs, split_pairs
from workbench.values import VALUE_NAMES


@pytest.mark.parametrize("dataset", ["controlled", "naive"])
def test_shipped_pairs_load_and_have_100_per_value(dataset):
    for value in VALUE_NAMES:
        pairs = load_pairs(value, dataset)
        assert len(pairs) >= 100, (value, dataset, len(pairs))
        assert all(p.value == value for p in pairs)


def test_controlled_pairs_are_less_lexically_biased_than_naive():
    for value in VALUE_NAMES:
        controlled = audit(load_pairs(value, "controlled"), "controlled").unique_share
        naive = audit(load_pairs(value, "naive"), "naive").unique_share
        assert controlled < naive, (value, controlled, naive)


def test_audit_known_answer():
    pairs = [ContrastPair("power", "alpha beta gamma", "alpha beta delta")] * 3
    result = audit(pairs, top_k=3)
    # positive top words: alpha, beta, gamma (gamma only there); negative likewise with delta
    assert result.positive_only == ("gamma",) and result.negative_only == ("delta",)
    assert result.unique_share == pytest.approx(2 / 6)


def _write(tmp_path, lines):
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = json.dumps({"value": "power", "positive": "She took charge.", "negative": "She shared charge."})


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "malformed JSON"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({"value": "power", "positive": "a"}), "'negative' is missing"),
        (json.dumps({"value": "power", "positive": " ", "negative": "b"}), "empty text"),
        (json.dumps({"value": "power", "positive": "same", "negative": "same"}), "identical"),
        (json.dumps({"value": "power", "positive": "She Took Charge.", "negative": "she took charge."}),
         "differ only in letter case or spacing"),
        (json.dumps({"value": "power", "positive": "She took  charge.", "negative": "She took\tcharge."}),
         "differ only in letter case or spacing"),
        (json.dumps({"value": "powr", "positive": "a b", "negative": "c d"}), "Did you mean 'power'"),
        (json.dumps({"value": "security", "positive": "a b", "negative": "c d"}), "in a file for 'power'"),
        (GOOD, "duplicate text"),
    ],
)
def test_bad_pair_files_give_clear_errors_naming_file_and_line(tmp_path, line, message):
    path = _write(tmp_path, [GOOD, line])
    with pytest.raises(DataError, match=message) as info:
        read_pairs(path, value="power")
    assert f"{path}:2:" in str(info.value)


def test_empty_pair_file(tmp_path):
    path = _write(tmp_path, [""])
    with pytest.raises(DataError, match="no pairs"):
        read_pairs(path)


def test_split_is_seeded_and_disjoint():
    pairs = load_pairs("power")
    train, test = split_pairs(pairs, 0.25, seed=3)
    train2, test2 = split_pairs(pairs, 0.25, seed=3)
    assert train == train2 and test == test2
    assert not set(train) & set(test)
    assert len(train) + len(test) == len(pairs)
    assert split_pairs(pairs, 0.25, seed=4)[1] != test
    with pytest.raises(ValueError):
        split_pairs(pairs, 1.5)
