#!/usr/bin/env bash
# Give a partner a Kafka identity and the ACLs its role and agreements allow, on the
# compose cluster.
#
#   PARTNER_PASSWORD=... deploy/kafka/partner-access.sh PARTNER_ID [ACL_OPTION]...
#
# The ACLs are the ones `ecoshare acl PARTNER_ID` derives from the partner's roles and
# agreements (see ecoshare.domain.access): a publisher writes the ingress topics of the
# event types its agreements name; a subscriber reads its delivery topics
# deliver.PARTNER_ID.* with consumer groups named PARTNER_ID.*. ACL_OPTIONs go to
# `ecoshare acl`, e.g. `--file examples/postnl/governance.yaml` to read partners and
# agreements from a governance file instead of the running platform. Set ECOSHARE to
# the command to run (default: ecoshare).
#
# Idempotent: re-running sets the same password and adds the same ACLs. Runs the Kafka
# tools inside the `kafka` container over the internal listener, whose principal is the
# cluster's only super user; see deploy/kafka/README.md.
set -euo pipefail

usage() { sed -n '2,19p' "$0" >&2; exit 2; }

[[ $# -ge 1 ]] || usage
partner=$1
shift
[[ $partner =~ ^[A-Za-z0-9][A-Za-z0-9_-]*$ ]] || { echo "invalid partner id: $partner" >&2; exit 2; }

# Derive the bindings first: an unknown partner fails before anything changes.
acl_lines=$(${ECOSHARE:-ecoshare} acl "$partner" --output args "$@")
[[ -n $acl_lines ]] || { echo "$partner gets no ACLs (disabled, or no role)" >&2; exit 1; }

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

# One kafka-acls.sh call per binding line; the tool gets no stdin, so it cannot eat the
# lines still to come.
mapfile -t bindings <<< "$acl_lines"
for binding in "${bindings[@]}"; do
  read -r -a arguments <<< "$binding"
  kafka_tool kafka-acls.sh "${arguments[@]}" < /dev/null
done

kafka_tool kafka-acls.sh --list --principal "User:$partner"
