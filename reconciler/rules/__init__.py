"""Pure rules, one home each: sizing (`sizing`), layout growth (`growth`, one statement of the
seed's rule that the full path and the delta path, `growth_delta`, both call), the order of
a kind's writes (`write_order`), the safety valve (`valve`), elastic scaling and node room
(`scaling`, `capacity`), rolling replacement (`rollout`), heartbeat silence (`silence`),
operators' pins (`pinning`) and the memo of the last id plan (`plan_memo`).

Every function here takes values and returns values: no clock, no I/O, no logging.

May import: `reconciler.domain`, `reconciler.policy`. No client library.
"""
