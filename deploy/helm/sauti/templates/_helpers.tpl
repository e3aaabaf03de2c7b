{{- define "sauti.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sauti.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "sauti.env" -}}
- name: HUB_HOME
  value: /var/lib/sauti/hub
- name: HUB_CONFIG_FILE
  value: /etc/sauti/hub.toml
- name: HUB_DATABASE_URL
  value: {{ .Values.database.url | quote }}
- name: HUB_DATABASE_PASSWORD_FILE
  value: /run/secrets/sauti/db/password
- name: HUB_CELERY_BROKER_URL
  value: {{ .Values.redis.url | quote }}
{{- if .Values.metrics.tokenSecret }}
- name: HUB_METRICS_TOKEN_FILE
  value: /run/secrets/sauti/metrics/token
{{- end }}
{{- end -}}

{{- define "sauti.volumeMounts" -}}
- name: home
  mountPath: /var/lib/sauti/hub
  readOnly: true
- name: config
  mountPath: /etc/sauti
  readOnly: true
- name: db
  mountPath: /run/secrets/sauti/db
  readOnly: true
{{- if .Values.metrics.tokenSecret }}
- name: metrics
  mountPath: /run/secrets/sauti/metrics
  readOnly: true
{{- end }}
{{- end -}}

{{- define "sauti.volumes" -}}
# The home is identity (ConfigMap) + key (Secret): the hub keeps its data in PostgreSQL.
- name: home
  projected:
    sources:
      - configMap:
          name: {{ include "sauti.fullname" . }}
          items:
            - {key: hub.json, path: hub.json}
      - secret:
          name: {{ .Values.identity.keySecret }}
          items:
            - {key: hub.jwk.json, path: keys/hub.jwk.json, mode: 0400}
- name: config
  configMap:
    name: {{ include "sauti.fullname" . }}
    items:
      - {key: hub.toml, path: hub.toml}
- name: db
  secret:
    secretName: {{ .Values.database.passwordSecret }}
{{- if .Values.metrics.tokenSecret }}
- name: metrics
  secret:
    secretName: {{ .Values.metrics.tokenSecret }}
{{- end }}
{{- end -}}
