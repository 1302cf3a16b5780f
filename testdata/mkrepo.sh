#!/usr/bin/env bash
# Rebuilds the sample origin tree in testdata/origin: tiny noarch RPMs from rpmbuild and the
# repodata from createrepo_c, as a distribution would publish them. The output is committed;
# run this only to change it (needs Debian's rpm and createrepo-c).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$here/origin
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# name version summary: each package installs one small file.
packages=(
	"hello 1.0 A friendly greeting"
	"greet 2.1 Greets by name"
	"libc++-compat 1.0 A name with plus signs, as libstdc++ has"
)

rm -rf "$out"
repo=$out/demo/1/x86_64/os
mkdir -p "$repo/Packages"
for p in "${packages[@]}"; do
	read -r name version summary <<<"$p"
	mkdir -p "$work/rpmbuild/SPECS"
	spec=$work/rpmbuild/SPECS/$name.spec
	cat >"$spec" <<SPEC
Name: $name
Version: $version
Release: 1
Summary: $summary
License: MIT
BuildArch: noarch

%description
$summary. Part of regionmirror's test repository.

%install
mkdir -p %{buildroot}/usr/share/regionmirror-demo
echo "$name $version" > %{buildroot}/usr/share/regionmirror-demo/$name.txt

%files
/usr/share/regionmirror-demo/$name.txt
SPEC
	rpmbuild --quiet --define "_topdir $work/rpmbuild" --define "_build_id_links none" -bb "$spec"
done
find "$work/rpmbuild/RPMS" -name '*.rpm' -exec cp {} "$repo/Packages/" \;
createrepo_c --quiet --no-database "$repo"

# A plain download beside the repository, as ISO images are.
mkdir -p "$out/demo/1/iso"
printf 'regionmirror demo image\n' >"$out/demo/1/iso/demo-1-x86_64.iso"
printf 'This tree is a sample origin for regionmirror tests and the demo.\n' >"$out/demo/README.txt"
find "$out" -type f | sort | sed "s|$out/||"
