"""One configuration: every MEDIAMILL_ setting is a field of config.Settings, read through settings(), documented."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest

from mediamill import cli
from mediamill.config import Settings, SettingsError, settings

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "mediamill"


def test_every_setting_is_a_row_of_the_readme_tables():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(MEDIAMILL_[A-Z0-9_]+)` \|", readme, flags=re.M))
    declared = {f"MEDIAMILL_{name.upper()}" for name in Settings.model_fields}
    assert declared - documented == set()


def _raw_reads(path: Path) -> list[str]:
    """MEDIAMILL_ names a module reads from the environment itself (os.environ.get, [], os.getenv)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        key = None
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = ast.unparse(node.func)
            if func in ("os.environ.get", "os.getenv", "environ.get", "getenv"):
                key = node.args[0].value
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) in ("os.environ", "environ"):
            if isinstance(node.slice, ast.Constant):
                key = node.slice.value
        if isinstance(key, str) and key.startswith("MEDIAMILL_"):
            found.append(f"{path.relative_to(SRC)}:{node.lineno} {key}")
    return found


def test_no_module_reads_a_mediamill_variable_behind_the_settings_back():
    reads = [hit for path in sorted(SRC.rglob("*.py")) for hit in _raw_reads(path)]
    assert reads == []


def test_settings_are_built_once_per_environment_and_follow_its_changes(monkeypatch):
    monkeypatch.setenv("MEDIAMILL_MAX_ROWS", "12")
    first = settings()
    assert settings() is first and first.max_rows == 12
    monkeypatch.setenv("MEDIAMILL_MAX_ROWS", "13")
    assert settings().max_rows == 13
    with pytest.raises(Exception, match="frozen"):
        first.max_rows = 14  # shared by every caller: nobody may change it under the others


def test_folder_lists_are_split_as_path_is(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDIAMILL_ASSET_ROOTS", os.pathsep.join([str(tmp_path / "a"), "", str(tmp_path / "b")]))
    monkeypatch.setenv("MEDIAMILL_CACHE_DIR", str(tmp_path / "cache"))
    cfg = settings()
    assert cfg.asset_roots == [tmp_path / "a", tmp_path / "b"]
    assert cfg.voices == [] and cfg.cache_folder() == tmp_path / "cache"


def test_a_bad_value_is_refused_before_any_work_naming_every_variable(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("MEDIAMILL_MAX_DOWNLOAD_MB", "lots")
    monkeypatch.setenv("MEDIAMILL_RETRIES", "-1")
    with pytest.raises(SettingsError) as caught:
        settings()
    assert "MEDIAMILL_MAX_DOWNLOAD_MB" in str(caught.value) and "MEDIAMILL_RETRIES" in str(caught.value)
    manifest = tmp_path / "m.csv"
    manifest.write_text("id,kind,text\na,tts,Hello.\n")
    assert cli.main(["validate", str(manifest)]) == 2
    out = capsys.readouterr()
    said = out.out + out.err
    assert "MEDIAMILL_MAX_DOWNLOAD_MB" in said and "'lots'" in said and "Traceback" not in said
