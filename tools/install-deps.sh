#!/bin/sh
# install-deps.sh — install the Debian packages ckmon builds and tests with, if missing.
# Runs before `make test` and `make demo`; as root it installs what is missing with
# apt-get, otherwise it only names what to install. FUZZING=1 adds the fuzzing toolchain.
set -e
PACKAGES="gcc make pkg-config libelf-dev libcurl4-openssl-dev libcjson-dev zlib1g-dev
libcmocka-dev python3 python3-pytest python3-numpy python3-torch
musl-tools libcap2-bin dataurl golang-petname
prometheus-pushgateway victoria-metrics influxdb prometheus libmicrohttpd-dev libsnappy-dev
libsystemd-dev libxxhash-dev python3-xxhash libdeflate0 help2man man-db bash-completion curl iproute2
strace valgrind util-linux
python3-sklearn python3-joblib python3-pandas python3-dill python3-h5py
libhdf5-dev libhdf5-103-1 python3-tables python3-onnx python3-lz4 liblzma-dev liblz4-dev
chromium"
# `make fuzz` sets FUZZING=1: clang and libFuzzer only then, not for every `make test`.
[ -n "$FUZZING" ] && PACKAGES="$PACKAGES clang libclang-rt-14-dev"
missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "ckmon: missing Debian packages:$missing (run: sudo apt-get install$missing)" >&2
    exit 1
fi
echo "ckmon: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
