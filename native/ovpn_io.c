/*
 * ovpn_io: the smallest possible bridge from Node to the Linux facilities the
 * data channel needs and Node does not expose: a TUN fd, recvmmsg/sendmmsg
 * with per-packet source addresses (IP_PKTINFO), link ioctls, and a uv_poll
 * watcher so the fds are driven by Node's own event loop.
 *
 * Deliberately protocol-blind: every byte of OpenVPN framing, nonce layout,
 * replay protection and routing lives in TypeScript. This file only moves
 * opaque buffers between the kernel and JS-owned memory, so there is no copy
 * and no allocation on the hot path beyond the napi calls needed to look the
 * buffers up. The AEAD primitive (aead.c) and the Internet checksum
 * (checksum.c) are registered on the same addon.
 *
 * All calls are synchronous on non-blocking fds. Errors become JS Errors whose
 * .code is the errno name, so callers can switch on 'EAGAIN', 'EBADFD', ...
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aead.h"
#include "checksum.h"

/* Mirrors MAX_BATCH in src/edge/batch.ts; bounds the on-stack mmsghdr arrays. */
#define MAX_BATCH 128
/* The endpoint slot layout of src/core/endpoint.ts. */
#define EP_SIZE 48
#define EP_FAMILY 0
#define EP_PORT 2
#define EP_ADDR 4
#define EP_LFAMILY 20
#define EP_LADDR 24
#define EP_IFINDEX 40

/* Big enough for one IPV6_PKTINFO plus one IP_PKTINFO: a dual-stack socket
 * may deliver either (a v4-mapped packet on a GRO socket brings both), plus
 * the UDP_GRO segment size on receive, or the UDP_SEGMENT size on send; and
 * room for one more, so that a cmsg a newer kernel adds cannot push out the
 * pktinfo. Truncation is still checked (MSG_CTRUNC), never assumed away. */
#define CTRL_SIZE                                                                                  \
  (CMSG_SPACE(sizeof(struct in6_pktinfo)) * 2 + CMSG_SPACE(sizeof(struct in_pktinfo)) + CMSG_SPACE(sizeof(int)))

/* ------------------------------------------------------------------ errors */

/* Pending-exception helper: returns NULL so callers can `return throw_errno()`. */
static napi_value throw_errno(napi_env env, int err, const char *call) {
  const char *name = strerrorname_np(err);
  char code[32];
  char msg[256];
  if (name == NULL) {
    snprintf(code, sizeof code, "E%d", err);
    name = code;
  }
  snprintf(msg, sizeof msg, "%s: %s (%s)", call, strerror(err), name);
  napi_value jcode, jmsg, jerr, jerrno;
  /* Every step checked: if one fails, a plain Error with the same message is thrown instead,
   * so the caller never sees a NULL return without an exception. */
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &jcode) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &jmsg) != napi_ok ||
      napi_create_error(env, jcode, jmsg, &jerr) != napi_ok || napi_create_int32(env, -err, &jerrno) != napi_ok ||
      napi_set_named_property(env, jerr, "errno", jerrno) != napi_ok ||
      napi_set_named_property(env, jerr, "syscall", jmsg) != napi_ok || napi_throw(env, jerr) != napi_ok) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_error(env, name, msg);
  }
  return NULL;
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

#define CHECK(call)                                                          \
  do {                                                                       \
    if ((call) != napi_ok) {                                                 \
      bool pending_ = false;                                                 \
      napi_is_exception_pending(env, &pending_);                             \
      if (!pending_) napi_throw_error(env, NULL, "napi call failed: " #call); \
      return NULL;                                                           \
    }                                                                        \
  } while (0)

/* ------------------------------------------------------------ arg helpers */

static int get_i32(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}

/* Copies a string that fits with its NUL (a 15-character interface name in IFNAMSIZ 16);
 * refuses a longer one instead of truncating it. */
static int get_str(napi_env env, napi_value v, char *buf, size_t cap) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok || len >= cap) return 0;
  return napi_get_value_string_utf8(env, v, buf, cap, &len) == napi_ok;
}

/* The batch arguments every I/O call shares: (fd, bufs[], offsets, sizes). */
typedef struct {
  int fd;
  napi_value bufs;
  uint32_t nbufs;
  int32_t *offsets;
  int32_t *sizes;
  size_t nslots; /* min length of offsets/sizes */
} batch_args;

static int get_i32_array(napi_env env, napi_value v, int32_t **data, size_t *len) {
  napi_typedarray_type type;
  void *ptr;
  if (napi_get_typedarray_info(env, v, &type, len, &ptr, NULL, NULL) != napi_ok) return 0;
  if (type != napi_int32_array) return 0;
  *data = ptr;
  return 1;
}

static int parse_batch(napi_env env, napi_value *argv, batch_args *b) {
  size_t no, ns;
  bool is_array = false;
  if (!get_i32(env, argv[0], &b->fd)) return throw_type(env, "fd must be a number"), 0;
  napi_is_array(env, argv[1], &is_array);
  if (!is_array) return throw_type(env, "bufs must be an Array of Buffers"), 0;
  b->bufs = argv[1];
  napi_get_array_length(env, argv[1], &b->nbufs);
  if (!get_i32_array(env, argv[2], &b->offsets, &no) || !get_i32_array(env, argv[3], &b->sizes, &ns))
    return throw_type(env, "offsets and sizes must be Int32Array"), 0;
  b->nslots = no < ns ? no : ns;
  return 1;
}

/* Clamp a requested packet count to what every array in the batch can hold. */
static uint32_t clamp_count(const batch_args *b, int32_t n) {
  uint32_t c = n < 0 ? 0 : (uint32_t)n;
  if (c > b->nbufs) c = b->nbufs;
  if (c > b->nslots) c = (uint32_t)b->nslots;
  return c;
}

/* Resolve packet i to a memory range. For reads the range is [off, end of
 * buffer); for writes it is [off, off+size). Bounds are checked here so a JS
 * bug can never make the kernel touch memory outside the Buffer. */
static int buffer_range(napi_env env, const batch_args *b, napi_value el, uint32_t i, int for_write, uint8_t **p,
                        size_t *len) {
  void *data;
  size_t cap;
  bool isbuf = false;
  if (napi_is_buffer(env, el, &isbuf) != napi_ok) isbuf = false;
  if (!isbuf || napi_get_buffer_info(env, el, &data, &cap) != napi_ok)
    return throw_type(env, "bufs[i] must be a Buffer"), 0;
  int32_t off = b->offsets[i];
  if (off < 0 || (size_t)off > cap) return throw_type(env, "offsets[i] outside buffer"), 0;
  if (for_write) {
    int32_t sz = b->sizes[i];
    if (sz < 0 || (size_t)off + (size_t)sz > cap) return throw_type(env, "offsets[i]+sizes[i] outside buffer"), 0;
    *len = (size_t)sz;
  } else {
    *len = cap - (size_t)off;
  }
  *p = (uint8_t *)data + off;
  return 1;
}

/* A pending exception stays as it is (a getter that threw); otherwise one is raised. */
static int napi_failed(napi_env env, const char *what) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, NULL, what);
  return 0;
}

/* Packet i's memory, used at once (one syscall per packet). */
static int slot_ptr(napi_env env, const batch_args *b, uint32_t i, int for_write, uint8_t **p, size_t *len) {
  napi_value el;
  if (napi_get_element(env, b->bufs, i, &el) != napi_ok) return napi_failed(env, "bufs[i] could not be read");
  return buffer_range(env, b, el, i, for_write, p, len);
}

