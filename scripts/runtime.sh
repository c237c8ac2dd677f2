#!/usr/bin/env bash
# Provisions the TensorFlow Lite C runtime for a development machine into .runtime/.
#
#   scripts/runtime.sh fetch     fetch, verify and unpack the packages pinned in scripts/runtime.lock
#   scripts/runtime.sh resolve   print a new lock from what Debian unstable serves today
#
# Debian 12 has no TensorFlow Lite; Debian unstable has it, built against a newer glibc and
# libstdc++. We fetch it and its runtime closure with a private apt configuration (own sources,
# state and cache under .runtime/apt; the system's apt setup is never read or written), check every
# .deb against the sha256 in the lock, and unpack them with `dpkg -x`. Binaries then run under the
# unpacked loader (see the Makefile). On a real box, set TFLITE_PREFIX instead and skip this.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
lock="$top/scripts/runtime.lock"
rt="$top/.runtime"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
suite="${DEBIAN_SUITE:-unstable}"
shared="${RUNTIME_DEBS:-$top/../shared/runtime-debs}"
arch=amd64

say() { printf 'runtime: %s\n' "$*" >&2; }
die() { printf 'runtime: error: %s\n' "$*" >&2; exit 1; }

lock_entries() { grep -v '^[[:space:]]*#' "$lock" | grep -v '^[[:space:]]*$'; }
lock_sum() { sha256sum "$lock" | cut -d' ' -f1; }
deb_name() { printf '%s_%s_%s.deb' "$1" "${2//:/%3a}" "$arch"; }

# private_apt writes an apt configuration that points every directory apt uses into .runtime/apt,
# so nothing of the system's sources, lists, preferences or status is read or changed.
private_apt() {
	local a="$rt/apt"
	mkdir -p "$a/lists/partial" "$a/cache/archives/partial" "$a/etc/sources.list.d" \
		"$a/etc/preferences.d" "$a/etc/apt.conf.d"
	: >"$a/status"
	local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
	[ -r "$keyring" ] || die "$keyring is missing: install the debian-archive-keyring package"
	printf 'deb [signed-by=%s] %s %s main\n' "$keyring" "$mirror" "$suite" >"$a/etc/sources.list"
	cat >"$a/apt.conf" <<-EOF
		Dir::Etc::SourceList "$a/etc/sources.list";
		Dir::Etc::SourceParts "$a/etc/sources.list.d";
		Dir::Etc::Preferences "$a/etc/preferences";
		Dir::Etc::PreferencesParts "$a/etc/preferences.d";
		Dir::Etc::Parts "$a/etc/apt.conf.d";
		Dir::State "$a";
		Dir::State::Lists "$a/lists";
		Dir::State::status "$a/status";
		Dir::Cache "$a/cache";
		Dir::Cache::pkgcache "";
		Dir::Cache::srcpkgcache "";
		APT::Architecture "$arch";
		APT::Architectures { "$arch"; };
		Acquire::Languages "none";
		Acquire::Check-Valid-Until "false";
	EOF
	export APT_CONFIG="$a/apt.conf"
}

apt_update() {
	private_apt
	if ! apt-get -q update >"$rt/apt/update.log" 2>&1; then
		say "apt-get update of $mirror $suite failed (log: .runtime/apt/update.log); trying local copies only"
		return 1
	fi
}

# fetch_one downloads one pinned package from the archive, or copies it from the verified folder.
# It prints where the file came from.
fetch_one() {
	local pkg=$1 ver=$2 sum=$3 online=$4 f
	f=$(deb_name "$pkg" "$ver")
	if [ -f "$rt/debs/$f" ] && echo "$sum  $rt/debs/$f" | sha256sum -c --quiet - 2>/dev/null; then
		echo cached; return 0
	fi
	rm -f "$rt/debs/$f"
	if [ "$online" = yes ] && (cd "$rt/debs" && apt-get -q download "$pkg=$ver" >>"$rt/apt/download.log" 2>&1); then
		echo "$sum  $rt/debs/$f" | sha256sum -c --quiet - ||
			die "$f from the archive does not match its sha256 in scripts/runtime.lock"
		echo archive; return 0
	fi
	if [ -f "$shared/$f" ]; then
		(cd "$shared" && grep -F " $f" SHA256SUMS | sha256sum -c --quiet -) ||
			die "$shared/$f does not match $shared/SHA256SUMS"
		echo "$sum  $shared/$f" | sha256sum -c --quiet - ||
			die "$shared/$f does not match its sha256 in scripts/runtime.lock"
		cp "$shared/$f" "$rt/debs/$f"
		echo "verified-copy"; return 0
	fi
	die "the archive no longer serves $pkg $ver and no verified copy was found at $shared.
  What to do: run 'scripts/runtime.sh resolve > lock.new && mv lock.new scripts/runtime.lock' to pin what Debian $suite
  serves today (then 'make runtime'), or point the build at another TensorFlow Lite 2.14 build
  with 'make TFLITE_PREFIX=/path/to/prefix ...' (a prefix holding include/ and lib/)."
}

