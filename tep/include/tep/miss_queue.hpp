// Packets waiting for the DSTM server's answer about one IPv4 address, bounded per address and
// in total (packets and bytes), each address with a deadline. Pure: no clock, no I/O, one thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <unordered_map>
#include <vector>

#include "core/address.hpp"
#include "core/bytes.hpp"
#include "tep/binding_table.hpp"

namespace tep {

// Which way a waiting packet goes once the answer is in.
enum class Direction : std::uint8_t {
  ToClient,    // an IPv4 packet to a pool address: encapsulate toward the holder of `address`
  FromClient,  // a decapsulated packet whose inner source is `address`: forward it if the
               // server says `address` is leased to `outer_source`, else it is spoofed
};

struct PendingPacket {
  Direction direction = Direction::ToClient;
  core::Ipv6Address outer_source{};  // FromClient: the outer IPv6 source it arrived from
  std::vector<std::byte> packet;     // the IPv4 packet
};

struct MissQueueLimits {
  std::size_t per_address = 16;             // packets waiting for one address
  std::size_t max_packets = 4096;           // packets waiting in total
  std::size_t max_bytes = 4 * 1024 * 1024;  // bytes waiting in total
  std::size_t max_addresses = 4096;         // addresses with packets waiting (queries out)
  std::chrono::milliseconds timeout{3000};  // an address's answer must come within this
};

class MissQueue {
 public:
  explicit MissQueue(MissQueueLimits limits = {});

  enum class Pushed {
    FirstForAddress,  // queued, and no packet was waiting for this address: start a query
    Queued,           // queued behind others for the same address (a query is out)
    AddressFull,      // dropped: per_address packets already wait for it
    QueueFull,        // dropped: a total limit (packets, bytes or addresses) is reached
  };
  // Copies `packet` in. now starts the address's deadline when it is the first.
  Pushed push(core::Ipv4Address address, Direction direction, const core::Ipv6Address& outer_source,
              core::Bytes packet, TimePoint now);

  // Whether packets wait for `address` (a query for it is out).
  bool waiting(core::Ipv4Address address) const noexcept;
  // Removes and returns the packets of `address`, in arrival order (the answer came).
  std::vector<PendingPacket> take(core::Ipv4Address address);

  struct Expired {
    core::Ipv4Address address;
    std::vector<PendingPacket> packets;
  };
  // Removes the addresses whose deadline (first push + timeout) is at or before now, oldest
  // first, with their packets. An address taken and queued again has the deadline of its new
  // first push.
  std::vector<Expired> expire(TimePoint now);
  // The earliest deadline, if any address waits (for the caller's timer).
  std::optional<TimePoint> next_deadline() const noexcept;

  std::size_t addresses() const noexcept { return entries_.size(); }
  std::size_t packets() const noexcept { return packets_; }
  std::size_t bytes() const noexcept { return bytes_; }
  const MissQueueLimits& limits() const noexcept { return limits_; }

 private:
  struct Entry {
    std::uint64_t id = 0;  // the FirstForAddress push that started it (tells order_ items apart)
    std::vector<PendingPacket> packets;
  };
  struct Due {
    TimePoint deadline;
    core::Ipv4Address address;
    std::uint64_t id;
  };
  // Whether `due` still stands for a waiting address (and not one taken since, or taken and
  // queued again with a later deadline).
  bool live(const Due& due) const noexcept;
  void drop_stale_front() noexcept;

  MissQueueLimits limits_;
  std::unordered_map<core::Ipv4Address, Entry> entries_;
  // One item per FirstForAddress push, in push order, which is deadline order as long as `now`
  // does not go backwards (deadlines are now + a constant; a steady clock). take() leaves its
  // item behind: such stale items are skipped by expire(), dropped from the front at once (so
  // the front is always live and gives next_deadline()), and compacted away when they outnumber
  // the live ones, which keeps the deque at most about twice max_addresses.
  std::deque<Due> order_;
  std::uint64_t next_id_ = 0;
  std::size_t packets_ = 0;
  std::size_t bytes_ = 0;
};

// A token bucket: `rate` tokens per second, at most `burst` stored, starting full. For ICMP
// errors and other answers that must not become an amplifier. A `now` earlier than one seen
// before adds nothing. A negative or NaN rate or burst counts as 0 (a burst below 1 allows
// nothing).
class RateLimiter {
 public:
  RateLimiter(double rate, double burst) noexcept;
  // Takes one token if there is one.
  bool allow(TimePoint now) noexcept;

 private:
  double rate_;
  double burst_;
  double tokens_;
  TimePoint last_{};
  bool started_ = false;
};

}  // namespace tep
