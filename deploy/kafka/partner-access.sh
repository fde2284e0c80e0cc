#!/usr/bin/env bash
# Give a partner a Kafka identity and the ACLs its role allows, on the compose cluster.
#
#   PARTNER_PASSWORD=... deploy/kafka/partner-access.sh PARTNER_ID \
#       [--publish EVENT_TYPE]... [--subscribe]
#
# --publish EVENT_TYPE  the partner may write (only) to ingress.EVENT_TYPE
# --subscribe           the partner may read its delivery topics deliver.PARTNER_ID.* with
#                       consumer groups named PARTNER_ID.*
#
# Idempotent: re-running sets the same password and adds the same ACLs. Runs the Kafka
# tools inside the `kafka` container over the internal listener, whose principal is the
# cluster's only super user; see deploy/kafka/README.md.
set -euo pipefail

usage() { sed -n '2,13p' "$0" >&2; exit 2; }

[[ $# -ge 1 ]] || usage
partner=$1
shift
[[ $partner =~ ^[A-Za-z0-9][A-Za-z0-9_-]*$ ]] || { echo "invalid partner id: $partner" >&2; exit 2; }

publish=()
subscribe=false
while [[ $# -gt 0 ]]; do
  case $1 in
    --publish) [[ $# -ge 2 ]] || usage; publish+=("$2"); shift 2 ;;
    --subscribe) subscribe=true; shift ;;
    *) usage ;;
  esac
done

if [[ -z ${PARTNER_PASSWORD:-} ]]; then
  read -r -s -p "SCRAM password for $partner: " PARTNER_PASSWORD
  echo >&2
fi
[[ ${#PARTNER_PASSWORD} -ge 16 ]] || { echo "use a password of at least 16 characters" >&2; exit 2; }
[[ $PARTNER_PASSWORD != *[],=]* ]] || { echo "the password must not contain , ] or =" >&2; exit 2; }

cd "$(dirname "$0")/../.."
bootstrap=kafka:19092
kafka_tool() { docker compose exec -T kafka "/opt/kafka/bin/$1" --bootstrap-server "$bootstrap" "${@:2}"; }

kafka_tool kafka-configs.sh --alter --entity-type users --entity-name "$partner" \
  --add-config "SCRAM-SHA-512=[iterations=8192,password=$PARTNER_PASSWORD]"

for event_type in "${publish[@]}"; do
  kafka_tool kafka-acls.sh --add --allow-principal "User:$partner" \
    --operation Write --operation Describe --topic "ingress.$event_type"
done

if [[ $subscribe == true ]]; then
  kafka_tool kafka-acls.sh --add --allow-principal "User:$partner" \
    --operation Read --operation Describe \
    --topic "deliver.$partner." --resource-pattern-type prefixed
  kafka_tool kafka-acls.sh --add --allow-principal "User:$partner" \
    --operation Read --operation Describe \
    --group "$partner." --resource-pattern-type prefixed
fi

kafka_tool kafka-acls.sh --list --principal "User:$partner"
