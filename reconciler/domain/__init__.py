"""The domain: the values every stage speaks in, and nothing else.

Resource ids and their sets (`ids`, built on `sorted_runs`; a layout's ids at once in
`id_groups`), the observed world, intents, operations and outcomes (`model`), the two event
streams' message formats (`events`), pod labels and templates as values (`podspec`),
operators' pins (`pins`), the room a namespace's ResourceQuotas leave (`quota`), the error
vocabulary (`errors`), and two small mechanisms every layer may use: capped backoff
(`backoff`) and slow-start batches (`slowstart`).

May import: the standard library only. Nothing of ours, no client library.
"""
