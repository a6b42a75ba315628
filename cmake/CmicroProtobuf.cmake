# cmicro_protobuf_generate(<target> PROTOS <file.proto>...
#                          [IMPORT_DIRS <dir>...] [OUT_DIR <dir>])
#
# Generates protobuf-c messages (x.pb-c.c/.h, protoc-gen-c) and cmicro
# typed stubs (x.micro.c/.h, protoc-gen-cmicro) for each .proto, adds the
# sources to <target>, puts the output directory on its include path and
# links libprotobuf-c. A file's import path is its path relative to the
# first IMPORT_DIRS entry that contains it (default: its own directory),
# so "#include "pkg/x.micro.h"" mirrors "import "pkg/x.proto"". Imported
# .proto files whose code is not built elsewhere (well-known types such as
# google/protobuf/timestamp.proto) must be listed in PROTOS too.
#
#   find_package(cmicro REQUIRED)
#   add_executable(greeter main.c)
#   cmicro_protobuf_generate(greeter PROTOS greeter.proto)
#   target_link_libraries(greeter PRIVATE cmicro::cmicro)
#
# Needs protoc (protobuf-compiler), protoc-gen-c (protobuf-c-compiler) and
# libprotobuf-c-dev; protoc-gen-cmicro is the in-tree target when there is
# one, else the installed program (or CMICRO_PROTOC_GEN_CMICRO).
include_guard(GLOBAL)
set(_cmicro_protobuf_dir ${CMAKE_CURRENT_LIST_DIR})

function(cmicro_protobuf_generate target)
  cmake_parse_arguments(G "" "OUT_DIR" "PROTOS;IMPORT_DIRS" ${ARGN})
  if(NOT G_PROTOS)
    message(FATAL_ERROR "cmicro_protobuf_generate(${target}): no PROTOS")
  endif()
  if(NOT G_OUT_DIR)
    set(G_OUT_DIR ${CMAKE_CURRENT_BINARY_DIR}/${target}_proto)
  endif()
  find_program(CMICRO_PROTOC protoc)
  find_program(CMICRO_PROTOC_GEN_C protoc-gen-c)
  if(NOT CMICRO_PROTOC OR NOT CMICRO_PROTOC_GEN_C)
    message(FATAL_ERROR "cmicro_protobuf_generate needs protoc "
      "(protobuf-compiler) and protoc-gen-c (protobuf-c-compiler)")
  endif()
  if(TARGET protoc-gen-cmicro)
    set(plugin $<TARGET_FILE:protoc-gen-cmicro>)
    set(plugin_dep protoc-gen-cmicro)
  else()
    find_program(CMICRO_PROTOC_GEN_CMICRO protoc-gen-cmicro
      HINTS ${_cmicro_protobuf_dir}/../../../bin)
    if(NOT CMICRO_PROTOC_GEN_CMICRO)
      message(FATAL_ERROR "protoc-gen-cmicro not found: install cmicro or "
        "set CMICRO_PROTOC_GEN_CMICRO")
    endif()
    set(plugin ${CMICRO_PROTOC_GEN_CMICRO})
    set(plugin_dep ${CMICRO_PROTOC_GEN_CMICRO})
  endif()
  if(NOT TARGET PkgConfig::PROTOBUFC)
    find_package(PkgConfig REQUIRED)
    pkg_check_modules(PROTOBUFC REQUIRED IMPORTED_TARGET GLOBAL libprotobuf-c)
  endif()
  # protoc's own well-known types, for imports of google/protobuf/*.proto.
  find_path(CMICRO_PROTOBUF_WKT_DIR google/protobuf/timestamp.proto)

  set(import_args)
  set(roots)
  foreach(d ${G_IMPORT_DIRS})
    get_filename_component(d ${d} ABSOLUTE)
    list(APPEND roots ${d})
    list(APPEND import_args -I ${d})
  endforeach()
  set(srcs)
  foreach(p ${G_PROTOS})
    get_filename_component(abs ${p} ABSOLUTE)
    set(root "")
    foreach(r ${roots})
      string(FIND "${abs}" "${r}/" at)
      if(at EQUAL 0 AND root STREQUAL "")
        set(root ${r})
      endif()
    endforeach()
    set(extra)
    if(root STREQUAL "")
      get_filename_component(root ${abs} DIRECTORY)
      set(extra -I ${root})
    endif()
    file(RELATIVE_PATH rel ${root} ${abs})
    string(REGEX REPLACE "\\.proto$" "" base ${rel})
    set(outs ${G_OUT_DIR}/${base}.pb-c.c ${G_OUT_DIR}/${base}.pb-c.h
             ${G_OUT_DIR}/${base}.micro.c ${G_OUT_DIR}/${base}.micro.h)
    set(wkt)
    if(CMICRO_PROTOBUF_WKT_DIR)
      set(wkt -I ${CMICRO_PROTOBUF_WKT_DIR})
    endif()
    add_custom_command(OUTPUT ${outs}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${G_OUT_DIR}
      COMMAND ${CMICRO_PROTOC} ${extra} ${import_args} ${wkt}
              --plugin=protoc-gen-c=${CMICRO_PROTOC_GEN_C}
              --plugin=protoc-gen-cmicro=${plugin}
              --c_out=${G_OUT_DIR} --cmicro_out=${G_OUT_DIR} ${abs}
      DEPENDS ${abs} ${plugin_dep}
      COMMENT "protoc: ${rel} -> ${base}.pb-c.c, ${base}.micro.c"
      VERBATIM)
    list(APPEND srcs ${G_OUT_DIR}/${base}.pb-c.c ${G_OUT_DIR}/${base}.micro.c)
  endforeach()
  target_sources(${target} PRIVATE ${srcs})
  target_include_directories(${target} PUBLIC ${G_OUT_DIR})
  target_link_libraries(${target} PUBLIC PkgConfig::PROTOBUFC)
endfunction()
