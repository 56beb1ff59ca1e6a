# Runs picker-bench briefly against a spawned picker-server and checks that it
# exits 0 and prints a summary QPS line for every mode. Called by CTest with
# -DBENCH=<picker-bench> -DSERVER=<picker-server>.
set(modes unary stream baseline-unary baseline-stream)
string(REPLACE ";" "," mode_list "${modes}")
execute_process(
  COMMAND ${BENCH} --spawn-server ${SERVER} --duration 1 --warmup 0.5
          --concurrency 4 --modes ${mode_list} --targets 10
  OUTPUT_VARIABLE out
  ERROR_VARIABLE err
  RESULT_VARIABLE rc
  TIMEOUT 90)
message("${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "picker-bench exited with ${rc}:\n${err}")
endif()
foreach(mode ${modes})
  string(REPLACE "+" "\\+" pattern "${mode}")
  if(NOT out MATCHES "(^|\n)${pattern} c=4: QPS=[0-9]+\\.[0-9]")
    message(FATAL_ERROR "no QPS line for mode ${mode}:\n${out}\n${err}")
  endif()
endforeach()
if(NOT out MATCHES "ratio unary/baseline-unary = [0-9]")
  message(FATAL_ERROR "no ratio line for unary:\n${out}")
endif()
if(NOT out MATCHES "ratio stream/baseline-stream = [0-9]")
  message(FATAL_ERROR "no ratio line for stream:\n${out}")
endif()
