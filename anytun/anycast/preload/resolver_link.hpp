// The calling thread's connection to anycast-resolver's query socket (query.hpp): one
// SOCK_SEQPACKET connection per thread, opened on first use, again in a forked child (pid check)
// and after any error or timeout (a late answer must never be read as the next one). Every
// wait is bounded; errno and the cancel state are left as they were.
#pragma once

#include "anycast/query.hpp"
#include "real.hpp"

namespace anycast::preload {

// Extra time allowed for the answer on top of the resolver's own budget (wait_ms for blocking
// callers, nothing for the others), for the round trip and the resolver's scheduling.
inline constexpr int kAnswerMarginMs = 50;

enum class LinkOutcome {
  Answered,     // `answer` holds the resolver's answer
  Unreachable,  // no connection, or it broke: `error` holds the errno
  Timeout,      // no answer in time
  BadAnswer,    // not a well-formed answer
  Busy,         // a signal handler interrupted this thread's own query: not asked
};

struct LinkReply {
  LinkOutcome outcome = LinkOutcome::Unreachable;
  query::Answer answer{};
  int error = 0;
};

// Creates the key whose destructor closes a thread's connection when the thread exits, and the
// fork handler that closes a child's copy of the forking thread's connection.
void link_set_up(const Real& real) noexcept;

// Sends a Resolve request and waits for its answer: up to request.wait_ms + kAnswerMarginMs with
// kFlagMayWait, else kAnswerMarginMs.
LinkReply link_ask(const Runtime& rt, const query::Request& request) noexcept;

// Sends a request that has no answer (Op::Failed) without waiting.
void link_tell(const Runtime& rt, const query::Request& request) noexcept;

}  // namespace anycast::preload
