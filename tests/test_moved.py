"""The modules that moved into model/, masks/ and measure/ keep their old names for one release."""

import importlib
import pickle
import sys
import warnings

import pytest

import persona_circuits as pc
from persona_circuits._moved import MOVED


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_name_is_the_moved_module_with_a_warning(old):
    new = importlib.import_module(f"persona_circuits.{MOVED[old]}")
    sys.modules.pop(f"persona_circuits.{old}", None)
    with pytest.warns(DeprecationWarning, match=f"persona_circuits.{old} moved to persona_circuits.{MOVED[old]}"):
        mod = importlib.import_module(f"persona_circuits.{old}")
    assert mod is new
    assert mod.__name__ == new.__spec__.name == f"persona_circuits.{MOVED[old]}"  # the alias leaves it its own name


def test_old_top_level_attribute():
    vars(pc).pop("nulls", None)  # an earlier ``import persona_circuits.nulls`` set the attribute
    with pytest.warns(DeprecationWarning):
        assert pc.nulls is importlib.import_module("persona_circuits.measure.nulls")


def test_a_cache_pickled_before_the_move_loads():
    """Stage caches pickled ``persona_circuits.statistics.PerTextStats`` (protocol 0 written out by hand)."""
    from persona_circuits.masks.statistics import PerTextStats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert pickle.loads(b"cpersona_circuits.statistics\nPerTextStats\n.") is PerTextStats


def test_masks_package_keeps_the_names_of_the_masks_module():
    from persona_circuits.masks import build, registry

    assert pc.masks.build_masks is registry.build_masks and pc.masks.Mask is build.Mask
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        pc.masks.nothing_here  # noqa: B018


def test_unknown_old_names_are_not_aliased():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("persona_circuits.no_such_module")
