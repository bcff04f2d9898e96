#!/usr/bin/env bash
# Installs the system programs the test suite runs for real: an OpenSSH server
# (SFTP tests), PostgreSQL (SQL source/destination tests), openssl (test
# certificates) and Chromium (the dashboard's real-browser tests, headless).
# Debian packages;
# needs root. Does nothing when they are already there.
set -euo pipefail
missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v initdb >/dev/null 2>&1 || [ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "test-deps: missing ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
