#!/usr/bin/env bash
# Build checks run by ctest (label "build"):
#   headers  every public header compiles alone as C11 and as C++
#   exports  libcmicro.so exports only micro_* symbols
#   install  cmake --install to a temp prefix; a program links with
#            `pkg-config --cflags --libs cmicro` and runs
#   nats     <nats/nats.h> and <cmicro/micro.h> in one file (name clash)
#   module   libcmicro.so loads neither libnats nor OpenSSL; `cmicro --help`
#            lists the nats broker's options without loading the module;
#            the cmicro CLI loads libcmicro-nats on --broker=nats and a
#            message crosses a real nats-server (77 without nats-server)
set -euo pipefail
check=$1 src=$2 bin=$3
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
case $check in
headers)
  for h in "$src"/include/cmicro/*.h; do
    n=$(basename "$h")
    printf '#include <cmicro/%s>\nint micro_check_%s;\n' "$n" "${n%.h}" > "$tmp/c.c"
    gcc -std=c11 -Wall -Wextra -Wpedantic -Werror -I"$src/include" -c "$tmp/c.c" -o "$tmp/c.o" \
      || { echo "C: $n is not self-contained"; exit 1; }
    cp "$tmp/c.c" "$tmp/c.cc"
    g++ -std=c++17 -Wall -Wextra -Werror -I"$src/include" -c "$tmp/c.cc" -o "$tmp/cc.o" \
      || { echo "C++: $n does not compile"; exit 1; }
  done
  echo "headers: $(ls "$src"/include/cmicro/*.h | wc -l) headers ok in C11 and C++17" ;;
exports)
  # Sanitizer builds add their own markers (__odr_asan.*, __asan_*, ...).
  for lib in libcmicro.so libcmicro-nats.so; do
    [ -f "$bin/$lib" ] || continue
    bad=$(nm -D --defined-only "$bin/$lib" | awk '{print $3}' \
          | grep -v '^micro_' | grep -vE '^(__odr_asan|__asan|__ubsan|__tsan)' || true)
    if [ -n "$bad" ]; then echo "$lib exports not starting micro_:"; echo "$bad"; exit 1; fi
    echo "exports: $lib: $(nm -D --defined-only "$bin/$lib" | wc -l) symbols, all micro_*"
  done
  n=$(nm -D --defined-only "$bin/libcmicro-nats.so" 2>/dev/null | awk '$3 != "micro_broker_nats_ops" && $3 !~ /^__/' | wc -l)
  if [ "$n" != 0 ]; then echo "libcmicro-nats.so exports more than micro_broker_nats_ops"; exit 1; fi ;;
install)
  cmake --install "$bin" --prefix "$tmp/prefix" >/dev/null
  libdir=$(ls -d "$tmp"/prefix/lib*/ | head -1)
  export PKG_CONFIG_PATH="$libdir/pkgconfig"
  cat > "$tmp/app.c" <<'C'
#include <cmicro/micro.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
    micro_error *e = micro_error_new("app", 404, "nope");
    char *j = micro_error_to_json(e);
    int ok = j && strcmp(j, "{\"id\":\"app\",\"code\":404,\"detail\":\"nope\",\"status\":\"Not Found\"}") == 0;
    printf("%s %s\n", micro_version(), j);
    micro_error_free(e);
    free(j);
    return ok ? 0 : 1;
}
C
  # ldd's output is read whole first: "ldd | grep -q" under pipefail fails
  # at random when grep exits early and ldd dies of SIGPIPE, and the app
  # was then linked without the sanitizer the library needs.
  san="" deps=$(ldd "$bin/libcmicro.so")
  grep -q libasan <<<"$deps" && san="-fsanitize=address,undefined"
  grep -q libtsan <<<"$deps" && san="-fsanitize=thread"
  gcc -std=c11 $san "$tmp/app.c" -o "$tmp/app" $(pkg-config --cflags --libs cmicro)
  LD_LIBRARY_PATH="$libdir" "$tmp/app"
  echo "install: pkg-config --libs cmicro = $(pkg-config --libs cmicro)" ;;
