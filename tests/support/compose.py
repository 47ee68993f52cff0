"""`docker-compose config` on a scratch copy of the stack, with the README's `.env` files.

docker-compose v1.29 validates and interpolates offline (no Docker engine needed); its
`config` output inlines every `env_file` into `environment`, so tests read exactly what a
container would get.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
README_SECTION = "## Production with docker compose"

needs_docker_compose = pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose not installed")


def readme_env_files() -> dict[str, str]:
    """The files the README's compose section shows, by name (`.env`, `worker.env`).

    Each is a ```dotenv block whose first line is a comment naming the file: `# .env: …`."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index(README_SECTION)
    end = readme.find("\n## ", start + len(README_SECTION))
    section = readme[start:end if end != -1 else None]
    files = {}
    for block in re.findall(r"^```dotenv\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL):
        named = re.match(r"#\s*(\S+?):", block)
        assert named, f"a dotenv block of the README does not name its file:\n{block}"
        files[named.group(1)] = block
    return files


def without_line(content: str, name: str) -> str:
    """`content` with the assignment of `name` removed."""
    return "".join(line for line in content.splitlines(keepends=True)
                   if not line.startswith(f"{name}="))


def run_config(workdir: Path, files: dict[str, str], *args: str,
               profiles: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` on a copy of the compose file in `workdir` beside `files`.

    The environment is emptied but for PATH: nothing of the caller's shell (MMOS_ENV=test of
    the test session, a developer's secrets) can reach the interpolation."""
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(COMPOSE_FILE, workdir / "docker-compose.yml")
    for name, content in files.items():
        (workdir / name).write_text(content)
    path = shutil.which("docker-compose")
    assert path is not None
    return subprocess.run(
        [path, *(f"--profile={name}" for name in profiles), "-f", "docker-compose.yml",
         "config", *args],
        cwd=workdir,
        env={"PATH": str(Path(path).parent) + ":/usr/bin:/bin", "HOME": str(workdir)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def resolved_config(workdir: Path, files: dict[str, str]) -> dict[str, Any]:
    """The whole stack as docker-compose resolves it with `files`, the `debug` profile's
    services included (compose v2 leaves inactive profiles out of `config`); fails the test
    on an error."""
    result = run_config(workdir, files, profiles=("debug",))
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = yaml.safe_load(result.stdout)
    return loaded
