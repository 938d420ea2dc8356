"""An instance's `resources` node is written byte for byte as the JSON encoder (and the old
orchestrator's JSON.stringify) would write it, whatever its ids hold."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.adapters.zookeeper.layout import dumps, encode_instance
from reconciler.domain.ids import SortedIds
from reconciler.domain.model import Instance

# Ids with the characters JSON escapes (quote, backslash, control characters), non-ASCII
# text and plain ones; no lone surrogates (not UTF-8, not an id).
IDS = st.lists(st.text(st.characters(blacklist_categories=["Cs"]), max_size=6), max_size=12)


def _resources(ids: list[str]) -> bytes:
    data = encode_instance(Instance(0, SortedIds(ids), 10, 0))[1]["resources"]
    assert data is not None
    return data


@settings(max_examples=300, deadline=None)
@given(ids=IDS)
def test_resources_are_what_the_json_encoder_writes(ids: list[str]) -> None:
    assert _resources(ids) == dumps({"ids": sorted(set(ids))})


def test_uuids_and_an_empty_instance_are_written_as_the_encoder_writes_them() -> None:
    ids = [str(uuid.uuid4()) for _ in range(500)]
    assert _resources(ids) == dumps({"ids": sorted(ids)})
    assert _resources([]) == b'{"ids":[]}'


def test_an_id_with_a_quote_or_a_backslash_is_escaped() -> None:
    assert _resources(['a"b', "c\\d", "e\nf"]) == b'{"ids":["a\\"b","c\\\\d","e\\nf"]}'
