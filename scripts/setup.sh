#!/usr/bin/env bash
# Installs the Debian packages diffinv's build needs, only when missing.
# Idempotent: a second run does nothing. Says what failed and what to run by
# hand when it cannot install.
set -u
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(libopenblas-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "setup: installing missing Debian packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "setup: FAILED: not root and no sudo; run by hand: apt-get install -y ${missing[*]}" >&2; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -qq "${missing[@]}" >/tmp/diffinv-setup.log 2>&1; then
  # The package lists may be missing or stale on a fresh machine.
  if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${missing[@]}"; } >>/tmp/diffinv-setup.log 2>&1; then
    echo "setup: FAILED to install ${missing[*]} (log: /tmp/diffinv-setup.log)." >&2
    echo "setup: run by hand: apt-get update && apt-get install -y ${missing[*]}" >&2
    tail -5 /tmp/diffinv-setup.log >&2
    exit 1
  fi
fi
echo "setup: installed ${missing[*]}"
