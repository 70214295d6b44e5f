"""Plain data shared by the launchers, the autotune helper and the ahead-of-time compiler."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Config:
    """One launch configuration of a persistent kernel: the batch rows a program owns, and the
    GPU scheduling knobs (ignored by the interpreter)."""

    block_b: int
    num_warps: int = 4
    num_stages: int = 1

    def label(self) -> str:
        return f"BLOCK_B={self.block_b},w{self.num_warps},s{self.num_stages}"


@dataclass
class CompileSpec:
    """Everything `triton.compile` needs to build one kernel for a GPU target without a GPU.

    signature maps every non-constexpr argument name to its Triton type ("*fp32", "i32", "i64",
    "fp32"); constexprs maps every constexpr argument name to its value.
    """

    name: str
    fn: object
    signature: dict
    constexprs: dict
    num_warps: int
    num_stages: int
    meta: dict = field(default_factory=dict)
