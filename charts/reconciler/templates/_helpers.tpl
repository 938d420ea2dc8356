{{/* The release's objects' name: the release name when it already says "reconciler"
(release `reconciler` -> `reconciler`, `reconciler-observe` -> `reconciler-observe`), else
`<release>-reconciler`. */}}
{{- define "reconciler.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* What the Service, the PDB and the anti-affinity select: this release's pods only, so an
observe-only release beside the main one is never behind the main Service. */}}
{{- define "reconciler.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "reconciler.labels" -}}
{{ include "reconciler.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: iota
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "reconciler.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "reconciler.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "reconciler.policyConfigMap" -}}
{{- default (printf "%s-policy" (include "reconciler.fullname" .)) .Values.policy.existingConfigMap -}}
{{- end -}}

{{- define "reconciler.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* instanceName -> pod template text: the values' podTemplates, else the shipped files. */}}
{{- define "reconciler.podTemplates" -}}
{{- $out := dict -}}
{{- if .Values.policy.podTemplates -}}
{{- $out = .Values.policy.podTemplates -}}
{{- else -}}
{{- range $path, $_ := .Files.Glob "files/templates/*.pod-template.yml" -}}
{{- $_ := set $out (base $path | trimSuffix ".pod-template.yml") ($.Files.Get $path) -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* The instanceNames the policy volume projects. */}}
{{- define "reconciler.instanceNames" -}}
{{- if .Values.policy.existingConfigMap -}}
{{- if not .Values.policy.instanceNames -}}
{{- fail "policy.existingConfigMap needs policy.instanceNames: the pod templates it holds" -}}
{{- end -}}
{{- toYaml .Values.policy.instanceNames -}}
{{- else -}}
{{- toYaml (keys (include "reconciler.podTemplates" . | fromYaml) | sortAlpha) -}}
{{- end -}}
{{- end -}}

{{/* The Secrets the daemon reads as files, as [{secret, key, path}], path relative to the
credentials mount (/var/run/secrets/reconciler). Keys left empty are left out. */}}
{{- define "reconciler.secretFiles" -}}
{{- $v := .Values -}}
{{- $files := list -}}
{{- if $v.database.url.existingSecret -}}
{{- $files = append $files (dict "secret" $v.database.url.existingSecret "key" $v.database.url.key "path" "database-url" "env" "RECONCILER_DATABASE_URL_FILE") -}}
{{- end -}}
{{- if $v.api.token.existingSecret -}}
{{- $files = append $files (dict "secret" $v.api.token.existingSecret "key" $v.api.token.key "path" "api-token" "env" "RECONCILER_API_TOKEN_FILE") -}}
{{- end -}}
{{- if $v.zookeeper.auth.existingSecret -}}
{{- $files = append $files (dict "secret" $v.zookeeper.auth.existingSecret "key" $v.zookeeper.auth.passwordKey "path" "zk-password" "env" "RECONCILER_ZK_PASSWORD_FILE") -}}
{{- end -}}
{{- if $v.mqtt.auth.existingSecret -}}
{{- $files = append $files (dict "secret" $v.mqtt.auth.existingSecret "key" $v.mqtt.auth.passwordKey "path" "mqtt-password" "env" "RECONCILER_MQTT_PASSWORD_FILE") -}}
{{- end -}}
{{- if $v.kafka.sasl.existingSecret -}}
{{- $files = append $files (dict "secret" $v.kafka.sasl.existingSecret "key" $v.kafka.sasl.passwordKey "path" "kafka-sasl-password" "env" "RECONCILER_KAFKA_SASL_PASSWORD_FILE") -}}
{{- end -}}
{{- $tls := list
  (list $v.zookeeper.tls "zookeeper" "RECONCILER_ZK_TLS_CA_FILE" "RECONCILER_ZK_TLS_CERT_FILE" "RECONCILER_ZK_TLS_KEY_FILE")
  (list $v.mqtt.tls "mqtt" "RECONCILER_MQTT_CA_FILE" "RECONCILER_MQTT_CERT_FILE" "RECONCILER_MQTT_KEY_FILE")
  (list $v.kafka.tls "kafka" "RECONCILER_KAFKA_CA_FILE" "RECONCILER_KAFKA_CERT_FILE" "RECONCILER_KAFKA_KEY_FILE")
  (list $v.api.tls "api" "" "RECONCILER_API_TLS_CERT_FILE" "RECONCILER_API_TLS_KEY_FILE") -}}
{{- range $tls -}}
{{- $t := index . 0 -}}
{{- $dir := index . 1 -}}
{{- if $t.existingSecret -}}
{{- if and (index . 2) $t.caKey -}}
{{- $files = append $files (dict "secret" $t.existingSecret "key" $t.caKey "path" (printf "%s-tls/ca.crt" $dir) "env" (index . 2)) -}}
{{- end -}}
{{- if $t.certKey -}}
{{- $files = append $files (dict "secret" $t.existingSecret "key" $t.certKey "path" (printf "%s-tls/tls.crt" $dir) "env" (index . 3)) -}}
{{- end -}}
{{- if $t.keyKey -}}
{{- $files = append $files (dict "secret" $t.existingSecret "key" $t.keyKey "path" (printf "%s-tls/tls.key" $dir) "env" (index . 4)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toYaml (dict "files" $files) -}}
{{- end -}}

{{- define "reconciler.scheme" -}}
{{- if .Values.api.tls.existingSecret -}}https{{- else -}}http{{- end -}}
{{- end -}}
