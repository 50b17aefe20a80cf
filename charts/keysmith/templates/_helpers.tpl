{{- define "keysmith.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "keysmith.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "keysmith.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "keysmith.labels" -}}
app.kubernetes.io/name: {{ include "keysmith.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "keysmith.selectorLabels" -}}
app.kubernetes.io/name: {{ include "keysmith.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "keysmith.serviceAccountName" -}}
{{- default (include "keysmith.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- /* The metrics Service; room is left for the suffix within the 63 characters of a Service name. */ -}}
{{- define "keysmith.metricsServiceName" -}}
{{- printf "%s-metrics" (include "keysmith.fullname" . | trunc 55 | trimSuffix "-") -}}
{{- end -}}

{{- /* The leader-election Lease, in the release namespace. */ -}}
{{- define "keysmith.leaseName" -}}
{{- include "keysmith.fullname" . -}}
{{- end -}}

{{- define "keysmith.leaderElectionRoleName" -}}
{{- printf "%s-leader-election" (include "keysmith.fullname" . | trunc 47 | trimSuffix "-") -}}
{{- end -}}

{{- /*
Combinations of values the schema cannot express. Included by the Deployment, so every render checks them.
*/ -}}
{{- define "keysmith.validate" -}}
{{- $le := .Values.leaderElection.enabled -}}
{{- if and (gt (int .Values.replicaCount) 1) (not $le) -}}
{{- fail (printf "replicaCount=%d needs leaderElection.enabled=true: without leader election every replica would reconcile the same objects at once. Set replicaCount=1 or enable leader election." (int .Values.replicaCount)) -}}
{{- end -}}
{{- if and (eq .Values.updateStrategy.type "RollingUpdate") (not $le) -}}
{{- fail "updateStrategy.type=RollingUpdate needs leaderElection.enabled=true: a rolling update runs the old and the new operator at once. Use Recreate or enable leader election." -}}
{{- end -}}
{{- if and .Values.updateStrategy.rollingUpdate (ne .Values.updateStrategy.type "RollingUpdate") -}}
{{- fail "updateStrategy.rollingUpdate is set but updateStrategy.type is not RollingUpdate." -}}
{{- end -}}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.service.enabled) -}}
{{- fail "metrics.serviceMonitor.enabled=true needs metrics.service.enabled=true: the ServiceMonitor selects that Service." -}}
{{- end -}}
{{- end -}}

{{- /* The rules the operator needs in every namespace it watches; rbac.yaml and the chart README explain each. */ -}}
{{- define "keysmith.clusterRules" -}}
# ClusterModelHubs: read them, patch to add and remove keysmith's finalizer, write their status.
- apiGroups: ["keysmith.dev"]
  resources: ["clustermodelhubs"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["keysmith.dev"]
  resources: ["clustermodelhubs/status"]
  verbs: ["patch"]
# Namespaces (metadata): which ones a ClusterModelHub's allowedNamespaces selector lets in.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
{{- end -}}

{{- define "keysmith.rules" -}}
# Watch and read the keysmith resources. patch on apikeys adds and removes keysmith's finalizer (a JSON
# patch of metadata.finalizers); RBAC cannot limit a patch to metadata, so it could write spec too.
- apiGroups: ["keysmith.dev"]
  resources: ["apikeys"]
  verbs: ["get", "list", "watch", "patch"]
# patch on modelhubs adds and removes keysmith's finalizer: a hub stays while ApiKeys use it.
- apiGroups: ["keysmith.dev"]
  resources: ["modelhubs"]
  verbs: ["get", "list", "watch", "patch"]
# Status is written with server-side apply (a patch) and only there.
- apiGroups: ["keysmith.dev"]
  resources: ["apikeys/status", "modelhubs/status"]
  verbs: ["patch"]
# The Secrets keysmith writes name their ApiKey as controlling owner with blockOwnerDeletion, which the
# OwnerReferencesPermissionEnforcement admission plugin allows only with update on the owner's finalizers.
- apiGroups: ["keysmith.dev"]
  resources: ["apikeys/finalizers"]
  verbs: ["update"]
# Secrets: get the management-key and import Secrets; list and watch (keysmith asks only for the Secrets
# carrying its labels, but RBAC cannot filter by label); create and patch the owned ones with server-side
# apply, and patch a hub's credential Secret to hold keysmith's finalizer while a hub uses it; delete only
# the Secret an ApiKey's key moved out of when spec.secret.name changed (an owned one, by uid precondition).
# No update; an owned Secret is otherwise garbage-collected with its ApiKey.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Events on condition changes (events.k8s.io/v1; patch updates the series of a repeated Event).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.restartTargets.enabled }}
# Opt-in: spec.rotation.restartTargets rolls workloads after a rotation by patching one pod-template
# annotation. patch on a workload could change its whole pod template, so it is off unless asked for.
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets", "daemonsets"]
  verbs: ["patch"]
{{- end }}
{{- end -}}
