#!/usr/bin/env bash
# Installs Midline on a box: the non-root user `midline`, /etc/midline with a configuration to
# edit (firmware/coral.yaml, only when none is there), the state folder /var/lib/midline (0750),
# the binary in /usr/local/bin, the shipped model bundles in /usr/share/midline/models and the
# systemd unit. Run it again at any time: it replaces the binary, the models and the unit and
# keeps the configuration and the state.
#
#   scripts/install.sh [--dry-run] [--root DIR] [--low-ports] [--binary FILE]
#     --dry-run    print what would be done, change nothing
#     --root DIR   install into a staging root (tests, image builds): no user, no ownership, no
#                  systemctl; run as any user
#     --low-ports  let the daemon bind ports below 1024 (DICOM's 104): a unit drop-in with
#                  CAP_NET_BIND_SERVICE, the only capability it ever gets
#     --binary F   the midline binary to install (default bin/midline, from `make build`)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
root="" dry=0 lowports=0 binary="$here/bin/midline"
while [ $# -gt 0 ]; do
	case "$1" in
	--dry-run) dry=1 ;;
	--root) root=${2:?--root needs a folder}; shift ;;
	--root=*) root=${1#--root=} ;;
	--low-ports) lowports=1 ;;
	--binary) binary=${2:?--binary needs a file}; shift ;;
	--binary=*) binary=${1#--binary=} ;;
	-h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "install: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done
if [ -n "$root" ]; then
	[ "$dry" -eq 1 ] || mkdir -p "$root" || { echo "install: cannot create $root" >&2; exit 1; }
	case "$root" in /*) ;; *) root=$PWD/$root ;; esac
elif [ "$(id -u)" -ne 0 ] && [ "$dry" -eq 0 ]; then
	echo "install: run as root (or give --root DIR for a staging root, or --dry-run)" >&2
	exit 1
fi

user=midline
etc=$root/etc/midline
state=$root/var/lib/midline
bindir=$root/usr/local/bin
models=$root/usr/share/midline/models
unitdir=$root/etc/systemd/system

# run does one step, or prints it under --dry-run.
run() {
	if [ "$dry" -eq 1 ]; then
		printf 'would run:'
		printf ' %q' "$@"
		printf '\n'
	else
		"$@"
	fi
}
say() { echo "install: $*"; }

[ -f "$binary" ] && [ -x "$binary" ] || { echo "install: no executable $binary; run 'make build' first (or give --binary)" >&2; exit 1; }
[ -d "$here/models" ] || { echo "install: no models folder in $here" >&2; exit 1; }

# 1. The user: a system account without a login shell or home of its own; the hardware groups
#    that exist on this board (I2C sensors, GPIO LED, the Coral's Edge TPU).
if [ -n "$root" ]; then
	say "staging root $root: the user $user and file ownership are left to the box"
elif getent passwd "$user" >/dev/null; then
	say "user $user exists"
else
	run useradd --system --user-group --home-dir /var/lib/midline --no-create-home --shell /usr/sbin/nologin "$user"
fi
if [ -z "$root" ]; then
	for g in i2c gpio apex; do
		if getent group "$g" >/dev/null && ! id -nG "$user" 2>/dev/null | tr ' ' '\n' | grep -qx "$g"; then
			run usermod -aG "$g" "$user"
		fi
	done
fi

# own sets owner and mode on the box; in a staging root only the mode.
own() { # own OWNER:GROUP MODE PATH
	[ -n "$root" ] || run chown "$1" "$3"
	run chmod "$2" "$3"
}

# 2. Folders.
run mkdir -p "$etc" "$state" "$bindir" "$models" "$unitdir"
own root:$user 0750 "$etc"
own $user:$user 0750 "$state"

# 3. The binary, replaced atomically (a running daemon keeps its old inode).
run install -m 0755 "$binary" "$bindir/midline.new"
run mv -f "$bindir/midline.new" "$bindir/midline"
if command -v readelf >/dev/null; then
	interp=$(readelf -l "$binary" 2>/dev/null | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p' || true)
	case "$interp" in
	"" | /lib/* | /lib64/* | /usr/lib/*) ;;
	*) say "WARNING: $binary runs under $interp, a development build tied to this checkout; build the box's binary with TFLITE_PREFIX (see the Makefile)" ;;
	esac
fi

# 4. The shipped model bundles (models.seed_dir), replaced bundle by bundle.
for b in "$here"/models/*/; do
	[ -f "$b/model.json" ] || continue
	name=$(basename "$b")
	run rm -rf "$models/$name.new"
	run cp -R "$b" "$models/$name.new"
	run rm -rf "$models/$name"
	run mv "$models/$name.new" "$models/$name"
	run chmod -R u=rwX,go=rX "$models/$name"
done

# 5. The configuration: only when there is none; an existing one is the site's.
if [ -e "$etc/midline.yaml" ]; then
	say "keeping $etc/midline.yaml"
else
	run install -m 0640 "$here/firmware/coral.yaml" "$etc/midline.yaml"
	own root:$user 0640 "$etc/midline.yaml"
fi

# 6. The unit, and the capability drop-in only when asked for.
run install -m 0644 "$here/scripts/midline.service" "$unitdir/midline.service"
dropin=$unitdir/midline.service.d/low-ports.conf
if [ "$lowports" -eq 1 ]; then
	run mkdir -p "$(dirname "$dropin")"
	if [ "$dry" -eq 1 ]; then
		say "would write $dropin"
	else
		printf '%s\n' '# Written by install.sh --low-ports: bind DICOM port 104 and nothing else privileged.' \
			'[Service]' 'CapabilityBoundingSet=CAP_NET_BIND_SERVICE' 'AmbientCapabilities=CAP_NET_BIND_SERVICE' >"$dropin"
	fi
elif [ -e "$dropin" ]; then
	say "keeping $dropin (from an earlier --low-ports)"
fi
if [ -z "$root" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
	run systemctl daemon-reload
fi

cat <<EOF

install: done${root:+ (staging root $root)}. Next steps:
  1. Edit $etc/midline.yaml: every line marked CHANGE (device_id, site, the scanner's AE title
     and network, the planning system), http.token if the status page listens beyond loopback,
     and leave board.watchdog false (under systemd, systemd owns the watchdog).
  2. Check it:      midline config check /etc/midline/midline.yaml
  3. Start it:      systemctl enable --now midline
  4. Watch it:      midline status      midline jobs list      journalctl -u midline -f
  Core dumps are off for the service (LimitCORE=0 in the unit: they could hold patient images).
  To keep other processes' dumps off the box too: 'kernel.core_pattern=|/bin/false' in
  /etc/sysctl.d/50-coredump.conf and '* hard core 0' in /etc/security/limits.d/core.conf.
EOF
[ "$dry" -eq 0 ] || echo "install: --dry-run: nothing was changed"
