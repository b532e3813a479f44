// Metrics registry and its JSON / Prometheus renderings.
#include "platform/counters.hpp"

#include <algorithm>
#include <iterator>
#include <stdexcept>
#include <variant>

#include <fmt/format.h>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

namespace platform {

struct Counters::Family {
  std::string help;
  bool is_counter = true;
  // Sorted labels -> series. Series are heap nodes so references survive map growth.
  std::map<Labels, std::unique_ptr<Counter>> counters;
  std::map<Labels, std::unique_ptr<Gauge>> gauges;
  // Series read through a callback (counter_fn / gauge_fn).
  std::map<Labels, std::function<std::uint64_t()>> counter_fns;
  std::map<Labels, std::function<std::int64_t()>> gauge_fns;

  bool has(const Labels& l) const {
    return counters.contains(l) || gauges.contains(l) || counter_fns.contains(l) ||
           gauge_fns.contains(l);
  }
  // Every series of the family with its current value, sorted by labels.
  std::map<Labels, boost::json::value> values() const {
    std::map<Labels, boost::json::value> out;
    for (const auto& [l, c] : counters) out.emplace(l, c->value());
    for (const auto& [l, g] : gauges) out.emplace(l, g->value());
    for (const auto& [l, read] : counter_fns) out.emplace(l, read());
    for (const auto& [l, read] : gauge_fns) out.emplace(l, read());
    return out;
  }
};

namespace {

bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool valid_metric_name(std::string_view n) {
  if (n.empty() || !(is_alpha(n[0]) || n[0] == ':')) return false;
  return std::all_of(n.begin(), n.end(),
                     [](char c) { return is_alpha(c) || is_digit(c) || c == ':'; });
}

bool valid_label_name(std::string_view n) {
  if (n.empty() || !is_alpha(n[0]) || n.starts_with("__")) return false;
  return std::all_of(n.begin(), n.end(), [](char c) { return is_alpha(c) || is_digit(c); });
}

Labels normalize(std::string_view metric, Labels labels) {
  std::sort(labels.begin(), labels.end());
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (!valid_label_name(labels[i].first))
      throw std::logic_error(
          fmt::format("metric {}: invalid label name '{}'", metric, labels[i].first));
    if (i > 0 && labels[i].first == labels[i - 1].first)
      throw std::logic_error(
          fmt::format("metric {}: label '{}' given twice", metric, labels[i].first));
  }
  return labels;
}

// Prometheus text format: label values escape backslash, double quote and newline; HELP text
// escapes backslash and newline.
void append_escaped(std::string& out, std::string_view s, bool quote) {
  for (char c : s) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else if (quote && c == '"')
      out += "\\\"";
    else
      out += c;
  }
}

void append_series(std::string& out, const std::string& name, const Labels& labels) {
  out += name;
  if (labels.empty()) return;
  out += '{';
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ',';
    first = false;
    out += k;
    out += "=\"";
    append_escaped(out, v, true);
    out += '"';
  }
  out += '}';
}

boost::json::object labels_json(const Labels& labels) {
  boost::json::object o;
  for (const auto& [k, v] : labels) o[k] = v;
  return o;
}

}  // namespace

Counters::Counters() = default;
Counters::~Counters() = default;

Counters::Family& Counters::family(std::string_view name, std::string_view help, bool is_counter) {
  if (!valid_metric_name(name))
    throw std::logic_error(fmt::format("invalid metric name '{}'", name));
  auto it = families_.find(name);
  if (it == families_.end()) {
    auto f = std::make_unique<Family>();
    f->help = std::string{help};
    f->is_counter = is_counter;
    it = families_.emplace(std::string{name}, std::move(f)).first;
  }
  Family& f = *it->second;
  if (f.is_counter != is_counter)
    throw std::logic_error(fmt::format("metric {} registered as both counter and gauge", name));
  if (f.help != help)
    throw std::logic_error(fmt::format("metric {} registered with two help texts", name));
  return f;
}

Counter& Counters::counter(std::string_view name, std::string_view help, Labels labels) {
  auto key = normalize(name, std::move(labels));
  std::lock_guard lock{mutex_};
  auto& f = family(name, help, true);
  if (f.counter_fns.contains(key))
    throw std::logic_error(fmt::format("metric {}: series registered as a callback", name));
  auto& slot = f.counters[std::move(key)];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& Counters::gauge(std::string_view name, std::string_view help, Labels labels) {
  auto key = normalize(name, std::move(labels));
  std::lock_guard lock{mutex_};
  auto& f = family(name, help, false);
  if (f.gauge_fns.contains(key))
    throw std::logic_error(fmt::format("metric {}: series registered as a callback", name));
  auto& slot = f.gauges[std::move(key)];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

void Counters::counter_fn(std::string_view name, std::string_view help, Labels labels,
                          std::function<std::uint64_t()> read) {
  auto key = normalize(name, std::move(labels));
  std::lock_guard lock{mutex_};
  auto& f = family(name, help, true);
  if (f.has(key)) throw std::logic_error(fmt::format("metric {}: series registered twice", name));
  f.counter_fns.emplace(std::move(key), std::move(read));
}

void Counters::gauge_fn(std::string_view name, std::string_view help, Labels labels,
                        std::function<std::int64_t()> read) {
  auto key = normalize(name, std::move(labels));
  std::lock_guard lock{mutex_};
  auto& f = family(name, help, false);
  if (f.has(key)) throw std::logic_error(fmt::format("metric {}: series registered twice", name));
  f.gauge_fns.emplace(std::move(key), std::move(read));
}

boost::json::value Counters::to_json() const {
  std::lock_guard lock{mutex_};
  boost::json::object out;
  for (const auto& [name, f] : families_) {
    boost::json::array series;
    for (auto& [labels, value] : f->values())
      series.push_back(
          boost::json::object{{"labels", labels_json(labels)}, {"value", std::move(value)}});
    out[name] = boost::json::object{{"type", f->is_counter ? "counter" : "gauge"},
                                    {"help", f->help},
                                    {"series", std::move(series)}};
  }
  return out;
}

std::string Counters::to_prometheus() const {
  std::lock_guard lock{mutex_};
  std::string out;
  for (const auto& [name, f] : families_) {
    out += "# HELP ";
    out += name;
    out += ' ';
    append_escaped(out, f->help, false);
    out += "\n# TYPE ";
    out += name;
    out += f->is_counter ? " counter\n" : " gauge\n";
    for (const auto& [labels, value] : f->values()) {
      append_series(out, name, labels);
      out += ' ';
      out += boost::json::serialize(value);
      out += '\n';
    }
  }
  return out;
}

}  // namespace platform
