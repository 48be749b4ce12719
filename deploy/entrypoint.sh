#!/bin/sh
# Starts one Curia service as PID 1 (exec: SIGTERM reaches Node, which drains; see README "Shutdown").
set -eu
svc="${1:-${CURIA_SERVICE:-}}"
case "$svc" in
  gateway | preprocess | embed | heads | segment | register) ;;
  *)
    echo "curia-entrypoint: expected one of gateway|preprocess|embed|heads|segment|register, got '${svc}'" >&2
    exit 64
    ;;
esac
exec node --enable-source-maps "/app/services/${svc}/dist/main.js"
