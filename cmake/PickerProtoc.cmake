# picker_protoc(TARGET <lib> ROOT <import root> OUT <dir> PROTOS <files...>
#               [IMPORTS <dirs...>] [GRPC])
# Runs protoc on each file, naming the outputs by the file's path under ROOT
# (as protoc itself does), and adds the generated sources to <lib>.
# CMake 3.25's protobuf_generate names them relative to the current source
# directory instead, which breaks for protos kept elsewhere (grpc-proto).
function(picker_protoc)
  cmake_parse_arguments(P "GRPC" "TARGET;ROOT;OUT" "PROTOS;IMPORTS" ${ARGN})
  set(include_flags -I${P_ROOT})
  foreach(dir ${P_IMPORTS})
    list(APPEND include_flags -I${dir})
  endforeach()
  foreach(proto ${P_PROTOS})
    file(RELATIVE_PATH rel ${P_ROOT} ${proto})
    string(REGEX REPLACE "\\.proto$" "" stem ${rel})
    set(outputs ${P_OUT}/${stem}.pb.h ${P_OUT}/${stem}.pb.cc)
    set(flags --cpp_out=${P_OUT})
    if(P_GRPC)
      list(APPEND outputs ${P_OUT}/${stem}.grpc.pb.h ${P_OUT}/${stem}.grpc.pb.cc)
      list(APPEND flags --grpc_out=${P_OUT}
           --plugin=protoc-gen-grpc=$<TARGET_FILE:gRPC::grpc_cpp_plugin>)
    endif()
    add_custom_command(
      OUTPUT ${outputs}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${P_OUT}
      COMMAND protobuf::protoc ${flags} ${include_flags} ${proto}
      DEPENDS ${proto} protobuf::protoc
      COMMENT "protoc ${rel}"
      VERBATIM)
    target_sources(${P_TARGET} PRIVATE ${outputs})
  endforeach()
endfunction()
