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
# glibc malloc: keep the ~1 MiB message buffers of every slice in reused heap memory instead of a
# fresh mapping each (about 250 page faults per slice otherwise); libs/kit/src/process-tuning.ts.
export MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-33554432}"
export MALLOC_TRIM_THRESHOLD_="${MALLOC_TRIM_THRESHOLD_:-134217728}"
# A larger initial old space: with only ~25 MB of live heap, V8 otherwise runs a full collection
# every few 1 MiB slice buffers (about half the transport CPU); libs/cli's launcher does the same.
exec node --enable-source-maps --initial-old-space-size="${CURIA_NODE_INITIAL_OLD_SPACE_MB:-256}" \
  "/app/services/${svc}/dist/main.js"
