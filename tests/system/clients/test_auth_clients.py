"""Real clients with credentials over verified TLS, against Basic auth and the token service.

Every server here serves HTTPS with a certificate from a CA made by the test, and every
client verifies it (`--cert-dir` / a CA bundle): no TLS verification is switched off. In
bearer mode the clients find the built-in token service from the challenge themselves.
What every client does in every mode is in test_matrix; here is what goes beyond it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from cryptography import x509

from tests.authkit import Pki, auth_config, write_htpasswd
from tests.server import require_tool, running_registry
from tests.system.clients.clients import Buildah, Podman, run
from tests.system.clients.drivers import containers_remote
from tests.system.clients.images import OciLayout, random_image
from tests.system.clients.modes import USERS, Served, password, serve

pytestmark = pytest.mark.clients

def workdir(tmp: Path) -> Path:
    path = tmp / "server"
    path.mkdir()
    return path


@pytest.fixture(scope="module", params=["basic", "bearer"])
def secured(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serve(request.param, tmp_path_factory.mktemp(f"tls-{request.param}"))


@pytest.fixture
def repo(request: pytest.FixtureRequest) -> str:
    label = request.node.name.split("[")[0].removeprefix("test_")[:30].replace("_", "-")
    return f"team/{label}-{os.urandom(3).hex()}"


def creds(user: str) -> str:
    return f"{user}:{password(user)}"


# --- skopeo ----------------------------------------------------------------------------------


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return run([require_tool("skopeo"), *args], check=check)


def test_skopeo_with_credentials(secured: Served, repo: str, tmp_path: Path) -> None:
    image = random_image()
    layout = OciLayout(tmp_path / "source")
    layout.write({"v1": image})
    remote = f"docker://{secured.host}/{repo}"
    certs = str(secured.cert_dir)
    skopeo("copy", "--quiet", "--preserve-digests", "--dest-creds", creds("alice"),
           "--dest-cert-dir", certs, f"oci:{layout.path}:v1", f"{remote}:v1")

    raw = skopeo("inspect", "--raw", "--creds", creds("bob"), "--cert-dir", certs,
                 f"{remote}:v1").stdout
    assert raw == image.manifest.data
    tags = json.loads(skopeo("list-tags", "--creds", creds("bob"), "--cert-dir", certs,
                             remote).stdout)["Tags"]
    assert tags == ["v1"]
    pulled = OciLayout(tmp_path / "pulled")
    skopeo("copy", "--quiet", "--preserve-digests", "--src-creds", creds("bob"),
           "--src-cert-dir", certs, f"{remote}:v1", f"oci:{pulled.path}:v1")
    for blob in image.blobs():
        assert pulled.read_blob(blob.digest) == blob.data

    # Without credentials, with a wrong password, or without the right: refused.
    anonymous = skopeo("inspect", "--raw", "--no-creds", "--cert-dir", certs, f"{remote}:v1",
                       check=False)
    assert anonymous.returncode != 0
    # Basic: 401. Bearer: skopeo gets an anonymous token, which lacks the access: 403.
    refusal = b"unauthorized" if secured.mode == "basic" else b"denied"
    assert refusal in anonymous.stderr.lower(), anonymous.stderr
    wrong = skopeo("inspect", "--raw", "--creds", "alice:wrong", "--cert-dir", certs,
                   f"{remote}:v1", check=False)
    assert wrong.returncode != 0
    other = random_image()
    layout.write({"v2": other})
    denied = skopeo("copy", "--quiet", "--dest-creds", creds("bob"), "--dest-cert-dir", certs,
                    f"oci:{layout.path}:v2", f"{remote}:v2", check=False)
    assert denied.returncode != 0
    assert b"denied" in denied.stderr.lower() or b"unauthorized" in denied.stderr.lower()
    assert json.loads(skopeo("list-tags", "--creds", creds("alice"), "--cert-dir", certs,
                             remote).stdout)["Tags"] == ["v1"]

    # Deleting needs the delete right: bob cannot, alice can.
    refused = skopeo("delete", "--creds", creds("bob"), "--cert-dir", certs, f"{remote}:v1",
                     check=False)
    assert refused.returncode != 0
    skopeo("delete", "--creds", creds("alice"), "--cert-dir", certs, f"{remote}:v1")


def test_skopeo_refuses_an_unknown_ca(secured: Served, repo: str) -> None:
    """The certificate really is checked: without the test CA the client refuses it."""
    result = skopeo("inspect", "--raw", "--creds", creds("alice"),
                    f"docker://{secured.host}/{repo}:v1", check=False)
    assert result.returncode != 0
    assert b"certificate" in result.stderr.lower() or b"x509" in result.stderr.lower()


# --- buildah and podman ----------------------------------------------------------------------


@pytest.fixture
def authfile(tmp_path: Path) -> Path:
    """A private auth file: ~/.docker and /run/containers stay untouched."""
    path = tmp_path / "auth.json"
    path.write_text('{"auths": {}}')
    return path


@pytest.fixture
def private_env(containers_env: dict[str, str], authfile: Path) -> dict[str, str]:
    return {**containers_env, "REGISTRY_AUTH_FILE": str(authfile)}


def test_buildah_podman_login_push_pull(secured: Served, repo: str, tmp_path: Path,
                                        short_dir: Callable[[], Path], authfile: Path,
                                        private_env: dict[str, str]) -> None:
    buildah = Buildah(require_tool("buildah"), tmp_path / "buildah-root", short_dir(),
                      private_env)
    podman = Podman(require_tool("podman"), tmp_path / "podman-root", short_dir(), short_dir(),
                    private_env)
    certs = str(secured.cert_dir)
    payload = os.urandom(64 * 1024)
    (tmp_path / "payload.bin").write_bytes(payload)
    container = buildah("from", "scratch")
    try:
        buildah("copy", container, str(tmp_path / "payload.bin"), "/payload.bin")
        buildah("config", "--label", f"e2e.token={os.urandom(8).hex()}", container)
        buildah("commit", "--quiet", container, "localhost/e2e-auth:latest")

        # buildah: log in into the private auth file, then push with it.
        remote = containers_remote(buildah.base, private_env, secured, "alice", authfile)
        assert secured.host in json.loads(authfile.read_text())["auths"]
        digest_file = tmp_path / "buildah.digest"
        buildah("push", "--quiet", *remote, "--digestfile", str(digest_file),
                "localhost/e2e-auth:latest", f"docker://{secured.host}/{repo}:v1")
        pushed = digest_file.read_text().strip()
    finally:
        buildah("rm", "--all", check=False)

    # podman: anonymous pull fails, login then pull works, push with --creds as well.
    reference = f"{secured.host}/{repo}:v1"
    empty = tmp_path / "empty-auth.json"
    empty.write_text('{"auths": {}}')
    with pytest.raises(AssertionError):
        podman("pull", "--quiet", "--authfile", str(empty), "--cert-dir", certs, reference)
    remote = containers_remote(podman.base, private_env, secured, "bob", authfile)
    podman("pull", "--quiet", *remote, reference)
    assert podman.inspect(reference)["Digest"] == pushed
    copy = f"{secured.host}/{repo}-copy:v2"
    podman("tag", reference, copy)
    with pytest.raises(AssertionError):  # bob may only pull
        podman("push", "--quiet", *remote, copy)
    podman("push", "--quiet", "--creds", creds("alice"), "--cert-dir", certs, copy)
    podman("logout", "--authfile", str(authfile), secured.host)
    assert secured.host not in json.loads(authfile.read_text()).get("auths", {})


# --- TLS itself ------------------------------------------------------------------------------


def _peer_serial(host: str, ca: str) -> int:
    context = ssl.create_default_context(cafile=ca)
    address, port = host.rsplit(":", 1)
    with socket.create_connection((address, int(port)), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=address) as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der).serial_number


def test_tls_versions_and_sighup_reload(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "pki")
    cert, key = pki.issue("server")
    htpasswd = write_htpasswd(tmp_path / "htpasswd", USERS)
    config = {**auth_config(htpasswd),
              "http": {"tls": {"certificate": str(cert), "key": str(key)}}}
    with running_registry(workdir(tmp_path), config, workers=2) as server:
        ca = str(pki.ca_path)
        first = _peer_serial(server.host, ca)
        # TLS 1.1 and older are refused.
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.load_verify_locations(ca)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            old.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises((ssl.SSLError, OSError)), socket.create_connection(
                ("127.0.0.1", server.port), timeout=10) as raw, \
                old.wrap_socket(raw, server_hostname="127.0.0.1"):
            pass
        # A connection opened before the reload keeps working after it. (verify= per request:
        # REQUESTS_CA_BUNDLE in the environment would override a session's setting.)
        session = requests.Session()
        session.auth = ("alice", password("alice"))
        assert session.get(server.url + "/v2/", verify=ca, timeout=10).status_code == 200
        new_cert, new_key = pki.issue("renewed")
        cert.write_bytes(new_cert.read_bytes())
        key.write_bytes(new_key.read_bytes())
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        serials = {first}
        while time.monotonic() < deadline:
            # Both workers must serve the new certificate: sample several connections.
            serials = {_peer_serial(server.host, ca) for _ in range(6)}
            if first not in serials:
                break
            time.sleep(0.2)
        assert first not in serials and len(serials) == 1
        assert session.get(server.url + "/v2/", verify=ca, timeout=10).status_code == 200
        assert server.process.poll() is None


def test_client_certificates(tmp_path: Path) -> None:
    """With clientcas set, a client without a certificate signed by them cannot connect."""
    pki = Pki(tmp_path / "pki")
    cert, key = pki.issue("server")
    client_cert, client_key = pki.issue("client", common="alice", client=True)
    htpasswd = write_htpasswd(tmp_path / "htpasswd", USERS)
    config = {**auth_config(htpasswd),
              "http": {"tls": {"certificate": str(cert), "key": str(key),
                               "clientcas": [str(pki.ca_path)]}}}
    with running_registry(workdir(tmp_path), config) as server:
        ca = str(pki.ca_path)
        response = requests.get(server.url + "/v2/", verify=ca, auth=("alice", "alice-pw"),
                                cert=(str(client_cert), str(client_key)), timeout=10)
        assert response.status_code == 200
        with pytest.raises(requests.exceptions.RequestException):
            requests.get(server.url + "/v2/", verify=ca, auth=("alice", "alice-pw"), timeout=10)
        stranger = Pki(tmp_path / "other-pki")
        bad_cert, bad_key = stranger.issue("client", common="mallory", client=True)
        with pytest.raises(requests.exceptions.RequestException):
            requests.get(server.url + "/v2/", verify=ca, cert=(str(bad_cert), str(bad_key)),
                         timeout=10)
        # skopeo presents the client certificate from its cert dir.
        certs = pki.cert_dir("client-certs")
        (certs / "client.cert").write_bytes(client_cert.read_bytes())
        (certs / "client.key").write_bytes(client_key.read_bytes())
        result = skopeo("list-tags", "--creds", creds("alice"), "--cert-dir", str(certs),
                        f"docker://{server.host}/team/none", check=False)
        assert b"certificate" not in result.stderr.lower(), result.stderr
