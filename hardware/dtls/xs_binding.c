/*
 * xsmc binding (Moddable XS) over dtls_core: the `dtls/native` module's DtlsEndpoint class
 * (hardware/dtls/dtls_native.js declares the host functions). Same contract as the N-API class:
 * JavaScript owns the UDP socket and the timers; records leave through `this.onSend(Uint8Array)`.
 * Bytes handed to JavaScript (onSend, read, saveSession, peerCertificate) are Uint8Arrays, as
 * src/dtls/engine.ts and dtls_native.d.ts say (the N-API class gives Buffers, also Uint8Arrays).
 *
 * transport: 'stream' runs TLS 1.2 over a byte stream (MQTTS over TCP) on the same core: feed() then
 * takes any number of bytes, handed to the core in pieces of at most DTLS_STREAM_FEED_MAX with the
 * plaintext read after each, as napi_binding.cc does.
 *
 * Build: Moddable SDK (`mcconfig`) with hardware/dtls/manifest.json included; links ESP-IDF's
 * mbedTLS 3.x on esp32 (CID available there when CONFIG_MBEDTLS_SSL_DTLS_CONNECTION_ID is set).
 */
#include <stddef.h>
#include "xsmc.h"
#include "mc.xs.h" /* xsID_* for the property names used below */
#include "xsHost.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtls_core.h"

typedef struct xs_dtls_record xs_dtls_record;
struct xs_dtls_record {
  xs_dtls_record *next;
  size_t len;
  unsigned char data[1];
};

typedef struct {
  dtls_core *core;
  xs_dtls_record *out_head, *out_tail; /* records to hand to onSend */
  xs_dtls_record *in_head, *in_tail;   /* decrypted datagrams for read() */
} xsDtls;

static void queue_push(xs_dtls_record **head, xs_dtls_record **tail, const unsigned char *data, size_t len) {
  xs_dtls_record *r = (xs_dtls_record *)malloc(sizeof(xs_dtls_record) + len);
  if (!r) return; /* dropped, like a lost datagram */
  r->next = NULL;
  r->len = len;
  memcpy(r->data, data, len);
  if (*tail) (*tail)->next = r;
  else *head = r;
  *tail = r;
}

static xs_dtls_record *queue_pop(xs_dtls_record **head, xs_dtls_record **tail) {
  xs_dtls_record *r = *head;
  if (r) {
    *head = r->next;
    if (!*head) *tail = NULL;
  }
  return r;
}

static void queue_clear(xs_dtls_record **head, xs_dtls_record **tail) {
  xs_dtls_record *r;
  while ((r = queue_pop(head, tail)) != NULL) free(r);
}

static int on_send(void *user, const unsigned char *data, size_t len) {
  xsDtls *d = (xsDtls *)user;
  queue_push(&d->out_head, &d->out_tail, data, len);
  return 0;
}

void xs_dtls_destructor(void *data) {
  xsDtls *d = (xsDtls *)data;
  if (!d) return;
  dtls_core_free(d->core);
  queue_clear(&d->out_head, &d->out_tail);
  queue_clear(&d->in_head, &d->in_tail);
  free(d);
}

static xsDtls *get_dtls(xsMachine *the) {
  xsDtls *d = (xsDtls *)xsmcGetHostData(xsThis);
  if (!d || !d->core) xsUnknownError("DtlsEndpoint closed");
  return d;
}

/* Throws Error(message) with .code = name (and .alert when known). Uses xsVar(0..1). */
/* *result = new Uint8Array(copy of data). Uses xsVar(0). */
static void set_bytes(xsMachine *the, xsSlot *result, const void *data, size_t len) {
  xsmcSetArrayBuffer(xsVar(0), (void *)data, (xsUnsignedValue)len);
  *result = xsNew1(xsGlobal, xsID_Uint8Array, xsVar(0));
}

static void throw_dtls(xsMachine *the, int code, const char *message, int alert) {
  xsVar(0) = xsNew1(xsGlobal, xsID_Error, xsString(message && message[0] ? message : dtls_core_error_name(code)));
  xsmcSetString(xsVar(1), (char *)dtls_core_error_name(code));
  xsmcSet(xsVar(0), xsID_code, xsVar(1));
  if (alert >= 0) {
    xsmcSetInteger(xsVar(1), alert);
    xsmcSet(xsVar(0), xsID_alert, xsVar(1));
  }
  xsThrow(xsVar(0));
}

