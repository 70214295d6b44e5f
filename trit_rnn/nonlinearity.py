"""The activations the recurrent kernels know, by the names users pass."""

import enum


class Nonlinearity(str, enum.Enum):
    IDENTITY = "identity"
    TANH = "tanh"
    RELU = "relu"
    MODRELU = "modrelu"

    @classmethod
    def parse(cls, value, argument: str = "nonlinearity") -> "Nonlinearity":
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in cls)
            raise ValueError(f"{argument} must be one of {allowed}; got {value!r}") from None
