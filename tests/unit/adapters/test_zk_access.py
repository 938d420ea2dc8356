"""ZooKeeper access from the settings (issue 13, SECURITY.md "ZooKeeper"): the digest login,
the ACL of each node of the layout, TLS options for kazoo, the settings' checks, and the
leader's once-per-term ACL alignment. No server: tests/integration/adapters/test_zk_acl.py runs them
against the rig's ZooKeeper."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from kazoo.security import ACL, OPEN_ACL_UNSAFE, Id, Permissions, make_digest_acl_credential
from pydantic import ValidationError

from reconciler.adapters.zookeeper import acl_align as zk_acl_align
from reconciler.adapters.zookeeper.access import ZkAccess, same_acl
from reconciler.adapters.zookeeper.acl_align import AclKeeper, AclReport
from reconciler.adapters.zookeeper.session import ZkSession
from reconciler.cli.preflight import describe
from reconciler.config.settings import Settings
from reconciler.domain.errors import SourceUnavailable
from reconciler.wiring import zk_access
from tests.support.polling import eventually

PW = "Zk-kn0wn-pa55"
WORKER = make_digest_acl_credential("worker", "w-pass")  # "worker:<base64 sha1>"
OWNER = ACL(Permissions.ALL, Id("digest", make_digest_acl_credential("reconciler", PW)))


def settings(**kw: object) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[arg-type]


def test_nothing_set_is_the_old_open_plain_session() -> None:
    access = zk_access(settings())
    assert not access.secured and not access.tls
    assert access.client_options() == {}
    assert access.acl() == OPEN_ACL_UNSAFE
    assert access.acl_for(("Thing", "0", "tmp")) == OPEN_ACL_UNSAFE


def test_a_login_owns_every_node_and_anyone_reads() -> None:
    access = zk_access(settings(zk_username="reconciler", zk_password=PW))
    world_read = ACL(Permissions.READ, Id("world", "anyone"))
    assert same_acl(access.acl(), [OWNER, world_read])
    options = access.client_options()
    assert options["auth_data"] == [("digest", f"reconciler:{PW}")]
    assert same_acl(options["default_acl"], [OWNER, world_read])
    assert "use_ssl" not in options


def test_named_readers_replace_anyone_and_may_keep_nodes_under_tmp() -> None:
    other = make_digest_acl_credential("worker2", "x")
    access = zk_access(
        settings(
            zk_username="reconciler", zk_password=PW, zk_readers=f"digest:{WORKER}, digest:{other}"
        )
    )
    readers = [ACL(Permissions.READ, Id("digest", r)) for r in (WORKER, other)]
    assert same_acl(access.acl(), [OWNER, *readers])
    area = Permissions.READ | Permissions.CREATE | Permissions.DELETE
    workers_area = [OWNER, *(ACL(area, Id("digest", r)) for r in (WORKER, other))]
    assert same_acl(access.acl_for(("Thing", "3", "tmp")), workers_area)
    # only an instance's tmp: not the instance, not its other children, not the daemon's nodes
    for parts in [
        (),
        ("Thing",),
        ("Thing", "3"),
        ("Thing", "3", "resources"),
        ("_scale", "3", "tmp"),
        ("Thing", "03", "tmp"),
        ("Thing", "3", "tmp", "status"),
    ]:
        assert same_acl(access.acl_for(parts), [OWNER, *readers]), parts


def test_the_session_creates_tmp_with_the_workers_area_acl_and_the_rest_by_default() -> None:
    access = ZkAccess("reconciler", PW, readers=(f"digest:{WORKER}",))
    session = ZkSession("127.0.0.1:1/chroot", access=access)
    try:
        assert session.node_acl("/iota/orchestration/Thing/0/tmp") == access.worker_area_acl()
        assert session.node_acl("/iota/orchestration/Thing/0/resources") == access.acl()
        assert session.node_acl("/iota") is None  # above the root: the client's default_acl
        assert session.client.default_acl == access.acl()
        assert session.client.auth_data == {("digest", f"reconciler:{PW}")}
    finally:
        session.client.close()
    open_session = ZkSession("127.0.0.1:1")
    assert open_session.node_acl("/iota/orchestration/Thing/0/tmp") is None
    open_session.client.close()


def test_tls_options_check_the_chain_and_the_host_name(tmp_path: Path) -> None:
    for name in ("ca.crt", "c.crt", "c.key"):
        (tmp_path / name).write_text("pem")
    access = zk_access(
        settings(
            zk_tls_ca_file=tmp_path / "ca.crt",
            zk_tls_cert_file=tmp_path / "c.crt",
            zk_tls_key_file=tmp_path / "c.key",
        )
    )
    access.check()
    assert access.client_options() == {
        "use_ssl": True,
        "ca": str(tmp_path / "ca.crt"),
        "verify_certs": True,
        "check_hostname": True,
        "certfile": str(tmp_path / "c.crt"),
        "keyfile": str(tmp_path / "c.key"),
    }
    loose = zk_access(settings(zk_tls_ca_file=tmp_path / "ca.crt", zk_tls_insecure_hostname=True))
    assert loose.client_options()["check_hostname"] is False
    assert "certfile" not in loose.client_options()


def test_a_missing_tls_file_fails_the_start_naming_the_setting(tmp_path: Path) -> None:
    access = zk_access(settings(zk_tls_ca_file=tmp_path / "nope.crt"))
    with pytest.raises(ValueError, match=r"RECONCILER_ZK_TLS_CA_FILE=.*nope.crt.*no such file"):
        ZkSession("127.0.0.1:1", access=access)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"zk_username": "reconciler"}, "RECONCILER_ZK_USERNAME and RECONCILER_ZK_PASSWORD go"),
        ({"zk_password": PW}, "RECONCILER_ZK_USERNAME and RECONCILER_ZK_PASSWORD go"),
        ({"zk_username": "a:b", "zk_password": PW}, "RECONCILER_ZK_USERNAME='a:b'"),
        ({"zk_username": "r", "zk_password": ""}, "RECONCILER_ZK_PASSWORD is empty"),
        ({"zk_readers": f"digest:{WORKER}"}, "RECONCILER_ZK_READERS needs RECONCILER_ZK_USERNAME"),
        (
            {"zk_username": "r", "zk_password": PW, "zk_readers": "digest:worker:short"},
            "is neither `anyone` nor a digest ACL id",
        ),
        ({"zk_username": "r", "zk_password": PW, "zk_readers": " , "}, "is empty: `anyone`"),
        ({"zk_align_acls": True}, "RECONCILER_ZK_ALIGN_ACLS needs RECONCILER_ZK_USERNAME"),
        ({"zk_tls_cert_file": "/c", "zk_tls_key_file": "/k"}, "without RECONCILER_ZK_TLS_CA_FILE"),
        (
            {"zk_tls_ca_file": "/ca", "zk_tls_cert_file": "/c"},
            "_CERT_FILE and RECONCILER_ZK_TLS_KEY",
        ),
    ],
)
def test_settings_that_cannot_work_are_refused_without_printing_the_password(
    given: dict[str, str], message: str
) -> None:
    with pytest.raises(ValidationError) as e:
        settings(**given)
    text = describe(e.value)
    assert message in text
    assert PW not in text


def test_the_password_file_counts_with_the_user_name(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(PW + "\n")
    access = zk_access(settings(zk_username="reconciler", zk_password_file=tmp_path / "pw"))
    assert access.client_options()["auth_data"] == [("digest", f"reconciler:{PW}")]
    assert PW not in repr(access)
    assert PW not in repr(settings(zk_username="r", zk_password=PW).redacted())


# -- the leader's alignment, once per term ----------------------------------------------------


class Terms:
    """A stand-in election: `leading` and `term` as a test sets them."""

    def __init__(self) -> None:
        self.leading = False
        self.term = 0


def keeper_with(
    monkeypatch: pytest.MonkeyPatch, terms: Terms, outcomes: list[object]
) -> tuple[AclKeeper, list[float]]:
    calls: list[float] = []
    lock = threading.Lock()

    def align(_session: object) -> AclReport:
        with lock:
            calls.append(time.monotonic())
            outcome = outcomes.pop(0) if outcomes else AclReport(checked=1)
        if isinstance(outcome, Exception):
            raise outcome
        assert isinstance(outcome, AclReport)
        return outcome

    monkeypatch.setattr(zk_acl_align, "align_acls", align)
    session = ZkSession("127.0.0.1:1")
    keeper = AclKeeper(session, lambda: terms.leading, lambda: terms.term, retry_base=0.05)
    return keeper, calls


def test_a_standby_never_aligns_and_a_leader_aligns_once_per_term(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    terms = Terms()
    keeper, calls = keeper_with(monkeypatch, terms, [])
    keeper.start()
    try:
        time.sleep(0.2)  # under test: a standby does nothing in that time
        assert calls == []  # standby
        terms.leading, terms.term = True, 1
        keeper.wake()
        eventually(lambda: keeper.aligned_term == 1, timeout=5, interval=0.01)
        for _ in range(3):  # connection blips within the term: nothing more
            keeper.wake()
        time.sleep(0.2)  # under test: the blips start no walk in that time
        assert len(calls) == 1
        terms.leading, terms.term = False, 2
        keeper.wake()
        terms.leading, terms.term = True, 3  # leader again: a new term, a new walk
        keeper.wake()
        eventually(lambda: keeper.aligned_term == 3, timeout=5, interval=0.01)
        assert len(calls) == 2
    finally:
        keeper.stop()


def test_an_unreachable_zookeeper_is_retried_with_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    terms = Terms()
    terms.leading = True
    down = SourceUnavailable("zookeeper down")
    keeper, calls = keeper_with(monkeypatch, terms, [down, down, AclReport(checked=4)])
    keeper.start()  # no election: it looks at start by itself
    try:
        eventually(lambda: keeper.aligned_term == 0, timeout=5, interval=0.01)
        assert len(calls) == 3
        assert calls[2] - calls[1] >= calls[1] - calls[0] >= 0.04  # 0.05 s, then 0.1 s
        assert keeper.last is not None and keeper.last.checked == 4
    finally:
        keeper.stop()
