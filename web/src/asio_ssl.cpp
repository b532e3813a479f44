// Compiles Asio's OpenSSL layer once (BOOST_ASIO_SEPARATE_COMPILATION, set by platform, which
// compiles the rest of Asio): only the dashboard speaks TLS, so it lives here.
#include <boost/asio/ssl/impl/src.hpp>
