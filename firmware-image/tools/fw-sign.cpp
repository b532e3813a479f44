// fw-sign: the build side of the firmware's signing and boot state (docs/firmware.md), used by
// firmware-image/mkimage.sh. It never runs on the appliance (fw-upgrade does that side):
//   fw-sign keygen SECRET PUBLIC          a new Ed25519 key pair (refuses to overwrite)
//   fw-sign pubkey SECRET PUBLIC          the public key file of a secret key file
//   fw-sign bundle --key SECRET --board B --version V --compat C --created T
//                  --part NAME=FILE [--part ...] --manifest-out FILE OUT
//                                         a signed bundle (fwimage/bundle.hpp) of the parts,
//                                         and its manifest's canonical text
//   fw-sign grubenv [--version V] OUT     the initial boot environment: A ok, B not ok, and
//                                         A_VERSION=V (the version on the image's slot A)
// Exit status 0 on success, 1 on failure, 2 on a usage error.
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fwimage/bundle.hpp"
#include "fwimage/grubenv.hpp"
#include "fwimage/manifest.hpp"
#include "fwimage/signing.hpp"
#include "fwimage/slots.hpp"

namespace {

constexpr std::string_view kUsage =
    "usage: fw-sign keygen SECRET PUBLIC\n"
    "       fw-sign pubkey SECRET PUBLIC\n"
    "       fw-sign bundle --key SECRET --board B --version V --compat C --created T\n"
    "                      --part NAME=FILE [--part NAME=FILE ...] --manifest-out FILE OUT\n"
    "       fw-sign grubenv [--version V] OUT\n";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Written to a temporary name and renamed, so that a failed build leaves no half file behind.
void write_file(const std::filesystem::path& path, std::string_view bytes, bool exclusive) {
  if (exclusive && std::filesystem::exists(path))
    throw std::runtime_error(path.string() + " exists; not overwritten");
  const auto tmp = std::filesystem::path{path.string() + ".tmp"};
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out.flush()) throw std::runtime_error("cannot write " + tmp.string());
  }
  std::filesystem::rename(tmp, path);
}

template <typename T>
T value_or_throw(fwimage::Result<T> r, std::string_view what) {
  if (!r) throw std::runtime_error(std::string{what} + ": " + r.error().message);
  return std::move(*r);
}

fwimage::SecretKey load_secret(const std::filesystem::path& path) {
  return value_or_throw(fwimage::parse_secret_key(read_text(path)), path.string());
}

int keygen(const std::vector<std::string>& args) {
  if (args.size() != 2) throw UsageError("keygen takes SECRET PUBLIC");
  const auto secret = fwimage::generate_secret_key();
  write_file(args[0], fwimage::format_secret_key(secret), true);
  std::filesystem::permissions(
      args[0], std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  write_file(args[1], fwimage::format_public_key(fwimage::public_key_of(secret)), true);
  return 0;
}

int pubkey(const std::vector<std::string>& args) {
  if (args.size() != 2) throw UsageError("pubkey takes SECRET PUBLIC");
  write_file(args[1], fwimage::format_public_key(fwimage::public_key_of(load_secret(args[0]))),
             false);
  return 0;
}

// Streams `path` through `each` in 1 MiB chunks (slot images are tens of megabytes).
template <typename F>
std::uint64_t for_each_chunk(const std::filesystem::path& path, F&& each) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::vector<char> buffer(std::size_t{1} << 20);
  std::uint64_t total = 0;
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const auto n = static_cast<std::size_t>(in.gcount());
    if (n == 0) break;
    each(std::string_view{buffer.data(), n});
    total += n;
  }
  if (in.bad()) throw std::runtime_error("cannot read " + path.string());
  return total;
}

