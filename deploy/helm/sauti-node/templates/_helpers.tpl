{{- define "sauti-node.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sauti-node.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "sauti-node.env" -}}
- name: NODE_HOME
  value: /var/lib/sauti/node
- name: NODE_CONFIG_FILE
  value: /etc/sauti/node.toml
{{- if .Values.database.url }}
- name: NODE_DATABASE_URL
  value: {{ .Values.database.url | quote }}
- name: NODE_DATABASE_PASSWORD_FILE
  value: /run/secrets/sauti/db/password
{{- end }}
{{- if and (eq .Values.mode "push") .Values.metrics.tokenSecret }}
- name: NODE_METRICS_TOKEN_FILE
  value: /run/secrets/sauti/metrics/token
{{- end }}
{{- if eq .Values.mode "pull" }}
- name: NODE_METRICS_PORT
  value: {{ .Values.metrics.port | quote }}
- name: NODE_METRICS_HOST
  value: "0.0.0.0"
{{- end }}
{{- end -}}
