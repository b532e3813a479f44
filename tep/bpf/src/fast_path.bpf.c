/* The in-kernel 4over6 fast path (RFC 2473, IPv4 in IPv6 with next header 4): two tc (SCHED_CLS,
 * direct-action) programs. tep_encap runs on the TUN device's egress and sends IPv4 packets of a
 * known binding (Tep role) or of the lease (Client role) out encapsulated; tep_decap runs on the
 * uplinks' ingress and hands valid tunnel packets to the TUN device's ingress decapsulated,
 * exactly as if user space had written them into the TUN. Whatever they do not handle goes on as
 * if no program were attached: to the TUN device (user space, the user-space backend) or to the
 * host's IPv6 stack (the raw tunnel socket), which count, answer or drop it.
 *
 * Built with clang -O2 -g -target bpf; loaded and configured by fast_path.cpp. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <linux/types.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "fast_path_shared.h"

/* GPL-only helpers (bpf_fib_lookup) need a GPL-compatible licence. */
char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET6 10
/* bpf_skb_adjust_room's decapsulation flags (Linux 6.3), newer than Debian 12's 6.1 uapi
 * headers: the new outer protocol is IPv4, so the helper sets skb->protocol. */
#define TEP_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)

/* The verdict for every packet not handled here: "no opinion". With tcx the next program on the
 * hook runs, with cls_bpf the next filter; after the last the packet goes on as if nothing were
 * attached. TC_ACT_OK would end the chain and stop other programs on a shared uplink (for
 * example a second FastPath for another local address) from seeing the packet. */
#define PASS TC_ACT_UNSPEC

#define ETH_HLEN_ 14
#define IPV6_HLEN 40
#define IPV4_MIN_HLEN 20
#define IPV4_MAX_HLEN 60
#define ICMP_PROTO 1
#define TCP_PROTO 6
#define UDP_PROTO 17

const volatile struct tep_bpf_config cfg = {};

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct tep_bpf_counters);
} counters SEC(".maps");

/* Tep role. max_entries is set by the loader; no preallocation: an update replaces the element
 * under RCU, so a reader never sees a half-written client address. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, __u32);
  __type(value, struct tep_bpf_binding);
} bindings SEC(".maps");

/* Client role: key 0 while a path is set (a hash for the same RCU replacement as bindings). */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, __u32);
  __type(value, struct tep_bpf_client_path);
} client_path SEC(".maps");

/* RFC 8200 §3, the fixed header, as bytes (no bit fields). */
struct ipv6_header {
  __be32 version_class_label;
  __be16 payload_length;
  __u8 next_header;
  __u8 hop_limit;
  __u8 src[16];
  __u8 dst[16];
};

/* RFC 791 §3.1, the fixed part. */
struct ipv4_header {
  __u8 version_ihl;
  __u8 tos;
  __be16 total_length;
  __be16 id;
  __be16 fragment;
  __u8 ttl;
  __u8 protocol;
  __be16 checksum;
  __be32 src;
  __be32 dst;
};

static __always_inline void count(enum tep_bpf_counter c, __u64 n) {
  __u32 key = 0;
  struct tep_bpf_counters* v = bpf_map_lookup_elem(&counters, &key);
  if (v) v->value[c] += n;
}

static __always_inline int pass(enum tep_bpf_counter c) {
  count(c, 1);
  return PASS;
}

static __always_inline int same16(const __u8* a, const volatile __u8* b) {
  __u64 x = 0;
#pragma unroll
  for (int i = 0; i < 16; ++i) x |= (__u64)(a[i] ^ b[i]);
  return x == 0;
}

/* Copies the configured local address. Through volatile: cfg is filled in by the loader after
 * compilation, so the compiler must not fold a plain memcpy of it into its zero initialiser. */
static __always_inline void copy_local(void* to) {
  __u8* out = to;
#pragma unroll
  for (int i = 0; i < 16; ++i) out[i] = cfg.local[i];
}

