"""deploy/ ships a configuration example that podmod itself accepts, key for key."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from podmod.config import KEYS, load_config

EXAMPLE = Path(__file__).parent.parent / "deploy" / "podmod.example.toml"


def test_example_config_loads_as_it_is():
    config = load_config(EXAMPLE, environ={})
    assert config.database_url.endswith("/diaspora_production")


def test_example_config_documents_every_key():
    text = EXAMPLE.read_text().split("# Shared blocklists")[0]
    uncommented = "\n".join(re.sub(r"^# (\w+ = )", r"\1", line) for line in text.splitlines())
    documented = set()
    for table, values in tomllib.loads(uncommented).items():
        if isinstance(values, dict):
            documented |= {f"{table}.{name}" for name in values}
        else:
            documented.add(table)
    assert documented == {key.name for key in KEYS}


def test_example_list_subscriptions_load_when_uncommented(tmp_path):
    text = EXAMPLE.read_text()
    lists_part = text.split("# Shared blocklists")[1]
    uncommented = "\n".join(
        line[2:] for line in lists_part.splitlines() if re.match(r"^# (\[\[lists|\w+ = )", line)
    )
    path = tmp_path / "podmod.toml"
    path.write_text(
        'database_url = "postgresql://podmod@localhost/diaspora_production"\n' + uncommented + "\n"
    )
    config = load_config(path, environ={})
    assert [(item.name, item.policy) for item in config.lists] == [
        ("core", "review"),
        ("dni", "review"),
        ("ours", "allow"),
    ]
    assert config.lists[0].lock_labels == ("campaign",)
    assert config.lists[1].labels == ("hate-speech", "harassment")
    assert config.lists[1].require_canary == "dni.invalid"


UNITS = sorted((EXAMPLE.parent).glob("*.service"))
UPLOADS = "/home/diaspora/diaspora/public/uploads/images"  # the example's uploads_dir


def unit_settings(unit: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            name, value = line.split("=", 1)
            settings.setdefault(name, []).append(value)
    return settings


def test_the_example_uploads_dir_is_the_one_the_units_let_podmod_read():
    assert f'# uploads_dir = "{UPLOADS}"' in EXAMPLE.read_text()
    for unit in UNITS:
        settings = unit_settings(unit)
        assert settings.get("ProtectHome") != ["true"], f"{unit.name} hides /home entirely"
        readable = [p.lstrip("-") for v in settings.get("BindReadOnlyPaths", []) for p in v.split()]
        assert any(UPLOADS.startswith(path) for path in readable), (unit.name, readable)


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
@pytest.mark.parametrize("unit", UNITS, ids=lambda unit: unit.name)
def test_each_unit_is_hardened_to_an_exposure_of_at_most_4(unit, tmp_path):
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    [score] = re.findall(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert float(score) <= 4.0, result.stdout


def test_the_cron_line_never_overlaps_and_mails_the_podmin_when_a_sync_fails():
    [line] = [
        line
        for line in (EXAMPLE.parent / "podmod.cron").read_text().splitlines()
        if line and not line.startswith("#") and "=" not in line.split()[0]
    ]
    command = line.split(None, 6)[6]
    assert "flock -n /var/lib/podmod/lists-sync.lock" in command
    # output goes to the log; only a non-zero exit prints, and cron mails what a job prints
    assert ">> /var/log/podmod/lists.log 2>&1 ||" in command


@pytest.mark.skipif(not shutil.which("logrotate"), reason="logrotate is not installed")
def test_the_logrotate_file_parses_and_rotates_the_sync_log(tmp_path):
    rotate = EXAMPLE.parent / "podmod.logrotate"
    result = subprocess.run(
        ["logrotate", "--debug", "--state", str(tmp_path / "state"), str(rotate)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and "error" not in result.stderr.lower(), result.stderr
    assert "/var/log/podmod/lists.log" in result.stderr
