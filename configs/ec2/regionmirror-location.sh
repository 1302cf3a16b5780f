#!/bin/sh
# Writes this EC2 instance's region (from the instance metadata service, IMDSv2) to
# /etc/dnf/vars/location and /etc/yum/vars/location, so repo files using $location send
# clients to the region they run in. Run at boot (regionmirror-location.service).
# IMDS_ENDPOINT and VARS_DIRS override the defaults (for tests).
set -eu

imds=${IMDS_ENDPOINT:-http://169.254.169.254}
dirs=${VARS_DIRS:-/etc/dnf/vars /etc/yum/vars}

token=$(curl -sf --max-time 5 -X PUT "$imds/latest/api/token" \
	-H "X-aws-ec2-metadata-token-ttl-seconds: 300") || {
	echo "regionmirror-location: no instance metadata service (not on EC2?); leaving location unset" >&2
	exit 0
}
region=$(curl -sf --max-time 5 -H "X-aws-ec2-metadata-token: $token" "$imds/latest/meta-data/placement/region") || {
	echo "regionmirror-location: cannot read the region from the instance metadata" >&2
	exit 1
}
# Only a region name is written: this value ends up in URLs.
case $region in
*[!a-z0-9-]* | "")
	echo "regionmirror-location: unexpected region '$region'; not written" >&2
	exit 1
	;;
esac
for d in $dirs; do
	mkdir -p "$d"
	tmp=$(mktemp "$d/.location.XXXXXX")
	printf '%s\n' "$region" >"$tmp"
	chmod 644 "$tmp"
	mv "$tmp" "$d/location"
done
echo "regionmirror-location: location=$region"
