#!/bin/sh
# Install the Debian packages listed in the given files that are not installed yet.
# Usage: scripts/deps.sh deps/debian.txt [more lists...]
set -eu
missing=""
for list in "$@"; do
	for pkg in $(sed -e 's/#.*//' "$list"); do
		if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed"; then
			missing="$missing $pkg"
		fi
	done
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing Debian packages:$missing (run as root, or: sudo apt-get install$missing)" >&2
	exit 1
fi
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || true
apt-get install -y -qq --no-install-recommends $missing >/dev/null
