/* Layouts shared by the BPF programs (fast_path.bpf.c, built with clang -target bpf) and the C++
 * loader (fast_path.cpp): the read-only configuration, the map keys and values, the counter
 * order. C only, fixed-width kernel types, no padding the two compilers could disagree on. */
#ifndef TEP_BPF_FAST_PATH_SHARED_H
#define TEP_BPF_FAST_PATH_SHARED_H

#include <linux/types.h>

/* The counters in map order. fast_path.cpp checks at compile time that the public
 * TEP_BPF_COUNTERS list (tep_bpf/fast_path.hpp, with help texts) names the same ones in the same
 * order. */
/* clang-format off */
#define TEP_BPF_COUNTER_NAMES(X) \
  X(encapsulated)                \
  X(encapsulated_bytes)          \
  X(decapsulated)                \
  X(decapsulated_bytes)          \
  X(encapsulated_gso)            \
  X(decapsulated_gso)            \
  X(passed_no_binding)           \
  X(passed_no_path)              \
  X(passed_mtu)                  \
  X(passed_no_route)             \
  X(passed_spoofed)              \
  X(passed_keepalive)            \
  X(passed_invalid)              \
  X(passed_other)                \
  X(dropped)
/* clang-format on */

enum tep_bpf_counter {
#define TEP_BPF_COUNTER_ENUM(name) TEP_BPF_C_##name,
  TEP_BPF_COUNTER_NAMES(TEP_BPF_COUNTER_ENUM)
#undef TEP_BPF_COUNTER_ENUM
      TEP_BPF_COUNTER_COUNT
};

/* The per-CPU counters map holds one element (key 0) of this type. */
struct tep_bpf_counters {
  __u64 value[TEP_BPF_COUNTER_COUNT];
};

enum tep_bpf_role { TEP_BPF_ROLE_TEP = 0, TEP_BPF_ROLE_CLIENT = 1 };

/* Set once before the programs are loaded (.rodata: the verifier prunes the other role's code).
 * Addresses in network byte order. */
struct tep_bpf_config {
  __u8 local[16];    /* the tunnel end point: outer source; decap for outer destination */
  __u32 role;        /* enum tep_bpf_role */
  __u32 tun_ifindex; /* decapsulated packets are redirected into its ingress */
  __u32 tunnel_mtu;  /* the largest outer IPv6 packet (or GSO segment) */
  __u32 keepalive;   /* IPv4, network order; valid when has_keepalive */
  __u8 has_keepalive;
  __u8 hop_limit;
  __u8 flow_label; /* 1: inner flow hash as the outer flow label, 0: label 0 */
  __u8 pad[5];
};

/* Tep role: bindings, key the IPv4 pool address (network order). Counters are updated with
 * atomic adds from every CPU; inner bytes. */
struct tep_bpf_binding {
  __u8 client[16];
  __u64 packets_to_client;
  __u64 bytes_to_client;
  __u64 packets_from_client;
  __u64 bytes_from_client;
};

/* Client role: the path, one element at key 0 while set. */
struct tep_bpf_client_path {
  __u8 tep[16]; /* outer destination */
  __u32 lease;  /* IPv4, network order */
  __u32 pad;
};

#endif
