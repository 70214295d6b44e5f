"""Orthogonal parametrisations (exp map, Cayley map, Householder product) and their initialisers;
unitary ones (uRNN product, EUNN layers, Kronecker factors, full-capacity U(n))."""

from .eunn import EUNNUnitary
from .full_unitary import FullUnitary, cayley_step
from .init import cayley_skew, haar_cayley_skew, haar_exp_skew, henaff_skew, identity_skew
from .kru import KroneckerUnitary
from .orthogonal import (
    PARAMETRIZATIONS,
    CayleyOrthogonal,
    ExpOrthogonal,
    HouseholderOrthogonal,
    Orthogonal,
    make_orthogonal,
)
from .unitary import Unitary, haar_unitary, real_parameter_count, unitarity_error
from .urnn import URNNUnitary

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
    "Unitary",
    "URNNUnitary",
    "EUNNUnitary",
    "KroneckerUnitary",
    "FullUnitary",
    "cayley_step",
    "haar_unitary",
    "real_parameter_count",
    "unitarity_error",
]
