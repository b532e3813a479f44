// The resolver's cache and its decisions (docs/anycast.md, "The resolver"): entries keyed by
// anycast address (resolving, bound, negative), what to answer a query, when a resolution makes
// its next attempt or fails, when a binding is renewed, when liveness has failed, which entry is
// evicted. Pure: no I/O, time is passed in, nonces come from the Random given; the service turns
// the Actions it returns into datagrams and wake-ups. Not thread-safe (the daemon's loop owns it).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <optional>
#include <queue>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "anycast/correspondent.hpp"
#include "anycast/error.hpp"
#include "anycast/query.hpp"
#include "anycast/rr.hpp"
#include "anycast/wire.hpp"
#include "anycast_resolver/config.hpp"
#include "core/address.hpp"

namespace anycast_resolver {

using anycast::Time;
using Address = core::Ipv6Address;

// The parts of Config the cache decides with.
struct CacheSettings {
  std::vector<core::Ipv6Prefix> prefixes;
  bool probe_all = false;
  Policy policy = Policy::Secure;
  std::chrono::milliseconds answer_ttl{1000};
  std::chrono::milliseconds probe_timeout{250};
  unsigned probe_attempts = 3;
  std::chrono::seconds negative_ttl{30};
  std::chrono::seconds probe_ttl{16};
  std::chrono::seconds idle_timeout{60};
  std::chrono::milliseconds liveness_interval{1000};
  unsigned liveness_misses = 3;
  std::size_t max_entries = 4096;
  std::size_t max_waiters = 1024;
};

CacheSettings cache_settings(const Config& config);

// Global unicast: not IPv4-mapped, link-local, loopback, multicast or unspecified. Nothing else
// is ever probed.
bool global_unicast(const Address& a) noexcept;

enum class EntryState { Resolving, Bound, Negative };
std::string_view to_string(EntryState state) noexcept;  // "resolving", "bound", "negative"

// How a binding was learned; its liveness probes go the same way (an echo-learned member may run
// no ARR/UDP responder).
enum class LearnedBy { ProbeAnswer, EchoReply, BindingUpdate };

struct BindingInfo {
  Address unicast;
  bool verified = false;       // from a Binding Update that verified (secure policy)
  std::uint16_t sequence = 0;  // the BU's sequence number (verified only)
  LearnedBy learned_by = LearnedBy::ProbeAnswer;
  Time bound_at;
  Time expires;
};

// One entry as GET /cache shows it.
struct EntryView {
  Address anycast;
  EntryState state = EntryState::Resolving;
  std::optional<BindingInfo> binding;  // state Bound
  // Bound: the binding's expiry; Negative: the end of the negative period; Resolving: when the
  // resolution fails if no answer comes.
  Time expires;
  bool renewing = false;  // Bound with a resolution through the anycast address in progress
  std::uint64_t renewals = 0;
  std::uint64_t rebinds = 0;
  unsigned liveness_misses = 0;
  Time last_used;
};

// Decision counters (the service adds its I/O counters; docs name them all).
struct CacheStats {
  std::uint64_t hits = 0;          // Unicast answers to queries
  std::uint64_t misses = 0;        // queries that found no usable binding and waited or got Pending
  std::uint64_t pass_through = 0;  // PassThrough answers (not resolvable, or negative)
  std::uint64_t failed_reports = 0;          // Op Failed that dropped a binding
  std::uint64_t answers_accepted = 0;        // probe answers that bound (probe policy)
  std::uint64_t answers_ignored_secure = 0;  // probe answers and echo replies under "secure"
  std::uint64_t icmp_answers_accepted = 0;   // echo replies that bound (probe policy)
  std::uint64_t icmp_from_anycast = 0;       // echo replies from the anycast address itself (F1)
  std::uint64_t bindings_verified = 0;       // verified Binding Updates that bound
  std::uint64_t renewals = 0;
  std::uint64_t rebinds = 0;  // a new binding naming another unicast than the one before it
  std::uint64_t liveness_probes = 0;
  std::uint64_t liveness_failures = 0;
  std::uint64_t resolutions_failed = 0;
};

using WaiterId = std::uint64_t;

// One attempt of a resolution: an ARR/UDP probe with this nonce to [anycast]:port (flag B under
// "secure") and, with "icmp", an ICMPv6 echo request to anycast carrying the nonce.
struct SendProbe {
  Address anycast;
  anycast::Nonce128 nonce{};
  unsigned attempt = 1;  // 1..probe_attempts
  bool renewal = false;  // the entry is still bound (renewal, not a first resolution)
};
// A liveness probe to the bound unicast address: an ARR/UDP probe without B, or an echo request
// when the binding came from an echo reply.
struct SendLiveness {
  Address anycast;
  Address unicast;
  anycast::Nonce128 nonce{};
  LearnedBy learned_by = LearnedBy::ProbeAnswer;
};
// The resolution these queries waited for ended (bound, failed, or flushed): answer them now.
struct WakeWaiters {
  Address anycast;
  std::vector<WaiterId> waiters;
};
using Action = std::variant<SendProbe, SendLiveness, WakeWaiters>;
using Actions = std::vector<Action>;

// What to answer a Resolve query.
struct Decision {
  anycast::query::Answer answer;  // Unicast, PassThrough, or Pending
  // A resolution for the address is in progress: a query that may wait can add_waiter().
  bool resolving = false;
  // Why a miss could not start a resolution (TableFull: every entry is resolving); count it.
  std::optional<anycast::Errc> dropped;
};

// How an answer was taken.
enum class Taken {
  Bound,          // it made a binding
  Liveness,       // it answered a liveness probe: the miss count is reset
  IgnoredSecure,  // a probe answer or echo reply under "secure": never binds
  FromAnycast,    // an echo reply from the anycast address itself: nothing learned (F1)
};

class Cache {
 public:
  Cache(CacheSettings settings, anycast::Random random);

