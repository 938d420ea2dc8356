"""What a contender's lock node under `<root>/_leader` says (reconciler.adapters.zookeeper.
election): a JSON candidacy with the daemon's REST address, or a bare identity as older daemons
wrote it, both read back as the identity."""

from __future__ import annotations

import pytest

from reconciler.adapters.zookeeper.election import Candidacy, parse_candidacy


def test_a_candidacy_with_an_address_round_trips_through_its_json() -> None:
    mine = Candidacy("host-a-907", "http://10.1.2.3:8080")
    data = mine.encode().encode()
    assert data == b'{"identity":"host-a-907","api":"http://10.1.2.3:8080"}'
    assert parse_candidacy(data) == mine


def test_without_an_address_the_node_holds_the_bare_identity_as_before() -> None:
    assert Candidacy("host-a-907").encode() == "host-a-907"
    assert parse_candidacy(b"host-a-907") == Candidacy("host-a-907", None)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", None),
        (b"{not json", Candidacy("{not json")),  # an identity that merely starts with a brace
        (b'{"api":"http://10.0.0.1:8080"}', Candidacy('{"api":"http://10.0.0.1:8080"}')),
        (b'["a","b"]', Candidacy('["a","b"]')),
        (b'{"identity":"b","api":null}', Candidacy("b")),
        (b'{"identity":"b"}', Candidacy("b")),
        (
            b'{"identity":"b","api":"https://[fd00::1]:8443"}',
            Candidacy("b", "https://[fd00::1]:8443"),
        ),
        # Never forwarded to: not http(s), a path, or credentials in the URL.
        (b'{"identity":"b","api":"file:///etc/passwd"}', Candidacy("b")),
        (b'{"identity":"b","api":"http://10.0.0.1:8080/x"}', Candidacy("b")),
        (b'{"identity":"b","api":"http://u:p@10.0.0.1"}', Candidacy("b")),
        (b'{"identity":"b","api":8080}', Candidacy("b")),
        ("h\u00f6st".encode(), Candidacy("h\u00f6st")),
    ],
)
def test_every_lock_node_reads_as_an_identity_and_only_a_valid_url_as_an_address(
    data: bytes, expected: Candidacy | None
) -> None:
    assert parse_candidacy(data) == expected
