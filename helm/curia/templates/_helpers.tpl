{{/* Base name of every object: <release>-curia, or just "curia" when the release is named curia. */}}
{{- define "curia.fullname" -}}
{{- if contains "curia" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-curia" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels selecting every pod of this release. */}}
{{- define "curia.selectorLabels" -}}
app.kubernetes.io/name: curia
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "curia.labels" -}}
{{ include "curia.selectorLabels" . }}
app.kubernetes.io/part-of: curia
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Effective settings of one service: `default` deep-merged under the service entry. Call with (list $ "name"). */}}
{{- define "curia.svc" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $svc := mergeOverwrite (deepCopy $root.Values.default) (deepCopy (index $root.Values.services $name)) -}}
{{- toYaml $svc -}}
{{- end -}}

{{/* Enabled services (the keys of `services`, as the service catalogue in libs/kit names them), sorted. */}}
{{- define "curia.serviceNames" -}}
{{- $out := list -}}
{{- range $n := keys $.Values.services | sortAlpha -}}
{{- if (index $.Values.services $n).enabled -}}{{- $out = append $out $n -}}{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/*
Enabled services that call service `name`: those whose `stageTargets` has a key `name` (the chart's copy of the
`calls` of libs/kit/src/service-catalog.ts), sorted. Call with (list $ "name").
*/}}
{{- define "curia.callers" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $out := list -}}
{{- range $n := (include "curia.serviceNames" $root | fromJsonArray) -}}
{{- if hasKey (default (dict) (index $root.Values.services $n).stageTargets) $name -}}{{- $out = append $out $n -}}{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/*
Head registry (#18): the Secret and key holding the DSN. The in-cluster database's generated Secret, else
headRegistry.existingSecret (an external database). Rendering fails when the registry is on without either.
*/}}
{{- define "curia.headRegistry.secretName" -}}
{{- $hr := .Values.headRegistry -}}
{{- if $hr.inCluster.enabled -}}
{{- if $hr.existingSecret -}}
{{- fail "headRegistry: set either inCluster.enabled (the chart generates the DSN Secret) or existingSecret (an external database), not both" -}}
{{- end -}}
{{- printf "%s-head-registry-db" (include "curia.fullname" .) -}}
{{- else if $hr.existingSecret -}}
{{- $hr.existingSecret -}}
{{- else -}}
{{- fail "headRegistry.enabled needs headRegistry.existingSecret (a Secret holding the DSN of an external PostgreSQL under headRegistry.key) or headRegistry.inCluster.enabled" -}}
{{- end -}}
{{- end -}}

{{- define "curia.headRegistry.secretKey" -}}
{{- if .Values.headRegistry.inCluster.enabled -}}dsn{{- else -}}{{ .Values.headRegistry.key }}{{- end -}}
{{- end -}}

{{/* Egress of a pod that talks to the head registry database (heads, segment, the migration Job); a list item. */}}
{{- define "curia.headRegistry.egress" -}}
{{- if .Values.headRegistry.inCluster.enabled -}}
- ports: [{ port: 5432, protocol: TCP }]
  to:
    - podSelector:
        matchLabels:
          {{- include "curia.selectorLabels" . | nindent 10 }}
          app.kubernetes.io/component: head-registry-db
{{- else -}}
- ports:
    {{- range $p := .Values.networkPolicy.headRegistryDatabase.ports }}
    - { port: {{ $p }}, protocol: TCP }
    {{- end }}
  to:
    {{- toYaml .Values.networkPolicy.headRegistryDatabase.peers | nindent 4 }}
{{- end -}}
{{- end -}}

{{/* TLS (#17): the Secret holding service `name`'s tls.crt, tls.key, ca.crt. Call with (list $ "name"). */}}
{{- define "curia.tls.secretName" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- index $root.Values.tls.existingSecrets $name | default (printf "%s-%s-tls" (include "curia.fullname" $root) $name) -}}
{{- end -}}

{{/* Whether service `name` asks callers for a client certificate (CURIA_TLS_CLIENT_CA_FILE). Call with (list $ "name"). */}}
{{- define "curia.tls.requireClientCert" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- if eq $name "gateway" -}}{{- $root.Values.tls.gatewayRequireClientCert -}}{{- else -}}{{- $root.Values.tls.requireClientCert -}}{{- end -}}
{{- end -}}

{{/*
CURIA_AUTH_CERT_ROLES (#17): `identity=role[,role];...`, sorted by identity. The release's callers (services with
stageTargets, identity curia-<service>: their certificate's commonName) get auth.serviceRole, auth.adminIdentities
get admin, auth.certRoles adds more; an identity named twice gets the union of its roles.
*/}}
{{- define "curia.auth.certRoles" -}}
{{- $roles := dict -}}
{{- range $n := (include "curia.serviceNames" . | fromJsonArray) -}}
{{- if (index $.Values.services $n).stageTargets -}}
{{- $_ := set $roles (printf "curia-%s" $n) (list $.Values.auth.serviceRole) -}}
{{- end -}}
{{- end -}}
{{- range $id := .Values.auth.adminIdentities -}}
{{- $_ := set $roles $id (append (default (list) (index $roles $id)) "admin") -}}
{{- end -}}
{{- range $id, $r := .Values.auth.certRoles -}}
{{- $_ := set $roles $id (concat (default (list) (index $roles $id)) $r) -}}
{{- end -}}
{{- $out := list -}}
{{- range $id := keys $roles | sortAlpha -}}
{{- if regexMatch "[=;,\\s]" $id -}}{{- fail (printf "auth: identity %q must not contain '=', ';', ',' or spaces" $id) -}}{{- end -}}
{{- $out = append $out (printf "%s=%s" $id (index $roles $id | uniq | sortAlpha | join ",")) -}}
{{- end -}}
{{- join ";" $out -}}
{{- end -}}
