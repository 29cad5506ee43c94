"""Fixtures for training tests: one tiny base model per machine, built offline and cached under var/."""

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Bump when training.engine.tiny changes what it builds.
TINY_BASE_VERSION = "v1"


@pytest.fixture(scope="session")
def tiny_base() -> str:
    """A pretrained 2-layer Llama answering the demo prompts; cached so later runs skip the build."""
    from training.engine.tiny import build_tiny_model

    cached = ROOT / "var" / "cache" / f"tiny-base-{TINY_BASE_VERSION}"
    if not (cached / "config.json").exists():
        partial = cached.with_name(cached.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        build_tiny_model(partial)
        partial.rename(cached)
    return str(cached)


@pytest.fixture
def artifact_root(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    return settings.ARTIFACT_ROOT
