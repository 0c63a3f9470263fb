{{/*
Chart name, truncated to the 63 characters a DNS label allows.
*/}}
{{- define "ledgerflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: <release>-<chart> unless the release name already contains the chart name.
Kept to 52 characters so "<fullname>-engine-headless" and StatefulSet pod names stay valid labels.
*/}}
{{- define "ledgerflow.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ledgerflow.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "ledgerflow.labels" -}}
helm.sh/chart: {{ include "ledgerflow.chart" . }}
{{ include "ledgerflow.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ledgerflow
{{- end }}

{{- define "ledgerflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ledgerflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels and selector labels of one component; call with (dict "ctx" $ "component" "engine").
*/}}
{{- define "ledgerflow.componentLabels" -}}
{{ include "ledgerflow.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "ledgerflow.componentSelectorLabels" -}}
{{ include "ledgerflow.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Names of the resources other templates refer to.
*/}}
{{- define "ledgerflow.engine.fullname" -}}
{{- printf "%s-engine" (include "ledgerflow.fullname" .) }}
{{- end }}

{{- define "ledgerflow.engine.headlessServiceName" -}}
{{- printf "%s-engine-headless" (include "ledgerflow.fullname" .) }}
{{- end }}

{{- define "ledgerflow.worker.fullname" -}}
{{- printf "%s-worker" (include "ledgerflow.fullname" .) }}
{{- end }}

{{- define "ledgerflow.gateway.fullname" -}}
{{- printf "%s-gateway" (include "ledgerflow.fullname" .) }}
{{- end }}

{{- define "ledgerflow.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ledgerflow.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ledgerflow.apiKeysSecretName" -}}
{{- default (printf "%s-api-keys" (include "ledgerflow.fullname" .)) .Values.auth.apiKeys.existingSecret }}
{{- end }}

{{- define "ledgerflow.engineTokenSecretName" -}}
{{- default (printf "%s-engine-token" (include "ledgerflow.fullname" .)) .Values.auth.engineToken.existingSecret }}
{{- end }}

{{/*
"true" when the gateway has API keys (a Secret or chart-managed entries), else "".
*/}}
{{- define "ledgerflow.apiKeysConfigured" -}}
{{- if or .Values.auth.apiKeys.existingSecret .Values.auth.apiKeys.entries }}true{{ end }}
{{- end }}

{{/*
The engine token: its env (the file it is mounted at), the mount and the volume.
*/}}
{{- define "ledgerflow.engineTokenEnv" -}}
- name: LEDGERFLOW_ENGINE_TOKEN_FILE
  value: /etc/ledgerflow/engine-token/token
{{- if .Values.auth.insecure }}
- name: LEDGERFLOW_INSECURE
  value: "true"
{{- end }}
{{- end }}

{{- define "ledgerflow.engineTokenMount" -}}
- name: engine-token
  mountPath: /etc/ledgerflow/engine-token
  readOnly: true
{{- end }}

{{- define "ledgerflow.engineTokenVolume" -}}
- name: engine-token
  secret:
    secretName: {{ include "ledgerflow.engineTokenSecretName" . }}
    defaultMode: 0440
    items:
      - key: {{ .Values.auth.engineToken.secretKey }}
        path: token
{{- end }}

{{/*
The payload codec's key file (auth.codec): its env, the mount and the volume; nothing when unset.
*/}}
{{- define "ledgerflow.codecEnv" -}}
{{- if .Values.auth.codec.existingSecret }}
- name: LEDGERFLOW_CODEC_KEYS_FILE
  value: /etc/ledgerflow/codec/keys.json
{{- end }}
{{- end }}

{{- define "ledgerflow.codecMount" -}}
{{- if .Values.auth.codec.existingSecret }}
- name: codec-keys
  mountPath: /etc/ledgerflow/codec
  readOnly: true
{{- end }}
{{- end }}

{{- define "ledgerflow.codecVolume" -}}
{{- if .Values.auth.codec.existingSecret }}
- name: codec-keys
  secret:
    secretName: {{ .Values.auth.codec.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ .Values.auth.codec.secretKey }}
        path: keys.json
{{- end }}
{{- end }}

{{/*
The container image reference: repository@digest, else repository:tag (tag defaults to appVersion).
*/}}
{{- define "ledgerflow.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}
{{- end }}

{{/*
Environment every Ledgerflow process reads: where Kafka is and how the topics are laid out.
*/}}
{{- define "ledgerflow.kafkaEnv" -}}
- name: LEDGERFLOW_BOOTSTRAP
  value: {{ required "kafka.bootstrap is required" .Values.kafka.bootstrap | quote }}
- name: LEDGERFLOW_PREFIX
  value: {{ .Values.kafka.prefix | quote }}
- name: LEDGERFLOW_PARTITIONS
  value: {{ .Values.kafka.partitions | int | toString | quote }}
- name: LEDGERFLOW_REPLICATION_FACTOR
  value: {{ .Values.kafka.replicationFactor | int | toString | quote }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Pod-level settings shared by the three workloads; call with (dict "ctx" $ "component" .Values.engine).
*/}}
{{- define "ledgerflow.podSpecCommon" -}}
serviceAccountName: {{ include "ledgerflow.serviceAccountName" .ctx }}
automountServiceAccountToken: {{ .ctx.Values.serviceAccount.automountServiceAccountToken }}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .ctx.Values.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .component.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .component.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .component.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .component.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Kafka client settings of one component (TLS, SASL): the Secret named by
kafka.clientSecrets.<component> (client.properties and any files it names), mounted at
/etc/ledgerflow/kafka and named by LEDGERFLOW_KAFKA_CONFIG. Nothing when unset.
Call with (dict "root" $ "component" "engine").
*/}}
{{- define "ledgerflow.kafkaClientEnv" -}}
{{- if index .root.Values.kafka.clientSecrets .component }}
- name: LEDGERFLOW_KAFKA_CONFIG
  value: /etc/ledgerflow/kafka/client.properties
{{- end }}
{{- end }}

{{- define "ledgerflow.kafkaClientMount" -}}
{{- if index .root.Values.kafka.clientSecrets .component }}
- name: kafka-client
  mountPath: /etc/ledgerflow/kafka
  readOnly: true
{{- end }}
{{- end }}

{{- define "ledgerflow.kafkaClientVolume" -}}
{{- with index .root.Values.kafka.clientSecrets .component }}
- name: kafka-client
  secret:
    secretName: {{ . }}
    defaultMode: 0440
{{- end }}
{{- end }}
