# Test protos (tests/codec/proto) built with cmicro_protobuf_generate, as a
# user's project would; the generated stubs compile with our warnings.
find_path(CMICRO_PROTOBUF_WKT_DIR google/protobuf/timestamp.proto REQUIRED)
set(MICRO_WKT_PROTOS)
foreach(w duration empty field_mask struct timestamp wrappers)
  list(APPEND MICRO_WKT_PROTOS
    ${CMICRO_PROTOBUF_WKT_DIR}/google/protobuf/${w}.proto)
endforeach()
add_library(micro_test_proto STATIC ${CMAKE_CURRENT_LIST_DIR}/proto/empty.c)
cmicro_protobuf_generate(micro_test_proto
  IMPORT_DIRS ${CMAKE_CURRENT_LIST_DIR}/proto ${CMICRO_PROTOBUF_WKT_DIR}
  PROTOS ${CMAKE_CURRENT_LIST_DIR}/proto/kitchen.proto
         ${CMAKE_CURRENT_LIST_DIR}/proto/legacy.proto
         ${CMAKE_CURRENT_LIST_DIR}/proto/common/other.proto
         ${MICRO_WKT_PROTOS})
target_compile_options(micro_test_proto PRIVATE ${MICRO_WARNINGS})
target_link_libraries(micro_test_proto PUBLIC cmicro_static)
foreach(t codec_proto codec_protorpc codec_grpc codec_pbjson codec_protogen
          codec_protofuzz codec_oom core_abi)
  if(TARGET test_${t})
    target_link_libraries(test_${t} PRIVATE micro_test_proto)
  endif()
endforeach()
target_compile_definitions(micro_test_support PUBLIC
  MICRO_PROTO_GOLDEN_DIR="${CMAKE_CURRENT_LIST_DIR}/golden")
# For the Go interop test: JSON <-> protobuf through pbjson, on stdin/out.
add_executable(cmicro-pbjson-tool ${CMAKE_CURRENT_LIST_DIR}/pbjson_tool.c)
target_compile_options(cmicro-pbjson-tool PRIVATE ${MICRO_WARNINGS})
target_link_libraries(cmicro-pbjson-tool PRIVATE micro_test_proto)
set_target_properties(cmicro-pbjson-tool PROPERTIES
  RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
