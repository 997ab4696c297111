{{/* Names and labels shared by every template of the chart. */}}

{{/* The chart's name, or nameOverride; 63 characters at most, as Kubernetes names allow. */}}
{{- define "tiers.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: fullnameOverride, or "<release>-<chart>" unless the release already says it. */}}
{{- define "tiers.fullname" -}}
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

{{/* Labels of every object of the release. */}}
{{- define "tiers.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "tiers.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the operator's pods; never change them, a Deployment's selector is immutable. */}}
{{- define "tiers.operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tiers.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels of the operator's objects. */}}
{{- define "tiers.operator.labels" -}}
{{ include "tiers.labels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "tiers.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tiers.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The operator's ServiceAccount's annotations: serviceAccount.annotations, and Azure Workload
Identity's client and tenant ids when azure.workloadIdentity names them (they win).
*/}}
{{- define "tiers.serviceAccountAnnotations" -}}
{{- $annotations := merge (dict) (.Values.serviceAccount.annotations | default dict) }}
{{- with .Values.azure.workloadIdentity }}
{{- if .clientId }}{{ $_ := set $annotations "azure.workload.identity/client-id" .clientId }}{{ end }}
{{- if .tenantId }}{{ $_ := set $annotations "azure.workload.identity/tenant-id" .tenantId }}{{ end }}
{{- end }}
{{- toYaml $annotations }}
{{- end }}

{{/* The operator's image reference; the tag defaults to the chart's appVersion. */}}
{{- define "tiers.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
What the operator does in a namespace it watches: exactly the verbs it calls (test_rbac.py
compares them with the requests it makes against a real apiserver). The ClusterRole grants them
in every namespace; with watchNamespaces, a Role grants them in each listed namespace only.
*/}}
{{- define "tiers.operator.namespacedRules" -}}
# The three kinds: kopf lists and watches them and patches their metadata (finalizers, its
# annotations); the RealtimeEndpoint a StreamPipeline's or BatchJob's endpointRef names is read,
# and each kind is read by name when a child's name is held by the child of a deleted object of
# that kind and name (deleted and created again at once: kube.conflict).
- apiGroups: ["tiers.dev"]
  resources: ["realtimeendpoints"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["tiers.dev"]
  resources: ["streampipelines"]
  verbs: ["get", "list", "watch", "patch"]
# BatchJobs as well, and get and create: the Role of a gateway with the Batch API grants them
# (with list and patch), and Kubernetes lets the operator grant only what it holds itself.
- apiGroups: ["tiers.dev"]
  resources: ["batchjobs"]
  verbs: ["get", "list", "watch", "create", "patch"]
# Their status: observedGeneration, conditions, latency and cost.
- apiGroups: ["tiers.dev"]
  resources: ["realtimeendpoints/status", "streampipelines/status", "batchjobs/status"]
  verbs: ["patch"]
# Events about the objects it handles.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
# What the kinds become, server-side applied (an apply that creates needs create as well as
# patch), each read once to tell its own from another's, and watched (list, watch) where the
# operator puts back what drifts: ConfigMaps and a StreamPipeline's checkpoint claim, never
# deleted (garbage collection does, with their owner),
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "create", "patch"]
# ... Services and Deployments (gateway, Redis, stream job, push gateway; their status is read),
# a managed Redis's deleted when the spec no longer wants it,
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# ... with the Spark Operator, the stream job's SparkApplication (its status is read; garbage
# collection deletes it with its owner), and a BatchJob's runs (spark.mode: spark-operator),
# listed and stopped like its Jobs,
- apiGroups: ["sparkoperator.k8s.io"]
  resources: ["sparkapplications"]
  verbs: ["get", "list", "create", "patch", "delete"]
# ... a BatchJob's runs: a Job each, created, listed and watched (a finished run is seen at
# once) and stopped (deleted with its pod), and read when its name is taken, to tell its own
# run from someone else's Job (ChildConflict),
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "delete"]
# ... the NetworkPolicies of a managed Redis and a push gateway (deleted when turned off), and
# the Ingress or Gateway API HTTPRoute of spec.expose (deleted when it goes or switches kind)
# and, for an HTTPRoute to a gateway with tls, its BackendTLSPolicy (v1 or v1alpha3),
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes", "backendtlspolicies"]
  verbs: ["get", "create", "patch", "delete"]
# ... the cert-manager Certificate of a gateway's tls.issuerRef,
- apiGroups: ["cert-manager.io"]
  resources: ["certificates"]
  verbs: ["get", "create", "patch", "delete"]
# ... the gateway's PodDisruptionBudget,
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch"]
# ... and its optional HorizontalPodAutoscaler.
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# ... and, with the Batch API, the gateway's ServiceAccount, Role and RoleBinding (deleted when
# it is turned off).
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get", "create", "patch", "delete"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["get", "create", "patch", "delete"]
# Secrets named by secretRefs (API keys, backend credentials, a webhook's signing key) are read
# one by one, never listed or watched; the ones the operator generates (a managed Redis's
# password, a pipeline's key for its endpoint) are created once and never updated, but for a
# self-signed serving certificate, renewed by a patch; an endpoint's
# Secret of its callers' key digests is server-side applied (create, patch). None is deleted:
# garbage collection removes them with their owner.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create", "patch"]
{{- end }}

{{/* Labels that select the console's pods; never change them, a Deployment's selector is immutable. */}}
{{- define "tiers.console.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tiers.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: console
{{- end }}

{{/* Labels of the console's objects. */}}
{{- define "tiers.console.labels" -}}
{{ include "tiers.labels" . }}
app.kubernetes.io/component: console
{{- end }}

{{/* The console's objects' name. */}}
{{- define "tiers.console.fullname" -}}
{{- printf "%s-console" (include "tiers.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The ServiceAccount the console runs as. */}}
{{- define "tiers.console.serviceAccountName" -}}
{{- if .Values.console.serviceAccount.create }}
{{- default (include "tiers.console.fullname" .) .Values.console.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.console.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
What the console's own ServiceAccount may do: read the three kinds (its watch keeps each
resource's latency, throughput and cost series from their status). Everything a user does is
sent with the user's own token, so this is all it needs; with allowAnonymousRead it also shows
Events to users without a token. The CA a TLS gateway is verified with comes from its
resource's status (status.address.CACerts, status.push.CACerts), never from a ConfigMap.
Cluster-wide like the operator (a ClusterRole), or a Role in each of watchNamespaces.
*/}}
{{- define "tiers.console.rules" -}}
- apiGroups: ["tiers.dev"]
  resources: ["realtimeendpoints", "streampipelines", "batchjobs"]
  verbs: ["get", "list", "watch"]
{{- if .Values.console.allowAnonymousRead }}
- apiGroups: [""]
  resources: ["events"]
  verbs: ["list"]
{{- end }}
{{- end }}