/* Packets [0, n)'s memory, kept for one sendmmsg/recvmmsg. Every element is
 * fetched before any pointer is taken: napi_get_element can run JavaScript (a
 * getter on the array, hostile code in-process only), which could detach or
 * shrink a Buffer whose pointer was already taken; buffer_range runs none. */
static int slot_ptrs(napi_env env, const batch_args *b, uint32_t n, int for_write, uint8_t **p, size_t *len) {
  napi_value els[MAX_BATCH];
  for (uint32_t i = 0; i < n; i++)
    if (napi_get_element(env, b->bufs, i, &els[i]) != napi_ok) return napi_failed(env, "bufs[i] could not be read");
  for (uint32_t i = 0; i < n; i++)
    if (!buffer_range(env, b, els[i], i, for_write, &p[i], &len[i])) return 0;
  return 1;
}

static napi_value ret_u32(napi_env env, uint32_t v) {
  napi_value r;
  if (napi_create_uint32(env, v, &r) != napi_ok) return napi_failed(env, "could not return a count"), NULL;
  return r;
}

/* Errors that concern one packet, not the fd: the packet is dropped and the
 * batch goes on, so one bad peer or malformed packet can't stall the rest. */
static int per_packet_error(int e) {
  switch (e) {
    case EINVAL: case EMSGSIZE: case ENETUNREACH: case EHOSTUNREACH: case EPERM:
    case EACCES: case EADDRNOTAVAIL: case ECONNREFUSED: case EAFNOSUPPORT: case EDESTADDRREQ:
    /* the path's device went away or down (a link-local peer's interface removed) */
    case ENODEV: case ENXIO: case ENETDOWN: case EHOSTDOWN:
      return 1;
    default:
      return 0;
  }
}

/* Errors that mean the fd itself is finished (the TUN device deleted: EBADFD).
 * Only these are thrown once nothing was done yet; any other error of a write
 * costs the packet (sizes[i] = -errno) and the batch goes on, so an admin
 * action such as `ip link set tun0 down` (EIO) is counted, not fatal. */
static int fd_gone(int e) {
  return e == EBADF || e == EBADFD || e == ENOTSOCK || e == EFAULT;
}

/* ---------------------------------------------------------------- TUN */

/* Length of struct virtio_net_hdr (no num_buffers): what TUNSETVNETHDRSZ asks for. */
#define VNET_HDR_LEN 10

#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#define TUN_F_USO6 0x40
#endif

/* tunOpen(name, offloads?): with offloads (a TUN_F_* mask, possibly 0) the device is opened
 * with IFF_VNET_HDR, so every read and write carries a virtio_net_hdr in front of the packet,
 * and TUNSETOFFLOAD announces which offloads we accept. Any refusal closes the fd (the device
 * goes with it) and throws, so the caller can retry with fewer offloads or none. */
static napi_value tun_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  char name[IFNAMSIZ];
  int32_t offloads = -1;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !get_str(env, argv[0], name, sizeof name))
    return throw_type(env, "tunOpen: name must be a string shorter than IFNAMSIZ");
  if (argc >= 2) {
    napi_valuetype t;
    napi_typeof(env, argv[1], &t);
    if (t != napi_undefined && (!get_i32(env, argv[1], &offloads) || offloads < 0))
      return throw_type(env, "tunOpen: offloads must be a TUN_F_* mask");
  }

  /* TUNSETIFF on an existing *persistent* tun would silently attach to it and
   * inherit its persistence, and on a non-tun device it says only EINVAL. An
   * explicit check gives one clear error for "name taken" in all cases. */
  if (name[0] && if_nametoindex(name) != 0) {
    char what[96];
    snprintf(what, sizeof what, "tunOpen: device %s already exists", name);
    return throw_errno(env, EBUSY, what);
  }

  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, errno, "tunOpen: open /dev/net/tun");
  int uso_write = 0;

  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  /* No TUNSETPERSIST: the device lives exactly as long as this fd, so a crash
   * (even SIGKILL) removes it and the next start can recreate the name. */
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (offloads >= 0 ? IFF_VNET_HDR : 0);
  memcpy(ifr.ifr_name, name, strlen(name));
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, e, "tunOpen: ioctl TUNSETIFF");
  }
  if (offloads >= 0) {
    int hdrsz = VNET_HDR_LEN;
    if (ioctl(fd, TUNSETVNETHDRSZ, &hdrsz) < 0) {
      int e = errno;
      close(fd);
      return throw_errno(env, e, "tunOpen: ioctl TUNSETVNETHDRSZ");
    }
    if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)offloads) < 0) {
      int e = errno;
      close(fd);
      return throw_errno(env, e, "tunOpen: ioctl TUNSETOFFLOAD");
    }
    /* Kernels that know TUN_F_USO4/6 (6.2+) also take UDP super-packets
     * (VIRTIO_NET_HDR_GSO_UDP_L4) on write, which is all we use: the flags are
     * set back at once, so reads never bring UDP super-packets to cut. */
    if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)offloads | TUN_F_USO4 | TUN_F_USO6) == 0) {
      uso_write = 1;
      if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)offloads) < 0) {
        int e = errno;
        close(fd);
        return throw_errno(env, e, "tunOpen: ioctl TUNSETOFFLOAD");
      }
    }
  }

  napi_value obj, v;
  CHECK(napi_create_object(env, &obj));
  napi_create_int32(env, fd, &v);
  napi_set_named_property(env, obj, "fd", v);
  ifr.ifr_name[IFNAMSIZ - 1] = 0;
  napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, "name", v);
  napi_create_uint32(env, if_nametoindex(ifr.ifr_name), &v);
  napi_set_named_property(env, obj, "ifindex", v);
  napi_get_boolean(env, uso_write, &v);
  napi_set_named_property(env, obj, "usoWrite", v);
  return obj;
}

/* Link ioctls need some socket in the right netns; AF_INET dgram is universal. */
static int link_ioctl(unsigned long req, struct ifreq *ifr) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -errno;
  int r = ioctl(s, req, ifr);
  int e = errno;
  close(s);
  return r < 0 ? -e : 0;
}

