{{/* The chart's name, or nameOverride. */}}
{{- define "confide.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The name prefix of every object: RELEASE-confide, or the release name alone when it
already contains the chart's name, or fullnameOverride. Kept short enough for the
"-server-headless" and "-client-NNNNN" suffixes within 63 characters. */}}
{{- define "confide.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "confide.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object of a component (server or client), its selector labels
included: call with (list . "server"). */}}
{{- define "confide.labels" -}}
{{- $root := index . 0 -}}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
{{ include "confide.selectorLabels" . }}
{{- end -}}

{{/* Selector labels of a component (server or client): call with (list . "server"). */}}
{{- define "confide.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "confide.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* The image reference. */}}
{{- define "confide.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The server's Service (clients dial it) and the StatefulSet's headless Service. */}}
{{- define "confide.serverService" -}}
{{- printf "%s-server" (include "confide.fullname" .) -}}
{{- end -}}
{{- define "confide.serverHeadless" -}}
{{- printf "%s-server-headless" (include "confide.fullname" .) -}}
{{- end -}}

{{/* The flags every confide process gets. */}}
{{- define "confide.logArgs" -}}
- --log-level={{ .Values.logging.level }}
- --log-format={{ .Values.logging.format }}
{{- end -}}

{{/* The client pod template (indexed Job and per-client Jobs). Call with a dict: root (the
chart's context), index (a number, or "" for the Job's completion index) and tlsSecret (the
Secret with the certificate and key). */}}
{{- define "confide.clientPod" -}}
{{- $root := .root -}}
{{- $v := $root.Values.clients -}}
{{- $shared := eq $v.certificates.mode "shared" -}}
metadata:
  labels:
    {{- include "confide.labels" (list $root "client") | nindent 4 }}
  {{- with $v.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  restartPolicy: OnFailure
  automountServiceAccountToken: false
  # Service links would put CONFIDE_…-named variables into the environment, which confide
  # reads as flags.
  enableServiceLinks: false
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  containers:
    - name: client
      image: {{ include "confide.image" $root }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      env:
        - name: CONFIDE_CLIENT_INDEX
          {{- if eq (toString .index) "" }}
          valueFrom:
            fieldRef:
              fieldPath: metadata.annotations['batch.kubernetes.io/job-completion-index']
          {{- else }}
          value: {{ .index | quote }}
          {{- end }}
        {{- if $v.joinToken.secretName }}
        - name: CONFIDE_JOIN_TOKEN
          valueFrom:
            secretKeyRef:
              name: {{ $v.joinToken.secretName }}
              key: {{ $v.joinToken.key }}
        {{- end }}
      args:
        - client
        - --server={{ default (printf "%s:%d" (include "confide.serverService" $root) (int $root.Values.server.ports.grpc)) $v.server }}
        - --client-index=$(CONFIDE_CLIENT_INDEX)
        - --num-clients={{ $v.count }}
        - --dataset={{ $v.dataset }}
        - --partition={{ $v.partition }}
        - --seed={{ $v.seed }}
        - --data-dir=/data
        - --state-dir=/var/lib/confide/client
        - --workers={{ $v.workers }}
        {{- if $v.privacy.noDP }}
        - --no-dp
        {{- else }}
        - --epsilon={{ $v.privacy.epsilon }}
        - --delta={{ $v.privacy.delta }}
        {{- end }}
        {{- if $v.insecure }}
        - --insecure
        {{- else if $shared }}
        - --ca=/etc/confide/tls/ca.crt
        - --tls-cert=/etc/confide/tls/client-$(CONFIDE_CLIENT_INDEX).crt
        - --tls-key=/etc/confide/tls/client-$(CONFIDE_CLIENT_INDEX).key
        {{- else }}
        - --ca=/etc/confide/tls/ca.crt
        - --tls-cert=/etc/confide/tls/tls.crt
        - --tls-key=/etc/confide/tls/tls.key
        {{- end }}
        {{- include "confide.logArgs" $root | nindent 8 }}
        {{- with $v.extraArgs }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      {{- with $v.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: state
          mountPath: /var/lib/confide/client
          {{- if $v.state.existingClaim }}
          subPathExpr: client-$(CONFIDE_CLIENT_INDEX)
          {{- end }}
        - name: data
          mountPath: /data
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- if not $v.insecure }}
        - name: tls
          mountPath: /etc/confide/tls
          readOnly: true
        {{- end }}
  volumes:
    - name: state
      {{- if $v.state.existingClaim }}
      persistentVolumeClaim:
        claimName: {{ $v.state.existingClaim }}
      {{- else }}
      emptyDir: {}
      {{- end }}
    - name: data
      {{- toYaml $v.data.volume | nindent 6 }}
    - name: tmp
      emptyDir: {}
    {{- if not $v.insecure }}
    - name: tls
      secret:
        secretName: {{ .tlsSecret }}
        # Readable by the non-root user whatever its uid (the pod runs this one process).
        defaultMode: 0444
    {{- end }}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
