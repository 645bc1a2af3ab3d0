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


# ---------------------------------------------------------------- own pairs in any shape

TUPLES = [("I told her the truth.", "I told her a lie."), ("He admitted the error.", "He hid the error.")]


def _expected(value="honesty"):
    return [ContrastPair(value, pos, neg) for pos, neg in TUPLES]


def test_as_pairs_from_tuples_dicts_pairs_and_frames():
    import pandas as pd

    from workbench.datasets import as_pairs

    assert as_pairs(TUPLES, value="honesty") == _expected()
    assert as_pairs([list(t) for t in TUPLES], value="Honesty") == _expected()
    hf_rows = [{"positive": p, "negative": n, "id": i} for i, (p, n) in enumerate(TUPLES)]  # extra keys ignored
    assert as_pairs(hf_rows, value="honesty") == _expected()
    assert as_pairs([{"value": "honesty", "positive": p, "negative": n} for p, n in TUPLES]) == _expected()
    assert as_pairs(_expected()) == _expected()
    frame = pd.DataFrame(TUPLES, columns=["positive", "negative"])
    assert as_pairs(frame, value="honesty") == _expected()
    assert as_pairs(frame.assign(value="power")) == _expected("power")


def test_as_pairs_refuses_what_it_cannot_read():
    import pandas as pd

    from workbench.datasets import as_pairs

    with pytest.raises(DataError, match=r"pairs\[0\]: field 'value' is missing.*pass value="):
        as_pairs(TUPLES)
    with pytest.raises(DataError, match="item 0 is a tuple of 3 items"):
        as_pairs([("honesty", "a", "b")], value="honesty")
    with pytest.raises(DataError, match=r"pairs\[1\]: duplicate text"):
        as_pairs([TUPLES[0], TUPLES[0]], value="honesty")
    with pytest.raises(DataError, match=r"pairs\[0\]: positive and negative are identical"):
        as_pairs([("same", "same")], value="honesty")
    with pytest.raises(DataError, match="no 'negative' column"):
        as_pairs(pd.DataFrame({"positive": ["a"], "text": ["b"]}), value="honesty")
    with pytest.raises(DataError, match="got a int"):
        as_pairs(42, value="honesty")
    with pytest.raises(DataError, match="got a dict"):
        as_pairs({"positive": "a", "negative": "b"}, value="honesty")
    with pytest.raises(ValueError, match="Did you mean 'power'"):
        as_pairs(TUPLES, value="powr")


def test_read_pairs_reads_csv_json_and_jsonl_without_value_field(tmp_path):
    from workbench.datasets import as_pairs

    csv_path = tmp_path / "p.csv"
    csv_path.write_text("positive,negative\n" + "".join(f'"{p}","{n}"\n' for p, n in TUPLES) + ",\n")
    json_path = tmp_path / "p.json"
    json_path.write_text(json.dumps([{"positive": p, "negative": n} for p, n in TUPLES]))
    jsonl_path = tmp_path / "p.jsonl"
    jsonl_path.write_text("".join(json.dumps({"positive": p, "negative": n}) + "\n" for p, n in TUPLES))
    for path in (csv_path, json_path, jsonl_path):
        assert read_pairs(path, value="honesty") == _expected(), path
        assert as_pairs(path, value="honesty") == as_pairs(str(path), value="honesty") == _expected()
    with pytest.raises(DataError, match=r"p\.jsonl:1: field 'value' is missing"):
        read_pairs(jsonl_path)
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("pos,neg\na,b\n")
    with pytest.raises(DataError, match="no 'positive' or 'negative' column"):
        read_pairs(bad_csv, value="honesty")
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"positive": "a"}')
    with pytest.raises(DataError, match="must hold a list of objects"):
        read_pairs(bad_json, value="honesty")
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(json.dumps({"value": "honesty", "positive": "a b", "negative": "c d"}) + "\n")
    with pytest.raises(DataError, match="value 'honesty' in a file for 'power'"):
        read_pairs(mixed, value="power")


def test_load_pairs_of_a_custom_concept_says_how_to_bring_pairs():
    with pytest.raises(ValueError, match=r"No shipped pairs for 'honesty'.*--pairs FILE --value honesty"):
        load_pairs("honesty")


def test_pair_csv_with_an_unterminated_quote_is_refused_not_merged(tmp_path):
    import pytest

    from workbench.datasets import DataError, read_pairs

    path = tmp_path / "pairs.csv"
    path.write_text('positive,negative\n"I gave, freely",I kept it\n"I helped her,I ignored her\nI shared,I hoarded\n')
    with pytest.raises(DataError, match="never closed"):
        read_pairs(path, value="honesty")
