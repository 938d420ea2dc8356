"""The domain: the values every stage speaks in, and nothing else.

Resource ids and their sets (`ids`, built on `sorted_runs`; a layout's ids at once in
`id_groups`), the observed world, intents, operations and outcomes (`model`), the two event
streams' message formats (`events`), pod labels and templates as values (`podspec`),
operators' pins (`pins`), the room a namespace's ResourceQuotas leave (`quota`), the error
vocabulary (`errors`), and three small mechanisms every layer may use: capped backoff
(`backoff`), slow-start batches (`slowstart`) and the time a pass leaves its next call
(`call_limit`).

May import: the standard library only. Nothing of ours, no client library.
"""
