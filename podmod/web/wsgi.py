"""The web app for any WSGI server, configured like every podmod command (PODMOD_CONFIG, PODMOD_*):
`gunicorn --bind 127.0.0.1:8790 podmod.web.wsgi:app`."""

from __future__ import annotations

from podmod.config import load_config
from podmod.logs import setup_logging
from podmod.web import create_app

config = load_config()
setup_logging(config["log.level"])
app = create_app(config)
