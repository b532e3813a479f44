// The /proc parsers behind the overview's CPU, memory and uptime.
#include "web/system_info.hpp"

#include <catch2/catch.hpp>

TEST_CASE("system_info: the cpu line of /proc/stat", "[web]") {
  const auto t =
      web::parse_proc_stat("cpu  100 20 30 400 50 6 7 8 9 10\ncpu0 1 2 3 4 5 6 7 8 9 10\nintr 1\n");
  REQUIRE(t);
  CHECK(t->total == 100 + 20 + 30 + 400 + 50 + 6 + 7 + 8);
  CHECK(t->busy == 100 + 20 + 30 + 6 + 7 + 8);
  CHECK(web::parse_proc_stat("intr 1\ncpu  1 2 3 4\n"));
  CHECK_FALSE(web::parse_proc_stat(""));
  CHECK_FALSE(web::parse_proc_stat("cpu0 1 2 3 4 5\n"));
  CHECK_FALSE(web::parse_proc_stat("cpu 1 2\n"));
  CHECK_FALSE(web::parse_proc_stat("cpu 1 x 3 4 5\n"));
  CHECK(web::cpu_percent({10, 100}, {60, 200}) == Approx(50.0));
  CHECK(web::cpu_percent({10, 100}, {10, 100}) == 0.0);
  CHECK(web::cpu_percent({10, 100}, {5, 90}) == 0.0);
}

TEST_CASE("system_info: MemTotal and MemAvailable of /proc/meminfo", "[web]") {
  const auto m = web::parse_meminfo(
      "MemTotal:       24684084 kB\nMemFree:        20828744 kB\nMemAvailable:   21226800 kB\n");
  REQUIRE(m);
  CHECK(m->total == 24684084ull * 1024);
  CHECK(m->available == 21226800ull * 1024);
  CHECK_FALSE(web::parse_meminfo("MemTotal: 1 kB\n"));
  CHECK_FALSE(web::parse_meminfo("MemTotal: x kB\nMemAvailable: 1 kB\n"));
}

TEST_CASE("system_info: /proc/uptime in whole seconds", "[web]") {
  CHECK(web::parse_uptime("29390.61 25741.01\n") == 29390);
  CHECK(web::parse_uptime("5 1") == 5);
  CHECK_FALSE(web::parse_uptime(""));
  CHECK_FALSE(web::parse_uptime("-1.0 2"));
  CHECK_FALSE(web::parse_uptime("abc"));
}

TEST_CASE("system_info: this machine's /proc reads", "[web]") {
  CHECK(web::read_cpu_times());
  CHECK(web::read_memory());
  CHECK(web::read_uptime());
  CHECK_FALSE(web::read_hostname().empty());
}
