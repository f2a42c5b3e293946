#!/usr/bin/env bash
# Installs the Debian packages media-pipeline builds against and its tests use.
# Safe to run again: apt-get skips what is already there.
set -euo pipefail
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=$(command -v sudo || true)
export DEBIAN_FRONTEND=noninteractive
packages=(
  # build: the C libraries behind the thin C doors
  libvips-dev libmagic-dev libmagic-mgc libssl-dev libcurl4-openssl-dev libarchive-dev libsqlite3-dev libpq-dev libmicrohttpd-dev pkg-config
  # tests and the example course: real files made by real tools
  libvips-tools libimage-exiftool-perl imagemagick ffmpeg icc-profiles-free colord-data libheif-examples zip python3 python3-pip openssl curl postgresql time
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Tests: moto is a real S3 server that checks SigV4 signatures (the R2 sink's tests run against it).
if ! python3 -c 'import moto, boto3, werkzeug' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check 'moto[server]' 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages 'moto[server]'
fi

# Tests: jsonschema checks pipeline.schema.json against the example pipelines, independently of our loader.
if ! python3 -c 'import jsonschema' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check jsonschema 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages jsonschema
fi
