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
    text = EXAMPLE.read_text()
    uncommented = "\n".join(re.sub(r"^# (\w+ = )", r"\1", line) for line in text.splitlines())
    documented = set()
    for table, values in tomllib.loads(uncommented).items():
        if isinstance(values, dict):
            documented |= {f"{table}.{name}" for name in values}
        else:
            documented.add(table)
    assert documented == {key.name for key in KEYS}
