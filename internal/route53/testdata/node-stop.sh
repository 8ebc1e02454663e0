#!/bin/bash
# Node stop script, as in the field notes: read the public IP saved at start
# and remove it (and its health check) from the Route 53 record set.
# Usage: node-stop.sh <hosted zone name> <record name>
set -euo pipefail
ZONE_NAME=$1
RECORD=$2
STATE_DIR=${STATE_DIR:-/tmp}
# seamark: the only change from a Route 53 script is the endpoint.
AWS="aws --endpoint-url ${SEAMARK_URL:-http://127.0.0.1:9400} --output json"

PUBLIC_IP=$(cat "$STATE_DIR/public_ip")
ZONE_ID=$($AWS route53 list-hosted-zones-by-name --dns-name "$ZONE_NAME" --max-items 1 --query 'HostedZones[0].Id' --output text)
# A DELETE must repeat the set exactly: read it back first.
$AWS route53 list-resource-record-sets --hosted-zone-id "$ZONE_ID" \
  --query "ResourceRecordSets[?Name == '$RECORD.' && SetIdentifier == '$PUBLIC_IP'] | [0]" > "$STATE_DIR/current.json"
HC_ID=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("HealthCheckId", ""))' "$STATE_DIR/current.json")
/usr/bin/python3 - "$STATE_DIR/current.json" > "$STATE_DIR/change.json" <<'PY'
import json, sys
rrset = json.load(open(sys.argv[1]))
print(json.dumps({"Comment": "node stop", "Changes": [{"Action": "DELETE", "ResourceRecordSet": rrset}]}))
PY
CHANGE_ID=$($AWS route53 change-resource-record-sets --hosted-zone-id "$ZONE_ID" \
  --change-batch "file://$STATE_DIR/change.json" --query 'ChangeInfo.Id' --output text)
$AWS route53 wait resource-record-sets-changed --id "$CHANGE_ID"
if [ -n "$HC_ID" ]; then
  $AWS route53 delete-health-check --health-check-id "$HC_ID"
fi
echo "$CHANGE_ID"
