"""Fixtures of the console's browser tests: the end-to-end suite's
`memsy serve` stack (tests/e2e/conftest.py, loaded under a name of its own
so that it is not mistaken for this conftest) and headless Chromium, the
system's (Debian's `chromium`) driven by Playwright."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

E2E = Path(__file__).resolve().parents[1] / "e2e"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


e2e_fixtures = _load("memsy_e2e_fixtures", E2E / "conftest.py")
e2e_sdk = _load("memsy_e2e_sdk", E2E / "test_sdk.py")


def chromium_path() -> str:
    found = os.environ.get("CHROMIUM_BIN") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise RuntimeError("no chromium found: run scripts/setup.sh (it installs Debian's chromium) or set CHROMIUM_BIN")
    return found


@pytest.fixture(scope="session")
def server():
    with e2e_fixtures.memsy_stack() as s:
        yield s


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path())
        yield b
        b.close()