  const CacheSettings& settings() const noexcept { return settings_; }
  // Global unicast and inside `prefixes` (or probe_all).
  bool resolvable(const Address& a) const noexcept;

  // A Resolve query (counts hits, misses, pass_through). A miss starts a resolution unless one
  // runs (its first SendProbe in `actions`); a hit on a binding past its renewal time that was
  // not renewed (it was idle then) starts the renewal.
  Decision query(Time now, const Address& a, Actions& actions);
  // The answer for a query that waited: Unicast when bound now, else Pending. Counts nothing.
  anycast::query::Answer settle(Time now, const Address& a);
  // How long a query that may wait waits: min(wait_ms, probe_timeout * probe_attempts).
  std::chrono::milliseconds wait_budget(std::uint16_t wait_ms) const noexcept;

  // A waiter for the resolution of `a`, woken by a WakeWaiters action when it ends. nullopt when
  // max_waiters wait already (answer Pending at once) or no resolution runs for `a`.
  std::optional<WaiterId> add_waiter(const Address& a);
  // A waiter that gave up (its budget ran out). Unknown ids are ignored.
  void remove_waiter(WaiterId id) noexcept;
  std::size_t waiters() const noexcept { return waiter_index_.size(); }

  // Op Failed: the connection to `unicast`, the binding of `a`, failed. When `a` is bound to it,
  // the binding is dropped and `a` resolved again (failed_reports). Else Unsolicited.
  anycast::Result<void> failed(Time now, const Address& a, const Address& unicast,
                               Actions& actions);

  // An ARR/UDP probe answer from IP source `from`. A liveness answer (our liveness nonce, from
  // the bound unicast) resets the miss count. Else, under "secure", IgnoredSecure. Else, with a
  // nonce of the resolution of answer.anycast, whose unicast is `from` and not the anycast
  // address: bound, unverified, for min(probe_ttl, the answer's ttl). Errors: Unsolicited (no
  // such nonce or resolution), AddressMismatch.
  anycast::Result<Taken> on_probe_answer(Time now, const anycast::ProbeAnswer& answer,
                                         const Address& from, Actions& actions);
  // An ICMPv6 echo reply carrying `nonce` from `from`: liveness as above; from the anycast
  // address under resolution: FromAnycast; else (probe policy) bound, unverified, for probe_ttl.
  // Errors: Unsolicited, AddressMismatch (a liveness nonce from another address).
  anycast::Result<Taken> on_echo_reply(Time now, const anycast::Nonce128& nonce,
                                       const Address& from, Actions& actions);

