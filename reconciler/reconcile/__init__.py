"""One pass: observe -> intend -> plan -> guard -> apply -> record.

`pipeline` runs the stages in order; `planner` turns the observed world and the policy into
operations (pure); `apply` carries them out through the ports and `reporting` tells them;
`ports` names what a pass may reach and the errors it speaks; `budget` is the pass's deadline;
`hints` checks row events against the database; `autoscale` feeds pod usage to the scaling
rule; `operations` are operators' pins as a pass sees them.

May import: `reconciler.domain`, `reconciler.telemetry`, `reconciler.policy`,
`reconciler.rules`, `reconciler.state`. Never an adapter, never a client library.
"""
