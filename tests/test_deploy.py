"""deploy/ ships a configuration example that podmod itself accepts, key for key."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import time
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
    lists_part = text.split("# Shared blocklists")[1].split("# Signed webhooks")[0]
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


def test_example_webhook_loads_when_uncommented(tmp_path):
    hooks_part = EXAMPLE.read_text().split("# Signed webhooks")[1]
    uncommented = "\n".join(
        line[2:] for line in hooks_part.splitlines() if re.match(r"^# (\[\[webhooks|\w+ = )", line)
    )
    path = tmp_path / "podmod.toml"
    path.write_text(
        'database_url = "postgresql://podmod@localhost/diaspora_production"\n'
        '[web]\npublic_url = "https://pod.example/podmod/"\n' + uncommented + "\n"
    )
    [hook] = load_config(path, environ={}).webhooks
    assert hook.events == ("case.alert", "account.locked", "list.held")


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


def test_the_cron_line_never_overlaps_and_mails_the_podmin_when_a_sync_fails(tmp_path):
    [line] = [
        line
        for line in (EXAMPLE.parent / "podmod.cron").read_text().splitlines()
        if line and not line.startswith("#") and "=" not in line.split()[0]
    ]
    command = line.split(None, 6)[6]
    assert "%" not in command  # (cron would cut the command there)
    # Run as cron runs it (sh -c), with this test's paths and a podmod that exits as told.
    fake = tmp_path / "podmod"
    fake.write_text('#!/bin/sh\necho "sync output"\nexit "$FAKE_EXIT"\n')
    fake.chmod(0o755)
    lock, log = tmp_path / "lists-sync.lock", tmp_path / "lists.log"
    for path, ours in (
        ("/var/lib/podmod/lists-sync.lock", lock),
        ("/opt/podmod/venv/bin/podmod", fake),
        ("/var/log/podmod/lists.log", log),
        ("$(shuf -i 0-120 -n 1)", "0"),
    ):
        assert path in command, path
        command = command.replace(path, str(ours))

    def cron(exit_code: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", "-c", command],
            env={**os.environ, "FAKE_EXIT": str(exit_code)},
            capture_output=True,
            text=True,
            timeout=60,
        )

    # output goes to the log; only a non-zero exit prints, and cron mails what a job prints
    ran = cron(0)
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, "", ""), ran
    assert log.read_text() == "sync output\n"
    for exit_code in (1, 4):
        ran = cron(exit_code)
        assert ran.stdout == (
            f"podmod lists sync exited {exit_code} (1: a list has failed for over an hour, 4: a"
            f" version or a lock list's locks are held for approval); see {log}\n"
        ), ran
    # A sync still running holds the lock: this run is skipped, and says nothing (no mail
    # blaming a list that did not fail).
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        ran = cron(1)
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, "", ""), ran
    assert log.read_text().count("sync output") == 3


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


NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


@pytest.fixture
def nginx_in_front(tmp_path, env):
    """The shipped nginx block in a real nginx on loopback, in front of a real `podmod serve`
    started with the web.trusted_proxies the test gives."""
    import requests

    from podmod.embedded import free_port

    running: list[subprocess.Popen] = []

    def start(trusted_proxies: int) -> str:
        podmod_port, nginx_port = free_port(), free_port()
        serve = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "podmod.cli",
                "serve",
                "--host=127.0.0.1",
                f"--port={podmod_port}",
            ],
            env={**os.environ, "PODMOD_WEB_TRUSTED_PROXIES": str(trusted_proxies)},
            stdout=(tmp_path / "serve.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        running.append(serve)
        block = (EXAMPLE.parent / "nginx-podmod.conf").read_text().replace("8790", str(podmod_port))
        (tmp_path / "nginx.conf").write_text(
            f"daemon off; master_process off; pid {tmp_path}/nginx.pid;\n"
            f"error_log {tmp_path}/error.log;\nevents {{}}\nhttp {{\n"
            f"  access_log off; client_body_temp_path {tmp_path}; proxy_temp_path {tmp_path};\n"
            f"  server {{\n    listen 127.0.0.1:{nginx_port};\n{block}\n  }}\n}}\n"
        )
        running.append(
            subprocess.Popen([NGINX, "-e", f"{tmp_path}/error.log", "-c", f"{tmp_path}/nginx.conf"])
        )
        base = f"http://127.0.0.1:{nginx_port}"
        deadline, seen = time.monotonic() + 60, None
        while time.monotonic() < deadline and serve.poll() is None:
            try:
                seen = requests.get(f"{base}/podmod/login", timeout=2).status_code
                if seen != 502:
                    return base
            except requests.RequestException as error:
                seen = error
            time.sleep(0.2)
        log = (tmp_path / "serve.log").read_text()
        raise AssertionError(f"podmod serve behind nginx did not answer within 60 s: {seen}; {log}")

    yield start
    for process in running:
        process.terminate()
        process.wait(15)


@pytest.mark.skipif(not NGINX, reason="nginx is not installed (.ci/run installs nginx-light)")
def test_behind_the_shipped_nginx_block_podmod_redirects_styles_and_signs_in_under_podmod(
    nginx_in_front, pod, state
):
    import requests

    pod.person("podmin", password="placeholder password 1", roles=("admin",))
    base = nginx_in_front(trusted_proxies=1)
    browser = requests.Session()
    first = browser.get(f"{base}/podmod/", allow_redirects=False, timeout=30)
    assert first.status_code == 302 and first.headers["Location"].startswith("/podmod/login")
    login = browser.get(base + first.headers["Location"], timeout=30)
    [css] = re.findall(r'href="(/podmod/static/[^"]+\.css)"', login.text)
    assert browser.get(base + css, timeout=30).status_code == 200
    [token] = re.findall(r'name="csrf_token" value="([^"]+)"', login.text)
    signed = browser.post(
        f"{base}/podmod/login",
        data={"username": "podmin", "password": "placeholder password 1", "csrf_token": token},
        allow_redirects=False,
        timeout=30,
    )
    assert signed.status_code == 302 and signed.headers["Location"].startswith("/podmod/")
    queue = browser.get(base + signed.headers["Location"], timeout=30)
    assert queue.status_code == 200 and "podmin" in queue.text and queue.url.startswith(base)
    assert browser.get(f"{base}/podmod/metrics", timeout=30).status_code == 403


@pytest.mark.skipif(not NGINX, reason="nginx is not installed (.ci/run installs nginx-light)")
def test_behind_nginx_without_trusted_proxies_the_page_says_what_to_set(nginx_in_front, state):
    import requests

    base = nginx_in_front(trusted_proxies=0)
    page = requests.get(f"{base}/podmod/", allow_redirects=False, timeout=30)
    assert page.status_code == 500 and "trusted_proxies = 1" in page.text


def readme_section(title: str) -> str:
    text = (EXAMPLE.parent.parent / "README.md").read_text()
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_install_steps_are_true_as_written_on_a_plain_debian():
    steps = readme_section("Install on a real pod")
    assert "sudo " not in steps  # Debian 12 has no sudo unless installed
    assert "psql -v ON_ERROR_STOP=1 -d diaspora_production < deploy/grants.sql" in steps
    step3 = steps.split("3. ", 1)[1].split("\n4. ", 1)[0]
    assert "trusted_proxies = 1" in step3
    step4 = steps.split("\n4. ", 1)[1].split("\n5. ", 1)[0]
    assert "FAIL" in step4 and "reader" in step4 and "workers" in step4
    for shipped in ("uninstall.sql", "podmod.logrotate", "podmod.cron"):
        assert f"deploy/{shipped}" in steps and (EXAMPLE.parent / shipped).exists()
    assert "PostgreSQL" in steps.split("1. ", 1)[0]  # what a pod needs, before step 1


def test_the_demo_command_installs_only_what_the_demo_needs():
    commands = readme_section("The two commands")
    assert "pip install -e '.[embedded]' && podmod demo" in commands
