// The settings file set: its backup as a ustar archive, its restore after the config document
// passed the same parsers as the dashboard's apply.
#include "fwinstall/settings.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include <fmt/format.h>
#include <boost/json/parse.hpp>

#include "dstm_server/config.hpp"
#include "fwimage/tar.hpp"
#include "platform/config.hpp"
#include "tep_daemon/config.hpp"
#include "web/config.hpp"

namespace fwinstall {

namespace fs = std::filesystem;
namespace json = boost::json;
using fwimage::Errc;
using fwimage::fail;

namespace {

Error io(const fs::path& path, std::string_view what, int err) {
  return fail(Errc::Io, fmt::format("{}: {}: {}", path.string(), what, std::strerror(err)));
}

Result<std::vector<std::byte>> read_file(const fs::path& path, std::uint64_t limit) {
  std::ifstream in{path, std::ios::binary};
  if (!in) return io(path, "cannot open", errno);
  std::vector<std::byte> data;
  std::array<char, 64 * 1024> buffer{};
  while (in) {
    in.read(buffer.data(), buffer.size());
    const auto n = static_cast<std::size_t>(in.gcount());
    if (data.size() + n > limit)
      return fail(Errc::TooLarge, fmt::format("{}: larger than {} bytes", path.string(), limit));
    for (std::size_t i = 0; i < n; ++i) data.push_back(static_cast<std::byte>(buffer[i]));
  }
  if (in.bad()) return io(path, "read", errno);
  return data;
}

// Temporary file, fsync, rename, fsync of the directory: the file is the old one or the new one.
Result<void> write_atomically(const fs::path& path, std::span<const std::byte> data,
                              std::uint32_t mode) {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  if (ec) return fail(Errc::Io, fmt::format("{}: {}", path.parent_path().string(), ec.message()));
  const fs::path tmp = path.string() + ".restore-tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return io(tmp, "open", errno);
  std::size_t done = 0;
  while (done < data.size()) {
    const auto n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return io(tmp, "write", err);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fchmod(fd, mode) != 0 || ::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    return io(tmp, "fsync", err);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return io(path, "rename", errno);
  const int dir = ::open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return {};
}

std::uint64_t mtime_of(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || st.st_mtime < 0) return 0;
  return static_cast<std::uint64_t>(st.st_mtime);
}

void append_errors(std::vector<std::string>& out, const platform::ConfigErrors& errors,
                   std::string_view source) {
  for (const auto& e : errors) out.push_back(fmt::format("{}: {}", source, e.to_string()));
}

}  // namespace

bool in_settings(std::string_view name) noexcept {
  for (const auto& item : kSettings) {
    if (name == item.path) return true;
    if (item.directory && name.size() > item.path.size() && name.starts_with(item.path) &&
        name[item.path.size()] == '/')
      return true;
  }
  return false;
}

std::vector<std::string> check_document(std::string_view text) {
  std::vector<std::string> out;
  auto document = platform::parse_json(text);
  if (!document) {
    append_errors(out, document.error(), "document");
    return out;
  }
  if (auto w = web::parse_web_section(*document); !w) append_errors(out, w.error(), "web");
  if (auto d = dstm_server::parse_config_document(text); !d)
    append_errors(out, d.error(), "dstm-server");
  // As the apply: the TEPs' parser when the document has TEPs. dstm-server's always, because
  // the appliance runs it and the apply asks the running one.
  if (document->is_object() && document->get_object().contains("tep"))
    if (auto t = tep_daemon::parse_config_document(text); !t) append_errors(out, t.error(), "tep");
  return out;
}

Result<json::object> backup(const Paths& paths, const fs::path& out) {
  std::vector<fwimage::TarEntry> entries;
  std::uint64_t total = 0;
  auto add_file = [&](const fs::path& file, std::string name) -> Result<void> {
    auto data = read_file(file, fwimage::kMaxArchive - total);
    if (!data) return data.error();
    total += data->size();
    entries.push_back({.name = std::move(name),
                       .directory = false,
                       .mode = 0600,
                       .mtime = mtime_of(file),
                       .data = std::move(*data)});
    return {};
  };
  for (const auto& item : kSettings) {
    const fs::path path = paths.root / item.path;
    std::error_code ec;
    if (!item.directory) {
      if (!fs::is_regular_file(path, ec)) continue;
      if (auto r = add_file(path, std::string{item.path}); !r) return r.error();
      continue;
    }
    if (!fs::is_directory(path, ec)) continue;
    std::vector<fs::path> files;
    for (auto it = fs::recursive_directory_iterator{path, ec}; !ec && it != fs::end(it);
         it.increment(ec))
      if (it->is_regular_file()) files.push_back(it->path());
    if (ec) return fail(Errc::Io, fmt::format("{}: {}", path.string(), ec.message()));
    std::sort(files.begin(), files.end());  // the same set gives the same archive
    for (const auto& f : files)
      if (auto r = add_file(f, fs::path{item.path} / fs::relative(f, path)); !r) return r.error();
  }
  const auto archive = fwimage::write_tar(entries);
  if (auto w = write_atomically(out, archive, 0600); !w) return w.error();
  json::array names;
  for (const auto& e : entries) names.emplace_back(e.name);
  return json::object{
      {"file", out.string()}, {"entries", std::move(names)}, {"bytes", archive.size()}};
}

Result<json::object> restore(const Paths& paths, const fs::path& in) {
  auto data = read_file(in, fwimage::kMaxArchive);
  if (!data) return data.error();
  auto entries = fwimage::parse_tar(*data);
  if (!entries) return entries.error();
  const fwimage::TarEntry* document = nullptr;
  for (const auto& e : *entries) {
    if (e.directory) continue;
    if (!in_settings(e.name))
      return fail(Errc::BadSettings,
                  fmt::format("backup archive: '{}' is not a settings file", e.name));
    if (e.name == kConfigDocument) document = &e;
  }
  if (document == nullptr)
    return fail(Errc::BadSettings, fmt::format("backup archive: no {}", kConfigDocument));
  std::string text;
  for (auto b : document->data) text.push_back(std::to_integer<char>(b));
  if (auto errors = check_document(text); !errors.empty()) {
    std::string all;
    for (const auto& e : errors) all += (all.empty() ? "" : "; ") + e;
    return fail(Errc::BadSettings, fmt::format("the backup's config document is invalid: {}", all));
  }
  json::array restored;
  for (const auto& e : *entries) {
    if (e.directory) continue;
    if (auto w = write_atomically(paths.root / e.name, e.data, 0600); !w) return w.error();
    restored.emplace_back(e.name);
  }
  return json::object{{"file", in.string()}, {"restored", std::move(restored)}};
}

}  // namespace fwinstall
