// Requests to the daemons and readings of their answers.
#include "web/daemons.hpp"

#include <algorithm>
#include <array>
#include <cerrno>

#include <boost/asio/error.hpp>
#include <boost/json.hpp>

namespace web {

namespace json = boost::json;

namespace {

std::uint64_t number(const json::object* o, std::string_view key) {
  if (!o) return 0;
  const auto* v = o->if_contains(key);
  if (!v) return 0;
  if (v->is_uint64()) return v->as_uint64();
  if (v->is_int64() && v->as_int64() >= 0) return static_cast<std::uint64_t>(v->as_int64());
  return 0;
}

const json::object* member_object(const json::value& v, std::string_view key) {
  const auto* o = v.if_object();
  if (!o) return nullptr;
  const auto* m = o->if_contains(key);
  return m ? m->if_object() : nullptr;
}

// The engine's counters that are drops of a packet (docs/tep.md, "Data path").
constexpr std::array<std::string_view, 11> kEngineDrops = {"spoofed",
                                                           "source_not_leased",
                                                           "source_outside_pool",
                                                           "destination_outside_pool",
                                                           "destination_not_leased",
                                                           "ipv4_invalid",
                                                           "queue_address_full",
                                                           "queue_full",
                                                           "queue_timeout",
                                                           "query_failed",
                                                           "bindings_table_full"};

double per_second(std::uint64_t before, std::uint64_t after, double seconds) {
  const auto delta = after >= before ? after - before : after;
  return static_cast<double>(delta) / seconds;
}

}  // namespace

boost::asio::awaitable<DaemonAnswer> call_daemon(DaemonRef daemon, platform::Method method,
                                                 std::string target, json::value body,
                                                 std::chrono::milliseconds timeout) {
  platform::ControlClientOptions options;
  options.timeout = timeout;
  const platform::ControlClient client{std::move(daemon.socket), options};
  co_return co_await client.async_request(method, std::move(target), std::move(body));
}

std::string down_reason(const boost::system::error_code& error) {
  if (error == boost::system::errc::no_such_file_or_directory)
    return "not running (no control socket)";
  if (error == boost::system::errc::connection_refused) return "not running (connection refused)";
  if (error == platform::ControlErrc::Timeout) return "not answering (timeout)";
  return error.message();
}

std::string percent_encode(std::string_view text) {
  static constexpr std::string_view kHex = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0x0f];
    }
  }
  return out;
}

std::string query_string(const Params& params) {
  std::string out;
  for (const auto& [name, value] : params) {
    out += out.empty() ? '?' : '&';
    out += percent_encode(name);
    out += '=';
    out += percent_encode(value);
  }
  return out;
}

Traffic& Traffic::operator+=(const Traffic& other) noexcept {
  rx_bytes += other.rx_bytes;
  tx_bytes += other.tx_bytes;
  rx_packets += other.rx_packets;
  tx_packets += other.tx_packets;
  return *this;
}

Traffic tep_traffic(const json::value& tep_status) {
  const auto* engine = member_object(tep_status, "counters");
  const auto* fast = member_object(tep_status, "fast_path");
  Traffic t;
  t.rx_bytes = number(engine, "decapsulated_bytes") + number(fast, "decapsulated_bytes");
  t.tx_bytes = number(engine, "encapsulated_bytes") + number(fast, "encapsulated_bytes");
  t.rx_packets = number(engine, "decapsulated") + number(fast, "decapsulated");
  t.tx_packets = number(engine, "encapsulated") + number(fast, "encapsulated");
  return t;
}

json::object to_json(const Traffic& t) {
  return json::object{{"rx_bytes", t.rx_bytes},
                      {"tx_bytes", t.tx_bytes},
                      {"rx_packets", t.rx_packets},
                      {"tx_packets", t.tx_packets}};
}

json::object tep_drops(const json::value& tep_status) {
  json::object out;
  if (const auto* engine = member_object(tep_status, "counters")) {
    for (const auto& [name, value] : *engine) {
      const std::string_view n = name;
      if (n.starts_with("decap_") && value.is_number()) out[n.substr(6)] = number(engine, n);
    }
    for (const auto name : kEngineDrops)
      if (engine->contains(name)) out[name] = number(engine, name);
    if (engine->contains("tunnel_send_dropped"))
      out["tunnel_send_dropped"] = number(engine, "tunnel_send_dropped");
  }
  if (const auto* fast = member_object(tep_status, "fast_path"))
    if (fast->contains("dropped")) out["fast_path_dropped"] = number(fast, "dropped");
  return out;
}

json::array top_talkers(const json::value& bindings_answer, std::size_t n) {
  struct Row {
    std::uint64_t bytes;
    const json::object* binding;
  };
  std::vector<Row> rows;
  const auto* o = bindings_answer.if_object();
  const auto* list = o ? o->if_contains("bindings") : nullptr;
  if (list && list->is_array()) {
    for (const auto& b : list->get_array()) {
      const auto* bo = b.if_object();
      if (!bo) continue;
      rows.push_back({number(bo, "bytes_to_client") + number(bo, "bytes_from_client"), bo});
    }
  }
  const auto count = std::min(n, rows.size());
  std::partial_sort(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(count), rows.end(),
                    [](const Row& a, const Row& b) { return a.bytes > b.bytes; });
  json::array out;
  for (std::size_t i = 0; i < count; ++i) {
    json::object entry = *rows[i].binding;
    entry["bytes"] = rows[i].bytes;
    out.push_back(std::move(entry));
  }
  return out;
}

Rates rates(const Traffic& before, const Traffic& after, double seconds) noexcept {
  if (!(seconds > 0)) return {};
  return Rates{8 * per_second(before.rx_bytes, after.rx_bytes, seconds),
               8 * per_second(before.tx_bytes, after.tx_bytes, seconds),
               per_second(before.rx_packets, after.rx_packets, seconds),
               per_second(before.tx_packets, after.tx_packets, seconds)};
}

json::object to_json(const Rates& r) {
  return json::object{
      {"in_bps", r.in_bps}, {"out_bps", r.out_bps}, {"in_pps", r.in_pps}, {"out_pps", r.out_pps}};
}

}  // namespace web