/* The murmur3 32-bit finaliser (core::mix32), as tep::inner_flow_label uses it, so that a flow
 * keeps its label whichever path (kernel or user space) encapsulates it. */
static __always_inline __u32 mix(__u32 h) {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

static __always_inline int has_ports(__u8 protocol) {
  return protocol == TCP_PROTO || protocol == UDP_PROTO || protocol == 33 /* DCCP */ ||
         protocol == 132 /* SCTP */ || protocol == 136 /* UDP-Lite */;
}

/* tep::inner_flow_label: a 20-bit non-zero hash of source, destination, protocol and, for an
 * unfragmented packet of a protocol with ports, the ports (RFC 6438). */
static __always_inline __u32 flow_label(struct __sk_buff* skb, const struct ipv4_header* ip,
                                        __u32 header_length) {
  __u32 h = mix(bpf_ntohl(ip->src) ^ 0x9e3779b9u);
  h = mix(h ^ bpf_ntohl(ip->dst));
  h = mix(h ^ ip->protocol);
  __be32 ports;
  if ((bpf_ntohs(ip->fragment) & 0x3fff) == 0 && has_ports(ip->protocol) &&
      bpf_skb_load_bytes(skb, header_length, &ports, sizeof(ports)) == 0)
    h = mix(h ^ bpf_ntohl(ports));
  __u32 label = (h ^ (h >> 20)) & 0xfffffu;
  return label == 0 ? 1 : label;
}

/* The headers replicated in every segment of a GSO packet (IPv4 + TCP or UDP), or 0 when the
 * packet is GSO of another kind (left to the stack). */
static __always_inline __u32 gso_header_length(struct __sk_buff* skb, __u32 offset,
                                               const struct ipv4_header* ip, __u32 ip_length) {
  if (ip->protocol == TCP_PROTO) {
    __u8 data_offset;
    if (bpf_skb_load_bytes(skb, offset + ip_length + 12, &data_offset, 1) < 0) return 0;
    return ip_length + (data_offset >> 4) * 4;
  }
  if (ip->protocol == UDP_PROTO) return ip_length + 8;
  return 0;
}

/* Segments and wire bytes (inner, without the outer header) of a packet of `length` inner bytes. */
struct wire {
  __u32 segments;
  __u32 inner_bytes;
};

static __always_inline struct wire wire_of(struct __sk_buff* skb, __u32 length, __u32 headers) {
  struct wire w = {.segments = 1, .inner_bytes = length};
  __u32 mss = skb->gso_size;
  if (mss != 0 && headers != 0 && length > headers) {
    w.segments = (length - headers + mss - 1) / mss;
    w.inner_bytes = length + (w.segments - 1) * headers;
  }
  return w;
}

/* ---- IPv4 -> tunnel, on the TUN device's egress (layer 3: the IPv4 header at offset 0). ---- */
SEC("tc")
int tep_encap(struct __sk_buff* skb) {
  if (skb->protocol != bpf_htons(ETH_P_IP)) return PASS;
  struct ipv4_header ip;
  if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0) return pass(TEP_BPF_C_passed_other);
  const __u32 ip_length = (ip.version_ihl & 0x0f) * 4;
  const __u32 length = skb->len;
  /* The total length must be the packet (a BIG TCP packet has 0 there: left to the stack). */
  if ((ip.version_ihl >> 4) != 4 || ip_length < IPV4_MIN_HLEN ||
      bpf_ntohs(ip.total_length) != length)
    return pass(TEP_BPF_C_passed_other);

  __u8 remote[16];
  struct tep_bpf_binding* binding = 0;
  if (cfg.role == TEP_BPF_ROLE_TEP) {
    __u32 key = ip.dst;
    binding = bpf_map_lookup_elem(&bindings, &key);
    if (!binding) return pass(TEP_BPF_C_passed_no_binding);
    __builtin_memcpy(remote, binding->client, 16);
  } else {
    __u32 key = 0;
    struct tep_bpf_client_path* path = bpf_map_lookup_elem(&client_path, &key);
    if (!path || path->lease != ip.src) return pass(TEP_BPF_C_passed_no_path);
    __builtin_memcpy(remote, path->tep, 16);
  }

  /* The largest packet on the wire: the packet itself, or one segment of a GSO packet. */
  __u32 headers = 0;
  __u32 segment = length;
  if (skb->gso_size != 0) {
    headers = gso_header_length(skb, 0, &ip, ip_length);
    if (headers == 0) return pass(TEP_BPF_C_passed_other);
    segment = headers + skb->gso_size;
  }
  if (segment + IPV6_HLEN > cfg.tunnel_mtu) return pass(TEP_BPF_C_passed_mtu);

  const __u32 label = cfg.flow_label ? flow_label(skb, &ip, ip_length) : 0;
  /* RFC 6040 §4.1 normal mode and RFC 2983 uniform DSCP: the traffic class is the inner TOS. */
  const __be32 vtf = bpf_htonl((6u << 28) | ((__u32)ip.tos << 20) | label);

  /* Route first, before the packet is changed: a packet we cannot send goes to user space
   * intact. tot_len makes the lookup check the route's MTU (path MTU included). The neighbour is
   * left to bpf_redirect_neigh, which resolves and refreshes it as the stack does. */
  struct bpf_fib_lookup fib = {};
  fib.family = AF_INET6;
  fib.l4_protocol = IPPROTO_IPIP;
  fib.tot_len = (__u16)(segment + IPV6_HLEN);
  fib.ifindex = skb->ifindex;
  fib.flowinfo = vtf & bpf_htonl(0x0fffffff);
  copy_local(fib.ipv6_src);
  __builtin_memcpy(fib.ipv6_dst, remote, 16);
  const long route =
      bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_OUTPUT | BPF_FIB_LOOKUP_SKIP_NEIGH);
  if (route == BPF_FIB_LKUP_RET_FRAG_NEEDED) return pass(TEP_BPF_C_passed_mtu);
  if (route != BPF_FIB_LKUP_RET_SUCCESS) return pass(TEP_BPF_C_passed_no_route);

  struct ipv6_header outer = {
      .version_class_label = vtf,
      .payload_length = ip.total_length,
      .next_header = IPPROTO_IPIP,
      .hop_limit = cfg.hop_limit,
  };
  copy_local(outer.src);
  __builtin_memcpy(outer.dst, remote, 16);

  const struct wire w = wire_of(skb, length, headers);

  /* FIXED_GSO: the segments keep the inner MSS (the sender sized them for the tunnel already);
   * without it the kernel would shrink gso_size by 40. ENCAP_L3_IPV6 marks the packet as
   * IPv4-in-IPv6 for GSO (SKB_GSO_IPXIP6) and makes skb->protocol IPv6. */
  if (bpf_skb_adjust_room(skb, IPV6_HLEN, BPF_ADJ_ROOM_MAC,
                          BPF_F_ADJ_ROOM_ENCAP_L3_IPV6 | BPF_F_ADJ_ROOM_FIXED_GSO) < 0)
    return pass(TEP_BPF_C_passed_other);
  /* From here the packet is changed: a failure can only drop it. */
  if (bpf_skb_store_bytes(skb, 0, &outer, sizeof(outer), 0) < 0 ||
      /* bpf_redirect_neigh wants a MAC header (it pulls one and builds the real one itself). */
      bpf_skb_change_head(skb, ETH_HLEN_, 0) < 0) {
    count(TEP_BPF_C_dropped, 1);
    return TC_ACT_SHOT;
  }

  if (headers != 0) count(TEP_BPF_C_encapsulated_gso, 1);
  count(TEP_BPF_C_encapsulated, w.segments);
  count(TEP_BPF_C_encapsulated_bytes, w.inner_bytes + (__u64)w.segments * IPV6_HLEN);
  if (binding) {
    __sync_fetch_and_add(&binding->packets_to_client, w.segments);
    __sync_fetch_and_add(&binding->bytes_to_client, w.inner_bytes);
  }
  struct bpf_redir_neigh next_hop = {.nh_family = AF_INET6};
  __builtin_memcpy(next_hop.ipv6_nh, fib.ipv6_dst, 16);
  return bpf_redirect_neigh(fib.ifindex, &next_hop, sizeof(next_hop), 0);
}

