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