int bundle(const std::vector<std::string>& args) {
  std::string key_file, board, version, compat, created, manifest_out, out;
  std::vector<std::pair<std::string, std::filesystem::path>> parts;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    const auto next = [&]() -> const std::string& {
      if (i + 1 >= args.size()) throw UsageError(a + " needs a value");
      return args[++i];
    };
    if (a == "--key")
      key_file = next();
    else if (a == "--board")
      board = next();
    else if (a == "--version")
      version = next();
    else if (a == "--compat")
      compat = next();
    else if (a == "--created")
      created = next();
    else if (a == "--manifest-out")
      manifest_out = next();
    else if (a == "--part") {
      const auto& spec = next();
      const auto eq = spec.find('=');
      if (eq == std::string::npos) throw UsageError("--part takes NAME=FILE");
      parts.emplace_back(spec.substr(0, eq), spec.substr(eq + 1));
    } else if (!a.empty() && a[0] != '-' && out.empty())
      out = a;
    else
      throw UsageError("unknown argument " + a);
  }
  if (key_file.empty() || board.empty() || version.empty() || compat.empty() || created.empty() ||
      manifest_out.empty() || out.empty() || parts.empty())
    throw UsageError(
        "bundle needs --key --board --version --compat --created --part "
        "--manifest-out and OUT");

  fwimage::Manifest m;
  m.board = board;
  m.version = version;
  m.compat = value_or_throw(fwimage::parse_compat(compat), "--compat");
  m.created = std::stoull(created);
  for (const auto& [name, path] : parts) {
    fwimage::PartHasher hasher;
    fwimage::Part p;
    p.name = name;
    p.size = for_each_chunk(path, [&](std::string_view c) { hasher.update(core::as_bytes(c)); });
    p.sha256 = hasher.finish();
    m.parts.push_back(std::move(p));
  }
  // Round-trip through the strict parser: a manifest the appliance would refuse is a build error
  // here, not an upgrade error in the field.
  const auto text = fwimage::serialize(m);
  value_or_throw(fwimage::parse_manifest(text), "manifest");

  const auto prefix = fwimage::bundle_prefix(m, load_secret(key_file));
  const auto tmp = std::filesystem::path{out + ".tmp"};
  {
    std::ofstream o(tmp, std::ios::binary | std::ios::trunc);
    o.write(reinterpret_cast<const char*>(prefix.data()),
            static_cast<std::streamsize>(prefix.size()));
    for (const auto& part : parts)
      for_each_chunk(part.second, [&](std::string_view c) {
        o.write(c.data(), static_cast<std::streamsize>(c.size()));
      });
    if (!o.flush()) throw std::runtime_error("cannot write " + tmp.string());
  }
  std::filesystem::rename(tmp, out);
  write_file(manifest_out, text + "\n", false);
  return 0;
}

int grubenv(const std::vector<std::string>& args) {
  std::optional<std::string> version;
  std::string out;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    if (a == "--version") {
      if (i + 1 >= args.size() || args[i + 1].empty()) throw UsageError("--version needs a value");
      version = args[++i];
    } else if (!a.empty() && a[0] != '-' && out.empty()) {
      out = a;
    } else {
      throw UsageError("unknown argument " + a);
    }
  }
  if (out.empty()) throw UsageError("grubenv takes [--version V] OUT");
  // The default state (A ok and first, B not ok) and slot A's version, which fw-upgrade status
  // and the dashboard show (fwimage::version_variable).
  const auto env = fwimage::initial_environment(version);
  const auto block = value_or_throw(fwimage::format_grubenv(env), "grubenv");
  write_file(out, std::string_view{reinterpret_cast<const char*>(block.data()), block.size()},
             false);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string command = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  try {
    if (command == "keygen") return keygen(args);
    if (command == "pubkey") return pubkey(args);
    if (command == "bundle") return bundle(args);
    if (command == "grubenv") return grubenv(args);
    throw UsageError("unknown command " + command);
  } catch (const UsageError& e) {
    std::cerr << "fw-sign: " << e.what() << "\n" << kUsage;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "fw-sign: " << e.what() << "\n";
    return 1;
  }
}
