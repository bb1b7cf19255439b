"""Dependencies as extras: a publisher-only install publishes, and a missing extra is one line.

The publishing code runs in a subprocess whose imports of every optional dependency
(:data:`engine.extras.EXTRA_OF_MODULE`) fail as if not installed; the ingest that receives
and records runs here, with everything.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import numpy as np
import pytest
import tifffile
import tomllib
from packaging.requirements import Requirement

from engine.cli import COMMANDS
from engine.extras import CHAIN, COMMAND_EXTRA, EXTRA_OF_MODULE, install_hint

REPO = Path(__file__).resolve().parent.parent
BASE_MODULES = {"numpy", "zmq", "msgpack"}
TIMEOUT_S = 60.0

#: run first in the subprocess: importing a blocked module raises ModuleNotFoundError
BLOCKER = """
import importlib.abc, sys
BLOCKED = frozenset({blocked!r})
class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, _NotInstalled())
"""


def _run_without(blocked: set[str], code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    return subprocess.run([sys.executable, "-c", BLOCKER.format(blocked=sorted(blocked)) + code],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)


def _not_in(*extras: str) -> set[str]:
    """The optional modules that none of ``extras`` installs."""
    return {module for module, extra in EXTRA_OF_MODULE.items() if extra not in extras}


PUBLISH = """
import json, sys
import numpy as np
from acquisition.publisher import Publisher
lines = np.arange(1000 * 32, dtype=np.uint16).reshape(1000, 32)
with Publisher(sys.argv[1] if len(sys.argv) > 1 else {endpoint!r}, stream="pc") as pub:
    pub.start("linescan", "uint16", (32,), pixel_um=0.2, dt_ms=1.5)
    pub.send(lines)
    report = pub.stop()
loaded = {{m.partition(".")[0] for m in sys.modules}} - set(sys.stdlib_module_names)
third_party = sorted(m for m in loaded if not m.startswith("_") and m != "cython_runtime"
                     and m not in ("acquisition", "engine"))
