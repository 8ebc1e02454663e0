"""Autoscaling Lambda, as in the field notes: on an instance state change,
collect the public IPs of the group's instances and write them all into one
Route 53 record set with change_resource_record_sets.

seamark: the only change from the Route 53 version is endpoint_url.
"""
import os
import sys

import boto3

ZONE_NAME = os.environ.get("ZONE_NAME", "cluster.test.")
RECORD = os.environ.get("RECORD_NAME", "seeds.cluster.test.")

route53 = boto3.client("route53", endpoint_url=os.environ.get("SEAMARK_URL"))


def public_ips(event):
    # On AWS: describe_auto_scaling_instances() and ec2.Instance(id).public_ip_address.
    return event["ips"]


def update_record(ips):
    zones = route53.list_hosted_zones_by_name(DNSName=ZONE_NAME, MaxItems="1")["HostedZones"]
    if not zones or zones[0]["Name"] != ZONE_NAME:
        raise RuntimeError("no hosted zone " + ZONE_NAME)
    zone_id = zones[0]["Id"]
    if ips:
        change = {"Action": "UPSERT", "ResourceRecordSet": {
            "Name": RECORD, "Type": "A", "TTL": 60,
            "ResourceRecords": [{"Value": ip} for ip in ips]}}
    else:
        current = route53.list_resource_record_sets(
            HostedZoneId=zone_id, StartRecordName=RECORD, StartRecordType="A", MaxItems="1")["ResourceRecordSets"]
        if not current or current[0]["Name"] != RECORD:
            return None
        change = {"Action": "DELETE", "ResourceRecordSet": current[0]}
    resp = route53.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={"Comment": "autoscaling: %d instances" % len(ips), "Changes": [change]})
    change_id = resp["ChangeInfo"]["Id"]
    route53.get_waiter("resource_record_sets_changed").wait(Id=change_id)
    return change_id


def lambda_handler(event, context):
    return {"change": update_record(public_ips(event))}


if __name__ == "__main__":
    print(lambda_handler({"ips": sys.argv[1:]}, None)["change"])
