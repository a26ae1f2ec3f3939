"""deploy/ ships a configuration example that podmod itself accepts, key for key."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

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
