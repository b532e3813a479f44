// The dstm_server and SQLite error categories.
#include "dstm_server/error.hpp"

#include <sqlite3.h>

#include <ostream>

#include <boost/system/system_error.hpp>
#include <boost/throw_exception.hpp>

namespace dstm_server {
namespace {

class DstmServerCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "dstm_server"; }
  std::string message(int ev) const override {
    switch (static_cast<Errc>(ev)) {
      case Errc::PoolNoPrefix:
        return "the pool has no prefix";
      case Errc::PoolOverlap:
        return "pool prefixes overlap";
      case Errc::PoolEmpty:
        return "the pool has no usable address";
      case Errc::PoolTooLarge:
        return "the pool is too large";
      case Errc::ExclusionOutsidePool:
        return "excluded address is outside the pool";
      case Errc::PoolExhausted:
        return "the address pool is exhausted";
      case Errc::NotInPool:
        return "address is not in the pool";
      case Errc::AddressExcluded:
        return "address is excluded from the pool";
      case Errc::AddressInUse:
        return "address is already allocated";
      case Errc::AddressNotAllocated:
        return "address is not allocated";
      case Errc::LeaseNotFound:
        return "no such lease";
      case Errc::LeaseConflict:
        return "client already holds another lease";
      case Errc::BadLifetime:
        return "lease lifetime must be positive";
      case Errc::IdentityTooLong:
        return "identity is too long";
      case Errc::TooManyTeps:
        return "too many distinct TEP names";
      case Errc::StoreForeignFile:
        return "not a DSTM lease store";
      case Errc::StoreNewerSchema:
        return "lease store written by a newer version";
      case Errc::StoreBadRow:
        return "lease store row is invalid";
    }
    return "unknown dstm_server error";
  }
};

class SqliteCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "sqlite"; }
  std::string message(int ev) const override { return sqlite3_errstr(ev); }
};

}  // namespace

const boost::system::error_category& dstm_server_category() noexcept {
  static const DstmServerCategory category;
  return category;
}

const boost::system::error_category& sqlite_category() noexcept {
  static const SqliteCategory category;
  return category;
}

std::string Error::message() const {
  auto text = code.message();
  if (!detail.empty()) {
    text += ": ";
    text += detail;
  }
  return text;
}

std::ostream& operator<<(std::ostream& os, const Error& e) {
  return os << e.message();
}

void throw_exception_from_error(const Error& e, const boost::source_location& loc) {
  boost::throw_exception(boost::system::system_error(e.code, e.detail), loc);
}

}  // namespace dstm_server
