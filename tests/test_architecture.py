"""The architecture as the tree shows it: dependencies point one way (Spaces -> families ->
shared), no family reaches into another, start-up imports stay light, and the package installs.
(`import spaces` always means Hugging Face's ZeroGPU package: our spaces/ is no package.)
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from shared import registry

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = sorted(p.parent.name for p in (ROOT / "models").glob("*/__init__.py"))


def imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (relative imports made absolute)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found |= {f"{base}.{a.name}" for a in node.names} | {base}
    return found


def sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def test_shared_never_imports_a_family():
    """(The registry and the CLI find families by name, through `models.FAMILIES`.)"""
    for path in sources("shared"):
        bad = {m for m in imports(path) if m.split(".")[0] == "models"}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_no_family_imports_another_family():
    for family in FAMILIES:
        for path in sources(f"models/{family}"):
            for module in imports(path):
                parts = module.split(".")
                if parts[0] == "models" and len(parts) > 1 and parts[1] in FAMILIES:
                    assert parts[1] == family, f"{path.relative_to(ROOT)} imports {module}"


def test_no_family_names_another_familys_registry_entry():
    names = {s.name: s.load.__module__.split(".")[1] for s in registry.specs().values()}
    for family in FAMILIES:
        text = "\n".join(p.read_text() for p in sources(f"models/{family}"))
        for name, owner in names.items():
            if owner != family:
                assert f'"{name}"' not in text, f"models/{family} names {name}"


def test_every_family_is_listed_and_declares_its_entry():
    import models

    assert sorted(models.FAMILIES) == FAMILIES
    owners = {s.load.__module__ for s in registry.specs().values()}
    assert owners == {f"models.{f}" for f in FAMILIES}


def test_family_entries_and_spaces_import_light():
    """What the suite imports at start-up pulls in none of the heavy libraries."""
    code = (
        "import sys, json, models\n"
        "for f in models.FAMILIES: __import__(f'models.{f}')\n"
        "import app\n"
        "heavy = ('torch', 'timm', 'transformers', 'diffusers', 'sklearn', 'matplotlib')\n"
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"


def test_source_files_are_small_enough_to_read_in_one_sitting():
    long = {
        str(p.relative_to(ROOT)): n
        for folder in ("shared", "models", "spaces")
        for p in sources(folder)
        if (n := len(p.read_text().splitlines())) > 600
    }
    assert not long, long


@pytest.mark.timeout(600)
def test_pip_install_editable_in_a_fresh_venv_gives_the_demos_command(tmp_path):
    """`pip install -e .` in a new venv, then `demos --help` and `demos list`. The venv sees this
    one's packages through a .pth file (instead of downloading torch again) and builds offline
    with this venv's setuptools."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    r = subprocess.run([*pip, "-e", str(ROOT)], capture_output=True, text=True, timeout=500)
    assert r.returncode == 0, r.stdout + r.stderr
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for args in (["--help"], ["list"], ["train", "image-classifier", "--help"]):
        r = subprocess.run(
            [str(venv / "bin" / "demos"), *args],
            cwd=tmp_path,  # not the checkout: the installed package must be found
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, (args, r.stderr)
    assert "pets-classifier" in r.stdout or "--data" in r.stdout
