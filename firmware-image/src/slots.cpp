// The A/B boot state (slots.hpp).
#include "fwimage/slots.hpp"

#include <string>

namespace fwimage {
namespace {

std::size_t index(Slot s) noexcept {
  return static_cast<std::size_t>(s);
}

Result<bool> flag(const Environment& env, std::string_view name) {
  const auto* v = find(env, name);
  if (!v || (*v != "0" && *v != "1"))
    return fail(Errc::BadEnvironment, "boot environment: " + std::string{name} + " must be 0 or 1");
  return *v == "1";
}

}  // namespace

std::string_view to_string(Slot s) noexcept {
  return s == Slot::A ? "A" : "B";
}

Result<Slot> parse_slot(std::string_view text) {
  if (text == "A") return Slot::A;
  if (text == "B") return Slot::B;
  return fail(Errc::BadEnvironment, "a slot is A or B");
}

std::string version_variable(Slot slot) {
  return std::string{to_string(slot)} + "_VERSION";
}

Environment initial_environment(const std::optional<std::string>& slot_a_version) {
  Environment env;
  store(BootState{}, env);
  if (slot_a_version) set(env, version_variable(Slot::A), *slot_a_version);
  return env;
}

Result<BootState> boot_state_from(const Environment& env) {
  BootState s;
  const auto* order = find(env, "ORDER");
  if (!order || (*order != "A B" && *order != "B A"))
    return fail(Errc::BadEnvironment, "boot environment: ORDER must be \"A B\" or \"B A\"");
  s.order = *order == "A B" ? std::array{Slot::A, Slot::B} : std::array{Slot::B, Slot::A};
  for (const auto slot : {Slot::A, Slot::B}) {
    const std::string prefix{to_string(slot)};
    auto ok = flag(env, prefix + "_OK");
    if (!ok) return ok.error();
    auto tried = flag(env, prefix + "_TRY");
    if (!tried) return tried.error();
    s.ok[index(slot)] = *ok;
    s.tried[index(slot)] = *tried;
  }
  return s;
}

void store(const BootState& state, Environment& env) {
  set(env, "ORDER", state.order[0] == Slot::A ? "A B" : "B A");
  for (const auto slot : {Slot::A, Slot::B}) {
    const std::string prefix{to_string(slot)};
    set(env, prefix + "_OK", state.is_ok(slot) ? "1" : "0");
    set(env, prefix + "_TRY", state.is_tried(slot) ? "1" : "0");
  }
}

Slot choose_slot(BootState& state) noexcept {
  for (const auto s : state.order)
    if (state.is_ok(s) && !state.is_tried(s)) {
      state.tried[index(s)] = true;
      return s;
    }
  for (const auto s : state.order)
    if (state.is_ok(s)) return s;
  return Slot::A;
}

void begin_install(BootState& state, Slot target) noexcept {
  state.ok[index(target)] = false;
}

void finish_install(BootState& state, Slot target) noexcept {
  state.ok[index(target)] = true;
  state.tried[index(target)] = false;
  state.order = {target, other(target)};
}

void mark_good(BootState& state, Slot booted) noexcept {
  state.tried[index(booted)] = false;
}

}  // namespace fwimage
