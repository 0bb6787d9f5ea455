"""The shared argument conditions: bool is neither a count nor a fraction, NaN is not a fraction."""

import math

import pytest

from assocmem.checks import is_count, is_fraction, positive_float


def test_is_count():
    assert is_count(1) and is_count(5, least=5) and is_count(0, least=0)
    assert not any(is_count(v) for v in (0, -3, True, 2.0, "3", None))
    assert not is_count(4, least=5)


def test_is_fraction():
    assert all(is_fraction(v) for v in (0, 1, 0.0, 0.25, 1.0))
    assert not any(is_fraction(v) for v in (-0.1, 1.5, math.nan, True, False, "0.5", None))


def test_positive_float_names_the_argument():
    assert positive_float(2, "beta", "Tanh") == 2.0
    for bad in (0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="Tanh: beta must be a positive finite number"):
            positive_float(bad, "beta", "Tanh")
    with pytest.raises(TypeError, match="Tanh: beta must be a positive number"):
        positive_float("hot", "beta", "Tanh")
