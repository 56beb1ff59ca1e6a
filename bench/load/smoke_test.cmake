# Runs picker-bench briefly against a spawned picker-server and checks that it
# exits 0 and prints a summary QPS line for every mode, then a run with
# --admin-phase. Called by CTest with
# -DBENCH=<picker-bench> -DSERVER=<picker-server>.

# Runs picker-bench with a spawned server for 1 s at concurrency 4, on 10
# targets, with the flags given; its output goes to `out` (and the log). A
# non-zero exit fails the test.
function(run_bench)
  execute_process(
    COMMAND ${BENCH} --spawn-server ${SERVER} --duration 1 --warmup 0.5
            --concurrency 4 --targets 10 ${ARGN}
    OUTPUT_VARIABLE bench_out
    ERROR_VARIABLE bench_err
    RESULT_VARIABLE rc
    TIMEOUT 90)
  message("${bench_out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "picker-bench ${ARGN} exited with ${rc}:\n${bench_err}")
  endif()
  set(out "${bench_out}" PARENT_SCOPE)
endfunction()

# Fails the test unless the last run's output matches `pattern`, and hands
# the first capture back as CMAKE_MATCH_1. (A function: a macro would read
# the pattern's backslashes a second time.)
function(require pattern what)
  if(NOT out MATCHES "${pattern}")
    message(FATAL_ERROR "no ${what}:\n${out}")
  endif()
  set(CMAKE_MATCH_1 "${CMAKE_MATCH_1}" PARENT_SCOPE)
endfunction()

set(modes unary stream baseline-unary baseline-stream)
string(REPLACE ";" "," mode_list "${modes}")
run_bench(--modes ${mode_list})
foreach(mode ${modes})
  string(REPLACE "+" "\\+" mode_re "${mode}")
  require("(^|\n)${mode_re} c=4: QPS=[0-9]+\\.[0-9]" "QPS line for mode ${mode}")
endforeach()
require("ratio unary/baseline-unary = [0-9]" "ratio line for unary")
require("ratio stream/baseline-stream = [0-9]" "ratio line for stream")

# --admin-phase: one run measures stream and stream+admin, in alternate
# phases; the writer writes in the writing phases only, so its rate over
# them is the rate asked for (it would be three times it if it also wrote
# in the idle phases and the warmup).
run_bench(--modes stream,stream+admin --mixed-weights --admin-phase 0.25
          --admin-writes-per-sec 50)
require("run 1/1 stream\\+admin c=4 \\(writing phases\\): QPS=[0-9]" "writing-phase line")
require("run 1/1 stream c=4 \\(idle phases\\): QPS=[0-9]" "idle-phase line")
require("\nstream\\+admin c=4: [^\n]* admin ([0-9]+)\\.[0-9] writes/s [^\n]*errors=0"
        "admin figures in the summary")
if(CMAKE_MATCH_1 LESS 30 OR CMAKE_MATCH_1 GREATER 75)
  message(FATAL_ERROR "writes/s over the writing phases is ${CMAKE_MATCH_1}, not about 50:\n${out}")
endif()
require("ratio stream\\+admin/stream pick p99, median of the runs' own = [0-9]" "paired ratio line")
