// The A/B boot state (the RAUC model, docs/firmware.md): two system slots, each with an "ok"
// mark (its contents are complete) and a "tried" mark (the boot loader started it and it has not
// been marked good since). The boot loader's script (firmware-image/grub.cfg) makes the same
// choice as choose_slot(), which documents and tests it:
//   - the first slot in the order that is ok and not tried is booted, and marked tried;
//   - if there is none (both failed), the first ok slot in the order, so that a box never
//     refuses to boot; if no slot is ok, A.
// Upgrades: begin_install() clears the target's ok mark before anything is written (a cut
// write is never booted), finish_install() sets ok, clears tried and puts the target first.
// The new system marks itself good (mark_good) once its daemons are healthy; if it never does,
// the next boot skips it and returns to the other slot.
//
// Kept in the grubenv (grubenv.hpp) as ORDER ("A B" or "B A"), A_OK, A_TRY, B_OK, B_TRY
// ("0"/"1"); beside them A_VERSION and B_VERSION (version_variable) name what each slot holds.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

#include "fwimage/error.hpp"
#include "fwimage/grubenv.hpp"

namespace fwimage {

enum class Slot { A = 0, B = 1 };
inline Slot other(Slot s) noexcept {
  return s == Slot::A ? Slot::B : Slot::A;
}
std::string_view to_string(Slot s) noexcept;  // "A", "B"
Result<Slot> parse_slot(std::string_view text);

struct BootState {
  std::array<Slot, 2> order{Slot::A, Slot::B};
  std::array<bool, 2> ok{true, false};
  std::array<bool, 2> tried{false, false};
  bool operator==(const BootState&) const = default;

  bool is_ok(Slot s) const noexcept { return ok[static_cast<std::size_t>(s)]; }
  bool is_tried(Slot s) const noexcept { return tried[static_cast<std::size_t>(s)]; }
};

// The grubenv variable with the version installed in `slot`: "A_VERSION", "B_VERSION". Its value
// is "" while the slot is being written (fw-upgrade install, fwinstall/upgrade.hpp).
std::string version_variable(Slot slot);

// The boot environment a new disk image starts with (fw-sign grubenv): the default BootState (A
// ok and first, B not ok) and, when given, slot A's version.
Environment initial_environment(const std::optional<std::string>& slot_a_version);

// BadEnvironment when a variable is missing or not one of its values.
Result<BootState> boot_state_from(const Environment& env);
// Writes the five variables into `env`, keeping any others.
void store(const BootState& state, Environment& env);

Slot choose_slot(BootState& state) noexcept;
void begin_install(BootState& state, Slot target) noexcept;
void finish_install(BootState& state, Slot target) noexcept;
void mark_good(BootState& state, Slot booted) noexcept;

}  // namespace fwimage
