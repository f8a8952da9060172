/*
 * dtls_core end to end in one process, with no sockets and no clock: a client and a server endpoint
 * exchange datagrams through in-memory queues. Built against whichever Mbed TLS the compiler finds,
 * so the same checks run on 2.28 (Debian, from test/dtls/core.test.ts) and on a 3.6 or 4.0 build
 * (docs/dtls.md has the command lines).
 *
 *   core_check PKI_DIR        (ca.pem, server.pem/.key, device.pem/.key from npm run certs)
 *
 * Prints one line per check; exits 0 when all pass.
 */
#include "dtls_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QMAX 32
#define DMAX 2048

typedef struct {
  unsigned char d[QMAX][DMAX];
  size_t len[QMAX];
  int n;
} queue;

static queue to_server, to_client;
static unsigned char client_sent[QMAX][DMAX]; /* every datagram the client sent, in order */
static size_t client_sent_len[QMAX];
static int client_sent_n;
static int failures;

static int push(queue *q, const unsigned char *data, size_t len) {
  if (q->n >= QMAX || len > DMAX) return -1;
  memcpy(q->d[q->n], data, len);
  q->len[q->n++] = len;
  return 0;
}

static int send_to_server(void *user, const unsigned char *data, size_t len) {
  (void)user;
  if (client_sent_n < QMAX && len <= DMAX) {
    memcpy(client_sent[client_sent_n], data, len);
    client_sent_len[client_sent_n++] = len;
  }
  return push(&to_server, data, len);
}
static int send_to_client(void *user, const unsigned char *data, size_t len) {
  (void)user;
  return push(&to_client, data, len);
}

static void check(int ok, const char *what) {
  printf("%s %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok) failures++;
}

static unsigned char *slurp(const char *dir, const char *name, size_t *len) {
  char path[1024];
  FILE *f;
  long n;
  unsigned char *buf;
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  f = fopen(path, "rb");
  if (!f) { fprintf(stderr, "cannot open %s\n", path); exit(2); }
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  buf = (unsigned char *)malloc((size_t)n + 1);
  if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) { fprintf(stderr, "cannot read %s\n", path); exit(2); }
  fclose(f);
  buf[n] = 0;
  *len = (size_t)n + 1; /* PEM with its NUL */
  return buf;
}

static const unsigned char PEER[] = "192.0.2.1:5000";

/*
 * The server side as hardware/dtls/index.ts runs it: a ClientHello from an address without an
 * endpoint is checked statelessly; an endpoint is created only for ACCEPT or RESUME.
 */
static dtls_core *server_ep;
static int hvr_sent;

static void server_receive(dtls_conf *sconf, const unsigned char *d, size_t len) {
  if (!server_ep) {
    unsigned char reply[256];
    size_t rlen = 0;
    int err;
    char msg[256];
    int v = dtls_conf_check_client_hello(sconf, d, len, PEER, sizeof(PEER) - 1, 1, reply, sizeof(reply), &rlen);
    if (v == DTLS_HELLO_VERIFY) {
      hvr_sent++;
      push(&to_client, reply, rlen);
      return;
    }
    if (v != DTLS_HELLO_ACCEPT && v != DTLS_HELLO_RESUME) return;
    server_ep = dtls_core_new(sconf, NULL, PEER, sizeof(PEER) - 1, NULL, 0, 0, send_to_client, NULL, &err, msg, sizeof(msg));
    if (!server_ep) { printf("FAIL server endpoint: %s\n", msg); exit(1); }
    if (v == DTLS_HELLO_RESUME) dtls_core_allow_resume_without_cookie(server_ep, 1);
  }
  dtls_core_feed(server_ep, d, len);
}

static void pump(dtls_conf *sconf, dtls_core *client) {
  int i, k;
  for (i = 0; i < 50 && (to_server.n || to_client.n); i++) {
    queue in = to_server;
    to_server.n = 0;
    for (k = 0; k < in.n; k++) server_receive(sconf, in.d[k], in.len[k]);
    in = to_client;
    to_client.n = 0;
    for (k = 0; k < in.n; k++) dtls_core_feed(client, in.d[k], in.len[k]);
  }
}

static int roundtrip(dtls_conf *sconf, dtls_core *client, const char *tag) {
  unsigned char buf[256];
  int n, ok = 1;
  if (dtls_core_write(client, (const unsigned char *)tag, strlen(tag)) < 0) return 0;
  pump(sconf, client);
  n = dtls_core_read(server_ep, buf, sizeof(buf));
  ok = ok && n == (int)strlen(tag) && memcmp(buf, tag, (size_t)n) == 0;
  if (dtls_core_write(server_ep, (const unsigned char *)tag, strlen(tag)) < 0) return 0;
  pump(sconf, client);
  n = dtls_core_read(client, buf, sizeof(buf));
  return ok && n == (int)strlen(tag) && memcmp(buf, tag, (size_t)n) == 0;
}

