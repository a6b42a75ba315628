# test_codec_dynpb: descriptors built at run time (src/codec/dynpb.c) from
# descriptor sets that protoc writes at build time, checked against the
# protobuf-c code generated for the same protos (micro_test_proto).
set(dynpb_dir ${CMAKE_CURRENT_BINARY_DIR}/dynpb)
set(dynpb_full ${dynpb_dir}/kitchen.desc)
set(dynpb_noimp ${dynpb_dir}/kitchen-noimports.desc)
set(dynpb_inc -I ${CMAKE_CURRENT_LIST_DIR}/proto -I ${CMICRO_PROTOBUF_WKT_DIR})
add_custom_command(
  OUTPUT ${dynpb_full} ${dynpb_noimp}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${dynpb_dir}
  COMMAND ${MICRO_PROTOC} ${dynpb_inc} --include_imports
          --descriptor_set_out=${dynpb_full} kitchen.proto legacy.proto
  COMMAND ${MICRO_PROTOC} ${dynpb_inc}
          --descriptor_set_out=${dynpb_noimp} kitchen.proto
  DEPENDS ${CMAKE_CURRENT_LIST_DIR}/proto/kitchen.proto
          ${CMAKE_CURRENT_LIST_DIR}/proto/legacy.proto
          ${CMAKE_CURRENT_LIST_DIR}/proto/common/other.proto
  COMMENT "protoc: descriptor sets for test_codec_dynpb")
add_custom_target(micro_dynpb_desc DEPENDS ${dynpb_full} ${dynpb_noimp})
if(TARGET test_codec_dynpb)
  add_dependencies(test_codec_dynpb micro_dynpb_desc)
  target_link_libraries(test_codec_dynpb PRIVATE micro_test_proto)
  target_compile_definitions(test_codec_dynpb PRIVATE
    MICRO_DYNPB_DESC="${dynpb_full}"
    MICRO_DYNPB_DESC_NOIMP="${dynpb_noimp}")
endif()
