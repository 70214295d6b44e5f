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


def test_every_non_python_source_is_package_data():
    """The compiled loops' C++ sources are built at run time from the installed package, so a
    regular install must carry them: every file under a package that is not Python is matched
    by a package-data pattern."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = config.get("package-data", {})
    for source in (ROOT / "trit_rnn").rglob("*.cpp"):
        package = ".".join(source.parent.relative_to(ROOT).parts)
        owners = [p for p in patterns if package.startswith(p)]
        matched = any(
            source.relative_to(ROOT / Path(*owner.split("."))).match(glob)
            for owner in owners
            for glob in patterns[owner]
        )
        assert matched, f"{source.relative_to(ROOT)} is not package data in pyproject.toml"