/* Copies an option (string, ArrayBuffer or typed array) into malloc'd memory. Returns NULL if absent. */
static unsigned char *get_bytes(xsMachine *the, const char *name, xsIdentifier id, size_t *len) {
  unsigned char *copy;
  (void)name;
  *len = 0;
  if (!xsmcHas(xsArg(0), id)) return NULL;
  xsmcGet(xsVar(0), xsArg(0), id);
  if (xsmcTest(xsVar(0)) == 0) return NULL;
  /* a primitive string is not an instance of String.prototype: test its type */
  if (xsmcTypeOf(xsVar(0)) == xsStringType || xsmcTypeOf(xsVar(0)) == xsStringXType) {
    const char *s = xsmcToString(xsVar(0));
    *len = strlen(s);
    copy = (unsigned char *)malloc(*len + 1);
    if (!copy) xsUnknownError("out of memory");
    memcpy(copy, s, *len + 1);
    return copy;
  } else {
    void *data;
    xsUnsignedValue count;
    xsmcGetBufferReadable(xsVar(0), &data, &count);
    copy = (unsigned char *)malloc(count ? count : 1);
    if (!copy) xsUnknownError("out of memory");
    memcpy(copy, data, count);
    *len = count;
    return copy;
  }
}

static int get_int(xsMachine *the, xsIdentifier id, int def) {
  if (!xsmcHas(xsArg(0), id)) return def;
  xsmcGet(xsVar(0), xsArg(0), id);
  if (xsmcTypeOf(xsVar(0)) != xsIntegerType && xsmcTypeOf(xsVar(0)) != xsNumberType) return def;
  return xsmcToInteger(xsVar(0));
}

/*
 * Delivers queued records to this.onSend(Uint8Array). Uses xsVar(0), xsVar(2), xsVar(3).
 * onSend may call destroy(), which frees `d`: after each call the host data is checked, and 0 is
 * returned (and `d` must not be touched again) when the endpoint is gone.
 */
static int flush(xsMachine *the, xsDtls *d) {
  xs_dtls_record *r;
  xsmcGet(xsVar(2), xsThis, xsID_onSend);
  while ((r = queue_pop(&d->out_head, &d->out_tail)) != NULL) {
    if (xsmcTest(xsVar(2))) {
      set_bytes(the, &xsVar(3), r->data, r->len);
      free(r);
      xsCallFunction1(xsVar(2), xsThis, xsVar(3));
      if (xsmcGetHostData(xsThis) != d) return 0;
    } else {
      free(r);
    }
  }
  return 1;
}

static void drain(xsDtls *d) {
  static unsigned char buf[2048];
  for (;;) {
    int n = dtls_core_read(d->core, buf, sizeof(buf));
    if (n <= 0) break;
    queue_push(&d->in_head, &d->in_tail, buf, (size_t)n);
  }
}

/* The outcome is read before flush(): onSend may destroy the endpoint. */
static void result(xsMachine *the, xsDtls *d, int r) {
  int code = dtls_core_error(d->core), state = dtls_core_state(d->core), alert = dtls_core_alert(d->core);
  int failed = r == DTLS_STEP_ERROR || (code != DTLS_OK && (state == DTLS_STATE_FAILED || state == DTLS_STATE_CLOSED));
  char message[160];
  const char *m = failed ? dtls_core_message(d->core) : NULL;
  snprintf(message, sizeof(message), "%s", m ? m : "");
  flush(the, d);
  if (failed) throw_dtls(the, code, message, alert);
  xsmcSetInteger(xsResult, r);
}

/* new DtlsEndpoint({role, ca, cert, key, psk, pskIdentity, hostname, authMode, mtu, session, restore, retransmitMs, retransmitMaxMs, tickets, transport})
 * restore: a saved connection (saveContext()) loaded instead of a handshake: connected at once. */
