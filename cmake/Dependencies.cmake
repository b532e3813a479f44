# Third-party libraries, all from Debian 12 packages installed by scripts/setup.sh.
find_package(Boost 1.81 REQUIRED COMPONENTS json)
find_package(fmt REQUIRED)
find_package(pugixml REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(MNL REQUIRED IMPORTED_TARGET libmnl)
pkg_check_modules(CRYPTOPP REQUIRED IMPORTED_TARGET libcrypto++)
pkg_check_modules(SQLITE3 REQUIRED IMPORTED_TARGET sqlite3)
find_package(Threads REQUIRED)
# The dashboard's HTTPS (web/).
find_package(OpenSSL REQUIRED)
# The TEP's tc-BPF fast path (tep/bpf): libbpf, and clang + bpftool to build its BPF object and
# skeleton (not in the fuzz build, which leaves the Linux layer out).
if(NOT APPL_FUZZ)
  pkg_check_modules(LIBBPF REQUIRED IMPORTED_TARGET libbpf)
  find_program(APPL_BPF_CLANG NAMES clang clang-14 REQUIRED)
  find_program(APPL_BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)
endif()
if(APPL_BUILD_TESTS)
  find_package(Catch2 2 REQUIRED)
  include(Catch)
endif()
