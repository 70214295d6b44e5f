"""Orthogonal parametrisations (exp map, Cayley map, Householder product) and their initialisers."""

from .init import cayley_skew, haar_cayley_skew, haar_exp_skew, henaff_skew, identity_skew
from .orthogonal import (
    PARAMETRIZATIONS,
    CayleyOrthogonal,
    ExpOrthogonal,
    HouseholderOrthogonal,
    Orthogonal,
    make_orthogonal,
)

__all__ = [
    "Orthogonal",
    "ExpOrthogonal",
    "CayleyOrthogonal",
    "HouseholderOrthogonal",
    "PARAMETRIZATIONS",
    "make_orthogonal",
    "henaff_skew",
    "cayley_skew",
    "identity_skew",
    "haar_exp_skew",
    "haar_cayley_skew",
]