# The link folder holds only the name go-tflite asks for (-ltensorflowlite_c), so that the link
# step never sees the unpacked glibc and libstdc++: those are used at run time only.
link_dir() {
	local lib="$rt/root/usr/lib/$arch_triplet" so
	so=$(cd "$lib" && ls libtensorflow-lite.so.* 2>/dev/null | sort | head -n1)
	[ -n "$so" ] || die "libtensorflow-lite.so.* not found in $lib after unpacking"
	mkdir -p "$rt/link"
	ln -sfn "$lib/$so" "$rt/link/libtensorflowlite_c.so"
}
arch_triplet=x86_64-linux-gnu

fetch() {
	mkdir -p "$rt"
	local want; want=$(lock_sum)
	if [ -f "$rt/root/.stamp" ] && [ "$(cat "$rt/root/.stamp")" = "$want" ] && [ -e "$rt/link/libtensorflowlite_c.so" ]; then
		say "up to date ($(grep -vc "^#" "$rt/manifest.txt") packages, .runtime/manifest.txt)"
		return 0
	fi
	command -v dpkg >/dev/null || die "dpkg is needed to unpack the runtime"
	mkdir -p "$rt/debs"
	local online=yes
	apt_update || online=no
	local manifest="$rt/manifest.txt.tmp"
	printf '# package version sha256 source (resolved %s)\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$manifest"
	while read -r pkg ver sum; do
		src=$(fetch_one "$pkg" "$ver" "$sum" "$online")
		printf '%s %s %s %s\n' "$pkg" "$ver" "$sum" "$src" >>"$manifest"
		say "$pkg $ver ($src)"
	done < <(lock_entries)
	rm -rf "$rt/root.tmp"
	mkdir -p "$rt/root.tmp"
	while read -r pkg ver _; do
		dpkg -x "$rt/debs/$(deb_name "$pkg" "$ver")" "$rt/root.tmp"
	done < <(lock_entries)
	rm -rf "$rt/root"
	mv "$rt/root.tmp" "$rt/root"
	link_dir
	[ -x "$rt/root/usr/lib/$arch_triplet/ld-linux-x86-64.so.2" ] || die "the unpacked loader is missing"
	mv "$manifest" "$rt/manifest.txt"
	echo "$want" >"$rt/root/.stamp"
	say "ready in .runtime/ (versions in .runtime/manifest.txt)"
}

# resolve prints a lock for what the archive serves today: libtensorflow-lite2.14.1, its -dev
# package and the direct run-time dependencies of the library.
resolve() {
	mkdir -p "$rt"
	apt_update || die "cannot reach $mirror $suite"
	local lib=libtensorflow-lite2.14.1 pkgs
	pkgs=$(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
		--no-replaces --no-enhances "$lib" | awk '/Depends:/ {print $2}' | tr -d '<>' | sort -u)
	printf '# TensorFlow Lite C runtime closure from Debian %s, resolved on %s.\n' "$suite" "$(date -u +%F)"
	printf '# Columns: package version sha256-of-the-.deb\n'
	for p in "$lib" libtensorflow-lite-dev $pkgs; do
		local v s
		v=$(apt-cache policy "$p" | awk '/Candidate:/ {print $2}')
		[ -n "$v" ] && [ "$v" != "(none)" ] || die "$suite has no $p"
		s=$(apt-cache show "$p=$v" | awk '/^SHA256:/ {print $2; exit}')
		printf '%s %s %s\n' "$p" "$v" "$s"
	done
}

case "${1:-fetch}" in
fetch) fetch ;;
resolve) resolve ;;
*) die "usage: $0 [fetch|resolve]" ;;
esac
