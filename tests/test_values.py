import pytest

from workbench.values import GROUPS, VALUE_NAMES, circumplex_distance, get_value, resolve_values


def test_ten_values_in_circumplex_order():
    assert len(VALUE_NAMES) == 10
    assert [get_value(n).position for n in VALUE_NAMES] == list(range(10))
    assert sum(len(v) for v in GROUPS.values()) == 10


def test_circumplex_distance_wraps_around():
    assert circumplex_distance("self-direction", "universalism") == 1
    assert circumplex_distance("power", "power") == 0
    assert circumplex_distance("self-direction", "security") == 5


def test_opposites_are_far_on_the_circle():
    for name in VALUE_NAMES:
        for opp in get_value(name).opposites:
            assert circumplex_distance(name, opp) >= 3, (name, opp)


def test_unknown_value_suggests_closest():
    with pytest.raises(ValueError, match="Did you mean 'benevolence'"):
        get_value("benevolance")


def test_resolve_values():
    assert resolve_values("all") == VALUE_NAMES
    assert resolve_values("Power, self_direction") == ("power", "self-direction")
    with pytest.raises(ValueError):
        resolve_values("")


def test_custom_concept_names_are_accepted_and_typos_are_not():
    from workbench.values import is_known_value, value_name

    assert value_name("honesty") == "honesty" and value_name(" Self_Direction ") == "self-direction"
    assert value_name("Intellectual Humility") == "intellectual-humility"
    assert resolve_values("power,honesty") == ("power", "honesty")
    assert is_known_value("Power") and not is_known_value("honesty")
    for typo, known in (("powr", "power"), ("benevolance", "benevolence"), ("conformism", "conformity")):
        with pytest.raises(ValueError, match=f"Did you mean '{known}'"):
            value_name(typo)
    for bad in ("", "honesty/../../x", "a" * 65, "naïve"):
        with pytest.raises(ValueError, match="1-64 characters"):
            value_name(bad)
    with pytest.raises(ValueError, match="Unknown value 'honesty'"):  # get_value stays the 10 values' lookup
        get_value("honesty")
