#!/usr/bin/env bash
# Installs the Debian packages Midline's tests and demo use, only those not yet installed.
#   dcmtk, dicom3tools: DICOM peers and the dciodvfy validator; plastimatch: RTSTRUCT validator;
#   mosquitto, mosquitto-clients: the MQTT broker and mosquitto_sub/pub; mricron-data: the Colin27
#   brain and atlases the phantom studies are built from; python3-venv: the model toolchain's venv;
#   chromium: the headless browser that renders the status page in firmware/daemon's page test.
set -euo pipefail
pkgs=(dcmtk dicom3tools mosquitto mosquitto-clients plastimatch mricron-data python3-venv chromium)

missing=()
for p in "${pkgs[@]}"; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$st" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "debs: all ${#pkgs[@]} packages present" >&2
	exit 0
fi
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
echo "debs: installing ${missing[*]}" >&2
"${sudo[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
