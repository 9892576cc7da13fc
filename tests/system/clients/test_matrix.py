"""One scenario list for every client (docker, ctr, skopeo, buildah, podman, oras-py) in every
auth mode (anonymous plain HTTP, Basic over TLS, bearer over TLS); see the `client` and `served`
fixtures. The registry's own answers are the reference, never what a client says of itself.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.system.clients.drivers import Driver
from tests.system.clients.modes import MODES, PULLER, PUSHER, Served

pytestmark = pytest.mark.clients

NewSession = Callable[[str | None], Driver]


def test_push_then_pull(served: Served, client: NewSession, served_repo: str) -> None:
    """What one session pushes, another (a pull-only user when there are users) pulls."""
    reference = f"{served.host}/{served_repo}:v1"
    pushed = client(served.user(PUSHER)).push(reference)
    assert served.manifest_digest(served_repo, "v1") == pushed
    assert client(served.user(PULLER)).pull(reference) == pushed


def test_one_session_two_repositories(served: Served, client: NewSession,
                                      served_repo: str) -> None:
    """One session pushes to two repositories and pulls the first again.

    oras-py keeps one bearer token per client: the token for the first repository comes to
    the second one, and the registry's answer has to make it fetch a new token.
    """
    session = client(served.user(PUSHER))
    first, second = f"{served_repo}-first", f"{served_repo}-second"
    pushed_first = session.push(f"{served.host}/{first}:v1")
    pushed_second = session.push(f"{served.host}/{second}:v1")
    assert served.manifest_digest(first, "v1") == pushed_first
    assert served.manifest_digest(second, "v1") == pushed_second
    assert session.pull(f"{served.host}/{first}:v1") == pushed_first


@pytest.mark.parametrize("served", [mode for mode in MODES if mode != "anonymous"],
                         indirect=True)  # anonymous mode has no access control to refuse
def test_refusals(served: Served, client: NewSession, served_repo: str) -> None:
    """Without credentials nothing is pulled; a pull-only user pushes nothing."""
    reference = f"{served.host}/{served_repo}:v1"
    pushed = client(PUSHER).push(reference)
    with pytest.raises(AssertionError):
        client(None).pull(reference)
    with pytest.raises(AssertionError):
        client(PULLER).push(f"{served.host}/{served_repo}:denied")
    assert served.manifest_digest(served_repo, "denied") is None
    assert served.manifest_digest(served_repo, "v1") == pushed
    # The refusals came from the registry (the status it logged), not from a client's mistake.
    refused = [status for method in ("GET", "HEAD", "POST")
               for status in served.statuses(method, f"/v2/{served_repo}/")
               if status in (401, 403)]
    assert refused


@pytest.mark.parametrize("served", [mode for mode in MODES if mode != "anonymous"],
                         indirect=True)  # in anonymous mode every pull is anonymous already
def test_anonymous_pull_of_a_public_repository(served: Served, client: NewSession,
                                               served_repo: str,
                                               request: pytest.FixtureRequest) -> None:
    """A rule with anonymouspull lets a client without credentials pull, in both modes.

    skopeo, podman and buildah send an empty Basic pair then; docker and ctr send nothing.
    docker cannot in Basic mode: once /v2/ answered with a Basic challenge, its Basic handler
    refuses to send any request without credentials (and then falls back to plain HTTP).
    Answering anonymous callers' /v2/ with 200 instead would leave docker without the
    challenge it needs to log in and push, so anonymous docker pulls need bearer mode, as on
    Docker Hub. Strict: if a docker release lifts this, the test says so.
    """
    if request.node.callspec.params["client"] == "docker" and served.mode == "basic":
        request.applymarker(pytest.mark.xfail(
            strict=True, reason="docker sends nothing without credentials to a Basic realm"))
    repository = served_repo.replace("team/", "public/", 1)
    reference = f"{served.host}/{repository}:v1"
    pushed = client(PUSHER).push(reference)
    assert client(None).pull(reference) == pushed