void xs_dtls(xsMachine *the) {
  dtls_conf_options opt;
  unsigned char *ca, *cert, *key, *psk, *pskId, *host, *session, *role, *auth, *transport, *restore;
  size_t ca_len, cert_len, key_len, psk_len, pskId_len, host_len, session_len, role_len, auth_len, transport_len, restore_len;
  int err = 0;
  char msg[256];
  dtls_conf *conf;
  xsDtls *d;

  xsmcVars(4);
  memset(&opt, 0, sizeof(opt));
  role = get_bytes(the, "role", xsID_role, &role_len);
  opt.role = role && strcmp((char *)role, "server") == 0 ? DTLS_ROLE_SERVER : DTLS_ROLE_CLIENT;
  free(role);
  auth = get_bytes(the, "authMode", xsID_authMode, &auth_len);
  opt.auth_mode = !auth ? DTLS_AUTH_DEFAULT
                  : strcmp((char *)auth, "none") == 0 ? DTLS_AUTH_NONE
                  : strcmp((char *)auth, "optional") == 0 ? DTLS_AUTH_OPTIONAL
                                                          : DTLS_AUTH_REQUIRED;
  free(auth);
  /* 'datagram' (DTLS, the default) or 'stream' (TLS over TCP, for MQTTS) */
  transport = get_bytes(the, "transport", xsID_transport, &transport_len);
  if (transport && strcmp((char *)transport, "stream") != 0 && strcmp((char *)transport, "datagram") != 0) {
    free(transport);
    throw_dtls(the, DTLS_E_CONFIG, "transport must be 'datagram' (DTLS) or 'stream' (TLS)", -1);
  }
  opt.transport = transport && strcmp((char *)transport, "stream") == 0 ? DTLS_TRANSPORT_STREAM : DTLS_TRANSPORT_DATAGRAM;
  free(transport);
  ca = get_bytes(the, "ca", xsID_ca, &ca_len);
  cert = get_bytes(the, "cert", xsID_cert, &cert_len);
  key = get_bytes(the, "key", xsID_key, &key_len);
  psk = get_bytes(the, "psk", xsID_psk, &psk_len);
  pskId = get_bytes(the, "pskIdentity", xsID_pskIdentity, &pskId_len);
  host = get_bytes(the, "hostname", xsID_hostname, &host_len);
  session = get_bytes(the, "session", xsID_session, &session_len);
  restore = get_bytes(the, "restore", xsID_restore, &restore_len);
  opt.ca = ca; opt.ca_len = ca_len;
  opt.cert = cert; opt.cert_len = cert_len;
  opt.key = key; opt.key_len = key_len;
  opt.psk = psk; opt.psk_len = psk_len;
  opt.psk_identity = pskId; opt.psk_identity_len = pskId_len;
  opt.retransmit_min_ms = (uint32_t)get_int(the, xsID_retransmitMs, 0);
  opt.retransmit_max_ms = (uint32_t)get_int(the, xsID_retransmitMaxMs, 0);
  if (xsmcHas(xsArg(0), xsID_tickets)) {
    xsmcGet(xsVar(0), xsArg(0), xsID_tickets);
    if (xsmcTypeOf(xsVar(0)) == xsBooleanType) opt.tickets = xsmcTest(xsVar(0)) ? DTLS_OPT_ON : DTLS_OPT_OFF;
  }

  conf = dtls_conf_new(&opt, &err, msg, sizeof(msg));
  d = NULL;
  if (conf) {
    d = (xsDtls *)calloc(1, sizeof(xsDtls));
    if (d) {
      d->core = dtls_core_new(conf, (const char *)host, NULL, 0, session, session_len,
                              (unsigned)get_int(the, xsID_mtu, 0), on_send, d, &err, msg, sizeof(msg));
      if (!d->core) { free(d); d = NULL; }
      else if (restore && restore_len &&
               dtls_core_load_context(d->core, restore, restore_len) == DTLS_STEP_ERROR) {
        err = dtls_core_error(d->core);
        snprintf(msg, sizeof(msg), "%s", dtls_core_message(d->core));
        dtls_core_free(d->core);
        free(d);
        d = NULL;
      }
    } else {
      err = DTLS_E_NO_MEMORY;
      strcpy(msg, "out of memory");
    }
    dtls_conf_unref(conf); /* the core keeps its own reference */
  }
  if (key) memset(key, 0, key_len);
  if (psk) memset(psk, 0, psk_len);
  if (restore) memset(restore, 0, restore_len);
  free(restore);
  free(ca); free(cert); free(key); free(psk); free(pskId); free(host); free(session);
  if (!d) throw_dtls(the, err, msg, -1);
  xsmcSetHostData(xsThis, d);
}