static napi_value link_set(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], v;
  char name[IFNAMSIZ];
  bool has = false;
  int r;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || !get_str(env, argv[0], name, sizeof name)) return throw_type(env, "linkSet: bad name");

  struct ifreq ifr;
  napi_has_named_property(env, argv[1], "mtu", &has);
  if (has) {
    int32_t mtu;
    napi_get_named_property(env, argv[1], "mtu", &v);
    napi_valuetype t;
    napi_typeof(env, v, &t);
    if (t != napi_undefined) {
      if (!get_i32(env, v, &mtu)) return throw_type(env, "linkSet: mtu must be a number");
      memset(&ifr, 0, sizeof ifr);
      memcpy(ifr.ifr_name, name, strlen(name));
      ifr.ifr_mtu = mtu;
      if ((r = link_ioctl(SIOCSIFMTU, &ifr)) < 0) return throw_errno(env, -r, "linkSet: ioctl SIOCSIFMTU");
    }
  }
  napi_has_named_property(env, argv[1], "txqueuelen", &has);
  if (has) {
    int32_t qlen;
    napi_get_named_property(env, argv[1], "txqueuelen", &v);
    napi_valuetype t;
    napi_typeof(env, v, &t);
    if (t != napi_undefined) {
      if (!get_i32(env, v, &qlen) || qlen < 0) return throw_type(env, "linkSet: txqueuelen must be a number >= 0");
      memset(&ifr, 0, sizeof ifr);
      memcpy(ifr.ifr_name, name, strlen(name));
      ifr.ifr_qlen = qlen;
      if ((r = link_ioctl(SIOCSIFTXQLEN, &ifr)) < 0) return throw_errno(env, -r, "linkSet: ioctl SIOCSIFTXQLEN");
    }
  }
  napi_has_named_property(env, argv[1], "up", &has);
  if (has) {
    bool up;
    napi_get_named_property(env, argv[1], "up", &v);
    if (napi_get_value_bool(env, v, &up) == napi_ok) {
      memset(&ifr, 0, sizeof ifr);
      memcpy(ifr.ifr_name, name, strlen(name));
      if ((r = link_ioctl(SIOCGIFFLAGS, &ifr)) < 0) return throw_errno(env, -r, "linkSet: ioctl SIOCGIFFLAGS");
      /* read-modify-write so we never clobber flags someone else set */
      if (up) ifr.ifr_flags |= IFF_UP;
      else ifr.ifr_flags &= ~IFF_UP;
      if ((r = link_ioctl(SIOCSIFFLAGS, &ifr)) < 0) return throw_errno(env, -r, "linkSet: ioctl SIOCSIFFLAGS");
    }
  }
  return NULL;
}

static napi_value link_get(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], obj, v;
  char name[IFNAMSIZ];
  struct ifreq ifr;
  int r, mtu, flags, index, qlen;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !get_str(env, argv[0], name, sizeof name)) return throw_type(env, "linkGet: bad name");

  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, name, strlen(name));
  if ((r = link_ioctl(SIOCGIFFLAGS, &ifr)) < 0) goto fail;
  flags = ifr.ifr_flags;
  if ((r = link_ioctl(SIOCGIFMTU, &ifr)) < 0) goto fail;
  mtu = ifr.ifr_mtu;
  if ((r = link_ioctl(SIOCGIFINDEX, &ifr)) < 0) goto fail;
  index = ifr.ifr_ifindex;
  if ((r = link_ioctl(SIOCGIFTXQLEN, &ifr)) < 0) goto fail;
  qlen = ifr.ifr_qlen;

  CHECK(napi_create_object(env, &obj));
  napi_create_int32(env, mtu, &v);
  napi_set_named_property(env, obj, "mtu", v);
  napi_get_boolean(env, (flags & IFF_UP) != 0, &v);
  napi_set_named_property(env, obj, "up", v);
  napi_create_int32(env, index, &v);
  napi_set_named_property(env, obj, "ifindex", v);
  napi_create_int32(env, qlen, &v);
  napi_set_named_property(env, obj, "txqueuelen", v);
  return obj;
fail:
  /* "does not exist" is an answer, not an error: the daemon polls for it */
  if (r == -ENODEV) {
    napi_get_null(env, &v);
    return v;
  }
  return throw_errno(env, -r, "linkGet: ioctl");
}

/* TUN read/write are one packet per syscall; batching them here still saves
 * the per-packet JS->C transition, which dominates at small packet sizes. */
static napi_value read_batch(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  batch_args b;
  int32_t max;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5 || !parse_batch(env, argv, &b)) return argc < 5 ? throw_type(env, "readBatch: 5 args") : NULL;
  if (!get_i32(env, argv[4], &max)) return throw_type(env, "readBatch: max must be a number");
  uint32_t n = clamp_count(&b, max), i;
  for (i = 0; i < n; i++) {
    uint8_t *p;
    size_t len;
    if (!slot_ptr(env, &b, i, 0, &p, &len)) return NULL;
    ssize_t r = read(b.fd, p, len);
    if (r < 0) {
      if (errno == EINTR) { i--; continue; }
      if (errno == EAGAIN) break;
      /* Packets already read stay valid, but the caller can't see a count and
       * an error at once; the fd errors we get here (EBADFD after the device
       * is deleted) are permanent, so the next call reports it regardless. */
      if (i > 0) break;
      return throw_errno(env, errno, "readBatch: read");
    }
    /* The TUN cuts a packet longer than the buffer without saying so: a read
     * that fills the slot to the last byte may be such a stump. -1 lets the
     * caller drop and count it instead of sending a truncated packet. */
    b.sizes[i] = (size_t)r >= len ? -1 : (int32_t)r;
  }
  return ret_u32(env, i);
}

static napi_value write_batch(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  batch_args b;
  int32_t count;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5 || !parse_batch(env, argv, &b)) return argc < 5 ? throw_type(env, "writeBatch: 5 args") : NULL;
  if (!get_i32(env, argv[4], &count)) return throw_type(env, "writeBatch: count must be a number");
  uint32_t n = clamp_count(&b, count), i;
  for (i = 0; i < n; i++) {
    uint8_t *p;
    size_t len;
    if (!slot_ptr(env, &b, i, 1, &p, &len)) return NULL;
    ssize_t r = write(b.fd, p, len);
    if (r < 0) {
      if (errno == EINTR) { i--; continue; }
      if (errno == EAGAIN || errno == ENOBUFS) break;
      if (!fd_gone(errno)) {
        /* mark the drop in-band so JS can count it by reason without a
         * second channel; the batch is rebuilt before its next use anyway */
        b.sizes[i] = -errno;
        continue;
      }
      if (i > 0) break;
      return throw_errno(env, errno, "writeBatch: write");
    }
  }
  return ret_u32(env, i);
}

/* ---------------------------------------------------------------- UDP */

/* UDP GSO (UDP_SEGMENT) and GRO (UDP_GRO): one sendmsg carries up to this many
 * equal-sized datagrams for the same destination, and one receive may return
 * that many coalesced. 64 is the limit of every kernel that has UDP_SEGMENT
 * (newer ones allow 128). */
#define GSO_MAX_SEGS 64
/* Largest UDP payload of one GSO send (65535 - IPv4 header - UDP header). */
#define GSO_MAX_BYTES 65507
/* Room for one coalesced GRO datagram. */
#define GRO_BUF 65536

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

/* Per-socket offload state, found by fd. Lives from udpOpen to close. The
 * table is fixed so lookups need no lock; fds past it just get no offloads. */
#define UDP_STATE_MAX 65536

typedef struct {
  int len;   /* datagram length in the scratch buffer */
  int seg;   /* GRO segment size, 0 = not coalesced */
  int pos;   /* bytes already handed out */
  int trunc; /* MSG_TRUNC: can't be split, reported as -1 */
  uint8_t slot[EP_SIZE];
} gro_msg;

typedef struct {
  int family;      /* AF_INET / AF_INET6 of the socket */
  int gso;         /* use UDP_SEGMENT when sending */
  int gro;         /* UDP_GRO is on: receive through the scratch buffers */
  int gso_bad;     /* smallest segment size the kernel refused with EINVAL (0 = none) */
  uint32_t gso_sends, gso_fallbacks, gro_msgs, gro_segs; /* counters, for tests and tuning */
  uint32_t ctrunc; /* datagrams whose ancillary data was cut (MSG_CTRUNC): local address dropped */
  uint8_t *scratch; /* GRO: MAX_BATCH buffers of GRO_BUF bytes */
  gro_msg msgs[MAX_BATCH];
  uint32_t nmsg, cur; /* received datagrams in scratch, next to hand out */
} udp_state;

static udp_state *udp_states[UDP_STATE_MAX];

