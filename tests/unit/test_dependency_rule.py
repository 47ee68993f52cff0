"""The dependency rule: domain/ is pure Python and imports no framework, driver or outer layer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = ROOT / "domain"
BANNED = frozenset({
    "strawberry", "sqlmodel", "sqlalchemy", "asyncpg", "alembic", "dramatiq", "redis", "litellm",
    "openai", "httpx", "starlette", "uvicorn", "pgserver", "api", "db", "workers",
})


def scan(*paths: str, stdin: str | None = None) -> dict[str, set[str]]:
    """Import roots per file, computed in a fresh interpreter (see tests/support/import_scan.py)."""
    result = subprocess.run([sys.executable, "-m", "tests.support.import_scan", *paths],
                            cwd=ROOT, input=stdin, capture_output=True, text=True, timeout=60,
                            check=True)
    return {path: set(roots) for path, roots in json.loads(result.stdout).items()}


@pytest.fixture(scope="module")
def domain_imports() -> dict[str, set[str]]:
    return scan(*(str(path.relative_to(ROOT)) for path in domain_modules()))


def domain_modules() -> list[Path]:
    return sorted(DOMAIN.rglob("*.py"))


def ruff(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, input=stdin,
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_scan_sees_every_kind_of_import() -> None:
    source = ("import os, sqlalchemy.orm\nfrom api.app import create_app\nfrom . import model\n"
              "import importlib\nimportlib.import_module('redis.client')\n__import__('httpx')\n")
    assert scan("-", stdin=source)["-"] == {"os", "sqlalchemy", "api", "importlib", "redis",
                                            "httpx"}


def test_domain_has_modules_to_check() -> None:
    assert len(domain_modules()) >= 5


@pytest.mark.parametrize("module", domain_modules(), ids=lambda path: str(path.relative_to(ROOT)))
def test_domain_module_imports_nothing_banned(module: Path,
                                             domain_imports: dict[str, set[str]]) -> None:
    # When
    banned = domain_imports[str(module.relative_to(ROOT))] & BANNED
    # Then
    assert not banned, f"{module.relative_to(ROOT)} imports {sorted(banned)}: domain/ is pure"


def test_ruff_finds_domain_clean() -> None:
    result = ruff("check", "domain/")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("package", sorted(BANNED))
def test_ruff_config_bans_each_outer_package_in_domain(package: str) -> None:
    # When: a would-be domain module imports the package
    result = ruff("check", "--config", "domain/ruff.toml", "--stdin-filename", "domain/x.py",
                  "-", stdin=f"import {package}\n")
    # Then
    assert result.returncode == 1, result.stdout + result.stderr
    assert "TID251" in result.stdout, result.stdout
    assert f"`{package}` is banned" in result.stdout, result.stdout


def test_ruff_ban_applies_to_from_imports_of_submodules() -> None:
    result = ruff("check", "--config", "domain/ruff.toml", "--stdin-filename", "domain/x.py",
                  "-", stdin="from sqlalchemy.orm import Session\n\nSession()\n")
    assert result.returncode == 1
    assert "TID251" in result.stdout, result.stdout
