"""What operators declare: the policy.yaml schema (`schema`), its problems named with field
and line (`problems`), YAML with limits (`safe_yaml`) and the pod templates it points at
(`templates`).

May import: `reconciler.domain`, `reconciler.telemetry`, pydantic and PyYAML. No client
library, no stage.
"""
