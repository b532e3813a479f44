// Error codes of the dstm_server library, the SQLite error category, and Error (code + detail).
#pragma once

#include <iosfwd>
#include <string>
#include <type_traits>

#include <boost/assert/source_location.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

namespace dstm_server {

// Two conventions, split by layer (docs: dstm-server/README.md):
//  - pool and lease-table operations on the request path (allocate, acquire, release, find)
//    return core::Result<T>: an error code, no allocation;
//  - construction from configuration and everything that touches the disk return
//    dstm_server::Result<T>, whose Error also says what and where ("prefix 192.0.2.128/25
//    overlaps 192.0.2.0/24", "/var/lib/dstm/leases.db: file is not a database").
enum class Errc {
  // Pool configuration (Pool::make).
  PoolNoPrefix = 1,      // no prefix configured
  PoolOverlap,           // two prefixes share addresses
  PoolEmpty,             // every address is excluded (or the prefixes hold none)
  PoolTooLarge,          // more addresses than Pool::kMaxAddresses
  ExclusionOutsidePool,  // an operator exclusion names an address in no pool prefix
  // Pool and lease-table operations.
  PoolExhausted,        // no free address (and no expired lease to take one from)
  NotInPool,            // the address is in no pool prefix
  AddressExcluded,      // the address is in a prefix but excluded
  AddressInUse,         // allocate_specific/restore of an address already allocated
  AddressNotAllocated,  // release of an address that is free or excluded
  LeaseNotFound,        // no lease for that address or (ipv6, identity)
  LeaseConflict,        // restore: the (ipv6, identity) already holds another address
  BadLifetime,          // lifetime <= 0
  IdentityTooLong,      // user name longer than LeaseTable::kMaxIdentity bytes
  TooManyTeps,          // more distinct TEP names than the table can number
  // Lease store.
  StoreForeignFile,  // an SQLite file that is not a DSTM lease store
  StoreNewerSchema,  // written by a newer schema version than this build knows
  StoreBadRow,       // a row that does not decode to a lease
};

}  // namespace dstm_server

namespace boost::system {
template <>
struct is_error_code_enum<::dstm_server::Errc> : std::true_type {};
}  // namespace boost::system

namespace dstm_server {

const boost::system::error_category& dstm_server_category() noexcept;

inline boost::system::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), dstm_server_category()};
}

// SQLite result codes (extended codes, e.g. SQLITE_IOERR_FSYNC) as error codes; message() is
// SQLite's own text for the code (sqlite3_errstr).
const boost::system::error_category& sqlite_category() noexcept;

inline boost::system::error_code make_sqlite_error(int sqlite_code) noexcept {
  return {sqlite_code, sqlite_category()};
}

// An error code plus the detail a log line or an operator needs: which prefix, which file,
// SQLite's message for the failing statement.
struct Error {
  boost::system::error_code code;
  std::string detail;

  // "<code message>: <detail>" (or just the code message when there is no detail).
  std::string message() const;

  friend bool operator==(const Error& e, Errc c) noexcept { return e.code == c; }
};

// message(), for diagnostics and test output.
std::ostream& operator<<(std::ostream& os, const Error& e);

template <typename T>
using Result = boost::system::result<T, Error>;

// Lets Result<T>::value() throw on error (system_error with the full message); found by ADL.
[[noreturn]] void throw_exception_from_error(const Error& e, const boost::source_location& loc);

}  // namespace dstm_server
