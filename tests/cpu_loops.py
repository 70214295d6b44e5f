"""The torch backend's two CPU time loops (compiled C++ and Python), for tests that check both.

"torch" runs the compiled loops (and fails where they do not build: CI has a compiler), while
"torch-python-loops" is the same backend with TRIT_RNN_COMPILED_LOOPS=0."""

from trit_rnn.backends import compiled_loops

PYTHON_LOOPS = "torch-python-loops"


def select_backend(name: str, monkeypatch) -> str:
    """The backend argument for `name`, with the loop implementation it stands for switched on."""
    if name == PYTHON_LOOPS:
        monkeypatch.setenv("TRIT_RNN_COMPILED_LOOPS", "0")
        return "torch"
    if name == "torch":
        assert compiled_loops.loops() is not None, "the compiled CPU loops did not build here"
    return name
