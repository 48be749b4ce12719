#!/usr/bin/env bash
# Deployment asset checks: helm lint/template + kubeconform, kustomize overlays + kubeconform,
# promtool check/test rules, and drift of the kustomize base against the chart.
# Idempotent: installs pinned tools only when missing. Exit status is non-zero on any failure.
set -uo pipefail

HELM_VERSION=v3.21.4
KUBECONFORM_VERSION=v0.6.7
# Offline Kubernetes JSON schemas: PyPI's kubernetes-validate wheel ships yannh/kubernetes-json-schema.
K8S_SCHEMAS_PKG=kubernetes-validate==1.37.0
K8S_VERSION=1.32.0

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${CURIA_DEPLOY_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/curia-deploy}"
GOBIN_DIR="$(go env GOPATH 2>/dev/null)/bin"
export PATH="$GOBIN_DIR:$PATH"
RENDER="$(mktemp -d)"
trap 'rm -rf "$RENDER"' EXIT

declare -a RESULTS=()
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
  if ! command -v promtool >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null || return 1
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
t_tools=$SECONDS
step "install tools (helm ${HELM_VERSION}, kubeconform ${KUBECONFORM_VERSION}, promtool, k8s ${K8S_VERSION} schemas)" install_tools
TOOLS_SECONDS=$((SECONDS - t_tools))
if [ "$FAILED" -ne 0 ]; then printf '%s\n' "${RESULTS[@]}"; exit 1; fi

SCHEMAS="$CACHE/schemas/v${K8S_VERSION}-standalone-strict/{{ .ResourceKind }}{{ .KindSuffix }}.json"
# CRDs (PodMonitor, PrometheusRule, ScaledObject) have no schema offline: -ignore-missing-schemas skips
# exactly those; every built-in kind is validated strictly (unknown fields fail).
kc() { kubeconform -strict -summary -ignore-missing-schemas -kubernetes-version "$K8S_VERSION" -schema-location "$SCHEMAS" "$@"; }
export -f kc
export K8S_VERSION SCHEMAS

chart="$ROOT/helm/curia"
step "kubeconform rejects an unknown Deployment field (schemas really loaded)" bash -c "! printf 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {bogusField: 1, selector: {}, template: {}}\n' | kc"
step "helm lint --strict (all ci values)" bash -c "for f in '$chart'/ci/*-values.yaml; do helm lint --strict --kube-version $K8S_VERSION -f \"\$f\" '$chart' || exit 1; done"
for f in "$chart"/ci/*-values.yaml; do
  n="$(basename "$f" -values.yaml)"
  step "helm template ($n) | kubeconform" bash -c "set -o pipefail; helm template curia '$chart' -n curia --kube-version $K8S_VERSION -f '$f' > '$RENDER/helm-$n.yaml' && kc '$RENDER/helm-$n.yaml'"
done
step "values.schema.json rejects an unknown key" bash -c "! helm template curia '$chart' --kube-version $K8S_VERSION --set services.embed.typo=1 >/dev/null 2>&1"
step "chart refuses terminationGracePeriodSeconds <= preStop + drain" bash -c "! helm template curia '$chart' --kube-version $K8S_VERSION --set default.terminationGracePeriodSeconds=20 >/dev/null 2>&1"
step "kustomize base is in sync with the chart (k8s/render-base.sh --check)" "$ROOT/k8s/render-base.sh" --check
for o in "$ROOT"/k8s/overlays/*/; do
  n="$(basename "$o")"
  step "kubectl kustomize $n | kubeconform" bash -c "set -o pipefail; kubectl kustomize '$o' > '$RENDER/kustomize-$n.yaml' && kc '$RENDER/kustomize-$n.yaml'"
done
step "promtool check rules" promtool check rules "$chart/files/alerts.yaml"
step "promtool test rules" promtool test rules "$chart/tests/alerts.test.yaml"
step "dashboards are valid JSON" bash -c "for f in '$chart'/files/dashboards/*.json; do python3 -m json.tool \"\$f\" >/dev/null || exit 1; done"

echo
echo "check-deploy summary (tools: ${TOOLS_SECONDS}s, total: ${SECONDS}s)"
printf '  %s\n' "${RESULTS[@]}"
passed=$(printf '%s\n' "${RESULTS[@]}" | grep -c '^PASS')
failed=$(printf '%s\n' "${RESULTS[@]}" | grep -c '^FAIL')
echo "check-deploy: $passed passed, $failed failed"
exit "$FAILED"
