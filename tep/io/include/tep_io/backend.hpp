// Which 4over6 data path a TEP or a client runs: the user-space one (TUN + raw IPv6 sockets, with
// offloads) or the in-kernel tc-BPF fast path in front of it (docs/tep.md, "Backends").
#pragma once

#include <optional>
#include <string_view>

namespace tep::io {

enum class Backend {
  Auto,  // the BPF fast path when it loads, else user space (the fallback is logged)
  Bpf,   // the BPF fast path or nothing: start fails when it cannot load
  User,  // user space only
};

constexpr std::string_view backend_name(Backend b) noexcept {
  switch (b) {
    case Backend::Auto:
      return "auto";
    case Backend::Bpf:
      return "bpf";
    case Backend::User:
      return "user";
  }
  return "?";
}

constexpr std::optional<Backend> parse_backend(std::string_view text) noexcept {
  for (Backend b : {Backend::Auto, Backend::Bpf, Backend::User})
    if (backend_name(b) == text) return b;
  return std::nullopt;
}

}  // namespace tep::io