void xs_dtls_step(xsMachine *the) {
  xsDtls *d = get_dtls(the);
  xsmcVars(4);
  result(the, d, dtls_core_step(d->core));
}

void xs_dtls_feed(xsMachine *the) {
  xsDtls *d = get_dtls(the);
  void *data;
  xsUnsignedValue count;
  int r;
  xsmcVars(4);
  xsmcGetBufferReadable(xsArg(0), &data, &count);
  if (dtls_core_is_stream(d->core)) {
    /* TLS over a stream: any number of bytes, fed in pieces the core takes, decrypted after each. */
    const unsigned char *p = (const unsigned char *)data;
    size_t len = count, off = 0;
    int connected = 0, state;
    do {
      size_t n = len - off > DTLS_STREAM_FEED_MAX ? DTLS_STREAM_FEED_MAX : len - off;
      r = dtls_core_feed(d->core, p + off, n);
      off += n;
      if (r == DTLS_STEP_CONNECTED) connected = 1;
      if (r == DTLS_STEP_CONNECTED || r == DTLS_STEP_DATA) drain(d);
      state = dtls_core_state(d->core);
      if (r == DTLS_STEP_ERROR || state == DTLS_STATE_FAILED || state == DTLS_STATE_CLOSED) break;
    } while (off < len);
    if (connected && r == DTLS_STEP_DATA) r = DTLS_STEP_CONNECTED;
  } else {
    r = dtls_core_feed(d->core, (const unsigned char *)data, count);
    if (r == DTLS_STEP_CONNECTED || r == DTLS_STEP_DATA) drain(d);
  }
  result(the, d, r);
}

void xs_dtls_read(xsMachine *the) {
  xsDtls *d = get_dtls(the);
  xs_dtls_record *r = queue_pop(&d->in_head, &d->in_tail);
  if (!r) {
    xsmcSetNull(xsResult);
    return;
  }
  xsmcVars(1);
  set_bytes(the, &xsResult, r->data, r->len);
  free(r);
}

void xs_dtls_write(xsMachine *the) {
  xsDtls *d = get_dtls(the);
  void *data;
  xsUnsignedValue count;
  int n;
  xsmcVars(4);
  xsmcGetBufferReadable(xsArg(0), &data, &count);
  n = dtls_core_write(d->core, (const unsigned char *)data, count);
  if (n < 0) {
    char message[160];
    int alert = dtls_core_alert(d->core);
    const char *m = dtls_core_message(d->core);
    snprintf(message, sizeof(message), "%s", -n == DTLS_E_STATE ? "write before the handshake completed" :
                                             -n == DTLS_E_TOO_LONG ? "datagram larger than one DTLS record" : (m ? m : ""));
    flush(the, d);
    throw_dtls(the, -n, message, alert);
  }
  flush(the, d);
  xsmcSetInteger(xsResult, n);
}

void xs_dtls_timer_ms(xsMachine *the) {
  xsDtls *d = get_dtls(the);
  xsmcSetInteger(xsResult, dtls_core_timer_ms(d->core));
}

void xs_dtls_get_timer_generation(xsMachine *the) {
  xsDtls *d = get_dtls(the);
  xsmcSetInteger(xsResult, (xsIntegerValue)dtls_core_timer_generation(d->core));
}

void xs_dtls_timer_expired(xsMachine *the) {
  xsDtls *d = get_dtls(the);
  xsmcVars(4);
  result(the, d, dtls_core_timer_expired(d->core));
}

