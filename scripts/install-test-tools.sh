#!/usr/bin/env bash
# Debian packages some tests drive for real: Prometheus (the dashboards' PromQL is evaluated by
# it) and Chromium (the feedback page is clicked in it). Installed only when missing and
# apt-get is usable; otherwise those tests are skipped with a message saying why.
set -euo pipefail
missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "note: no apt-get; tests needing ${missing[*]} will be skipped" >&2
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "note: not root and no sudo; tests needing ${missing[*]} will be skipped" >&2
        exit 0
    fi
    sudo="sudo"
fi
echo "installing ${missing[*]} (Debian packages, for the test suite)" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
