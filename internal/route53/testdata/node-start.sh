#!/bin/bash
# Node start script, as in the field notes (seeds/1-aerospike-seeding-route53-elb.txt):
# get the public IP of self, save it, wait for the service port to be bound,
# then add the IP to a Route 53 multivalue record set with a TCP health check.
# Usage: node-start.sh <hosted zone name> <record name>
set -euo pipefail
ZONE_NAME=$1
RECORD=$2
PORT=${PORT:-3000}
STATE_DIR=${STATE_DIR:-/tmp}
# seamark: the only change from a Route 53 script is the endpoint.
AWS="aws --endpoint-url ${SEAMARK_URL:-http://127.0.0.1:9400} --output text"

# 1. public IP of self (the magic IP on EC2)
PUBLIC_IP=${PUBLIC_IP:-$(curl -s http://169.254.169.254/latest/meta-data/public-ipv4)}
echo "$PUBLIC_IP" > "$STATE_DIR/public_ip"

# 2. wait for the port to be bound
ret=1; while [ $ret -ne 0 ]; do (exec 3<>"/dev/tcp/$PUBLIC_IP/$PORT") 2>/dev/null; ret=$?; [ $ret -ne 0 ] && sleep 1; done

# 3. add the IP to DNS, with a health check on the port
ZONE_ID=$($AWS route53 list-hosted-zones-by-name --dns-name "$ZONE_NAME" --max-items 1 --query 'HostedZones[0].Id')
HC_ID=$($AWS route53 create-health-check --caller-reference "$RECORD-$PUBLIC_IP-$PORT" \
  --health-check-config "IPAddress=$PUBLIC_IP,Port=$PORT,Type=TCP,RequestInterval=10,FailureThreshold=2" \
  --query 'HealthCheck.Id')
cat > "$STATE_DIR/change.json" <<JSON
{
  "Comment": "node start: add $PUBLIC_IP",
  "Changes": [{
    "Action": "UPSERT",
    "ResourceRecordSet": {
      "Name": "$RECORD",
      "Type": "A",
      "SetIdentifier": "$PUBLIC_IP",
      "MultiValueAnswer": true,
      "TTL": 5,
      "ResourceRecords": [{"Value": "$PUBLIC_IP"}],
      "HealthCheckId": "$HC_ID"
    }
  }]
}
JSON
CHANGE_ID=$($AWS route53 change-resource-record-sets --hosted-zone-id "$ZONE_ID" \
  --change-batch "file://$STATE_DIR/change.json" --query 'ChangeInfo.Id')
$AWS route53 wait resource-record-sets-changed --id "$CHANGE_ID"
echo "$CHANGE_ID"
