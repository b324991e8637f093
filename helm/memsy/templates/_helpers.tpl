{{/*
Names, labels and the addresses the services reach each other at.
*/}}

{{- define "memsy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "memsy.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The name of one component's objects: (dict "root" $ "component" "gateway") */}}
{{- define "memsy.componentName" -}}
{{- printf "%s-%s" (include "memsy.fullname" .root | trunc 50 | trimSuffix "-") .component }}
{{- end }}

{{- define "memsy.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "memsy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "memsy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "memsy.labels" -}}
helm.sh/chart: {{ include "memsy.chart" . }}
{{ include "memsy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: memsy
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* (dict "root" $ "component" "gateway") */}}
{{- define "memsy.componentSelectorLabels" -}}
{{ include "memsy.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "memsy.componentLabels" -}}
{{ include "memsy.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "memsy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "memsy.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "memsy.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* host:port for a listener, bracketing an IPv6 host. (dict "root" $ "port" 8080) */}}
{{- define "memsy.listenAddr" -}}
{{- $host := .root.Values.listenHost }}
{{- if contains ":" $host }}
{{- printf "[%s]:%d" $host (int .port) }}
{{- else }}
{{- printf "%s:%d" $host (int .port) }}
{{- end }}
{{- end }}

{{/*
The full name a subchart gives its objects, by the convention the NATS,
Bitnami and Qdrant charts share. (dict "root" $ "name" "nats")
*/}}
{{- define "memsy.subchartFullname" -}}
{{- $values := index .root.Values .name }}
{{- if $values.fullnameOverride }}
{{- $values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .name $values.nameOverride }}
{{- if contains $name .root.Release.Name }}
{{- .root.Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .root.Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "memsy.natsUrl" -}}
{{- if .Values.nats.enabled }}
{{- printf "nats://%s:4222" (include "memsy.subchartFullname" (dict "root" . "name" "nats")) }}
{{- else }}
{{- .Values.externalNats.url }}
{{- end }}
{{- end }}

{{/* host:port of the NATS monitoring endpoint, for the KEDA scalers. */}}
{{- define "memsy.natsMonitoringEndpoint" -}}
{{- if .Values.nats.enabled }}
{{- printf "%s.%s.svc:8222" (include "memsy.subchartFullname" (dict "root" . "name" "nats")) .Release.Namespace }}
{{- else }}
{{- .Values.externalNats.monitoringEndpoint }}
{{- end }}
{{- end }}

{{- define "memsy.redisHost" -}}
{{- printf "%s-master:6379" (include "memsy.subchartFullname" (dict "root" . "name" "redis")) }}
{{- end }}

{{- define "memsy.qdrantUrl" -}}
{{- if .Values.qdrant.enabled }}
{{- printf "http://%s:6334" (include "memsy.subchartFullname" (dict "root" . "name" "qdrant")) }}
{{- else }}
{{- .Values.externalQdrant.url }}
{{- end }}
{{- end }}

{{/* The URL gRPC clients use for status or embedder. (dict "root" $ "component" "status") */}}
{{- define "memsy.grpcUrl" -}}
{{- $c := index .root.Values .component }}
{{- if $c.grpc.url }}
{{- $c.grpc.url }}
{{- else }}
{{- $svc := include "memsy.componentName" . }}
{{- if eq $c.grpc.clientService "headless" }}
{{- $svc = printf "%s-headless" $svc }}
{{- end }}
{{- printf "http://%s:%d" $svc (int $c.ports.grpc) }}
{{- end }}
{{- end }}

{{- define "memsy.configName" -}}
{{- printf "%s-config" (include "memsy.fullname" .) }}
{{- end }}

{{/* The Secret with the provider and Qdrant keys: the user's or the chart's (if it has any key). */}}
{{- define "memsy.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else if or .Values.secrets.llmApiKey .Values.secrets.embedderApiKey .Values.secrets.qdrantApiKey }}
{{- printf "%s-secrets" (include "memsy.fullname" .) }}
{{- end }}
{{- end }}

{{- define "memsy.bootstrapSecretName" -}}
{{- default (printf "%s-admin-key" (include "memsy.fullname" .)) .Values.bootstrap.secretName }}
{{- end }}

{{/*
The environment entries below are built as lists of maps and printed with
toYaml once (memsy.env), so that optional entries leave no gaps. Each
helper prints a JSON list.
*/}}

{{/*
A provider or Qdrant key, when there is one to read:
(dict "root" $ "env" "QDRANT_API_KEY" "field" "qdrantApiKey")
*/}}
{{- define "memsy.env.secret" -}}
{{- $s := .root.Values.secrets }}
{{- $out := list }}
{{- if or $s.existingSecret (index $s .field) }}
{{- $ref := dict "name" (include "memsy.secretName" .root) "key" (index $s.keys .field) }}
{{- if $s.existingSecret }}
{{- $_ := set $ref "optional" true }}
{{- end }}
{{- $out = append $out (dict "name" .env "valueFrom" (dict "secretKeyRef" $ref)) }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{- define "memsy.env.nats" -}}
{{- if and (not .Values.nats.enabled) .Values.externalNats.existingSecret }}
{{- list (dict "name" "MEMSY__NATS__URL" "valueFrom" (dict "secretKeyRef" (dict "name" .Values.externalNats.existingSecret "key" .Values.externalNats.existingSecretKey))) | toJson }}
{{- else }}
{{- list (dict "name" "MEMSY__NATS__URL" "value" (include "memsy.natsUrl" .)) | toJson }}
{{- end }}
{{- end }}

{{/*
OpenTelemetry: the OTEL_ variables memsy reads, when tracing.endpoint is set.
The pod, namespace and node come from the downward API so that each span
names the pod that made it.
*/}}
{{- define "memsy.env.tracing" -}}
{{- $t := .root.Values.tracing }}
{{- if $t.endpoint }}
{{- $attrs := list "k8s.pod.name=$(MEMSY_POD_NAME)" "k8s.namespace.name=$(MEMSY_POD_NAMESPACE)" "k8s.node.name=$(MEMSY_NODE_NAME)" "service.instance.id=$(MEMSY_POD_NAME)" (printf "service.version=%s" .root.Chart.AppVersion) }}
{{- range $k, $v := $t.resourceAttributes }}
{{- $attrs = append $attrs (printf "%s=%s" $k $v) }}
{{- end }}
{{- $env := list
  (dict "name" "MEMSY_POD_NAME" "valueFrom" (dict "fieldRef" (dict "fieldPath" "metadata.name")))
  (dict "name" "MEMSY_POD_NAMESPACE" "valueFrom" (dict "fieldRef" (dict "fieldPath" "metadata.namespace")))
  (dict "name" "MEMSY_NODE_NAME" "valueFrom" (dict "fieldRef" (dict "fieldPath" "spec.nodeName")))
  (dict "name" "OTEL_EXPORTER_OTLP_ENDPOINT" "value" $t.endpoint)
  (dict "name" "OTEL_EXPORTER_OTLP_PROTOCOL" "value" $t.protocol)
  (dict "name" "OTEL_SERVICE_NAME" "value" (printf "memsy-%s" .component))
  (dict "name" "OTEL_TRACES_SAMPLER" "value" $t.sampler)
  (dict "name" "OTEL_TRACES_SAMPLER_ARG" "value" (toString $t.samplerArg))
  (dict "name" "OTEL_RESOURCE_ATTRIBUTES" "value" (join "," $attrs)) }}
{{- if $t.headersSecret.name }}
{{- $env = append $env (dict "name" "OTEL_EXPORTER_OTLP_HEADERS" "valueFrom" (dict "secretKeyRef" (dict "name" $t.headersSecret.name "key" $t.headersSecret.key))) }}
{{- end }}
{{- toJson $env }}
{{- else }}
{{- list | toJson }}
{{- end }}
{{- end }}

{{- define "memsy.env.redis" -}}
{{- if .Values.redis.enabled }}
{{- if .Values.redis.auth.enabled }}
{{- $ref := dict "name" (default (include "memsy.subchartFullname" (dict "root" . "name" "redis")) .Values.redis.auth.existingSecret) "key" (default "redis-password" .Values.redis.auth.existingSecretPasswordKey) }}
{{- list (dict "name" "MEMSY_REDIS_PASSWORD" "valueFrom" (dict "secretKeyRef" $ref)) (dict "name" "MEMSY__REDIS__URL" "value" (printf "redis://:$(MEMSY_REDIS_PASSWORD)@%s" (include "memsy.redisHost" .))) | toJson }}
{{- else }}
{{- list (dict "name" "MEMSY__REDIS__URL" "value" (printf "redis://%s" (include "memsy.redisHost" .))) | toJson }}
{{- end }}
{{- else if .Values.externalRedis.existingSecret }}
{{- list (dict "name" "MEMSY__REDIS__URL" "valueFrom" (dict "secretKeyRef" (dict "name" .Values.externalRedis.existingSecret "key" .Values.externalRedis.existingSecretKey))) | toJson }}
{{- else }}
{{- list (dict "name" "MEMSY__REDIS__URL" "value" .Values.externalRedis.url) | toJson }}
{{- end }}
{{- end }}

{{- define "memsy.env.qdrant" -}}
{{- $url := dict "name" "QDRANT_URL" "value" (include "memsy.qdrantUrl" .) }}
{{- prepend (include "memsy.env.secret" (dict "root" . "env" "QDRANT_API_KEY" "field" "qdrantApiKey") | fromJsonArray) $url | toJson }}
{{- end }}

{{- define "memsy.env.statusClient" -}}
{{- list (dict "name" "MEMSY__STATUS__URL" "value" (include "memsy.grpcUrl" (dict "root" . "component" "status"))) | toJson }}
{{- end }}

{{/*
The environment of one component's container: its logging, where NATS,
Redis, Qdrant and the other services are, its secrets, then the user's
extraEnv. (dict "root" $ "component" "gateway")
*/}}
{{- define "memsy.env" -}}
{{- $root := .root }}
{{- $c := index $root.Values .component }}
{{- $env := list (dict "name" "MEMSY_LOG_FORMAT" "value" $root.Values.log.format) (dict "name" "RUST_LOG" "value" $root.Values.log.level) }}
{{- $parts := list (include "memsy.env.nats" $root) (include "memsy.env.tracing" .) }}
{{- if eq .component "gateway" }}
{{- $parts = concat $parts (list (include "memsy.env.redis" $root) (include "memsy.env.qdrant" $root) (include "memsy.env.statusClient" $root)) }}
{{- $parts = append $parts (list (dict "name" "MEMSY__EMBEDDER__URL" "value" (include "memsy.grpcUrl" (dict "root" $root "component" "embedder"))) | toJson) }}
{{- $parts = append $parts (include "memsy.env.secret" (dict "root" $root "env" "MEMSY__LLM__API_KEY" "field" "llmApiKey")) }}
{{- else if eq .component "extractor" }}
{{- $parts = concat $parts (list (include "memsy.env.redis" $root) (include "memsy.env.statusClient" $root)) }}
{{- $parts = append $parts (include "memsy.env.secret" (dict "root" $root "env" "MEMSY__LLM__API_KEY" "field" "llmApiKey")) }}
{{- else if eq .component "embedder" }}
{{- $parts = append $parts (include "memsy.env.statusClient" $root) }}
{{- $own := list (dict "name" "MEMSY__EMBEDDER__GRPC_ADDR" "value" (include "memsy.listenAddr" (dict "root" $root "port" $c.ports.grpc))) }}
{{- with $c.modelDir }}
{{- $own = append $own (dict "name" "MEMSY__EMBEDDER__MODEL_DIR" "value" .) }}
{{- end }}
{{- with $c.onnxRuntimePath }}
{{- $own = append $own (dict "name" "MEMSY__EMBEDDER__ONNXRUNTIME_PATH" "value" .) }}
{{- end }}
{{- $parts = append $parts (toJson $own) }}
{{- $parts = append $parts (include "memsy.env.secret" (dict "root" $root "env" "MEMSY__EMBEDDER__REMOTE_API_KEY" "field" "embedderApiKey")) }}
{{- else if eq .component "indexer" }}
{{- $parts = concat $parts (list (include "memsy.env.qdrant" $root) (include "memsy.env.statusClient" $root)) }}
{{- else if eq .component "status" }}
{{- $parts = append $parts (include "memsy.env.redis" $root) }}
{{- $parts = append $parts (list (dict "name" "MEMSY__STATUS__GRPC_ADDR" "value" (include "memsy.listenAddr" (dict "root" $root "port" $c.ports.grpc))) | toJson) }}
{{- end }}
{{- range $parts }}
{{- $env = concat $env (fromJsonArray .) }}
{{- end }}
{{- toYaml (concat $env $c.extraEnv) }}
{{- end }}

{{/* True (non-empty) when something other than the Deployment sets a component's replicas. */}}
{{- define "memsy.autoscaled" -}}
{{- $c := index .root.Values .component }}
{{- if and (hasKey $c "autoscaling") $c.autoscaling.enabled }}true{{ end }}
{{- end }}

{{/* The indexer's partition count: the config's, else memsy's default. */}}
{{- define "memsy.indexerPartitions" -}}
{{- $nats := default (dict) .Values.config.nats }}
{{- int (default 16 $nats.indexer_partitions) }}
{{- end }}

{{/*
memsy.toml from the `config` block. Helm holds every number as a float, which
its toToml prints as 5.0 (refused where memsy expects an integer); JSON
prints 5 and 0.93, both valid TOML, so scalars go through toJson.
*/}}
{{- define "memsy.toml.key" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . }}{{ . }}{{ else }}{{ toJson . }}{{ end }}
{{- end }}

{{- define "memsy.toml.table" -}}
{{- $path := .path }}
{{- range $k, $v := .map }}
{{- if not (kindIs "map" $v) }}
{{ include "memsy.toml.key" $k }} = {{ toJson $v }}
{{- end }}
{{- end }}
{{- range $k, $v := .map }}
{{- if kindIs "map" $v }}
{{- $p := append $path (include "memsy.toml.key" $k) }}

[{{ join "." $p }}]
{{- include "memsy.toml.table" (dict "path" $p "map" $v) }}
{{- end }}
{{- end }}
{{- end }}

{{- define "memsy.toml" -}}
# memsy.toml, rendered from the chart's `config` value.
{{- include "memsy.toml.table" (dict "path" (list) "map" .Values.config) }}
{{ end }}

{{/* Combinations the schema cannot express, refused with what to change. */}}
{{- define "memsy.checks" -}}
{{- range $component := list "gateway" "extractor" "embedder" "indexer" }}
{{- $a := (index $.Values $component).autoscaling }}
{{- if and $a.enabled (gt (int $a.minReplicas) (int $a.maxReplicas)) }}
{{- fail (printf "%s.autoscaling: minReplicas (%d) exceeds maxReplicas (%d)" $component (int $a.minReplicas) (int $a.maxReplicas)) }}
{{- end }}
{{- end }}
{{- range $component := list "embedder" "status" }}
{{- $g := (index $.Values $component).grpc }}
{{- if and (eq $g.clientService "headless") (not $g.headless) (not $g.url) }}
{{- fail (printf "%s.grpc.clientService is headless but %s.grpc.headless is false: no such Service would exist" $component $component) }}
{{- end }}
{{- end }}
{{- $partitions := int (include "memsy.indexerPartitions" .) }}
{{- $i := .Values.indexer }}
{{- $most := ternary (int $i.autoscaling.maxReplicas) (int $i.replicas) $i.autoscaling.enabled }}
{{- if gt $most $partitions }}
{{- fail (printf "indexer: %d replicas asked for but only %d partitions (config.nats.indexer_partitions) can be worked at once" $most $partitions) }}
{{- end }}
{{- end }}