static udp_state *udp_state_of(int fd) {
  return fd >= 0 && fd < UDP_STATE_MAX ? udp_states[fd] : NULL;
}

static void udp_state_free(int fd) {
  if (fd < 0 || fd >= UDP_STATE_MAX || udp_states[fd] == NULL) return;
  free(udp_states[fd]->scratch);
  free(udp_states[fd]);
  udp_states[fd] = NULL;
}

static int set_int(int fd, int level, int opt, int val) {
  return setsockopt(fd, level, opt, &val, sizeof val);
}

/* Optional boolean property of an options object; `def` when absent. */
static int get_opt_bool(napi_env env, napi_value obj, const char *name, int def) {
  napi_valuetype t;
  napi_value v;
  bool b;
  if (obj == NULL || napi_typeof(env, obj, &t) != napi_ok || t != napi_object) return def;
  if (napi_get_named_property(env, obj, name, &v) != napi_ok) return def;
  if (napi_get_value_bool(env, v, &b) != napi_ok) return def;
  return b;
}

/* Optional int32 property of an options object; `def` when absent or not a number. */
static int32_t get_opt_i32(napi_env env, napi_value obj, const char *name, int32_t def) {
  napi_valuetype t;
  napi_value v;
  int32_t n;
  if (obj == NULL || napi_typeof(env, obj, &t) != napi_ok || t != napi_object) return def;
  if (napi_get_named_property(env, obj, name, &v) != napi_ok) return def;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return def;
  if (napi_get_value_int32(env, v, &n) != napi_ok) return def;
  return n;
}

static napi_value udp_open(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4] = {NULL, NULL, NULL, NULL}, obj, v;
  int32_t family, port;
  char addr[INET6_ADDRSTRLEN + 1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3 || !get_i32(env, argv[0], &family) || !get_str(env, argv[1], addr, sizeof addr) ||
      !get_i32(env, argv[2], &port) || (family != 4 && family != 6) || port < 0 || port > 65535)
    return throw_type(env, "udpOpen(family: 4|6, address: string, port: number, opts?: { gso?, gro?, rcvbuf?, sndbuf? })");
  int want_gso = get_opt_bool(env, argc > 3 ? argv[3] : NULL, "gso", 1);
  int want_gro = get_opt_bool(env, argc > 3 ? argv[3] : NULL, "gro", 1);

  struct sockaddr_storage ss;
  socklen_t sl;
  memset(&ss, 0, sizeof ss);
  if (family == 4) {
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, addr[0] ? addr : "0.0.0.0", &s4->sin_addr) != 1)
      return throw_errno(env, EINVAL, "udpOpen: bad IPv4 address");
    sl = sizeof *s4;
  } else {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, addr[0] ? addr : "::", &s6->sin6_addr) != 1)
      return throw_errno(env, EINVAL, "udpOpen: bad IPv6 address");
    sl = sizeof *s6;
  }

  int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "udpOpen: socket");
  const char *fail = NULL;
  /* restart after a crash must not wait out TIME_WAIT-like lingering */
  if (set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1) < 0) fail = "udpOpen: setsockopt SO_REUSEADDR";
  if (!fail && family == 4) {
    if (set_int(fd, IPPROTO_IP, IP_PKTINFO, 1) < 0) fail = "udpOpen: setsockopt IP_PKTINFO";
  } else if (!fail) {
    int any = IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&ss)->sin6_addr);
    /* "::" serves v4 peers too (as v4-mapped), regardless of the sysctl default */
    if (any && set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 0) < 0) fail = "udpOpen: setsockopt IPV6_V6ONLY";
    if (!fail && set_int(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1) < 0) fail = "udpOpen: setsockopt IPV6_RECVPKTINFO";
    /* v4 packets on a v6 socket carry only IPv4-level cmsgs, so the IPv4
     * destination address needs IP_PKTINFO as well */
    if (!fail && any && set_int(fd, IPPROTO_IP, IP_PKTINFO, 1) < 0) fail = "udpOpen: setsockopt IP_PKTINFO";
  }
  if (fail) {
    int e = errno;
    close(fd);
    return throw_errno(env, e, fail);
  }
  /* Buffer sizes are the caller's choice (src/edge/udp.ts says why); FORCE
   * needs CAP_NET_ADMIN, so fall back to the capped variant and accept
   * whatever the sysctl allows. 0 keeps the kernel's default. */
  const int32_t rcvbuf = get_opt_i32(env, argc > 3 ? argv[3] : NULL, "rcvbuf", 0);
  const int32_t sndbuf = get_opt_i32(env, argc > 3 ? argv[3] : NULL, "sndbuf", 0);
  if (rcvbuf > 0 && set_int(fd, SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf) < 0) set_int(fd, SOL_SOCKET, SO_RCVBUF, rcvbuf);
  if (sndbuf > 0 && set_int(fd, SOL_SOCKET, SO_SNDBUFFORCE, sndbuf) < 0) set_int(fd, SOL_SOCKET, SO_SNDBUF, sndbuf);

  if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, e, "udpOpen: bind");
  }
  sl = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, e, "udpOpen: getsockname");
  }
  int bound = ntohs(family == 4 ? ((struct sockaddr_in *)&ss)->sin_port : ((struct sockaddr_in6 *)&ss)->sin6_port);

  /* Offloads: probed here, once. UDP_SEGMENT with size 0 is a no-op on kernels
   * that know it (>= 4.18) and ENOPROTOOPT on those that don't; UDP_GRO
   * (>= 5.0) likewise. Failing either only means sending and receiving one
   * datagram per message, as before. */
  udp_state_free(fd); /* a stale entry of an fd number closed behind our back */
  udp_state *st = fd < UDP_STATE_MAX ? calloc(1, sizeof *st) : NULL;
  if (st) {
    st->family = family == 4 ? AF_INET : AF_INET6;
    st->gso = want_gso && set_int(fd, SOL_UDP, UDP_SEGMENT, 0) == 0;
    if (want_gro && set_int(fd, SOL_UDP, UDP_GRO, 1) == 0) {
      st->scratch = malloc((size_t)MAX_BATCH * GRO_BUF); /* untouched pages cost nothing */
      if (st->scratch) st->gro = 1;
      else set_int(fd, SOL_UDP, UDP_GRO, 0);
    }
    udp_states[fd] = st;
  }

  /* From here the fd is the caller's only if the result object is: any failure closes it. */
  if (napi_create_object(env, &obj) != napi_ok || napi_create_int32(env, fd, &v) != napi_ok ||
      napi_set_named_property(env, obj, "fd", v) != napi_ok || napi_create_int32(env, bound, &v) != napi_ok ||
      napi_set_named_property(env, obj, "port", v) != napi_ok || napi_get_boolean(env, st && st->gso, &v) != napi_ok ||
      napi_set_named_property(env, obj, "gso", v) != napi_ok || napi_get_boolean(env, st && st->gro, &v) != napi_ok ||
      napi_set_named_property(env, obj, "gro", v) != napi_ok) {
    udp_state_free(fd);
    close(fd);
    return napi_failed(env, "udpOpen: could not build the result"), NULL;
  }
  return obj;
}

static int get_addrs(napi_env env, napi_value v, uint8_t **p, size_t *len) {
  bool isbuf = false;
  void *d;
  napi_is_buffer(env, v, &isbuf);
  if (!isbuf || napi_get_buffer_info(env, v, &d, len) != napi_ok) return 0;
  *p = d;
  return 1;
}

