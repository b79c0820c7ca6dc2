/*
 * The floor under idle RTT for a forwarder driven by Node's event loop (bench/idle-floor.sh):
 * TUN <-> UDP with no crypto and no protocol, polled by libuv exactly as our daemon's fds are,
 * so that what is left of the RTT is the wakeup path and whatever each row adds to it.
 *
 *   start(tunFd, udpFd, remoteIPv4, remotePort, callback | null)
 *     callback null  (c-in-node): the poll callback reads one packet and forwards it in C
 *                    (read -> sendto, recv -> write) without entering JavaScript.
 *     callback given (js-entry, js-entry+call): between the read and the send, JavaScript is
 *                    entered once through napi_make_callback, as the project's shim does on
 *                    every wakeup (native/ovpn_io.c, on_poll); what the callback does is the
 *                    forwarder's choice.
 *   touch() -> int   one N-API call with no buffer arguments (the length just read).
 *
 * Bench code: built by the bench script with node-gyp into bench/idle-floor/build, never by
 * npm install, and not part of the package. The fds belong to the caller's edge objects.
 */
#include <arpa/inet.h>
#include <node_api.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

/* One packet at a time: level-triggered polling brings the next one in the next wakeup,
 * which is what an idle packet sees anyway. Room for the largest IP packet. */
static unsigned char packet[65536];
static ssize_t packet_len;
static struct sockaddr_in remote;

typedef struct {
  uv_poll_t handle;
  int from, to, from_tun;
  napi_env env;
  napi_ref cb; /* NULL: never enter JavaScript */
  napi_async_context actx;
} side;
static side sides[2];
static int started;

static void enter_js(side *s) {
  napi_handle_scope scope;
  napi_value cb, recv, result;
  if (napi_open_handle_scope(s->env, &scope) != napi_ok) return;
  napi_get_reference_value(s->env, s->cb, &cb);
  napi_get_global(s->env, &recv); /* make_callback wants an object receiver */
  if (napi_make_callback(s->env, s->actx, recv, cb, 0, NULL, &result) == napi_pending_exception) {
    /* A throwing callback would only make the figures wrong: say so and carry on. */
    napi_value err;
    napi_get_and_clear_last_exception(s->env, &err);
    fputs("floor: the JavaScript callback threw\n", stderr);
  }
  napi_close_handle_scope(s->env, scope);
}

static void on_readable(uv_poll_t *h, int status, int events) {
  side *s = h->data;
  (void)events;
  if (status < 0) {
    fprintf(stderr, "floor: poll error %s, stopped\n", uv_strerror(status));
    uv_poll_stop(h);
    return;
  }
  packet_len = s->from_tun ? read(s->from, packet, sizeof packet) : recv(s->from, packet, sizeof packet, MSG_DONTWAIT);
  if (packet_len <= 0) return;
  if (s->cb) enter_js(s);
  if (s->from_tun)
    (void)!sendto(s->to, packet, (size_t)packet_len, 0, (struct sockaddr *)&remote, sizeof remote);
  else
    (void)!write(s->to, packet, (size_t)packet_len);
}

static napi_value fail(napi_env env, const char *msg) {
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static napi_value start(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5], name;
  napi_valuetype cb_type;
  int32_t tun, udp, port;
  char ip[INET_ADDRSTRLEN];
  size_t ip_len;
  uv_loop_t *loop;
  if (started) return fail(env, "start: already started (one forwarder per process)");
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5 ||
      napi_get_value_int32(env, argv[0], &tun) != napi_ok || napi_get_value_int32(env, argv[1], &udp) != napi_ok ||
      napi_get_value_string_utf8(env, argv[2], ip, sizeof ip, &ip_len) != napi_ok ||
      napi_get_value_int32(env, argv[3], &port) != napi_ok || napi_typeof(env, argv[4], &cb_type) != napi_ok)
    return fail(env, "start(tunFd, udpFd, remoteIPv4, remotePort, callback | null)");
  memset(&remote, 0, sizeof remote);
  remote.sin_family = AF_INET;
  remote.sin_port = htons((uint16_t)port);
  if (port < 1 || port > 65535 || inet_pton(AF_INET, ip, &remote.sin_addr) != 1)
    return fail(env, "start: remoteIPv4 must be a dotted IPv4 address and remotePort 1..65535");
  if (cb_type != napi_function && cb_type != napi_null)
    return fail(env, "start: callback must be a function or null");
  napi_get_uv_event_loop(env, &loop);
  napi_create_string_utf8(env, "idle-floor", NAPI_AUTO_LENGTH, &name);
  for (int i = 0; i < 2; i++) {
    side *s = &sides[i];
    s->from_tun = i == 0;
    s->from = s->from_tun ? tun : udp;
    s->to = s->from_tun ? udp : tun;
    s->env = env;
    s->cb = NULL;
    if (cb_type == napi_function) {
      napi_create_reference(env, argv[4], 1, &s->cb);
      napi_async_init(env, NULL, name, &s->actx);
    }
    s->handle.data = s;
    if (uv_poll_init(loop, &s->handle, s->from) < 0 || uv_poll_start(&s->handle, UV_READABLE, on_readable) < 0)
      return fail(env, "start: cannot poll the fds (are they open?)");
  }
  started = 1;
  return NULL;
}

static napi_value touch(napi_env env, napi_callback_info info) {
  napi_value r;
  (void)info;
  napi_create_int32(env, (int32_t)packet_len, &r);
  return r;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "start", NAPI_AUTO_LENGTH, start, NULL, &fn);
  napi_set_named_property(env, exports, "start", fn);
  napi_create_function(env, "touch", NAPI_AUTO_LENGTH, touch, NULL, &fn);
  napi_set_named_property(env, exports, "touch", fn);
  return exports;
}
