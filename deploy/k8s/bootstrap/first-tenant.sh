#!/usr/bin/env bash
# Create the first tenant in a cluster Attain runs in: apply first-tenant-job.yaml with the values filled in,
# wait for it, print its log (the tenant's token, as JSON) and delete the Job. See deploy/k8s/README.md.
set -euo pipefail

usage() {
  cat <<'HELP'
Usage: first-tenant.sh --slug SLUG --timezone ZONE --country CC [--currency CUR] [--namespace NS] [--image IMAGE]

Creates a tenant with `python -m services.ingest tenants create` in a one-off Job (deploy/k8s/bootstrap/
first-tenant-job.yaml) as the schemas' owner, then prints the Job's log: one JSON line with the tenant and its
bearer token. Keep the token; the Job is deleted afterwards so the token does not stay in the cluster's logs.

  --slug SLUG        the tenant's id: 2-63 lowercase letters, digits or '-' (e.g. acme)
  --timezone ZONE    IANA time zone the tenant's periods are counted in (e.g. Europe/Berlin)
  --country CC       ISO 3166-1 code whose public holidays are days off (e.g. DE)
  --currency CUR     ISO 4217 reporting currency (default EUR)
  --namespace NS     where Attain runs (default attain)
  --image IMAGE      the image to run (default: the one deployment/attain-ingest runs)
  -h, --help         this help

Needs kubectl pointed at the cluster, and the Secrets attain-db-owner and attain-ingest-secrets in NS
(deploy/k8s/README.md, "Configuration and secrets"). The tenants CLI has no display name: a tenant is its slug.
HELP
}

slug="" timezone="" country="" currency="EUR" namespace="attain" image=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --slug) slug="${2:-}"; shift $(( $# > 1 ? 2 : 1 )) ;;
    --timezone) timezone="${2:-}"; shift $(( $# > 1 ? 2 : 1 )) ;;
    --country) country="${2:-}"; shift $(( $# > 1 ? 2 : 1 )) ;;
    --currency) currency="${2:-}"; shift $(( $# > 1 ? 2 : 1 )) ;;
    --namespace) namespace="${2:-}"; shift $(( $# > 1 ? 2 : 1 )) ;;
    --image) image="${2:-}"; shift $(( $# > 1 ? 2 : 1 )) ;;
    *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

# Every value lands in a YAML manifest: only what the CLI would accept anyway gets that far.
check() {  # NAME VALUE REGEX WHAT
  if ! [[ "$2" =~ $3 ]]; then echo "error: --$1 ${2@Q}: $4 (see --help)" >&2; exit 2; fi
}
check slug "$slug" '^[a-z0-9][a-z0-9-]{1,62}$' "2-63 lowercase letters, digits or '-'"
check timezone "$timezone" '^[A-Za-z][A-Za-z0-9_+/-]{0,63}$' "an IANA time zone such as Europe/Berlin"
check country "$country" '^[A-Z]{2}$' "an ISO 3166-1 code such as DE"
check currency "$currency" '^[A-Z]{3}$' "an ISO 4217 code such as EUR"
check namespace "$namespace" '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$' "a namespace name"

kubectl=(kubectl --namespace "$namespace")
if [ -z "$image" ]; then
  image="$("${kubectl[@]}" get deployment attain-ingest -o 'jsonpath={.spec.template.spec.containers[?(@.name=="app")].image}')"
fi
check image "$image" '^[A-Za-z0-9][A-Za-z0-9./_:@-]*$' "an image reference"

job=attain-first-tenant
manifest="$(dirname "$0")/first-tenant-job.yaml"
"${kubectl[@]}" delete job "$job" --ignore-not-found >/dev/null
sed -e "s|@SLUG@|$slug|g" -e "s|@TIMEZONE@|$timezone|g" -e "s|@COUNTRY@|$country|g" \
    -e "s|@CURRENCY@|$currency|g" -e "s|@IMAGE@|$image|g" "$manifest" | "${kubectl[@]}" apply -f -

echo "waiting for job/$job in $namespace..." >&2
status=""
for _ in $(seq 1 150); do  # up to 5 minutes, the Job's own deadline
  status="$("${kubectl[@]}" get job "$job" -o 'jsonpath={.status.succeeded}/{.status.failed}')"
  case "$status" in 1/*|*/1) break ;; esac
  sleep 2
done
"${kubectl[@]}" logs "job/$job" || true
"${kubectl[@]}" delete job "$job" --ignore-not-found >/dev/null
case "$status" in
  1/*) echo "tenant $slug created" >&2 ;;
  *) echo "error: job/$job did not succeed (status succeeded/failed: ${status:-none}); its log is above" >&2; exit 1 ;;
esac