static void put_u32le(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32le(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* One recvmmsg entry: a single buffer, room for the source address and the
 * ancillary data (pktinfo, GRO segment size). */
static void prep_recv(struct mmsghdr *m, struct iovec *iov, struct sockaddr_storage *name, uint8_t *ctrl, void *base, size_t len) {
  iov->iov_base = base;
  iov->iov_len = len;
  m->msg_hdr.msg_iov = iov;
  m->msg_hdr.msg_iovlen = 1;
  m->msg_hdr.msg_name = name;
  m->msg_hdr.msg_namelen = sizeof *name;
  m->msg_hdr.msg_control = ctrl;
  m->msg_hdr.msg_controllen = CTRL_SIZE;
}

/* Source sockaddr + pktinfo cmsgs -> one 48-byte endpoint slot. */
static void encode_slot(uint8_t *slot, const struct sockaddr_storage *ss, struct msghdr *mh) {
  memset(slot, 0, EP_SIZE);
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
    slot[EP_FAMILY] = 4;
    memcpy(slot + EP_PORT, &s4->sin_port, 2);
    memcpy(slot + EP_ADDR, &s4->sin_addr, 4);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
    memcpy(slot + EP_PORT, &s6->sin6_port, 2);
    /* Peers are identified by what they really are, so a v4 client looks the
     * same whether it reached a v4 or a dual-stack socket. */
    if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
      slot[EP_FAMILY] = 4;
      memcpy(slot + EP_ADDR, s6->sin6_addr.s6_addr + 12, 4);
    } else {
      slot[EP_FAMILY] = 6;
      memcpy(slot + EP_ADDR, &s6->sin6_addr, 16);
    }
  }
  for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      struct in_pktinfo pi;
      memcpy(&pi, CMSG_DATA(c), sizeof pi);
      slot[EP_LFAMILY] = 4;
      /* spec_dst is the address a reply should come from; it equals the
       * header destination for unicast and stays usable for broadcast */
      memcpy(slot + EP_LADDR, &pi.ipi_spec_dst, 4);
      put_u32le(slot + EP_IFINDEX, (uint32_t)pi.ipi_ifindex);
    } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      struct in6_pktinfo pi;
      memcpy(&pi, CMSG_DATA(c), sizeof pi);
      if (IN6_IS_ADDR_V4MAPPED(&pi.ipi6_addr)) {
        slot[EP_LFAMILY] = 4;
        memcpy(slot + EP_LADDR, pi.ipi6_addr.s6_addr + 12, 4);
      } else {
        slot[EP_LFAMILY] = 6;
        memcpy(slot + EP_LADDR, &pi.ipi6_addr, 16);
      }
      put_u32le(slot + EP_IFINDEX, pi.ipi6_ifindex);
    }
  }
}

/* encode_slot, unless the kernel cut the ancillary data (MSG_CTRUNC): then the
 * local address may be missing or stale, so the slot gets none (replies take
 * the kernel's source choice) and the socket counts it. */
static void encode_received(uint8_t *slot, const struct sockaddr_storage *ss, struct msghdr *mh, udp_state *st) {
  encode_slot(slot, ss, mh);
  if (mh->msg_flags & MSG_CTRUNC) {
    memset(slot + EP_LFAMILY, 0, EP_SIZE - EP_LFAMILY);
    if (st) st->ctrunc++;
  }
}

/* The UDP_GRO segment size of a received datagram, 0 if it was not coalesced. */
static int gro_size(struct msghdr *mh) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
      int seg;
      memcpy(&seg, CMSG_DATA(c), sizeof seg);
      return seg;
    }
  }
  return 0;
}

/* GRO receive: datagrams land in the socket's scratch buffers (one may hold up
 * to 64 coalesced ones), then are copied out segment by segment into the
 * caller's slots, each with its datagram's endpoint. What does not fit stays
 * in the scratch for the next call, which hands it out before receiving more;
 * that can only happen when this call fills every slot, so a caller that comes
 * back after a full batch (as it would for a socket with more queued) never
 * strands packets. */
static napi_value udp_recv_gro(napi_env env, batch_args *b, udp_state *st, uint8_t *addrs, uint32_t n) {
  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iov[MAX_BATCH];
  struct sockaddr_storage names[MAX_BATCH];
  union { struct cmsghdr align; uint8_t b[CTRL_SIZE]; } ctrl[MAX_BATCH];
  uint32_t out = 0, i;
  int received = 0;
  for (;;) {
    while (st->cur < st->nmsg && out < n) {
      gro_msg *g = &st->msgs[st->cur];
      uint8_t *p;
      size_t cap;
      if (!slot_ptr(env, b, out, 0, &p, &cap)) return NULL;
      memcpy(addrs + (size_t)out * EP_SIZE, g->slot, EP_SIZE);
      if (g->trunc) {
        b->sizes[out++] = -1;
        st->cur++;
        continue;
      }
      int take = g->len - g->pos;
      if (g->seg > 0 && take > g->seg) take = g->seg;
      if ((size_t)take > cap) {
        b->sizes[out] = -1; /* as recvmmsg would have truncated it */
      } else {
        memcpy(p, st->scratch + (size_t)st->cur * GRO_BUF + g->pos, (size_t)take);
        b->sizes[out] = take;
      }
      out++;
      g->pos += take;
      if (g->pos >= g->len) st->cur++;
    }
    if (out == n || received) break;
    /* scratch drained and slots left: one recvmmsg, at most one datagram per free slot */
    uint32_t want = n - out;
    memset(msgs, 0, sizeof(msgs[0]) * want);
    for (i = 0; i < want; i++) prep_recv(&msgs[i], &iov[i], &names[i], ctrl[i].b, st->scratch + (size_t)i * GRO_BUF, GRO_BUF);
    int r;
    do r = recvmmsg(b->fd, msgs, want, MSG_DONTWAIT, NULL);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
      if (errno == EAGAIN || out > 0) break;
      return throw_errno(env, errno, "udpRecvBatch: recvmmsg");
    }
    received = 1;
    for (i = 0; i < (uint32_t)r; i++) {
      gro_msg *g = &st->msgs[i];
      g->len = (int)msgs[i].msg_len;
      g->pos = 0;
      g->trunc = (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
      /* a cut cmsg may have lost the segment size: then the datagram cannot be split */
      g->seg = gro_size(&msgs[i].msg_hdr);
      if ((msgs[i].msg_hdr.msg_flags & MSG_CTRUNC) && g->seg == 0 && g->len > 0) g->trunc = 1;
      if (g->seg > 0 && g->seg < g->len) {
        st->gro_msgs++;
        st->gro_segs += (uint32_t)((g->len + g->seg - 1) / g->seg);
      }
      encode_received(g->slot, &names[i], &msgs[i].msg_hdr, st);
    }
    st->nmsg = (uint32_t)r;
    st->cur = 0;
    if (r == 0) break;
  }
  return ret_u32(env, out);
}

