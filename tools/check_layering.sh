#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Dependencies point one way (DESIGN.md §2):
#   util <- reactor <- http;  util, reactor <- net;  util, reactor <- storage;
#   util, reactor, net, storage <- mirror;  util, reactor <- auth;
#   util, reactor, net <- observe;  util, reactor, http <- ui;
#   registry <- http, storage, mirror, auth, observe, ui
# Fails if a module includes a header from a module it may not use.
set -uo pipefail
cd "$(dirname "$0")/../src"
declare -A allowed=(
  [util]="util"
  [reactor]="util reactor"
  [http]="util reactor http"
  [net]="util reactor net"
  [storage]="util reactor storage"
  [mirror]="util reactor net storage mirror"
  [auth]="util reactor auth"
  [observe]="util reactor net observe"
  [ui]="util reactor http ui"
  [registry]="util reactor http net storage mirror auth observe ui registry"
)
status=0
for mod in "${!allowed[@]}"; do
  while IFS= read -r line; do
    file=${line%%:*}
    inc=$(sed -E 's/.*#include "([^/"]+)\/.*/\1/' <<<"$line")
    [[ "$inc" == *'#include'* ]] && continue # not a module path (e.g. "config.hh")
    if [[ " ${allowed[$mod]} " != *" $inc "* ]]; then
      echo "layering: $file includes $inc/ (allowed: ${allowed[$mod]})"
      status=1
    fi
  done < <(grep -Hn '#include "' "$mod"/*.cc "$mod"/*.hh 2>/dev/null)
done
if ((status == 0)); then
  echo "layering: ok"
fi
exit $status
