# tests/train/reproduce.cmake — runs an MNIST example (EXE: mnist_mlp or mnist_cnn) on a small subset and checks:
#   - the same seed gives the same per-epoch losses and accuracies on a rerun;
#   - --resume from the checkpoint written after epoch 1 reproduces epochs 2 and 3 exactly;
#   - a missing dataset directory, a truncated checkpoint and another optimizer's checkpoint each
#     end with a message naming the path and what is wrong; a failed save changes nothing.
# Usage: cmake -DEXE=... -DWORK=... -P reproduce.cmake  (no dataset: prints 'skipped', exits 0)
cmake_minimum_required(VERSION 3.25)
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
set(common --epochs 3 --train-limit 3000 --test-limit 1000 --batch 64)

function(run out_var)
  execute_process(COMMAND ${EXE} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(${out_var} "${rc}|${out}${err}" PARENT_SCOPE)
endfunction()

# The metrics of a CSV without its timing columns.
function(metrics csv out_var)
  file(STRINGS "${csv}" lines)
  set(result "")
  foreach(line IN LISTS lines)
    string(REGEX REPLACE "^([^,]*,[^,]*,[^,]*,[^,]*),.*$" "\\1" kept "${line}")
    list(APPEND result "${kept}")
  endforeach()
  set(${out_var} "${result}" PARENT_SCOPE)
endfunction()

function(expect_ok what result)
  if(NOT result MATCHES "^0\\|")
    message(FATAL_ERROR "${what} failed:\n${result}")
  endif()
endfunction()

run(r ${common} --csv ${WORK}/a.csv)
if(r MATCHES "^4\\|")
  message("no dataset found: skipped")  # the test's SKIP_REGULAR_EXPRESSION
  return()
endif()
expect_ok("run a" "${r}")
run(r ${common} --csv ${WORK}/b.csv)
expect_ok("run b" "${r}")
metrics(${WORK}/a.csv a)
metrics(${WORK}/b.csv b)
if(NOT a STREQUAL b)
  message(FATAL_ERROR "a rerun with the same seed differs:\n${a}\n${b}")
endif()

run(r ${common} --stop-after 1 --save ${WORK}/epoch1.fgck)
expect_ok("run to epoch 1" "${r}")
run(r ${common} --resume ${WORK}/epoch1.fgck --csv ${WORK}/c.csv)
expect_ok("resumed run" "${r}")
metrics(${WORK}/c.csv c)
list(REMOVE_AT a 1)  # the header stays, epoch 1 goes
if(NOT a STREQUAL c)
  message(FATAL_ERROR "--resume does not reproduce epochs 2 and 3:\n${a}\n${c}")
endif()

run(r --data ${WORK}/nowhere)
if(NOT r MATCHES "^4\\|" OR NOT r MATCHES "nowhere" OR NOT r MATCHES "apt-get install dataset-fashion-mnist")
  message(FATAL_ERROR "a missing dataset should say where it looked and how to get data:\n${r}")
endif()

execute_process(COMMAND ${CMAKE_COMMAND} -E copy ${WORK}/epoch1.fgck ${WORK}/corrupt.fgck)
file(SIZE ${WORK}/epoch1.fgck size)
math(EXPR cut "${size} / 2")
execute_process(COMMAND truncate -s ${cut} ${WORK}/corrupt.fgck)
run(r ${common} --resume ${WORK}/corrupt.fgck)
if(NOT r MATCHES "^1\\|" OR NOT r MATCHES "corrupt.fgck")
  message(FATAL_ERROR "a truncated checkpoint should be an error naming the file:\n${r}")
endif()

run(r ${common} --optimizer sgd --resume ${WORK}/epoch1.fgck)
if(NOT r MATCHES "^1\\|" OR NOT r MATCHES "epoch1.fgck" OR NOT r MATCHES "adam")
  message(FATAL_ERROR "resuming an Adam checkpoint with SGD should say so:\n${r}")
endif()
file(SHA256 ${WORK}/epoch1.fgck before)
run(r ${common} --save ${WORK}/nodir/x.fgck)
file(SHA256 ${WORK}/epoch1.fgck after)
if(NOT r MATCHES "^1\\|" OR NOT before STREQUAL after)
  message(FATAL_ERROR "a save into a missing directory should fail cleanly:\n${r}")
endif()
message("reproduce: reruns and resumed runs match; bad inputs are reported")