static napi_value udp_recv_batch(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  batch_args b;
  int32_t max;
  uint8_t *addrs;
  size_t alen;
  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iov[MAX_BATCH];
  struct sockaddr_storage names[MAX_BATCH];
  /* union forces cmsg alignment for the control buffers */
  union { struct cmsghdr align; uint8_t b[CTRL_SIZE]; } ctrl[MAX_BATCH];

  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 6) return throw_type(env, "udpRecvBatch: 6 args");
  if (!parse_batch(env, argv, &b)) return NULL;
  if (!get_addrs(env, argv[4], &addrs, &alen)) return throw_type(env, "udpRecvBatch: addrs must be a Buffer");
  if (!get_i32(env, argv[5], &max)) return throw_type(env, "udpRecvBatch: max must be a number");
  uint32_t n = clamp_count(&b, max), i;
  if (n > MAX_BATCH) n = MAX_BATCH;
  if (n > alen / EP_SIZE) n = (uint32_t)(alen / EP_SIZE);
  if (n == 0) return ret_u32(env, 0);
  udp_state *st = udp_state_of(b.fd);
  if (st && st->gro) return udp_recv_gro(env, &b, st, addrs, n);

  uint8_t *ptrs[MAX_BATCH];
  size_t lens[MAX_BATCH];
  if (!slot_ptrs(env, &b, n, 0, ptrs, lens)) return NULL;
  memset(msgs, 0, sizeof(msgs[0]) * n);
  for (i = 0; i < n; i++) prep_recv(&msgs[i], &iov[i], &names[i], ctrl[i].b, ptrs[i], lens[i]);
  int r;
  do r = recvmmsg(b.fd, msgs, n, MSG_DONTWAIT, NULL);
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    if (errno == EAGAIN) return ret_u32(env, 0);
    return throw_errno(env, errno, "udpRecvBatch: recvmmsg");
  }
  for (i = 0; i < (uint32_t)r; i++) {
    /* a truncated datagram is not a packet we can authenticate; -1 lets JS
     * drop and count it instead of feeding garbage to the decryptor */
    b.sizes[i] = (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ? -1 : (int32_t)msgs[i].msg_len;
    encode_received(addrs + (size_t)i * EP_SIZE, &names[i], &msgs[i].msg_hdr, st);
  }
  return ret_u32(env, (uint32_t)r);
}

/* One endpoint slot -> destination sockaddr (+ optional source cmsg) shaped
 * for this socket's family. Returns 0 if the slot can't be sent on it. */
static int decode_slot(const uint8_t *slot, int sock_family, struct sockaddr_storage *ss, socklen_t *sl,
                       uint8_t *ctrl, size_t *ctrllen) {
  uint16_t port;
  memcpy(&port, slot + EP_PORT, 2);
  memset(ss, 0, sizeof *ss);
  *ctrllen = 0;
  int fam = slot[EP_FAMILY], lfam = slot[EP_LFAMILY];
  if (sock_family == AF_INET) {
    if (fam != 4) return 0;
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    s4->sin_port = port;
    memcpy(&s4->sin_addr, slot + EP_ADDR, 4);
    *sl = sizeof *s4;
  } else {
    if (fam != 4 && fam != 6) return 0;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = port;
    if (fam == 4) {
      /* the kernel routes v4-mapped destinations through the IPv4 stack */
      s6->sin6_addr.s6_addr[10] = 0xff;
      s6->sin6_addr.s6_addr[11] = 0xff;
      memcpy(s6->sin6_addr.s6_addr + 12, slot + EP_ADDR, 4);
    } else {
      memcpy(&s6->sin6_addr, slot + EP_ADDR, 16);
    }
    *sl = sizeof *s6;
  }
  /* A source of the other family than the destination can't be honoured;
   * send unpinned rather than fail. */
  if (lfam == 4 && fam == 4) {
    struct cmsghdr *c = (struct cmsghdr *)ctrl;
    struct in_pktinfo pi;
    memset(&pi, 0, sizeof pi);
    /* ifindex stays 0: pinning the interface would break when routes move,
     * and the source address alone is what the peer keys us by */
    memcpy(&pi.ipi_spec_dst, slot + EP_LADDR, 4);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof pi);
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
    *ctrllen = CMSG_SPACE(sizeof pi);
  } else if (lfam == 6 && fam == 6 && sock_family == AF_INET6) {
    struct cmsghdr *c = (struct cmsghdr *)ctrl;
    struct in6_pktinfo pi;
    memset(&pi, 0, sizeof pi);
    memcpy(&pi.ipi6_addr, slot + EP_LADDR, 16);
    /* a link-local source is ambiguous without its interface */
    if (IN6_IS_ADDR_LINKLOCAL(&pi.ipi6_addr)) pi.ipi6_ifindex = get_u32le(slot + EP_IFINDEX);
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof pi);
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
    *ctrllen = CMSG_SPACE(sizeof pi);
  }
  return 1;
}

/* Appends a UDP_SEGMENT cmsg after the `*ctrllen` bytes already in ctrl. */
static void add_gso_cmsg(uint8_t *ctrl, size_t *ctrllen, uint16_t seg) {
  struct cmsghdr *c = (struct cmsghdr *)(ctrl + *ctrllen);
  c->cmsg_level = SOL_UDP;
  c->cmsg_type = UDP_SEGMENT;
  c->cmsg_len = CMSG_LEN(sizeof seg);
  memcpy(CMSG_DATA(c), &seg, sizeof seg);
  *ctrllen += CMSG_SPACE(sizeof seg);
}

typedef struct {
  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iov[MAX_BATCH];
  struct sockaddr_storage names[MAX_BATCH];
  union { struct cmsghdr align; uint8_t b[CTRL_SIZE]; } ctrl[MAX_BATCH];
  uint32_t idx[MAX_BATCH]; /* msgs[k] carries packets idx[k] .. idx[k]+cnt[k]-1 */
  uint32_t cnt[MAX_BATCH];
  uint8_t *ptr[MAX_BATCH]; /* packet i's bytes, resolved once */
  size_t len[MAX_BATCH];
} send_plan;

/* Builds messages for packets [from, n) into msgs[k...]; returns the new
 * message count. With `gso`, consecutive packets for the same endpoint slot
 * and of the same size (the last may be shorter) share one message: an iovec
 * per packet, no copy, and a UDP_SEGMENT cmsg that makes the kernel cut it
 * back into those datagrams. Packets whose slot can't be sent on this socket
 * are marked -EAFNOSUPPORT and skipped. */
static uint32_t plan_sends(send_plan *sp, uint32_t k, uint32_t from, uint32_t n, const uint8_t *addrs, int32_t *sizes,
                           int family, int gso, int gso_bad) {
  uint32_t i = from;
  while (i < n) {
    size_t clen;
    const uint8_t *slot = addrs + (size_t)i * EP_SIZE;
    struct mmsghdr *m = &sp->msgs[k];
    if (!decode_slot(slot, family, &sp->names[k], &m->msg_hdr.msg_namelen, sp->ctrl[k].b, &clen)) {
      sizes[i++] = -EAFNOSUPPORT;
      continue;
    }
    uint32_t c = 1;
    size_t seg = sp->len[i], total = seg;
    if (gso && seg > 0 && (gso_bad == 0 || seg < (size_t)gso_bad)) {
      while (i + c < n && c < GSO_MAX_SEGS) {
        size_t l = sp->len[i + c];
        if (l == 0 || l > seg || total + l > GSO_MAX_BYTES) break;
        if (memcmp(addrs + (size_t)(i + c) * EP_SIZE, slot, EP_SIZE) != 0) break;
        total += l;
        c++;
        if (l < seg) break; /* a shorter one ends the group */
      }
    }
    for (uint32_t j = 0; j < c; j++) {
      sp->iov[i + j].iov_base = sp->ptr[i + j];
      sp->iov[i + j].iov_len = sp->len[i + j];
    }
    if (c > 1) add_gso_cmsg(sp->ctrl[k].b, &clen, (uint16_t)seg);
    m->msg_hdr.msg_name = &sp->names[k];
    m->msg_hdr.msg_iov = &sp->iov[i];
    m->msg_hdr.msg_iovlen = c;
    m->msg_hdr.msg_control = clen ? sp->ctrl[k].b : NULL;
    m->msg_hdr.msg_controllen = clen;
    m->msg_hdr.msg_flags = 0;
    sp->idx[k] = i;
    sp->cnt[k] = c;
    k++;
    i += c;
  }
  return k;
}

