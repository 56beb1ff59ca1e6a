# Runs picker-bench briefly against a spawned picker-server and checks that it
# exits 0 and prints a summary QPS line for every mode, then a run with
# --admin-phase. Called by CTest with
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

# --admin-phase: one run measures stream and stream+admin, in alternate
# phases; the writer writes in the writing phases only, so its rate over
# them is the rate asked for (it would be three times it if it also wrote
# in the idle phases and the warmup).
execute_process(
  COMMAND ${BENCH} --spawn-server ${SERVER} --duration 1 --warmup 0.5
          --concurrency 4 --modes stream,stream+admin --mixed-weights --targets 10
          --admin-phase 0.25 --admin-writes-per-sec 50
  OUTPUT_VARIABLE out
  ERROR_VARIABLE err
  RESULT_VARIABLE rc
  TIMEOUT 90)
message("${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "picker-bench --admin-phase exited with ${rc}:\n${err}")
endif()
if(NOT out MATCHES "run 1/1 stream\\+admin c=4 \\(writing phases\\): QPS=[0-9]")
  message(FATAL_ERROR "no writing-phase line:\n${out}")
endif()
if(NOT out MATCHES "run 1/1 stream c=4 \\(idle phases\\): QPS=[0-9]")
  message(FATAL_ERROR "no idle-phase line:\n${out}")
endif()
if(NOT out MATCHES "\nstream\\+admin c=4: [^\n]* admin ([0-9]+)\\.[0-9] writes/s [^\n]*errors=0")
  message(FATAL_ERROR "no admin figures in the summary:\n${out}")
endif()
if(CMAKE_MATCH_1 LESS 30 OR CMAKE_MATCH_1 GREATER 75)
  message(FATAL_ERROR "writes/s over the writing phases is ${CMAKE_MATCH_1}, not about 50:\n${out}")
endif()
if(NOT out MATCHES "ratio stream\\+admin/stream pick p99, median of the runs' own = [0-9]")
  message(FATAL_ERROR "no paired ratio line:\n${out}")
endif()
