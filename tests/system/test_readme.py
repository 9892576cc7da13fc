"""The README is the user's manual: its configurations load, its `dockyard` command lines parse,
and its walk-throughs run, so a renamed key, flag or command, or a step that no longer works,
fails here instead of in a user's terminal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockyard.cli import build_parser
from dockyard.config import ConfigError, load_config
from tests.server import RunningRegistry, free_port, require_tool, running_registry
from tests.system.clients.clients import private_containers_conf
from tests.system.readme import (
    README,
    SHELL_LANGUAGES,
    YAML_LANGUAGES,
    Block,
    as_config_file,
    config_documents,
    program_commands,
    read_blocks,
    runnable,
    section_blocks,
    synopsis_script,
    synopsis_variants,
)

BLOCKS = read_blocks()
CONFIG_BLOCKS = [block for block in BLOCKS if block.language in YAML_LANGUAGES
                 and config_documents(block)]
COMMANDS = [(block, words) for block in BLOCKS if block.language in SHELL_LANGUAGES
            for words in program_commands(block, "dockyard")]
MAKE_COMMANDS = [(block, words) for block in BLOCKS if block.language in SHELL_LANGUAGES
                 for words in program_commands(block, "make")]

PUSH_AND_PULL = "Push and pull"
MAINTENANCE = "Storage maintenance: deletion, GC, purging, read-only, usage, integrity"
TLS_EXAMPLE = "Basic mode, over TLS: a worked example"

WALK_THROUGH_TIMEOUT = 60.0
"""Per walk-through; each pushes a one-file image, so this is a hang, not a slow machine."""

SHELL_PRELUDE = """\
set -euxo pipefail
dockyard() { "$DOCKYARD_PYTHON" -m dockyard "$@"; }
await_registry() {  # healthz over TLS or plain HTTP, without the --fail of .curlrc
    for _ in $(seq 300); do
        curl -q -sk --max-time 1 -o /dev/null "https://$1/healthz" && return 0
        curl -q -s --max-time 1 -o /dev/null "http://$1/healthz" && return 0
        sleep 0.1
    done
    return 1
}
"""


def _block_id(block: Block) -> str:
    return f"README.md:{block.line}"


@pytest.mark.parametrize("block", CONFIG_BLOCKS, ids=_block_id)
def test_configuration_block_loads(block: Block, tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(as_config_file(block))
    try:
        load_config(path, environ={})
    except ConfigError as exc:
        pytest.fail(f"{block.where()} does not load:\n{exc}")


def test_configuration_blocks_are_found() -> None:
    """The rule that tells configurations from other YAML must not quietly match nothing:
    the sections the README documents with a YAML block are all seen."""
    seen = {key for block in CONFIG_BLOCKS for key in config_documents(block)[0]}
    assert {"version", "log", "storage", "http", "database", "redis", "auth", "health",
            "tracing", "notifications", "limits"} <= seen


@pytest.mark.parametrize(("block", "words"), COMMANDS,
                         ids=[f"{_block_id(block)}:{words[0] if words else ''}"
                              for block, words in COMMANDS])
def test_command_line_parses(block: Block, words: list[str]) -> None:
    parser = build_parser()
    for variant in synopsis_variants(words):
        try:
            parser.parse_args(variant)
        except SystemExit:
            pytest.fail(f"{block.where()}: `dockyard {' '.join(variant)}` does not parse "
                        "(the parser's message is above)")


def test_command_lines_are_found() -> None:
    """Every command the README shows in a shell block is seen by the extraction."""
    parser = build_parser()
    commands = {parser.parse_args(variant).command for _block, words in COMMANDS
                for variant in synopsis_variants(words)}
    assert {"serve", "user", "events", "gc", "du", "check", "readonly"} <= commands


@pytest.mark.parametrize(("block", "words"), MAKE_COMMANDS,
                         ids=[f"{_block_id(block)}:{' '.join(words)}"
                              for block, words in MAKE_COMMANDS])
def test_make_target_exists(block: Block, words: list[str]) -> None:
    """`make -n` prints what a target would run, and fails on a target the Makefile lacks."""
    result = subprocess.run([require_tool("make"), "-n", *words], cwd=README.parent,
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, f"{block.where()}: `make {' '.join(words)}`: {result.stderr}"


@dataclass
class Shell:
    """A temporary directory to paste walk-throughs into, with the clients' state kept in it."""

    cwd: Path
    env: dict[str, str]

    def run(self, script: str) -> str:
        """Run with bash, stopping at the first failing step; what it printed to stdout.

        Runs in its own process group, which is ended afterwards: a walk-through may leave a
        server running in the background. Output goes to files, not pipes, which such a
        server would hold open.
        """
        out_path, err_path = self.cwd.parent / "stdout", self.cwd.parent / "stderr"
        with out_path.open("w") as out, err_path.open("w") as err:
            process = subprocess.Popen(
                ["bash", "-c", SHELL_PRELUDE + script], cwd=self.cwd, env=self.env,
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
        try:
            process.wait(timeout=WALK_THROUGH_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"timed out after {WALK_THROUGH_TIMEOUT:.0f} s:\n"
                        f"{err_path.read_text()[-4000:]}")
        finally:
            _end_group(process.pid)
        assert process.returncode == 0, (
            f"a step failed (the last one traced):\n{err_path.read_text()[-4000:]}")
        return out_path.read_text()


def _end_group(group: int, timeout: float = 15.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever outlives `timeout`."""
    deadline = time.monotonic() + timeout
    sig = signal.SIGTERM
    while _group_alive(group):
        os.killpg(group, sig)
        if time.monotonic() > deadline:
            sig = signal.SIGKILL
        time.sleep(0.1)


def _group_alive(group: int) -> bool:
    """Whether a process of the group still runs (zombies left to an init that does not reap
    them count as ended)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _parent, process_group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(process_group) == group and state != "Z":
            return True
    return False


@pytest.fixture(scope="module")
def shell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shell]:
    """bash in a temporary directory, with buildah's and podman's storage (vfs, as the README
    says) and containers.conf private to it, and a .curlrc that makes HTTP errors fail."""
    for tool in ("bash", "buildah", "skopeo", "podman", "curl", "openssl"):
        require_tool(tool)
    cwd = tmp_path_factory.mktemp("readme")
    runroot = Path(tempfile.mkdtemp(prefix="readme-", dir="/tmp"))  # short: podman's sockets
    storage_conf = cwd.parent / f"{cwd.name}-storage.conf"
    storage_conf.write_text(f'[storage]\ndriver = "vfs"\ngraphroot = "{cwd.parent / "graph"}"\n'
                            f'runroot = "{runroot}"\n')
    curl_home = cwd.parent / f"{cwd.name}-curl"
    curl_home.mkdir()
    (curl_home / ".curlrc").write_text("fail\nmax-time = 30\n")
    env = {**private_containers_conf(runroot), "CONTAINERS_STORAGE_CONF": str(storage_conf),
           "CURL_HOME": str(curl_home), "DOCKYARD_PYTHON": sys.executable,
           "REGISTRY_LIMITS_WORKERS": "1"}
    try:
        yield Shell(cwd, env)
    finally:
        subprocess.run(["buildah", "rm", "--all"], env=env, capture_output=True, timeout=60)
        subprocess.run(["rm", "-rf", str(cwd.parent / "graph"), str(runroot)], timeout=60)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    with running_registry(tmp_path_factory.mktemp("readme-registry")) as server:
        yield server


@pytest.fixture(scope="module")
def pushed(shell: Shell, served: RunningRegistry) -> str:
    """The "Push and pull" walk-through, run once; what it printed."""
    (block,) = section_blocks(BLOCKS, PUSH_AND_PULL, SHELL_LANGUAGES)
    return shell.run(runnable(block, served.host))


def test_push_and_pull(pushed: str, shell: Shell) -> None:
    assert '"team/app"' in pushed  # the catalog, by curl
    assert '"1.0"' in pushed and '"1.1"' in pushed  # skopeo list-tags and the tags list
    assert (shell.cwd / "my-image" / "index.json").exists()


def test_maintenance_commands(pushed: str, served: RunningRegistry, shell: Shell) -> None:
    """gc, du, check and readonly as the README shows them, every option given, against the
    server the images were pushed to."""
    placeholders = {"FILE": str(served.config_path), "REPOSITORY": "team/app"}
    out = "".join(shell.run(synopsis_script(block, served.host, placeholders))
                  for block in section_blocks(BLOCKS, MAINTENANCE, SHELL_LANGUAGES))
    assert '"team/app"' in out  # du --json and the usage endpoint name the repository


def test_tls_basic_example(pushed: str, shell: Shell) -> None:
    """The TLS and Basic example is self-contained: it makes its certificates and user, starts
    its own server in the background and pushes the image the first walk-through saved."""
    (block,) = section_blocks(BLOCKS, TLS_EXAMPLE, SHELL_LANGUAGES)
    out = shell.run(runnable(block, f"127.0.0.1:{free_port()}"))
    assert '"team/app"' in out  # the catalog over TLS, as alice