static napi_value udp_send_batch(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  batch_args b;
  int32_t count;
  uint8_t *addrs;
  size_t alen;
  send_plan sp;
  uint32_t i, j, m;

  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 6) return throw_type(env, "udpSendBatch: 6 args");
  if (!parse_batch(env, argv, &b)) return NULL;
  if (!get_addrs(env, argv[4], &addrs, &alen)) return throw_type(env, "udpSendBatch: addrs must be a Buffer");
  if (!get_i32(env, argv[5], &count)) return throw_type(env, "udpSendBatch: count must be a number");
  uint32_t n = clamp_count(&b, count);
  if (n > MAX_BATCH) n = MAX_BATCH;
  if (n > alen / EP_SIZE) n = (uint32_t)(alen / EP_SIZE);

  udp_state *st = udp_state_of(b.fd);
  int family;
  if (st) {
    family = st->family;
  } else {
    struct sockaddr_storage self;
    socklen_t selflen = sizeof self;
    if (getsockname(b.fd, (struct sockaddr *)&self, &selflen) < 0)
      return throw_errno(env, errno, "udpSendBatch: getsockname");
    family = self.ss_family;
  }

  if (!slot_ptrs(env, &b, n, 1, sp.ptr, sp.len)) return NULL;
  int gso = st && st->gso;
  m = plan_sends(&sp, 0, 0, n, addrs, b.sizes, family, gso, st ? st->gso_bad : 0);

  /* sendmmsg stops at the first failing message and, if it already sent some,
   * returns only the count; the next call then starts at the failing one and
   * sees its error. So loop, and deal with each error per message. */
  j = 0;
  while (j < m) {
    int r = sendmmsg(b.fd, sp.msgs + j, m - j, MSG_DONTWAIT);
    if (r > 0) {
      if (gso) for (int t = 0; t < r; t++) if (sp.cnt[j + t] > 1) st->gso_sends++;
      j += (uint32_t)r;
      continue;
    }
    int e = errno;
    if (r == 0) break;
    if (e == EINTR) continue;
    if (e == EAGAIN || e == ENOBUFS) break;
    if (sp.cnt[j] > 1 && (e == EIO || e == EINVAL || e == EMSGSIZE)) {
      /* The kernel refused the segmentation: EIO when the route's device
       * can't checksum for us (or IPsec is in the way), for good; EMSGSIZE
       * (EINVAL before 6.x) when a segment is larger than the path MTU, for
       * this size and up. Remember it for the socket, and resend these packets
       * one by one, which the kernel may fragment. */
      /* EINVAL is also what IPv6 says for a vanished pinned source: then it
       * is not the segmentation's fault, so only EMSGSIZE, or EINVAL with no
       * pinned source, count against the size. */
      int pinned = sp.msgs[j].msg_hdr.msg_controllen > CMSG_SPACE(sizeof(uint16_t));
      size_t seg = sp.len[sp.idx[j]];
      if (e == EIO) st->gso = gso = 0;
      else if ((e == EMSGSIZE || !pinned) && (st->gso_bad == 0 || seg < (size_t)st->gso_bad)) st->gso_bad = (int)seg;
      st->gso_fallbacks++;
      m = plan_sends(&sp, j, sp.idx[j], n, addrs, b.sizes, family, 0, 0);
      continue;
    }
    uint8_t *slot = addrs + (size_t)sp.idx[j] * EP_SIZE;
    int pinned_path = slot[EP_LFAMILY] != 0 || get_u32le(slot + EP_IFINDEX) != 0;
    if (((e == EINVAL || e == ENETUNREACH || e == EADDRNOTAVAIL) && slot[EP_LFAMILY] != 0) ||
        ((e == ENODEV || e == ENXIO || e == ENETDOWN) && pinned_path)) {
      /* The pinned source address went away (DHCP renew, interface down).
       * IPv6 says EINVAL; IPv4 route lookup says ENETUNREACH or EADDRNOTAVAIL
       * (EINVAL on older kernels); a link-local path whose interface was
       * removed says ENODEV. Forget the source in the caller's slots of
       * this message too, so later sends don't pay for the failure again, and
       * plan the rest again from here: the message is rebuilt with a
       * kernel-chosen source and keeps its UDP_SEGMENT, so a group of packets
       * is not sent glued into one datagram. */
      for (i = 0; i < sp.cnt[j]; i++)
        memset(addrs + (size_t)(sp.idx[j] + i) * EP_SIZE + EP_LFAMILY, 0, EP_SIZE - EP_LFAMILY);
      m = plan_sends(&sp, j, sp.idx[j], n, addrs, b.sizes, family, gso, st ? st->gso_bad : 0);
      continue;
    }
    if (per_packet_error(e)) {
      for (i = 0; i < sp.cnt[j]; i++) b.sizes[sp.idx[j] + i] = -e;
      j++;
      continue;
    }
    if (j > 0) break;
    return throw_errno(env, e, "udpSendBatch: sendmmsg");
  }
  /* report progress in caller's numbering: everything before the first
   * unsent packet has been consumed (sent or dropped) */
  return ret_u32(env, j < m ? sp.idx[j] : n);
}

/* Offload state of a socket: whether GSO/GRO are in use and how often they
 * were, for tests and diagnostics. Not for the hot path. */
static napi_value udp_info(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], obj, v;
  int32_t fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !get_i32(env, argv[0], &fd)) return throw_type(env, "udpInfo(fd)");
  udp_state *st = udp_state_of(fd);
  CHECK(napi_create_object(env, &obj));
  napi_get_boolean(env, st && st->gso, &v);
  napi_set_named_property(env, obj, "gso", v);
  napi_get_boolean(env, st && st->gro, &v);
  napi_set_named_property(env, obj, "gro", v);
#define U32_PROP(name, val) napi_create_uint32(env, st ? (val) : 0, &v), napi_set_named_property(env, obj, name, v)
  U32_PROP("gsoRefusedSize", (uint32_t)st->gso_bad);
  U32_PROP("gsoSends", st->gso_sends);
  U32_PROP("gsoFallbacks", st->gso_fallbacks);
  U32_PROP("groDatagrams", st->gro_msgs);
  U32_PROP("groSegments", st->gro_segs);
  U32_PROP("controlTruncated", st->ctrunc);
#undef U32_PROP
  return obj;
}

static napi_value close_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !get_i32(env, argv[0], &fd)) return throw_type(env, "close: fd must be a number");
  /* Linux releases the fd even when close reports EINTR; retrying could close
   * an fd another thread just got, so never retry. */
  udp_state_free(fd);
  if (close(fd) < 0 && errno != EINTR) return throw_errno(env, errno, "close");
  return NULL;
}

/* ---------------------------------------------------------------- poll */

/* Owned jointly by the JS wrapper object and the uv handle: freed when both
 * the handle has finished closing and the wrapper has been collected. */
