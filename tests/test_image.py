"""The image's contents, proven without a container engine (none runs on this machine).

The Dockerfile installs with `deploy/install-locked.sh`; here the same script installs the wheel
and the locked dependencies into a virtualenv outside the repo, and that `flywheel` is started with
the Dockerfile's ENV (its paths moved to this test's folders) and the compose config, on PostgreSQL.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import asyncpg
import openai
import pytest

from gateway.records.headers import INTERACTION_HEADER
from tests.serving import ServedGateway

REPO = Path(__file__).resolve().parent.parent
APP_KEY = "sk-image-test-app"


def dockerfile_env() -> dict[str, str]:
    """The final stage's ENV, as `KEY=value` pairs (continuation lines joined)."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    final_stage = text.rsplit("\nFROM ", 1)[1]
    env: dict[str, str] = {}
    for line in final_stage.splitlines():
        if line.startswith("ENV "):
            env.update(re.findall(r"(\w+)=(\S+)", line))
    return env


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    uv = REPO / ".tools" / "bin" / "uv"
    uv_path = str(uv) if uv.exists() else shutil.which("uv")
    if uv_path is None:
        pytest.skip("uv not found: run `make test`, which installs it into .tools")
    venv = tmp_path_factory.mktemp("image") / "venv"
    subprocess.run(
        [REPO / "deploy" / "install-locked.sh", venv],
        env={**os.environ, "UV": uv_path},
        check=True,
        capture_output=True,
    )
    return venv


def test_dockerfile_installs_with_the_locked_script() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert "COPY pyproject.toml uv.lock" in text
    assert "RUN deploy/install-locked.sh /opt/flywheel" in text
    assert dockerfile_env()["PATH"].startswith("/opt/flywheel/bin:")


async def test_installed_image_serves_the_compose_config_on_postgres(
    image_venv: Path, tmp_path: Path, postgres_url: str
) -> None:
    installed = subprocess.run(
        [image_venv / "bin" / "python", "-c", "import gateway; print(gateway.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert not installed.stdout.startswith(str(REPO))  # the wheel, not this checkout

    # The one change to the compose config: its spool volume is a folder of this test.
    config = (REPO / "deploy" / "config.compose.yaml").read_text()
    (tmp_path / "config.yaml").write_text(config.replace("/data/spool", str(tmp_path / "spool")))
    env = dockerfile_env()
    env.update(
        PATH=env["PATH"].replace("/opt/flywheel", str(image_venv)).replace("$PATH", "/usr/bin"),
        FLYWHEEL_CONFIG=str(tmp_path / "config.yaml"),
        FLYWHEEL_DATABASE_URL=postgres_url,
        FLYWHEEL_APP_KEY=APP_KEY,
        FLYWHEEL_ADMIN_KEY="sk-image-test-admin",
        FLYWHEEL_FEEDBACK_SECRET="image-test-feedback-secret-0123456789",
    )
    served = ServedGateway(tmp_path, command=[str(image_venv / "bin" / "flywheel")], env=env)
    try:
        await served.wait_ready()
        async with openai.AsyncOpenAI(
            base_url=f"{served.base_url}/v1", api_key=APP_KEY, max_retries=0
        ) as client:
            raw = await client.chat.completions.with_raw_response.create(
                model="demo", messages=[{"role": "user", "content": "hello image"}]
            )
        assert raw.parse().choices[0].message.content.endswith("You said: hello image")
        assert await served.terminate() == 0
    finally:
        served.close()

    conn = await asyncpg.connect(postgres_url)
    try:
        row = await conn.fetchrow(
            "SELECT status, api_key_name FROM interactions WHERE id = $1",
            raw.headers[INTERACTION_HEADER],
        )
    finally:
        await conn.close()
    assert (row["status"], row["api_key_name"]) == ("success", "app")


async def test_image_config_without_keys_stops_naming_the_variable(
    image_venv: Path, tmp_path: Path
) -> None:
    env = dockerfile_env()
    env.update(
        PATH=env["PATH"].replace("/opt/flywheel", str(image_venv)).replace("$PATH", "/usr/bin"),
        FLYWHEEL_CONFIG=str(REPO / "deploy" / "config.image.yaml"),
        FLYWHEEL_DATABASE_URL=f"sqlite:///{tmp_path / 'flywheel.db'}",
    )
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("FLYWHEEL_", "OPENAI_"))}
    result = subprocess.run(
        [image_venv / "bin" / "flywheel", "serve"],
        env={**inherited, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "FLYWHEEL_APP_KEY" in result.stderr
