#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs everything ringport needs on Debian 12 (as root) and builds it.
#   tools/setup.sh          build packages + release build (build/release)
#   tools/setup.sh --tests  also the packages the tests use and the ASan build (build/debug)
# Idempotent: apt-get install skips what is there; meson reuses its build trees.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_PKGS=(
  clang libclang-rt-14-dev clang-format clang-tidy meson ninja-build pkg-config
  liburing-dev libsimdjson-dev libssl-dev libxxhash-dev libcurl4-openssl-dev
  libtomlplusplus-dev doctest-dev node-llhttp
  publicsuffix             # read at start: where a mirror's credentials may go
)
TEST_PKGS=(
  python3 python3-pytest python3-jsonschema curl
  docker-registry          # CNCF Distribution 2.8.2: interop peer and benchmark reference
  skopeo podman conmon runc containerd docker.io busybox-static
  openssl                  # test CAs (TLS listeners and upstreams)
  apache2-utils            # htpasswd: files made the way Distribution documents
  prometheus               # promtool checks /metrics
  chromium fonts-liberation # the web UI's browser tests (tests/browser, playwright-core)
)

tests=0
if [[ "${1:-}" == "--tests" ]]; then
  tests=1
fi
pkgs=("${BUILD_PKGS[@]}")
if ((tests)); then
  pkgs+=("${TEST_PKGS[@]}")
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null

# clang builds everything: GCC 12 miscompiles coroutine temporaries (a
# std::string relocated bitwise inside a co_await, caught by ASan), see
# docs/architecture.md.
if [[ ! -f build/release/build.ninja ]]; then
  CC=clang CXX=clang++ meson setup build/release --buildtype=debugoptimized >/dev/null
fi
ninja -C build/release >/dev/null
if ((tests)); then
  # The browser tests' driver and checker, from the npm registry at the
  # versions package-lock.json pins. Node.js and npm come from Debian when
  # the machine has none.
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error >/dev/null
fi
if ((tests)); then
  # The ASan tree is a unity build (8 files per compile): it builds in 60 %
  # of the time (2m23 against 3m56 on 2 cores). The release tree is not:
  # clang-tidy reads its compile commands file by file.
  if [[ ! -f build/debug/build.ninja ]]; then
    CC=clang CXX=clang++ meson setup build/debug --buildtype=debug \
      -Db_sanitize=address,undefined -Db_lundef=false -Dunity=on -Dunity_size=8 >/dev/null
  fi
  ninja -C build/debug >/dev/null
fi
echo "ringport built: build/release/src/ringport"