nats)
  if [ ! -f /usr/include/nats/nats.h ]; then echo "libnats-dev not installed"; exit 77; fi
  printf '#include <nats/nats.h>\n#include <cmicro/micro.h>\nint main(void){return 0;}\n' > "$tmp/n.c"
  gcc -std=gnu11 -Wall -Werror -I"$src/include" -c "$tmp/n.c" -o "$tmp/n.o"
  echo "nats: nats.h and micro.h coexist" ;;
module)
  # Whole dependency closure: no OpenSSL, libnats or libldns behind
  # libcmicro.so (mDNS uses the in-tree DNS codec; NATS is the module).
  needed=$(ldd "$bin/libcmicro.so" | awk '{print $1}')
  if grep -Eq 'nats|ssl|crypto|ldns' <<<"$needed"; then
    echo "libcmicro.so loads what only the nats module should:"; echo "$needed"; exit 1
  fi
  # The module's options are declared in its row: help needs no dlopen.
  help=$(LD_DEBUG=files "$bin/cmicro" --help 2>"$tmp/ld.log")
  if ! grep -q '^broker nats' <<<"$help" \
     || ! grep -Eq -- '--broker_address +MICRO_BROKER_ADDRESS +string +nats://' <<<"$help"; then
    echo "cmicro --help does not list the nats broker's options:"; echo "$help"; exit 1
  fi
  if grep -q 'libcmicro-nats' "$tmp/ld.log"; then
    echo "cmicro --help loaded libcmicro-nats:"; grep 'libcmicro-nats' "$tmp/ld.log"; exit 1
  fi
  [ -f "$bin/libcmicro-nats.so.0" ] || { echo "libcmicro-nats.so.0 not built"; exit 77; }
  srv=""
  for c in /usr/sbin/nats-server /usr/bin/nats-server /usr/local/bin/nats-server; do
    [ -x "$c" ] && srv=$c && break
  done
  [ -n "$srv" ] || { echo "nats-server not installed"; exit 77; }
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$srv" -a 127.0.0.1 -p "$port" -l "$tmp/nats.log" & npid=$!
  spid=""
  trap 'kill $npid $spid 2>/dev/null || true; rm -rf "$tmp"' EXIT
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
  flags=(--broker=nats --broker_address=nats://127.0.0.1:$port --registry=memory)
  MICRO_REGISTRY=memory "$bin/cmicro" subscribe "${flags[@]}" --count=1 check.module \
    >"$tmp/sub.out" 2>"$tmp/sub.err" & spid=$!
  for _ in $(seq 100); do grep -q 'subscribed to' "$tmp/sub.err" && break; sleep 0.05; done
  grep -q 'subscribed to' "$tmp/sub.err" || { cat "$tmp/sub.err"; exit 1; }
  maps=$(cat /proc/$spid/maps)
  grep -q 'libcmicro-nats.so' <<<"$maps" || { echo "subscriber did not map libcmicro-nats"; exit 1; }
  for _ in $(seq 50); do
    MICRO_REGISTRY=memory "$bin/cmicro" publish "${flags[@]}" check.module '{"n":1}' >/dev/null 2>&1 || true
    kill -0 $spid 2>/dev/null || break
    sleep 0.1
  done
  wait $spid || { echo "subscriber failed"; cat "$tmp/sub.err"; exit 1; }
  grep -q '"n":1' "$tmp/sub.out" || { echo "no message:"; cat "$tmp/sub.out" "$tmp/sub.err"; exit 1; }
  echo "module: libcmicro.so loads $(wc -w <<<"$needed") libraries, no nats/OpenSSL/ldns; --broker=nats loaded libcmicro-nats and delivered" ;;
esac
