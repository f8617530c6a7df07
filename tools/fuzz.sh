#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the libFuzzer targets in build/fuzz, replays every committed corpus
# (and tests/fuzz/regressions/<target>/), then fuzzes each target for a bounded
# time. New inputs and crash files go to a scratch directory, never into the
# committed corpus. Exit status is non-zero if any replay or fuzz run fails.
#
#   tools/fuzz.sh [SECONDS] [--junit FILE] [--scratch DIR] [--build-only]
#     SECONDS    fuzzing time per target (default 20; 0 = replay only)
#     --build-only  configure and build the targets, run nothing
#     --junit    write a JUnit report: one testcase per target per phase
#     --scratch  where fuzzing writes (default build/fuzz/scratch, emptied first)
#
# A crash prints the file to reproduce it with:
#   build/fuzz/tests/fuzz/<target> <crash-file>
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
root=$PWD
build=$root/build/fuzz
seconds=20
junit=
scratch=$build/scratch
build_only=0

while (($#)); do
  case $1 in
    --junit) junit=$(realpath -m "$2"); shift 2 ;;
    --scratch) scratch=$(realpath -m "$2"); shift 2 ;;
    --build-only) build_only=1; shift ;;
    -h|--help) sed -n 3,16p "$0"; exit 0 ;;
    *[!0-9]*|'') echo "fuzz.sh: unknown argument: $1" >&2; exit 2 ;;
    *) seconds=$1; shift ;;
  esac
done

targets=(fuzz_http_request fuzz_manifest fuzz_digest fuzz_range fuzz_auth)
declare -A max_len=([fuzz_http_request]=16384 [fuzz_manifest]=16384
                    [fuzz_digest]=1024 [fuzz_range]=256 [fuzz_auth]=4096)

# The report .ci/run counts: one testcase per (phase, target) row of $cases.
write_junit() {
  [[ -n $junit ]] || return 0
  mkdir -p "$(dirname "$junit")"
  python3 - "$cases" "$junit" <<'PY'
import sys
from xml.sax.saxutils import escape, quoteattr
cases_path, out = sys.argv[1:3]
rows = [l.rstrip("\n").split("\t") for l in open(cases_path) if l.strip()]
cases, failures = [], 0
for phase, target, rc, secs, log in rows:
    body = ""
    if rc != "0":
        failures += 1
        tail = open(log, errors="replace").read()[-4000:]
        msg = quoteattr(f"exit status {rc}, log {log}")
        body = f"<failure message={msg}>{escape(tail)}</failure>"
    cases.append(f'<testcase classname="fuzz.{phase}" name={quoteattr(target)} time="{secs}">'
                 f'{body}</testcase>')
open(out, "w").write(f'<testsuite name="fuzz" tests="{len(cases)}" failures="{failures}">'
                     + "".join(cases) + "</testsuite>\n")
PY
}

mkdir -p "$build"
cases=$build/fuzz-cases.tsv # phase, target, exit status, seconds, log
: >"$cases"
build_failed() { # message
  echo "fuzz.sh: $1" >&2
  printf 'build\tfuzz_targets\t1\t0\t%s\n' "$build/fuzz-build.log" >>"$cases"
  write_junit
  exit 1
}

# Coverage for the libraries comes from the project-wide fuzzer-no-link; clang
# 14 cannot build coroutines with fuzzer plus -fsanitize=function.
if [[ ! -f $build/build.ninja ]]; then
  CC=clang CXX=clang++ meson setup "$build" -Dfuzz=true -Dbench=false \
    -Db_sanitize=address,undefined -Db_lundef=false --buildtype=debugoptimized \
    "-Dcpp_args=-fsanitize=fuzzer-no-link -fno-sanitize=function" \
    "-Dc_args=-fsanitize=fuzzer-no-link" >"$build/fuzz-build.log" 2>&1 ||
    build_failed "meson setup failed: $(tail -3 "$build/fuzz-build.log")"
fi
if ! ninja -C "$build" "${targets[@]/#/tests/fuzz/}" >"$build/fuzz-build.log" 2>&1; then
  tail -40 "$build/fuzz-build.log"
  build_failed "build failed (is build/fuzz configured with -Dfuzz=true?)"
fi
((build_only)) && exit 0

rm -rf "$scratch"
mkdir -p "$scratch"
export ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
failed=0

run_case() { # phase target log command...
  local phase=$1 target=$2 log=$3 t0=$SECONDS rc
  shift 3
  "$@" >"$log" 2>&1
  rc=$?
  printf '%s\t%s\t%s\t%s\t%s\n' "$phase" "$target" "$rc" "$((SECONDS - t0))" "$log" >>"$cases"
  if ((rc != 0)); then
    failed=1
    echo "FAILED $phase $target (exit $rc), log: $log"
    grep -E 'property failed|ERROR|SUMMARY|Test unit written|runtime error' "$log" | head -8
  else
    echo "ok     $phase $target ($(grep -Eo 'cov: [0-9]+' "$log" | tail -1))"
  fi
}

for t in "${targets[@]}"; do
  exe=$build/tests/fuzz/$t
  dirs=("$root/tests/fuzz/corpus/$t")
  if [[ -d $root/tests/fuzz/regressions/$t ]]; then
    dirs+=("$root/tests/fuzz/regressions/$t")
  fi
  mkdir -p "$scratch/replay/$t"
  run_case replay "$t" "$scratch/replay-$t.log" timeout 300 "$exe" -runs=0 \
    -artifact_prefix="$scratch/replay/$t/" "${dirs[@]}"
done

if ((seconds > 0)); then
  for t in "${targets[@]}"; do
    exe=$build/tests/fuzz/$t
    # Fuzz a copy: libFuzzer adds (and reduces) files in its first corpus dir.
    mkdir -p "$scratch/corpus/$t" "$scratch/crashes/$t"
    cp -r "$root/tests/fuzz/corpus/$t/." "$scratch/corpus/$t/"
    run_case fuzz "$t" "$scratch/fuzz-$t.log" timeout $((seconds + 120)) "$exe" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="${max_len[$t]}" \
      -dict="$root/tests/fuzz/http.dict" -print_final_stats=1 \
      -artifact_prefix="$scratch/crashes/$t/" "$scratch/corpus/$t"
  done
fi

write_junit

if ((failed)); then
  echo "fuzz.sh: failures; crash inputs are under $scratch/{replay,crashes}/"
  exit 1
fi
echo "fuzz.sh: all replays and fuzz runs passed"
