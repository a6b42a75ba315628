#!/usr/bin/env bash
# Install what is needed, then build and run the whole test suite twice:
#   1. gcc, -Werror, every label (unit, process, interop, bench smoke, build
#      checks);
#   2. the same suite under ASan + UBSan;
#   3. the concurrency tests under TSan.
# Label netns (tests/netns: three namespaces on a bridge, the CLI on mDNS
# in a private namespace) runs in tiers 1 and 2; it skips (77) when not
# root. Tier 3 runs only the concurrency and process labels, so netns is
# not in it; the summary says so.
# Tiers: TIERS="werror asan tsan" (default all). Each tier's result is
# printed; the script fails if any tier fails.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
scripts/install-deps.sh || exit 1

JOBS=${JOBS:-2}
TIERS=${TIERS:-"werror asan tsan"}
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

for t in $TIERS; do
  case $t in
    werror) tier werror build-ci "" -DCMAKE_BUILD_TYPE=RelWithDebInfo ;;
    asan)   ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            tier asan build-asan "" -DCMAKE_BUILD_TYPE=Debug \
              -DMICRO_SANITIZE=address,undefined ;;
    tsan)   TSAN_OPTIONS="suppressions=$PWD/tests/tsan.supp halt_on_error=1" \
            tier tsan build-tsan "-L concurrency|process" -DCMAKE_BUILD_TYPE=Debug \
              -DMICRO_SANITIZE=thread -DMICRO_BUILD_BENCH=OFF ;;
    *) echo "unknown tier $t"; status=1 ;;
  esac
done

case " $TIERS " in
  *" tsan "*) summary+=("tsan: label netns not run under TSan (tier runs concurrency|process only)") ;;
esac
echo "=== summary"
printf '  %s\n' "${summary[@]}"
exit $status