void xs_dtls_save_session(xsMachine *the) {
  xsDtls *d = get_dtls(the);
  size_t n = dtls_core_save_session(d->core, NULL, 0);
  if (!n) {
    xsmcSetNull(xsResult);
    return;
  }
  xsmcVars(1);
  xsmcSetArrayBuffer(xsVar(0), NULL, (xsUnsignedValue)n);
  if (dtls_core_save_session(d->core, (unsigned char *)xsmcToArrayBuffer(xsVar(0)), n) != n) {
    xsmcSetNull(xsResult);
    return;
  }
  xsResult = xsNew1(xsGlobal, xsID_Uint8Array, xsVar(0));
}

/* The whole connection for deep sleep (Uint8Array), or null when it cannot be saved now. After a
 * save this endpoint no longer holds the connection (state 'closed'). */
void xs_dtls_save_context(xsMachine *the) {
  xsDtls *d = get_dtls(the);
  size_t n = dtls_core_save_context(d->core, NULL, 0);
  if (!n) {
    xsmcSetNull(xsResult);
    return;
  }
  xsmcVars(1);
  {
    unsigned char *buf = (unsigned char *)malloc(n);
    size_t m;
    if (!buf) xsUnknownError("out of memory");
    m = dtls_core_save_context(d->core, buf, n);
    if (m == 0 || m > n) {
      free(buf);
      xsmcSetNull(xsResult);
      return;
    }
    set_bytes(the, &xsResult, buf, m);
    memset(buf, 0, n);
    free(buf);
  }
}

void xs_dtls_peer_certificate(xsMachine *the) {
  xsDtls *d = get_dtls(the);
  size_t len = 0;
  const unsigned char *p = dtls_core_peer_cert(d->core, &len);
  if (!p) xsmcSetNull(xsResult);
  else {
    xsmcVars(1);
    set_bytes(the, &xsResult, p, len);
  }
}

void xs_dtls_close(xsMachine *the) {
  xsDtls *d = (xsDtls *)xsmcGetHostData(xsThis);
  if (!d || !d->core) return;
  xsmcVars(4);
  dtls_core_close(d->core);
  flush(the, d);
}

void xs_dtls_destroy(xsMachine *the) {
  xsDtls *d = (xsDtls *)xsmcGetHostData(xsThis);
  if (!d) return;
  xs_dtls_destructor(d);
  xsmcSetHostData(xsThis, NULL);
}

void xs_dtls_get_state(xsMachine *the) {
  xsDtls *d = (xsDtls *)xsmcGetHostData(xsThis);
  const char *s = "closed";
  if (d && d->core) {
    switch (dtls_core_state(d->core)) {
      case DTLS_STATE_HANDSHAKING: s = "handshaking"; break;
      case DTLS_STATE_CONNECTED: s = "connected"; break;
      case DTLS_STATE_FAILED: s = "failed"; break;
      default: s = "closed";
    }
  }
  xsmcSetString(xsResult, (char *)s);
}

void xs_dtls_get_resumed(xsMachine *the) {
  xsDtls *d = (xsDtls *)xsmcGetHostData(xsThis);
  xsmcSetBoolean(xsResult, d && d->core && dtls_core_resumed(d->core));
}

void xs_dtls_get_restored(xsMachine *the) {
  xsDtls *d = (xsDtls *)xsmcGetHostData(xsThis);
  xsmcSetBoolean(xsResult, d && d->core && dtls_core_restored(d->core));
}

void xs_dtls_get_cid_available(xsMachine *the) {
  xsmcSetBoolean(xsResult, dtls_core_cid_available());
}

void xs_dtls_get_cid_in_use(xsMachine *the) {
  xsDtls *d = (xsDtls *)xsmcGetHostData(xsThis);
  xsmcSetBoolean(xsResult, d && d->core && dtls_core_cid_in_use(d->core));
}

void xs_dtls_get_max_payload(xsMachine *the) {
  xsDtls *d = (xsDtls *)xsmcGetHostData(xsThis);
  xsmcSetInteger(xsResult, d && d->core ? dtls_core_max_payload(d->core) : 0);
}

void xs_dtls_get_ciphersuite(xsMachine *the) {
  xsDtls *d = (xsDtls *)xsmcGetHostData(xsThis);
  xsmcSetString(xsResult, (char *)(d && d->core ? dtls_core_ciphersuite(d->core) : ""));
}