print(json.dumps({{"recorded": report.recorded, "third_party": third_party}}))
"""


def test_publisher_sdk_needs_only_the_base_install(ingest_factory, tmp_path: Path) -> None:
    ingest = ingest_factory(record_dir=tmp_path / "rec")
    done = _run_without(_not_in(), PUBLISH.format(endpoint=ingest.endpoint))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["recorded"] == 1000
    assert set(result["third_party"]) <= BASE_MODULES, result["third_party"]
    assert ingest.wait_until_stopped(["pc"], TIMEOUT_S)
    assert ingest.stats()["pc"].frames_recorded == 1000


def test_replay_needs_only_the_publisher_extra(ingest_factory, tmp_path: Path) -> None:
    lines = np.random.default_rng(0).integers(0, 4096, (700, 64), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "cell.tif", lines, imagej=True, resolution=(5, 1 / 1.5),
                     metadata={"axes": "YX", "unit": "um", "yunit": "ms", "finterval": 0.0015})
    ingest = ingest_factory(record_dir=tmp_path / "rec")
    done = _run_without(_not_in("publisher"), (
        "from engine.cli import main\n"
        f"sys.exit(main(['replay', {str(tmp_path / 'cell.tif')!r}, '--endpoint', "
        f"{ingest.endpoint!r}, '--fast', '--no-progress']))\n"))
    assert done.returncode == 0, done.stderr
    assert ingest.wait_until_stopped(["cell"], TIMEOUT_S)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "rec" / "cell.tif"), lines)


@pytest.mark.parametrize(("argv", "installed", "extra"), [
    (["analyze", "x.tif", "--out", "out"], (), "engine"),
    (["analyze", "x.tif", "--out", "out"], ("publisher",), "engine"),
    # (--curve-dir without keys: were streamlit not checked first, no dashboard would start)
    (["dashboard", "--store", "s.sqlite", "--curve-dir", "no-keys"], ("publisher", "engine"),
     "ui"),
    (["replay", "x.tif"], (), "publisher"),
    (["train", "config.json"], (), "offline"),  # its module itself needs the engine's imports
])
def test_a_missing_extra_is_one_line_naming_it(argv, installed, extra, tmp_path) -> None:
    tifffile.imwrite(tmp_path / "x.tif", np.zeros((20, 16), np.uint16))
    done = _run_without(_not_in(*installed), (
        "import os\n"
        f"os.chdir({str(tmp_path)!r})\n"
        "from engine.cli import main\n"
        f"sys.exit(main({argv!r}))\n"))
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"castream {argv[0]} needs " in lines[0]
    assert f"pip install 'castream[{extra}]'" in lines[0]


def test_help_lists_every_command_with_the_extra_it_lacks() -> None:
    done = _run_without(_not_in(), "from engine.cli import main\nsys.exit(main(['--help']))\n")
    assert done.returncode == 0, done.stderr
    listed = re.findall(r"^    (\S+)", done.stdout, re.M)
    assert set(COMMANDS) <= set(listed), done.stdout
    assert "(not installed: pip install 'castream[offline]')" in done.stdout


def test_an_unknown_missing_module_is_not_blamed_on_an_extra() -> None:
    assert install_hint("analyze", "no_such_module") is None
    assert install_hint("analyze", "dask.distributed") == "cluster"
    assert install_hint("keys", "scipy.ndimage") == "engine"


# -- the tables in engine/extras.py agree with pyproject.toml ------------------------------------
def _extras() -> dict[str, list[Requirement]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "castream" == project["name"]
    return {name: [Requirement(r) for r in reqs]
            for name, reqs in project["optional-dependencies"].items()}


def _closure(extra: str, extras: dict[str, list[Requirement]]) -> set[str]:
    """Distributions (normalized names, with their own extras) that ``extra`` installs."""
    names: set[str] = set()
    for req in extras[extra]:
        if req.name == "castream":
            for inner in req.extras:
                names |= _closure(inner, extras)
        else:
            names |= {_normal(req.name), *(_normal(e) for e in req.extras)}
    return names


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _distribution(module: str) -> str:
    """The distribution that installs ``module`` (its own name when not installed here)."""
    return _normal(packages_distributions().get(module, [module])[0])


def test_the_base_install_is_the_publisher_sdk() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert {_normal(Requirement(r).name) for r in project["dependencies"]} == {
        _distribution(m) for m in BASE_MODULES}
    assert project["scripts"]["castream"] == "engine.cli:main"


def test_every_optional_module_is_installed_by_its_extra() -> None:
    extras = _extras()
    for module, extra in EXTRA_OF_MODULE.items():
        assert _distribution(module) in _closure(extra, extras), (module, extra)
    optional = {name for extra in extras if extra != "dev" for name in _closure(extra, extras)}
    assert optional == {_distribution(m) for m in EXTRA_OF_MODULE}, "a module missing from " \
        "engine.extras.EXTRA_OF_MODULE (or there and not in pyproject.toml)"


def test_the_extras_build_on_each_other_as_install_hint_assumes() -> None:
    extras = _extras()
    chain = [_closure(extra, extras) for extra in CHAIN]
    assert chain[0] < chain[1]
    for extra in set(extras) - {*CHAIN, "dev"}:
        assert chain[-1] < _closure(extra, extras), extra
    assert _closure("all", extras) == set().union(
        *(_closure(e, extras) for e in extras if e not in ("all", "dev", "tensorrt")))
    assert set(COMMAND_EXTRA) == set(COMMANDS)
    assert set(COMMAND_EXTRA.values()) - {None} <= set(extras)


def test_torch_is_pinned_exactly_wherever_it_is_installed() -> None:
    pins = {str(req.specifier) for reqs in _extras().values() for req in reqs
            if req.name == "torch"}
    pins |= {m for path in ("Makefile", "docker/Dockerfile.cpu", "docker/Dockerfile.gpu")
             for m in re.findall(r"torch(==[\w.]+)", (REPO / path).read_text())}
    assert pins == {"==2.13.0"}