/* A 13-byte DTLS record header + body into out; returns the length. */
static size_t record(unsigned char *out, int type, int epoch, unsigned seq, const unsigned char *body, size_t len) {
  memset(out, 0, 13);
  out[0] = (unsigned char)type;
  out[1] = 0xfe;
  out[2] = 0xfd;
  out[3] = (unsigned char)(epoch >> 8);
  out[4] = (unsigned char)epoch;
  out[10] = (unsigned char)seq;
  out[11] = (unsigned char)(len >> 8);
  out[12] = (unsigned char)len;
  memcpy(out + 13, body, len);
  return 13 + len;
}

int main(int argc, char **argv) {
  dtls_conf_options so, co;
  dtls_conf *sconf, *cconf;
  dtls_core *client;
  size_t ca_len, cert_len, key_len, n, saved_len;
  unsigned char *ca, *cert, *key, junk[64], saved[1024];
  int err, i, cookie_hello = -1;
  char msg[256];

  if (argc < 2) { fprintf(stderr, "usage: core_check PKI_DIR\n"); return 2; }
  ca = slurp(argv[1], "ca.pem", &ca_len);
  cert = slurp(argv[1], "server.pem", &cert_len);
  key = slurp(argv[1], "server.key", &key_len);
  printf("mbedTLS %s\n", dtls_core_mbedtls_version());

  memset(&so, 0, sizeof(so));
  so.role = DTLS_ROLE_SERVER;
  so.cert = cert; so.cert_len = cert_len;
  so.key = key; so.key_len = key_len;
  so.auth_mode = DTLS_AUTH_DEFAULT;
  sconf = dtls_conf_new(&so, &err, msg, sizeof(msg));
  if (!sconf) { printf("FAIL server conf: %s\n", msg); return 1; }
  memset(&co, 0, sizeof(co));
  co.role = DTLS_ROLE_CLIENT;
  co.ca = ca; co.ca_len = ca_len;
  co.auth_mode = DTLS_AUTH_DEFAULT;
  cconf = dtls_conf_new(&co, &err, msg, sizeof(msg));
  if (!cconf) { printf("FAIL client conf: %s\n", msg); return 1; }

  /* 1. full handshake through a stateless HelloVerifyRequest */
  client = dtls_core_new(cconf, "localhost", NULL, 0, NULL, 0, 0, send_to_server, NULL, &err, msg, sizeof(msg));
  if (!client) { printf("FAIL client endpoint: %s\n", msg); return 1; }
  dtls_core_step(client);
  pump(sconf, client);
  check(hvr_sent == 1, "the first ClientHello got a stateless HelloVerifyRequest");
  check(dtls_core_state(client) == DTLS_STATE_CONNECTED && server_ep && dtls_core_state(server_ep) == DTLS_STATE_CONNECTED,
        "full handshake, endpoint created only for the ClientHello with the cookie");
  printf("     %s, Connection ID %s\n", dtls_core_ciphersuite(client),
         dtls_core_cid_in_use(client) && dtls_core_cid_in_use(server_ep) ? "in use" : "not in use");
  if (failures) { printf("client: %s\n", dtls_core_message(client)); return 1; }
  check(roundtrip(sconf, client, "one"), "application data both ways");
  for (i = 0; i < client_sent_n; i++)
    if (client_sent[i][0] == 22 && client_sent[i][3] == 0 && client_sent[i][13] == 1) cookie_hello = i;

  /* 2. hostile datagrams from the peer's address */
  n = record(junk, 23, 0, 0, (const unsigned char *)"\x42", 1);
  junk[n++] = 0; /* 15 bytes: a record from another epoch and a stray byte */
  dtls_core_feed(server_ep, junk, n);
  dtls_core_feed(client, junk, n);
  check(dtls_core_read(server_ep, saved, sizeof(saved)) == 0 && dtls_core_read(client, saved, sizeof(saved)) == 0,
        "15-byte datagram: nothing read, no error");
  n = record(junk, 22, 0, 7, (const unsigned char *)"\x01\x00\x00\x28\x00\x00\x00\x00\x00\x00\x00\x28", 12);
  dtls_core_feed(server_ep, junk, n);
  dtls_core_read(server_ep, saved, sizeof(saved));
  if (cookie_hello >= 0) {
    dtls_core_feed(server_ep, client_sent[cookie_hello], client_sent_len[cookie_hello]);
    dtls_core_read(server_ep, saved, sizeof(saved));
  }
  check(cookie_hello >= 0 && dtls_core_state(server_ep) == DTLS_STATE_CONNECTED && dtls_core_state(client) == DTLS_STATE_CONNECTED,
        "malformed and replayed ClientHellos: both sides still connected");
  check(dtls_core_discarded(server_ep) >= 3 && dtls_core_discarded(client) >= 1, "discarded datagrams counted");
  check(roundtrip(sconf, client, "two"), "the session still carries data");

  /* 3. flood: cookie-less ClientHellos check statelessly, no endpoint */
  {
    unsigned char reply[256];
    size_t rlen;
    int verify = 0;
    for (i = 0; i < 1000; i++) {
      char id[32];
      int len = snprintf(id, sizeof(id), "198.51.100.7:%d", 1024 + i);
      verify += dtls_conf_check_client_hello(sconf, client_sent[0], client_sent_len[0], (const unsigned char *)id,
                                             (size_t)len, 0, reply, sizeof(reply), &rlen) == DTLS_HELLO_VERIFY;
    }
    check(verify == 1000, "1000 cookie-less ClientHellos: 1000 HelloVerifyRequests, nothing allocated");
  }

  /* 4. resumption by session ID without the cookie round trip (RESUME verdict) */
  saved_len = dtls_core_save_session(client, saved, sizeof(saved));
  check(saved_len > 0 && saved_len < sizeof(saved), "session saved");
  dtls_core_close(client);
  pump(sconf, client);
  dtls_core_free(client);
  dtls_core_free(server_ep);
  server_ep = NULL;
  hvr_sent = 0;
  client = dtls_core_new(cconf, "localhost", NULL, 0, saved, saved_len, 0, send_to_server, NULL, &err, msg, sizeof(msg));
  if (!client) { printf("FAIL resuming client: %s\n", msg); return 1; }
  dtls_core_step(client);
  pump(sconf, client);
  check(hvr_sent == 0 && dtls_core_resumed(client) && server_ep && dtls_core_resumed(server_ep),
        "resumed from the session cache, no HelloVerifyRequest");
  check(roundtrip(sconf, client, "three"), "resumed session carries data");

  /* 4b. the whole connection saved and restored: data at once, no handshake */
  if (dtls_core_context_available()) {
    static unsigned char ctx[2048];
    size_t ctx_len = dtls_core_save_context(client, NULL, 0);
    unsigned char buf[64];
    dtls_core *again;
    check(ctx_len > 0 && ctx_len <= sizeof(ctx) && dtls_core_state(client) == DTLS_STATE_CONNECTED,
          "context size known, connection untouched by the size query");
    check(dtls_core_save_context(client, ctx, ctx_len) == ctx_len && dtls_core_state(client) == DTLS_STATE_CLOSED,
          "context saved; the saving endpoint no longer holds the connection");
    printf("     context %u bytes\n", (unsigned)ctx_len);
    dtls_core_free(client);
    client = dtls_core_new(cconf, "localhost", NULL, 0, NULL, 0, 0, send_to_server, NULL, &err, msg, sizeof(msg));
    if (!client) { printf("FAIL restoring client: %s\n", msg); return 1; }
    n = (size_t)client_sent_n;
    check(dtls_core_load_context(client, ctx, ctx_len) == DTLS_STEP_DATA && dtls_core_state(client) == DTLS_STATE_CONNECTED &&
          dtls_core_restored(client) && !dtls_core_resumed(client), "context loaded: connected, no handshake");
    check(roundtrip(sconf, client, "restored"), "restored connection carries data both ways");
    check(client_sent_n == (int)n + 1, "one datagram sent: the record, no handshake");
    /* the same bytes loaded a second time: its records repeat sequence numbers the server has seen */
    again = dtls_core_new(cconf, "localhost", NULL, 0, NULL, 0, 0, send_to_server, NULL, &err, msg, sizeof(msg));
    if (!again) { printf("FAIL second restore: %s\n", msg); return 1; }
    dtls_core_load_context(again, ctx, ctx_len);
    dtls_core_write(again, (const unsigned char *)"replay", 6);
    pump(sconf, client);
    check(dtls_core_read(server_ep, buf, sizeof(buf)) == 0 && dtls_core_state(server_ep) == DTLS_STATE_CONNECTED,
          "a second load of the same context: its record is discarded as a replay, the session stays");
    dtls_core_free(again);
    ctx[20] ^= 0x55;
    ctx[0] ^= 0x01; /* version header */
    again = dtls_core_new(cconf, "localhost", NULL, 0, NULL, 0, 0, send_to_server, NULL, &err, msg, sizeof(msg));
    check(again && dtls_core_load_context(again, ctx, ctx_len) == DTLS_STEP_ERROR && dtls_core_error(again) == DTLS_E_BAD_SESSION &&
          dtls_core_state(again) == DTLS_STATE_FAILED, "a context from another mbedTLS version is refused (DTLS_BAD_SESSION)");
    dtls_core_free(again);
    check(roundtrip(sconf, client, "still"), "the restored connection still carries data");
  }

  /* 5. an authenticated close_notify ends it */
  dtls_core_close(client);
  pump(sconf, client);
  check(dtls_core_read(server_ep, saved, sizeof(saved)) < 0 && dtls_core_state(server_ep) == DTLS_STATE_CLOSED,
        "close_notify ends the session");
  dtls_core_free(client);
  dtls_core_free(server_ep);
  server_ep = NULL;
  dtls_conf_unref(cconf);
  dtls_conf_unref(sconf);

  /* 6. other configurations: mutual X.509, PSK, session tickets */
  {
    size_t dcert_len, dkey_len;
    unsigned char *dcert = slurp(argv[1], "device.pem", &dcert_len), *dkey = slurp(argv[1], "device.key", &dkey_len);
    static const unsigned char psk[] = "0123456789abcdef";
    int k;
    for (k = 0; k < 3; k++) {
      const char *name = k == 0 ? "mutual X.509" : k == 1 ? "PSK" : "session ticket";
      size_t peer_len = 0;
      char what[128];
      memset(&so, 0, sizeof(so));
      so.role = DTLS_ROLE_SERVER;
      so.auth_mode = DTLS_AUTH_DEFAULT;
      memset(&co, 0, sizeof(co));
      co.role = DTLS_ROLE_CLIENT;
      co.auth_mode = DTLS_AUTH_DEFAULT;
      if (k == 1) {
        so.psk = co.psk = psk;
        so.psk_len = co.psk_len = sizeof(psk) - 1;
      } else {
        so.cert = cert; so.cert_len = cert_len;
        so.key = key; so.key_len = key_len;
        co.ca = ca; co.ca_len = ca_len;
      }
      if (k == 0) {
        so.ca = ca; so.ca_len = ca_len;
        so.auth_mode = DTLS_AUTH_REQUIRED;
        co.cert = dcert; co.cert_len = dcert_len;
        co.key = dkey; co.key_len = dkey_len;
      }
      if (k == 2) co.tickets = DTLS_OPT_ON;
      sconf = dtls_conf_new(&so, &err, msg, sizeof(msg));
      cconf = sconf ? dtls_conf_new(&co, &err, msg, sizeof(msg)) : NULL;
      if (!sconf || !cconf) { printf("FAIL %s configuration: %s\n", name, msg); return 1; }
      client = dtls_core_new(cconf, k == 1 ? NULL : "localhost", NULL, 0, NULL, 0, 0, send_to_server, NULL, &err, msg, sizeof(msg));
      if (!client) { printf("FAIL %s client: %s\n", name, msg); return 1; }
      dtls_core_step(client);
      pump(sconf, client);
      snprintf(what, sizeof(what), "%s handshake (%s)", name, dtls_core_ciphersuite(client));
      check(dtls_core_state(client) == DTLS_STATE_CONNECTED && server_ep && dtls_core_state(server_ep) == DTLS_STATE_CONNECTED, what);
      if (k == 0) check(dtls_core_peer_cert(server_ep, &peer_len) != NULL && peer_len > 300, "the server sees the client certificate");
      check(roundtrip(sconf, client, name), "application data both ways");
      if (k == 2) {
        saved_len = dtls_core_save_session(client, saved, sizeof(saved));
        dtls_core_free(client);
        dtls_core_free(server_ep);
        server_ep = NULL;
        client = dtls_core_new(cconf, "localhost", NULL, 0, saved, saved_len, 0, send_to_server, NULL, &err, msg, sizeof(msg));
        if (!client) { printf("FAIL ticket client: %s\n", msg); return 1; }
        dtls_core_step(client);
        pump(sconf, client);
        check(dtls_core_resumed(client) && server_ep && dtls_core_resumed(server_ep), "resumed with the session ticket");
      }
      dtls_core_free(client);
      dtls_core_free(server_ep);
      server_ep = NULL;
      dtls_conf_unref(cconf);
      dtls_conf_unref(sconf);
    }
    free(dcert);
    free(dkey);
  }
  free(ca);
  free(cert);
  free(key);
  printf("%s\n", failures ? "FAILED" : "all passed");
  return failures ? 1 : 0;
}
