// Tests for fwimage/slots.hpp: the boot loader's choice and the upgrade steps, through whole
// upgrade stories, and the state's place in the GRUB environment.
#include "fwimage/slots.hpp"

#include <catch2/catch.hpp>

using namespace fwimage;

TEST_CASE("slots: a fresh box boots A and keeps booting it once marked good", "[fwimage]") {
  BootState s;
  CHECK(choose_slot(s) == Slot::A);
  CHECK(s.is_tried(Slot::A));
  mark_good(s, Slot::A);
  CHECK(choose_slot(s) == Slot::A);
}

TEST_CASE("slots: an upgrade boots the new slot once and stays there when it is good",
          "[fwimage]") {
  BootState s;
  (void)choose_slot(s);
  mark_good(s, Slot::A);
  begin_install(s, Slot::B);
  CHECK_FALSE(s.is_ok(Slot::B));
  CHECK(choose_slot(s) == Slot::A);  // a power cut while B is written: A again
  mark_good(s, Slot::A);
  finish_install(s, Slot::B);
  CHECK(choose_slot(s) == Slot::B);
  mark_good(s, Slot::B);
  CHECK(choose_slot(s) == Slot::B);
  CHECK(s.order[0] == Slot::B);
}

TEST_CASE("slots: a new system that never marks itself good falls back to the old one",
          "[fwimage]") {
  BootState s;
  (void)choose_slot(s);
  mark_good(s, Slot::A);
  finish_install(s, Slot::B);
  CHECK(choose_slot(s) == Slot::B);  // tried, its daemons fail, it reboots
  CHECK(choose_slot(s) == Slot::A);
  mark_good(s, Slot::A);
  CHECK(choose_slot(s) == Slot::A);  // and stays: B is still tried
}

TEST_CASE("slots: with both slots failed the first ok one boots and with none A", "[fwimage]") {
  BootState s;
  s.ok = {true, true};
  s.tried = {true, true};
  s.order = {Slot::B, Slot::A};
  CHECK(choose_slot(s) == Slot::B);
  s.ok = {false, false};
  CHECK(choose_slot(s) == Slot::A);
}

TEST_CASE("slots: the state lives in five environment variables next to others", "[fwimage]") {
  Environment env{{"saved_entry", "x"}};
  BootState s;
  s.order = {Slot::B, Slot::A};
  s.ok = {true, false};
  s.tried = {false, true};
  store(s, env);
  CHECK(env == Environment{{"saved_entry", "x"},
                           {"ORDER", "B A"},
                           {"A_OK", "1"},
                           {"A_TRY", "0"},
                           {"B_OK", "0"},
                           {"B_TRY", "1"}});
  const auto back = boot_state_from(env);
  REQUIRE(back);
  CHECK(*back == s);

  auto broken = env;
  set(broken, "ORDER", "A A");
  CHECK(boot_state_from(broken).error().code == Errc::BadEnvironment);
  broken = env;
  set(broken, "B_TRY", "yes");
  CHECK(boot_state_from(broken).error().code == Errc::BadEnvironment);
  CHECK(boot_state_from(Environment{}).error().code == Errc::BadEnvironment);
}

TEST_CASE("slots: a new image's environment is the default state and slot A's version",
          "[fwimage]") {
  CHECK(version_variable(Slot::A) == "A_VERSION");
  CHECK(version_variable(Slot::B) == "B_VERSION");
  const auto env = initial_environment("1.2.3");
  CHECK(env == Environment{{"ORDER", "A B"},
                           {"A_OK", "1"},
                           {"A_TRY", "0"},
                           {"B_OK", "0"},
                           {"B_TRY", "0"},
                           {"A_VERSION", "1.2.3"}});
  const auto back = parse_grubenv(format_grubenv(env).value());
  REQUIRE(back);
  CHECK(*back == env);
  CHECK(boot_state_from(*back).value() == BootState{});

  CHECK(
      initial_environment(std::nullopt) ==
      Environment{{"ORDER", "A B"}, {"A_OK", "1"}, {"A_TRY", "0"}, {"B_OK", "0"}, {"B_TRY", "0"}});
}
