"""A regular (non-editable) install ships every package: pyproject.toml lists each directory of
trit_rnn/, kernels/ and perf/ that has an __init__.py (an editable install hides a missing one)."""

from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10: pip vendors the same parser
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    roots = {"trit_rnn": ROOT / "trit_rnn"}
    roots.update({name: ROOT / path for name, path in config["package-dir"].items()})
    found = set()
    for name, path in roots.items():
        for init in path.rglob("__init__.py"):
            relative = init.parent.relative_to(path).parts
            found.add(".".join((name, *relative)))
    assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"
