# cmake -DMODE=subdirectory|fetchcontent|package -DSOURCE_DIR=... -DWORK_DIR=... -P run.cmake
# Builds tests/consumer against fusegrad in MODE and runs its quick-start program.
file(REMOVE_RECURSE "${WORK_DIR}")
set(gen)
if(GENERATOR)
  set(gen -G "${GENERATOR}")
endif()
set(extra)
if(MODE STREQUAL "package")
  execute_process(COMMAND ${CMAKE_COMMAND} ${gen} -S "${SOURCE_DIR}" -B "${WORK_DIR}/fusegrad-build"
                          -DFUSEGRAD_BUILD_TESTS=OFF -DFUSEGRAD_BUILD_EXAMPLES=OFF
                          -DFUSEGRAD_BUILD_BENCH=OFF -DFUSEGRAD_INSTALL=ON
                          -DCMAKE_INSTALL_PREFIX=${WORK_DIR}/prefix COMMAND_ERROR_IS_FATAL ANY)
  execute_process(COMMAND ${CMAKE_COMMAND} --install "${WORK_DIR}/fusegrad-build" COMMAND_ERROR_IS_FATAL ANY)
  list(APPEND extra -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
elseif(MODE STREQUAL "fetchcontent")
  execute_process(COMMAND git -C "${SOURCE_DIR}" rev-parse HEAD OUTPUT_VARIABLE tag
                  OUTPUT_STRIP_TRAILING_WHITESPACE COMMAND_ERROR_IS_FATAL ANY)
  list(APPEND extra -DFUSEGRAD_GIT_TAG=${tag})
endif()
execute_process(COMMAND ${CMAKE_COMMAND} ${gen} -S "${SOURCE_DIR}/tests/consumer" -B "${WORK_DIR}/build"
                        -DFUSEGRAD_MODE=${MODE} -DFUSEGRAD_SOURCE_DIR=${SOURCE_DIR}
                        -DCMAKE_BUILD_TYPE=Release ${extra} COMMAND_ERROR_IS_FATAL ANY)
execute_process(COMMAND ${CMAKE_COMMAND} --build "${WORK_DIR}/build" COMMAND_ERROR_IS_FATAL ANY)
execute_process(COMMAND "${WORK_DIR}/build/quickstart" COMMAND_ERROR_IS_FATAL ANY)
message(STATUS "consumer (${MODE}): built and ran the quick-start example")