  // Return routability (secure policy). A HoTI is answered only when its source (the claimed
  // anycast address) is under resolution or renewal; a CoTI only while any is.
  bool expects_hoti(const Address& from) const noexcept;
  bool expects_coti() const noexcept { return resolving_ > 0; }
  // A Binding Update that verified: bound, verified, until binding.expires, when
  // binding.anycast is under resolution or renewal. Else Unsolicited.
  anycast::Result<void> on_verified_binding(Time now, const anycast::Binding& binding,
                                            Actions& actions);

  // Everything due at `now`: next attempts (SendProbe), failed resolutions (negative for
  // negative_ttl, WakeWaiters), renewals of bindings used within idle_timeout at 75% of their
  // lifetime, liveness probes and failures (after liveness_misses unanswered probes in a row the
  // binding is dropped and resolved again), expiries.
  void poll(Time now, Actions& actions);
  // When poll() has something to do next (possibly earlier); nullopt when nothing is scheduled.
  std::optional<Time> next_wakeup() const noexcept;

  // Drops every entry (waiters of resolutions in progress are woken). Returns how many.
  std::size_t flush(Actions& actions);

  std::optional<EntryView> find(const Address& a) const;
  // Every entry, most recently used first.
  void for_each(const std::function<void(const EntryView&)>& fn) const;
  std::size_t size() const noexcept { return index_.size(); }
  std::size_t resolving() const noexcept { return resolving_; }
  const CacheStats& stats() const noexcept { return stats_; }

 private:
  struct Resolution {
    unsigned attempts = 0;                  // sent so far
    Time deadline;                          // of the current attempt
    std::vector<anycast::Nonce128> nonces;  // every attempt's: all stay acceptable
    std::vector<WaiterId> waiters;
  };
  struct Entry {
    Address anycast;
    std::optional<BindingInfo> binding;
    std::optional<Time> negative_until;
    std::optional<Resolution> resolution;
    std::optional<Address> previous_unicast;          // of a binding dropped for failure (rebinds)
    bool renewal_due_seen = false;                    // the binding's renewal time has passed
    std::optional<anycast::Nonce128> liveness_nonce;  // the outstanding liveness probe
    Time next_liveness;
    unsigned misses = 0;
    std::uint64_t renewals = 0;
    std::uint64_t rebinds = 0;
    Time last_used;
    Time scheduled = Time::max();  // the time of this entry's live item in wakeups_
  };
  using Lru = std::list<Entry>;  // most recently used first
  struct NonceHash {
    std::size_t operator()(const anycast::Nonce128& n) const noexcept;
  };
  struct NonceOwner {
    Address anycast;
    bool liveness = false;
  };
  using Wakeup = std::pair<Time, Address>;

  Lru::iterator lookup(const Address& a);
  Lru::const_iterator lookup(const Address& a) const;
  // A new entry at the front, evicting the least recently used entry without a resolution when
  // full; end() when every entry is resolving.
  Lru::iterator insert(Time now, const Address& a);
  void erase(Lru::iterator it, Actions& actions);
  anycast::Nonce128 fresh_nonce(const Address& owner, bool liveness);
  void start_resolution(Time now, Entry& e, Actions& actions);
  void next_attempt(Time now, Entry& e, Actions& actions);
  void end_resolution(Entry& e, Actions& actions);
  void clear_liveness(Entry& e);
  void bind(Time now, Entry& e, BindingInfo binding, Actions& actions);
  // Drops the binding (liveness failure, Op Failed) and resolves the address again at once.
  void rebind(Time now, Entry& e, Actions& actions);
  // Runs what is due for the entry; false when it was removed.
  bool advance(Time now, Lru::iterator it, Actions& actions);
  void schedule(Entry& e);
  bool in_use(Time now, const Entry& e) const noexcept;
  static Time renew_at(const BindingInfo& b) noexcept;
  EntryView view(const Entry& e) const;

  CacheSettings settings_;
  anycast::Random random_;
  CacheStats stats_;
  Lru lru_;
  std::unordered_map<Address, Lru::iterator> index_;
  std::unordered_map<anycast::Nonce128, NonceOwner, NonceHash> nonces_;
  std::unordered_map<WaiterId, Address> waiter_index_;
  WaiterId next_waiter_ = 1;
  std::size_t resolving_ = 0;
  std::priority_queue<Wakeup, std::vector<Wakeup>, std::greater<>> wakeups_;
};

}  // namespace anycast_resolver