typedef struct {
  uv_poll_t handle;
  napi_env env;
  napi_ref cb;
  napi_async_context actx;
  int closing;
  int handle_closed;
  int js_gone;
} poller;

static void poller_maybe_free(poller *p) {
  if (p->handle_closed && p->js_gone) free(p);
}

static void on_handle_closed(uv_handle_t *h) {
  poller *p = h->data;
  p->handle_closed = 1;
  poller_maybe_free(p);
}

static void env_cleanup(void *arg);

/* Closes the uv handle; the fd is untouched and may be closed right after,
 * because uv_close removes it from epoll synchronously. */
static void poller_stop(poller *p, int from_cleanup) {
  if (p->closing) return;
  p->closing = 1;
  uv_poll_stop(&p->handle);
  uv_close((uv_handle_t *)&p->handle, on_handle_closed);
  if (!from_cleanup) {
    napi_remove_env_cleanup_hook(p->env, env_cleanup, p);
    napi_delete_reference(p->env, p->cb);
    napi_async_destroy(p->env, p->actx);
  }
  p->cb = NULL;
}

/* Worker threads tear down their loop; a live handle would abort that. */
static void env_cleanup(void *arg) {
  poller *p = arg;
  poller_stop(p, 1);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  poller *p = h->data;
  (void)events;
  if (p->closing) return;
  napi_env env = p->env;
  napi_handle_scope scope;
  napi_value cb, recv, result, arg;
  /* Errors (status < 0, e.g. UV_EBADF on EPOLLERR once the TUN device was
   * deleted) still call JS, with the status as argument: the read that follows
   * surfaces the real errno, which is the useful part. libuv has already
   * stopped the watcher in that case, so it fires once. */
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  if (napi_get_reference_value(env, p->cb, &cb) == napi_ok && cb != NULL) {
    napi_get_global(env, &recv); /* make_callback insists on an object receiver */
    /* make_callback (not call_function) so microtasks and nextTicks queued
     * by the callback run now, as after any other Node I/O callback */
    napi_create_int32(env, status, &arg);
    napi_status st = napi_make_callback(env, p->actx, recv, cb, 1, &arg, &result);
    if (st == napi_pending_exception) {
      /* The callbacks catch what they throw (src/edge/polled-fd.ts); one that
       * still escapes must not end the process (napi_fatal_exception would):
       * nothing a peer or an admin does may. It is cleared and said on stderr,
       * which is the daemon's log. */
      napi_value err, text;
      char msg[512];
      size_t len = 0;
      napi_get_and_clear_last_exception(env, &err);
      if (napi_coerce_to_string(env, err, &text) != napi_ok ||
          napi_get_value_string_utf8(env, text, msg, sizeof msg, &len) != napi_ok)
        snprintf(msg, sizeof msg, "(not printable)");
      bool again = false;
      if (napi_is_exception_pending(env, &again) == napi_ok && again) napi_get_and_clear_last_exception(env, &err);
      fprintf(stderr, "ovpn_io: an exception escaped a poll callback and was dropped: %s\n", msg);
    }
  }
  napi_close_handle_scope(env, scope);
}

static void poller_finalize(napi_env env, void *data, void *hint) {
  poller *p = data;
  (void)env;
  (void)hint;
  p->js_gone = 1;
  poller_maybe_free(p);
}

static poller *this_poller(napi_env env, napi_callback_info info) {
  napi_value self;
  void *p = NULL;
  if (napi_get_cb_info(env, info, NULL, NULL, &self, NULL) != napi_ok) return NULL;
  if (napi_unwrap(env, self, &p) != napi_ok || p == NULL) {
    throw_type(env, "poller method called on a foreign object");
    return NULL;
  }
  return p;
}

static napi_value poller_js_stop(napi_env env, napi_callback_info info) {
  poller *p = this_poller(env, info);
  if (p) poller_stop(p, 0);
  return NULL;
}

static napi_value poller_js_unref(napi_env env, napi_callback_info info) {
  poller *p = this_poller(env, info);
  if (p && !p->closing) uv_unref((uv_handle_t *)&p->handle);
  return NULL;
}

static napi_value poller_js_ref(napi_env env, napi_callback_info info) {
  poller *p = this_poller(env, info);
  if (p && !p->closing) uv_ref((uv_handle_t *)&p->handle);
  return NULL;
}

static napi_value poll_fd(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], obj, name;
  int32_t fd;
  napi_valuetype t;
  uv_loop_t *loop;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || !get_i32(env, argv[0], &fd)) return throw_type(env, "poll(fd, callback)");
  napi_typeof(env, argv[1], &t);
  if (t != napi_function) return throw_type(env, "poll: callback must be a function");
  CHECK(napi_get_uv_event_loop(env, &loop));

  poller *p = calloc(1, sizeof *p);
  if (!p) return throw_errno(env, ENOMEM, "poll");
  p->env = env;
  int r = uv_poll_init(loop, &p->handle, fd);
  if (r < 0) {
    free(p);
    return throw_errno(env, -r, "poll: uv_poll_init");
  }
  p->handle.data = p;
  r = uv_poll_start(&p->handle, UV_READABLE, on_poll);
  if (r < 0) {
    /* handle memory must outlive uv_close; hand it to the close path */
    p->js_gone = 1;
    p->closing = 1;
    uv_close((uv_handle_t *)&p->handle, on_handle_closed);
    return throw_errno(env, -r, "poll: uv_poll_start");
  }
  napi_property_descriptor props[] = {
    {"stop", NULL, poller_js_stop, NULL, NULL, NULL, napi_default, NULL},
    {"ref", NULL, poller_js_ref, NULL, NULL, NULL, napi_default, NULL},
    {"unref", NULL, poller_js_unref, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(napi_create_object(env, &obj));
  CHECK(napi_define_properties(env, obj, 3, props));
  CHECK(napi_create_reference(env, argv[1], 1, &p->cb));
  napi_create_string_utf8(env, "ovpn_io.poll", NAPI_AUTO_LENGTH, &name);
  CHECK(napi_async_init(env, obj, name, &p->actx));
  CHECK(napi_wrap(env, obj, p, poller_finalize, NULL, NULL));
  napi_add_env_cleanup_hook(env, env_cleanup, p);
  return obj;
}

/* ---------------------------------------------------------------- init */

NAPI_MODULE_INIT() {
  napi_property_descriptor fns[] = {
    {"tunOpen", NULL, tun_open, NULL, NULL, NULL, napi_default, NULL},
    {"linkSet", NULL, link_set, NULL, NULL, NULL, napi_default, NULL},
    {"linkGet", NULL, link_get, NULL, NULL, NULL, napi_default, NULL},
    {"readBatch", NULL, read_batch, NULL, NULL, NULL, napi_default, NULL},
    {"writeBatch", NULL, write_batch, NULL, NULL, NULL, napi_default, NULL},
    {"udpOpen", NULL, udp_open, NULL, NULL, NULL, napi_default, NULL},
    {"udpRecvBatch", NULL, udp_recv_batch, NULL, NULL, NULL, napi_default, NULL},
    {"udpSendBatch", NULL, udp_send_batch, NULL, NULL, NULL, napi_default, NULL},
    {"udpInfo", NULL, udp_info, NULL, NULL, NULL, napi_default, NULL},
    {"poll", NULL, poll_fd, NULL, NULL, NULL, napi_default, NULL},
    {"close", NULL, close_fd, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);
  aead_register(env, exports);
  checksum_register(env, exports);
  return exports;
}
