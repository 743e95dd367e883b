#!/bin/sh
# Installs what bmap-station needs to build and test on Debian 12, with
# apt-get. Run as root (or through sudo). Safe to run again.
set -eu

PACKAGES="
 build-essential cmake pkg-config
 libxml2-dev libssl-dev libcurl4-openssl-dev libzstd-dev libisal-dev zlib1g-dev liblzma-dev liblz4-dev libbz2-dev
 libgpgme-dev gnupg gpgv
 libarchive-dev liblzo2-dev
 libsqlite3-dev libpq-dev postgresql libmicrohttpd-dev libconfig-dev libblkid-dev libudev-dev libsystemd-dev libcmocka-dev
 bmap-tools udev util-linux fdisk gdisk dosfstools e2fsprogs mtools
 zstd gzip xz-utils bzip2 lz4 lzop zip unzip sqlite3 time bc
 dpkg-dev systemd openssl python3 python3-prometheus-client tmux valgrind strace
 scdoc man-db
 qemu-utils android-sdk-libsparse-utils
 nginx-light curl
 chromium python3-websocket
"

missing=""
for p in $PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "install-deps: these packages are missing:$missing" >&2
	echo "install-deps: run as root (sudo $0) to install them" >&2
	exit 1
fi
echo "install-deps: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
