"""Node identity from the GCE metadata server, against the loopback server of tests/conftest.py.

The driver finds that server only through GCE_METADATA_HOST (google-auth reads it), so every
answer below also shows that the variable is honoured and that nothing went to 169.254.169.254.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request

import pytest

from csi import metadata
from csi.main import (
    EMULATOR_PROJECT,
    EMULATOR_ZONE,
    Identity,
    build_parser,
    emulator_node_id,
    resolve_identity,
)
from tests.support.metadata_server import ROOT, MetadataServer

ZONE_ANSWER = "projects/123456789/zones/europe-west1-b"


def _url(server: MetadataServer, path: str) -> str:
    return f"http://{server.host}{ROOT}{path}"


def test_the_test_server_speaks_the_protocol(metadata_server: MetadataServer) -> None:
    """Like the real server: 403 without Metadata-Flavor, and every answer carries the header."""
    metadata_server.values["instance/name"] = "vm-1"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(_url(metadata_server, "instance/name"), timeout=5)
    assert refused.value.code == 403
    assert refused.value.headers["Metadata-Flavor"] == "Google"
    request = urllib.request.Request(
        _url(metadata_server, "instance/name"), headers={"Metadata-Flavor": "Google"}
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.read() == b"vm-1" and answer.headers["Metadata-Flavor"] == "Google"
    assert metadata_server.host.startswith("127.0.0.1:")


def test_zone_project_and_name(metadata_server: MetadataServer) -> None:
    assert os.environ["GCE_METADATA_HOST"] == metadata_server.host
    metadata_server.values.update(
        {"instance/zone": ZONE_ANSWER, "project/project-id": "my-project", "instance/name": "gke-node-7"}
    )
    assert metadata.zone() == "europe-west1-b"
    assert metadata.project() == "my-project"
    assert metadata.instance_name() == "gke-node-7"
    assert metadata_server.refused == []  # google-auth sent Metadata-Flavor: Google every time
    assert metadata_server.requests == [
        f"{ROOT}instance/zone",
        f"{ROOT}project/project-id",
        f"{ROOT}instance/name",
    ]


def test_a_503_is_retried(metadata_server: MetadataServer) -> None:
    metadata_server.values["instance/zone"] = ZONE_ANSWER
    metadata_server.unavailable = 2
    assert metadata.zone(attempts=3) == "europe-west1-b"
    assert len(metadata_server.requests) == 3


def test_retries_are_bounded(metadata_server: MetadataServer) -> None:
    metadata_server.values["instance/zone"] = ZONE_ANSWER
    metadata_server.unavailable = 100
    started = time.monotonic()
    with pytest.raises(metadata.MetadataError) as info:
        metadata.zone(attempts=3)
    assert len(metadata_server.requests) == 3  # and not one more
    assert time.monotonic() - started < 30
    assert "--zone" in str(info.value) and "instance/zone" in str(info.value)


def test_a_missing_value_fails_at_once_naming_the_flag(metadata_server: MetadataServer) -> None:
    with pytest.raises(metadata.MetadataError) as info:
        metadata.instance_name()
    assert "--node-id" in str(info.value)
    assert len(metadata_server.requests) == 1  # a 404 is an answer, not something to retry


def test_an_empty_value_is_an_error(metadata_server: MetadataServer) -> None:
    metadata_server.values["project/project-id"] = ""
    with pytest.raises(metadata.MetadataError, match="--project"):
        metadata.project()


# --- which values the driver asks for ------------------------------------------------------------


def _resolve(metadata_server: MetadataServer, *argv: str, controller: bool, node: bool) -> Identity:
    args = build_parser().parse_args(list(argv))
    return resolve_identity(args, controller=controller, node=node)


def test_flags_win_and_nothing_is_asked(metadata_server: MetadataServer) -> None:
    where = _resolve(
        metadata_server, "--project=p", "--zone=us-east1-b", "--node-id=n1", controller=True, node=True
    )
    assert (where.project, where.zone, where.node_id) == ("p", "us-east1-b", "n1")
    assert metadata_server.requests == []


def test_node_reads_its_zone_and_name(
    metadata_server: MetadataServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NODE_ID", raising=False)
    metadata_server.values.update({"instance/zone": ZONE_ANSWER, "instance/name": "gke-node-7"})
    where = _resolve(metadata_server, controller=False, node=True)
    assert (where.zone, where.node_id, where.project) == ("europe-west1-b", "gke-node-7", "")
    assert f"{ROOT}project/project-id" not in metadata_server.requests  # a node needs no project


def test_controller_reads_its_project_and_location(metadata_server: MetadataServer) -> None:
    metadata_server.values.update({"instance/zone": ZONE_ANSWER, "project/project-id": "my-project"})
    where = _resolve(metadata_server, controller=True, node=False)
    assert (where.project, where.zone) == ("my-project", "europe-west1-b")
    metadata_server.reset()
    metadata_server.values["project/project-id"] = "my-project"
    where = _resolve(metadata_server, "--location=us-central1", controller=True, node=False)
    assert where.zone == ""  # --location given: no zone needed
    assert metadata_server.requests == [f"{ROOT}project/project-id"]


def test_the_emulator_never_asks(metadata_server: MetadataServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NODE_ID", raising=False)
    where = _resolve(metadata_server, "--cloud=emulator", controller=True, node=True)
    assert (where.project, where.zone, where.node_id) == (EMULATOR_PROJECT, EMULATOR_ZONE, emulator_node_id())
    assert metadata_server.requests == []
