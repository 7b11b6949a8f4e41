#!/usr/bin/env bash
# Prepare a host without a container registry for `make deploy-test` (the test machines): podman and
# podman-compose's needs from Debian, and a local Python base image made from the host's own apt sources,
# so that nothing is pulled. Idempotent; prints what it did. Usage: deploy/docker/local-base.sh [IMAGE]
#   then build with --build-arg BASE_IMAGE=IMAGE (default localhost/debian-base:bookworm).
set -euo pipefail
image=${1:-localhost/debian-base:bookworm}
here=$(cd "$(dirname "$0")" && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

need=()
# dnsname: service-name DNS between containers on podman's CNI networks (compose service names).
for pkg in podman runc uidmap slirp4netns fuse-overlayfs mmdebstrap golang-github-containernetworking-plugin-dnsname; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if podman image exists "$image"; then
  echo "base image $image: present"
  exit 0
fi
# The suite the host runs (bookworm here), so its python3 matches python:3.11-slim's.
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "building base image $image from $suite with mmdebstrap (about a minute)"
$SUDO mmdebstrap --quiet --variant=apt --include=python3,python3-venv,ca-certificates "$suite" "$tmp/rootfs.tar"
podman import --quiet "$tmp/rootfs.tar" "$image" >/dev/null
echo "base image $image: built"
