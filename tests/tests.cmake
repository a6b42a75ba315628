# Every tests/<dir>/<name>_test.c is a test "<dir>_<name>", label unit,
# timeout 60 s, unless listed below as "path:label|label...:timeout".
file(GLOB MICRO_TEST_FILES RELATIVE ${CMAKE_CURRENT_SOURCE_DIR}
  ${CMAKE_CURRENT_SOURCE_DIR}/*/*_test.c)
set(MICRO_TEST_SPECIAL
  "server/process:process:180"
  "transport/badinput:unit:120"
  "transport/hostile:unit|concurrency:300"
  "io/tls:unit|concurrency:180"
  "server/shutdown:unit|concurrency:180"
  "core/loop:unit|concurrency:60"
  "transport/http_async:unit|concurrency:60"
  "client/async:unit|concurrency:120"
  "client/stream:unit|concurrency:180"
  "service/service:unit|concurrency:60"
  "broker/broker:unit|concurrency:120"
  "broker/http:unit|concurrency:180"
  "broker/http_tls:unit|concurrency:180"
  "http/client:unit|concurrency:60"
  "http/server:unit|concurrency:60"
  "http/h2:unit|concurrency:300"
  "server/grpc:unit|concurrency:120"
  "server/grpc_tls:unit|concurrency:180"
  "broker/nats:server|concurrency:180"
  "server/subscriber:unit|concurrency:60"
  "registry/watch:unit|concurrency:60"
  "registry/etcd:server|etcd|concurrency:300"
  "registry/etcd_tls:server|etcd:300"
  "registry/consul:server|consul|concurrency:600"
  "registry/consul_tls:server|consul:300"
)
foreach(f ${MICRO_TEST_FILES})
  string(REGEX REPLACE "_test\\.c$" "" p ${f})
  set(labels unit)
  set(timeout 60)
  foreach(s ${MICRO_TEST_SPECIAL})
    string(REPLACE ":" ";" parts "${s}")
    list(GET parts 0 sp)
    if(sp STREQUAL p)
      list(GET parts 1 l)
      string(REPLACE "|" ";" labels "${l}")
      list(GET parts 2 timeout)
    endif()
  endforeach()
  micro_test(${p} LABELS ${labels} TIMEOUT ${timeout})
endforeach()
