#!/bin/sh
# Writes this EC2 instance's region (from the instance metadata service, IMDSv2) to
# /etc/dnf/vars/location and /etc/yum/vars/location, so repo files using $location send
# clients to the region they run in; and for apt, which has no such variable, renders
# every /etc/regionmirror/apt/NAME.sources.in (configs/apt/regionmirror.sources.in) to
# /etc/apt/sources.list.d/NAME.sources with @LOCATION@ replaced by the region. Run at boot
# (regionmirror-location.service).
# IMDS_ENDPOINT, VARS_DIRS, APT_TEMPLATES and APT_SOURCES override the defaults (for tests).
set -eu

imds=${IMDS_ENDPOINT:-http://169.254.169.254}
dirs=${VARS_DIRS:-/etc/dnf/vars /etc/yum/vars}
apt_templates=${APT_TEMPLATES:-/etc/regionmirror/apt}
apt_sources=${APT_SOURCES:-/etc/apt/sources.list.d}

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
	# A host without dnf (or yum) has no such directory, and under the unit's sandbox
	# (ProtectSystem=strict, only these paths writable) none can be made: skip it.
	if ! mkdir -p "$d" 2>/dev/null; then
		echo "regionmirror-location: no directory $d (no dnf or yum here?); skipped" >&2
		continue
	fi
	tmp=$(mktemp "$d/.location.XXXXXX")
	printf '%s\n' "$region" >"$tmp"
	chmod 644 "$tmp"
	mv "$tmp" "$d/location"
done
for t in "$apt_templates"/*.sources.in; do
	[ -f "$t" ] || continue
	name=$(basename "$t" .in)
	mkdir -p "$apt_sources"
	tmp=$(mktemp "$apt_sources/.$name.XXXXXX")
	sed "s/@LOCATION@/$region/g" "$t" >"$tmp"
	chmod 644 "$tmp"
	mv "$tmp" "$apt_sources/$name"
	echo "regionmirror-location: wrote $apt_sources/$name"
done
echo "regionmirror-location: location=$region"
