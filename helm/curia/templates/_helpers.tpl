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
