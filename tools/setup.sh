#!/usr/bin/env bash
# One-time set-up on a fresh Debian/Ubuntu machine: system packages, then npm packages
# (npm ci also builds the mbedTLS DTLS addon through binding.gyp).
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS="libmbedtls-dev libcoap3-bin openssl make g++ python3 mosquitto-clients python3-paho-mqtt"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing$missing"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends $missing
fi
npm ci
