#!/usr/bin/env bash
# Install what is needed, then build and run the test suite in tiers:
#   1. werror: gcc, -Werror, every label (unit, process, interop, bench
#      smoke, build checks);
#   2. asan: the same suite under ASan + UBSan;
#   3. tsan: the concurrency tests under TSan;
#   4. clang: clang 14, -Werror, labels unit and build;
#   5. fuzz: clang with libFuzzer, ASan and UBSan; each fuzz/ target runs
#      for FUZZ_SECONDS (20) on a copy of its seed corpus, JOBS at a time.
#      Any crash, leak, sanitizer report or timeout fails the tier.
# Label netns (tests/netns: three namespaces on a bridge, the CLI on mDNS
# in a private namespace) runs in tiers 1 and 2; it skips (77) when not
# root. Tier 3 runs only the concurrency and process labels, so netns is
# not in it; the summary says so.
# Tiers: TIERS="werror asan tsan clang fuzz" (default all). Each tier's result is
# printed; the script fails if any tier fails.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
scripts/install-deps.sh || exit 1

JOBS=${JOBS:-2}
TIERS=${TIERS:-"werror asan tsan clang fuzz"}
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
status=0
summary=()

tier() { # name, build dir, ctest args, cmake args...
  local name=$1 dir=$2 ctargs=$3; shift 3
  echo "=== tier $name: configure + build ($dir)"
  if ! cmake -S . -B "$dir" -G Ninja -DMICRO_WERROR=ON "$@" >"$dir.cfg.log" 2>&1; then
    cat "$dir.cfg.log"; summary+=("$name: configure FAILED"); status=1; return
  fi
  if ! ninja -C "$dir" -j "$JOBS"; then
    summary+=("$name: build FAILED"); status=1; return
  fi
  echo "=== tier $name: ctest $ctargs"
  if (cd "$dir" && ctest --output-on-failure -j "$JOBS" $ctargs); then
    summary+=("$name: passed")
  else
    summary+=("$name: FAILED"); status=1
  fi
}

# Build the libFuzzer targets (target "fuzzers" only), then run each on a
# scratch copy of its corpus: what a run discovers is not committed.
fuzz_tier() {
  local dir=build-fuzz
  echo "=== tier fuzz: configure + build ($dir)"
  if ! CC=clang cmake -S . -B "$dir" -G Ninja -DMICRO_WERROR=ON \
      -DMICRO_FUZZ=ON -DMICRO_BUILD_BENCH=OFF \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$dir.cfg.log" 2>&1; then
    cat "$dir.cfg.log"; summary+=("fuzz: configure FAILED"); status=1; return
  fi
  if ! ninja -C "$dir" -j "$JOBS" fuzzers; then
    summary+=("fuzz: build FAILED"); status=1; return
  fi
  local work targets=() t failed=() bin=$PWD/$dir/fuzz
  work=$(mktemp -d)
  for t in fuzz/corpus/*/; do
    t=$(basename "$t")
    targets+=("$t")
    mkdir -p "$work/$t"
    cp -r "fuzz/corpus/$t" "$work/$t/corpus"
    echo "=== tier fuzz: fuzz_$t for ${FUZZ_SECONDS}s"
    ( cd "$work/$t" &&
      "$bin/fuzz_$t" -max_total_time="$FUZZ_SECONDS" \
        -timeout=10 -print_final_stats=1 -artifact_prefix="$work/$t/" \
        corpus >log 2>&1
      echo $? >rc ) &
    while (($(jobs -rp | wc -l) >= JOBS)); do wait -n; done
  done
  wait
  for t in "${targets[@]}"; do
    if [ "$(cat "$work/$t/rc" 2>/dev/null)" != 0 ]; then
      failed+=("$t")
      echo "=== tier fuzz: fuzz_$t FAILED; its log ends:"
      tail -n 40 "$work/$t/log"
      ls "$work/$t"/crash-* "$work/$t"/leak-* "$work/$t"/timeout-* \
        "$work/$t"/oom-* 2>/dev/null
    else
      echo "  fuzz_$t: $(grep -m1 -o 'Done [0-9]* runs in [0-9]* second' \
        "$work/$t/log")"
    fi
  done
  if ((${#failed[@]})); then
    summary+=("fuzz: FAILED (${failed[*]}; artifacts kept in $work)")
    status=1
  else
    summary+=("fuzz: passed (${#targets[@]} targets, ${FUZZ_SECONDS}s each)")
    rm -rf "$work"
  fi
}

timings=()
for t in $TIERS; do
  t0=$SECONDS
  case $t in
    werror) tier werror build-ci "" -DCMAKE_BUILD_TYPE=RelWithDebInfo ;;
    asan)   ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            tier asan build-asan "" -DCMAKE_BUILD_TYPE=Debug \
              -DMICRO_SANITIZE=address,undefined ;;
    tsan)   TSAN_OPTIONS="suppressions=$PWD/tests/tsan.supp halt_on_error=1" \
            tier tsan build-tsan "-L concurrency|process" -DCMAKE_BUILD_TYPE=Debug \
              -DMICRO_SANITIZE=thread -DMICRO_BUILD_BENCH=OFF ;;
    clang)  CC=clang tier clang build-clang "-L unit|build" \
              -DCMAKE_BUILD_TYPE=RelWithDebInfo ;;
    fuzz)   fuzz_tier ;;
    *) echo "unknown tier $t"; status=1 ;;
  esac
  timings+=("$t $((SECONDS - t0))s")
done

case " $TIERS " in
  *" tsan "*) summary+=("tsan: label netns not run under TSan (tier runs concurrency|process only)") ;;
esac
case " $TIERS " in
  *" fuzz "*) [ "$(id -u)" -eq 0 ] ||
    summary+=("fuzz: fuzz_mdns ran nothing (needs root for a network namespace)") ;;
esac
echo "=== summary"
printf '  %s\n' "${summary[@]}"
echo "  time: ${timings[*]}"
exit $status
