"""The controller's SCRAM credentials: AlterUserScramCredentials' rules (Kafka's
ScramControlManager), credentials derived from the salted password as Kafka derives them, and
their persistence with the cluster metadata (a change line, then a restart)."""

from __future__ import annotations

import os
from pathlib import Path

from msklite.config import BrokerConfigs
from msklite.controller import BrokerInfo, Controller
from msklite.credentials import make_credential, salted_password, verifies
from msklite.errors import ErrorCode
from msklite.msk import MSK_BROKER_DEFAULTS

SHA256, SHA512 = 1, 2


def _controller(path: Path) -> Controller:
    infos = [BrokerInfo(1, "use1-az1")]
    return Controller(infos, BrokerConfigs(dict(MSK_BROKER_DEFAULTS)), str(path))


def _upsert(
    user: str, password: str, mechanism: int = SHA512, iterations: int = 4096
) -> tuple[str, int, int, bytes, bytes]:
    name = "SCRAM-SHA-512" if mechanism == SHA512 else "SCRAM-SHA-256"
    salt = os.urandom(16)
    return user, mechanism, iterations, salt, salted_password(name, password, salt, iterations)


def test_alterations_follow_kafkas_rules(tmp_path: Path) -> None:
    c = _controller(tmp_path / "m.json")
    out = c.alter_scram_credentials(
        [("ghost", SHA512), ("", SHA512), ("zed", 9)],
        [
            _upsert("alice", "pw"),
            _upsert("bob", "pw", iterations=100),
            _upsert("bob2", "pw", iterations=20000),
            _upsert("twice", "a"),
            _upsert("twice", "b"),
        ],
    )
    assert {u: e for u, e, _ in out} == {
        "alice": ErrorCode.NONE,
        "ghost": ErrorCode.RESOURCE_NOT_FOUND,
        "": ErrorCode.UNACCEPTABLE_CREDENTIAL,
        "zed": ErrorCode.UNSUPPORTED_SASL_MECHANISM,
        "bob": ErrorCode.UNACCEPTABLE_CREDENTIAL,
        "bob2": ErrorCode.UNACCEPTABLE_CREDENTIAL,
        "twice": ErrorCode.DUPLICATE_RESOURCE,
    }
    assert verifies(c.scram["alice"]["SCRAM-SHA-512"], "SCRAM-SHA-512", "pw")
    assert not verifies(c.scram["alice"]["SCRAM-SHA-512"], "SCRAM-SHA-512", "other")
    # a deletion and an upsertion of one user in one request: both refused
    out = c.alter_scram_credentials([("alice", SHA512)], [_upsert("alice", "new")])
    assert out == [
        (
            "alice",
            ErrorCode.DUPLICATE_RESOURCE,
            "A user credential cannot be altered twice in the same request",
        )
    ]
    assert verifies(c.scram["alice"]["SCRAM-SHA-512"], "SCRAM-SHA-512", "pw")


def test_salted_password_gives_the_credential_a_password_gives() -> None:
    salt = b"0123456789abcdef"
    direct = make_credential("SCRAM-SHA-256", "pencil", 4096, salt)
    c = Controller([BrokerInfo(1, "a")], BrokerConfigs(dict(MSK_BROKER_DEFAULTS)), None)
    c.alter_scram_credentials(
        [], [("u", SHA256, 4096, salt, salted_password("SCRAM-SHA-256", "pencil", salt, 4096))]
    )
    assert c.scram["u"]["SCRAM-SHA-256"] == direct


def test_credentials_survive_a_restart_and_deletions_too(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    c = _controller(path)
    c.save_new_cluster()
    c.alter_scram_credentials([], [_upsert("alice", "pw"), _upsert("bob", "pw", SHA256)])
    c.alter_scram_credentials([("bob", SHA256)], [])
    again = _controller(path)
    assert set(again.scram) == {"alice"}
    assert verifies(again.scram["alice"]["SCRAM-SHA-512"], "SCRAM-SHA-512", "pw")
