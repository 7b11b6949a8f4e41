#!/usr/bin/env bash
# Install the Debian packages the test suite needs (real servers: RTSP, MQTT, browser...).
# Listed one per line in deploy/test-packages.txt; only missing ones are installed.
set -euo pipefail
cd "$(dirname "$0")/.."
list=deploy/test-packages.txt
[ -f "$list" ] || exit 0
missing=()
while read -r pkg; do
  pkg=${pkg%%#*}; pkg=$(echo "$pkg" | xargs)
  [ -z "$pkg" ] && continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done < "$list"
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing test packages: ${missing[*]}"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