/* ---- tunnel -> IPv4, on the uplinks' ingress (Ethernet: the IPv6 header at offset 14). ---- */
SEC("tc")
int tep_decap(struct __sk_buff* skb) {
  if (skb->protocol != bpf_htons(ETH_P_IPV6)) return PASS;
  struct ipv6_header outer;
  if (bpf_skb_load_bytes(skb, ETH_HLEN_, &outer, sizeof(outer)) < 0) return PASS;
  /* Not a tunnel packet for us: no opinion, not counted (it is the uplink's other traffic). */
  if ((bpf_ntohl(outer.version_class_label) >> 28) != 6 || outer.next_header != IPPROTO_IPIP ||
      !same16(outer.dst, cfg.local))
    return PASS;

  const __u32 inner_offset = ETH_HLEN_ + IPV6_HLEN;
  const __u32 payload_length = bpf_ntohs(outer.payload_length);
  /* Everything below is left to user space, which counts the reason (tep::decapsulate). */
  if (skb->len != inner_offset + payload_length) return pass(TEP_BPF_C_passed_invalid);
  struct ipv4_header ip;
  if (bpf_skb_load_bytes(skb, inner_offset, &ip, sizeof(ip)) < 0)
    return pass(TEP_BPF_C_passed_invalid);
  const __u32 ip_length = (ip.version_ihl & 0x0f) * 4;
  if ((ip.version_ihl >> 4) != 4 || ip_length < IPV4_MIN_HLEN || ip_length > IPV4_MAX_HLEN ||
      bpf_ntohs(ip.total_length) != payload_length)
    return pass(TEP_BPF_C_passed_invalid);
  /* RFC 1071: the ones' complement sum over the header, its checksum included, is 0xffff. */
  __u8 header[IPV4_MAX_HLEN] = {};
  if (bpf_skb_load_bytes(skb, inner_offset, header, ip_length) < 0)
    return pass(TEP_BPF_C_passed_invalid);
  __s64 sum = bpf_csum_diff(0, 0, (__be32*)header, ip_length, 0);
  if (sum < 0) return pass(TEP_BPF_C_passed_invalid);
  __u32 folded = (__u32)sum;
  folded = (folded & 0xffff) + (folded >> 16);
  folded = (folded & 0xffff) + (folded >> 16);
  if (folded != 0xffff) return pass(TEP_BPF_C_passed_invalid);

  /* RFC 6040 §4.2: CE outside over Not-ECT inside is dropped (by user space, which counts it);
   * CE over ECT(0)/ECT(1) makes the inner CE; otherwise the inner field stays. */
  const __u8 outer_ecn = (bpf_ntohl(outer.version_class_label) >> 20) & 3;
  const __u8 inner_ecn = ip.tos & 3;
  if (outer_ecn == 3 && inner_ecn == 0) return pass(TEP_BPF_C_passed_invalid);

  struct tep_bpf_binding* binding = 0;
  if (cfg.role == TEP_BPF_ROLE_TEP) {
    __u32 key = ip.src;
    binding = bpf_map_lookup_elem(&bindings, &key);
    if (!binding) return pass(TEP_BPF_C_passed_no_binding);
    /* Anti-spoofing: the inner source is leased to the outer source. */
    if (!same16(outer.src, binding->client)) return pass(TEP_BPF_C_passed_spoofed);
    /* The client's keepalive (echo request to the keepalive address) is answered by user
     * space; so is any other ICMP to that address. */
    if (cfg.has_keepalive && ip.dst == cfg.keepalive && ip.protocol == ICMP_PROTO)
      return pass(TEP_BPF_C_passed_keepalive);
  } else {
    __u32 key = 0;
    struct tep_bpf_client_path* path = bpf_map_lookup_elem(&client_path, &key);
    /* Return traffic may come from any TEP: the outer source is not checked. */
    if (!path || path->lease != ip.dst) return pass(TEP_BPF_C_passed_no_path);
    /* Keepalive answers (echo replies from the keepalive address) are user space's. */
    if (cfg.has_keepalive && ip.src == cfg.keepalive && ip.protocol == ICMP_PROTO)
      return pass(TEP_BPF_C_passed_keepalive);
  }

  __u32 headers = 0;
  if (skb->gso_size != 0) {
    headers = gso_header_length(skb, inner_offset, &ip, ip_length);
    if (headers == 0) return pass(TEP_BPF_C_passed_other);
  }
  const struct wire w = wire_of(skb, payload_length, headers);

  if (outer_ecn == 3 && inner_ecn != 3) {
    /* The first 16-bit word of the header holds version/IHL and TOS. */
    const __be16 before = bpf_htons(((__u16)ip.version_ihl << 8) | ip.tos);
    const __u8 tos = ip.tos | 3;
    const __be16 after = bpf_htons(((__u16)ip.version_ihl << 8) | tos);
    if (bpf_l3_csum_replace(skb, inner_offset + 10, before, after, sizeof(__u16)) < 0 ||
        bpf_skb_store_bytes(skb, inner_offset + 1, &tos, 1, 0) < 0)
      return pass(TEP_BPF_C_passed_other);
  }

  /* Removes the 40 bytes after the MAC header and makes skb->protocol IPv4; FIXED_GSO keeps the
   * segments' MSS (otherwise the kernel would grow it by 40). */
  if (bpf_skb_adjust_room(skb, -IPV6_HLEN, BPF_ADJ_ROOM_MAC,
                          TEP_ADJ_ROOM_DECAP_L3_IPV4 | BPF_F_ADJ_ROOM_FIXED_GSO) < 0)
    return pass(TEP_BPF_C_passed_other);
  const __be16 ipv4 = bpf_htons(ETH_P_IP);
  bpf_skb_store_bytes(skb, 12, &ipv4, sizeof(ipv4), 0);

  if (headers != 0) count(TEP_BPF_C_decapsulated_gso, 1);
  count(TEP_BPF_C_decapsulated, w.segments);
  count(TEP_BPF_C_decapsulated_bytes, w.inner_bytes);
  if (binding) {
    __sync_fetch_and_add(&binding->packets_from_client, w.segments);
    __sync_fetch_and_add(&binding->bytes_from_client, w.inner_bytes);
  }
  /* Into the TUN device's ingress: the packet enters the stack as if user space had written it
   * into the TUN (same input interface for rp_filter and firewall rules). */
  return bpf_redirect(cfg.tun_ifindex, BPF_F_INGRESS);
}

/* ---- Run once by the loader (BPF_PROG_TEST_RUN) on an IPv4-in-IPv6 frame: whether this kernel
 * knows the helper flags the programs use (both Linux 6.3). Older kernels refuse unknown flags
 * with -EINVAL. Returns 0 when both are known. ---- */
SEC("tc")
int tep_probe(struct __sk_buff* skb) {
  if (bpf_skb_adjust_room(skb, -IPV6_HLEN, BPF_ADJ_ROOM_MAC, TEP_ADJ_ROOM_DECAP_L3_IPV4) < 0)
    return 1;
  struct bpf_fib_lookup fib = {};
  fib.family = AF_INET6;
  fib.ifindex = skb->ifindex;
  if (bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_OUTPUT | BPF_FIB_LOOKUP_SKIP_NEIGH) ==
      -22 /* -EINVAL */)
    return 2;
  return 0;
}
