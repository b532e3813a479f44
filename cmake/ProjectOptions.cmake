# Build options shared by every target: language level, warnings, sanitizers, fuzzing.
set(CMAKE_CXX_STANDARD 20)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_CXX_EXTENSIONS OFF)
set(CMAKE_EXPORT_COMPILE_COMMANDS ON)
if(NOT CMAKE_BUILD_TYPE AND NOT CMAKE_CONFIGURATION_TYPES)
  set(CMAKE_BUILD_TYPE RelWithDebInfo CACHE STRING "Build type" FORCE)
endif()

option(APPL_WERROR "Treat warnings as errors" OFF)
option(APPL_SANITIZE "Build with AddressSanitizer and UndefinedBehaviorSanitizer" OFF)
option(APPL_FUZZ "Build the libFuzzer targets (clang only; pure libraries only)" OFF)
option(APPL_BUILD_TESTS "Build the test suites" ON)

add_library(project_options INTERFACE)
target_compile_options(project_options INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
  $<$<BOOL:${APPL_WERROR}>:-Werror>
  # GCC 12 reports Asio's coroutine frames (class-specific operator new paired with the matching
  # sized delete) as mismatched: a known false positive (GCC bug 109224) in every file that uses
  # awaitables. The ASan build still catches real alloc/dealloc mismatches at run time.
  $<$<CXX_COMPILER_ID:GNU>:-Wno-mismatched-new-delete>)

if(APPL_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

if(APPL_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "APPL_FUZZ needs clang (configure with CXX=clang++)")
  endif()
  # Instrument everything for coverage; the fuzzer main is linked into each target only.
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()

find_program(CCACHE_PROGRAM ccache)
if(CCACHE_PROGRAM)
  set(CMAKE_CXX_COMPILER_LAUNCHER ${CCACHE_PROGRAM})
  set(CMAKE_C_COMPILER_LAUNCHER ${CCACHE_PROGRAM})
endif()
