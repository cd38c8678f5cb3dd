# Bad input to examples/char_gpt: each case must fail with its exit code and a message that names
# what is wrong, before any training. Run as: cmake -DEXE=char_gpt -DWORK=dir -P char_gpt_errors.cmake
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}/emptydir")
file(WRITE "${WORK}/empty.txt" "")
file(WRITE "${WORK}/short.txt" "abc\n")

function(expect_failure code pattern)
  execute_process(COMMAND "${EXE}" ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL code)
    message(FATAL_ERROR "char_gpt ${ARGN}: exit code ${rc}, expected ${code}\n${out}${err}")
  endif()
  if(NOT err MATCHES "${pattern}")
    message(FATAL_ERROR "char_gpt ${ARGN}: the message does not say '${pattern}':\n${err}")
  endif()
endfunction()

expect_failure(1 "empty.txt.*no text" --data "${WORK}/empty.txt" --iters 1)
expect_failure(1 "emptydir.*no text files" --data "${WORK}/emptydir" --iters 1)
expect_failure(1 "4 bytes.*--block-size" --data "${WORK}/short.txt" --iters 1)
expect_failure(4 "does not exist" --data "${WORK}/missing.txt" --iters 1)
expect_failure(2 "multiple of --n-head" --data "${WORK}/short.txt" --n-embd 30 --n-head 4)
expect_failure(2 "unknown option" --data "${WORK}/short.txt" --frobnicate 1)
expect_failure(1 "never uses" --data /usr/share/common-licenses/GPL-3 --iters 0 --eval-iters 1 --n-layer 1
               --n-embd 8 --block-size 8 --sample 5 --prompt "\t~")
