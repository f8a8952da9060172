/*
 * dtls_core.c: see dtls_core.h. Links the system mbedTLS (-lmbedtls -lmbedx509 -lmbedcrypto).
 */
#include "dtls_core.h"

/*
 * Mbed TLS versions (MBEDTLS_VERSION_NUMBER):
 *   2.28 (Debian, the host)  mbedtls/config.h; entropy + CTR-DRBG; RNG arguments everywhere.
 *   3.6  (ESP-IDF 5.x)       mbedtls/build_info.h; still entropy + CTR-DRBG; private struct fields
 *                            (MBEDTLS_PRIVATE); PSA crypto initialised when compiled in (TLS 1.3 and
 *                            MBEDTLS_USE_PSA_CRYPTO need it).
 *   4.0  (ESP-IDF 6.0, Moddable 8.2) PSA crypto only (TF-PSA-Crypto): no entropy/ctr_drbg modules, no RNG
 *                            arguments to pk parsing, key checks, cookie setup; no mbedtls_ssl_conf_rng;
 *                            ticket keys are PSA keys. psa_crypto_init() before anything else.
 */
#include "mbedtls/version.h"
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#include "mbedtls/build_info.h"
#define DTLS_PRIV(x) MBEDTLS_PRIVATE(x)
#else
#if !defined(MBEDTLS_CONFIG_FILE)
#include "mbedtls/config.h"
#else
#include MBEDTLS_CONFIG_FILE
#endif
#define DTLS_PRIV(x) x
#endif

/* 4.0: the random generator is PSA's (psa_generate_random); 2.28 and 3.6: our own CTR-DRBG. */
#if MBEDTLS_VERSION_NUMBER >= 0x04000000
#define DTLS_PSA_RNG 1
#define DTLS_PSA_INIT 1
#else
#define DTLS_PSA_RNG 0
#if MBEDTLS_VERSION_NUMBER >= 0x03000000 && defined(MBEDTLS_PSA_CRYPTO_C)
#define DTLS_PSA_INIT 1
#else
#define DTLS_PSA_INIT 0
#endif
#endif

#include "mbedtls/ssl.h"
#if MBEDTLS_VERSION_NUMBER < 0x03000000 && defined(MBEDTLS_SSL_PROTO_DTLS)
#include "mbedtls/ssl_internal.h" /* mbedtls_ssl_handshake_params (public in 2.x): see handshake_done() */
#define DTLS_RESET_HS_MTU 1
#else
#define DTLS_RESET_HS_MTU 0
#endif
#if defined(MBEDTLS_SSL_PROTO_DTLS)
/* Library-internal in every version (2.28 ssl_internal.h, 3.x/4.0 library/ssl_misc.h), exported:
 * resends the current flight. Used by dtls_core_resend_flight(). */
int mbedtls_ssl_resend(mbedtls_ssl_context *ssl);
#endif
#include "mbedtls/ssl_cookie.h"
#include "mbedtls/ssl_ticket.h"
#if defined(MBEDTLS_SSL_CACHE_C)
#include "mbedtls/ssl_cache.h"
#endif
#if !DTLS_PSA_RNG
#include "mbedtls/entropy.h"
#include "mbedtls/ctr_drbg.h"
#endif
#include "mbedtls/x509_crt.h"
#include "mbedtls/pk.h"
#include "mbedtls/error.h"
#include "mbedtls/platform.h" /* mbedtls_free: ESP-IDF may use its own allocator */
#if DTLS_PSA_INIT
#include "psa/crypto.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(MBEDTLS_SSL_PROTO_DTLS)
#error "dtls_core needs MBEDTLS_SSL_PROTO_DTLS"
#endif

#define DTLS_DEFAULT_MTU 1024
#define DTLS_MSG_SIZE 256
#define DTLS_INBOX_SIZE 2048
#define DTLS_CID_LEN 4          /* the CID we ask peers to put in the records they send us */
#define DTLS_RECORD_HEADER 13   /* type, version, epoch, sequence number, length */

struct dtls_conf {
  int refs;
  int role;
  int has_psk;
  int has_ca;
  int has_cert;
  int auth_mode;
  mbedtls_ssl_config ssl;
#if !DTLS_PSA_RNG
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
#endif
  mbedtls_x509_crt ca;
  mbedtls_x509_crt cert;
  mbedtls_pk_context key;
#if defined(MBEDTLS_SSL_COOKIE_C)
  mbedtls_ssl_cookie_ctx cookie;
#endif
#if defined(MBEDTLS_SSL_TICKET_C)
  mbedtls_ssl_ticket_context ticket;
#endif
#if defined(MBEDTLS_SSL_CACHE_C)
  mbedtls_ssl_cache_context cache;
#endif
  int ciphersuites[8];
  int cookies_on;            /* server: HelloVerifyRequest configured */
  int stream;                /* TLS over a byte stream (DTLS_TRANSPORT_STREAM) */
  struct dtls_core *current; /* endpoint whose handshake step is running (for the cookie callback) */
};

struct dtls_core {
  dtls_conf *conf;
  mbedtls_ssl_context ssl;
  dtls_send_fn send;
  void *send_user;
  unsigned char *client_id;
  size_t client_id_len;
  /* one-datagram inbox */
  unsigned char inbox[DTLS_INBOX_SIZE];
  size_t inbox_len;
  int inbox_full;
  size_t inbox_off;          /* stream mode: bytes of the inbox mbedTLS has taken */
  /* caller-driven timer */
  uint32_t timer_fin_ms;
  int timer_set;
  int timer_expired;
  uint32_t timer_gen;
  /* status */
  int state;
  int error;
  int mbed_error;
  int alert;
  int saw_certificate_state;
  int saw_server_hello;       /* the peer answered with a ServerHello (client) */
  int resumed;
  int restored;                 /* the session came from dtls_core_load_context (no handshake) */
  uint16_t mtu;                 /* the handshake MTU set at creation (set again after a context load) */
  int connected_reported;
  /* Scandium-style resumption without HelloVerifyRequest (see dtls_core_allow_resume_without_cookie) */
  int resume_no_cookie_allowed; /* set by the caller before the first ClientHello */
  int cookie_skipped;           /* this handshake skipped the cookie check (peer address not verified) */
  int cookie_fallbacks;         /* resumption turned into a full handshake: restarted with the cookie check */
  uint32_t discarded;           /* datagrams (or parts) dropped as invalid or unexpected, session kept */
  char message[DTLS_MSG_SIZE];
};

/* ---------- helpers ---------- */

static void set_msg(char *dst, size_t size, const char *fmt, const char *a, const char *b) {
  if (!dst || !size) return;
  snprintf(dst, size, fmt, a ? a : "", b ? b : "");
}

static const char *error_names[] = {
  "DTLS_OK", "DTLS_CONFIG", "DTLS_BAD_CA_FILE", "DTLS_BAD_CERT_FILE", "DTLS_BAD_KEY_FILE",
  "DTLS_UNKNOWN_CA", "DTLS_HOSTNAME_MISMATCH", "DTLS_CERT_EXPIRED", "DTLS_CERT_NOT_YET_VALID",
  "DTLS_CERT_INVALID", "DTLS_HANDSHAKE_TIMEOUT", "DTLS_FATAL_ALERT", "DTLS_CLOSE_NOTIFY",
  "DTLS_NO_CLIENT_CERT", "DTLS_HANDSHAKE_FAILED", "DTLS_BAD_SESSION", "DTLS_STATE", "DTLS_TOO_LONG",
  "DTLS_NO_MEMORY", "DTLS_INTERNAL"
};

const char *dtls_core_error_name(int code) {
  if (code < 0 || code >= (int)(sizeof(error_names) / sizeof(error_names[0]))) return "DTLS_INTERNAL";
  return error_names[code];
}

static const char *alert_name(int alert) {
  switch (alert) {
    case 0: return "close_notify";
    case 10: return "unexpected_message";
    case 20: return "bad_record_mac";
    case 22: return "record_overflow";
    case 40: return "handshake_failure";
    case 42: return "bad_certificate";
    case 43: return "unsupported_certificate";
    case 44: return "certificate_revoked";
    case 45: return "certificate_expired";
    case 46: return "certificate_unknown";
    case 47: return "illegal_parameter";
    case 48: return "unknown_ca";
    case 49: return "access_denied";
    case 50: return "decode_error";
    case 51: return "decrypt_error";
    case 70: return "protocol_version";
    case 71: return "insufficient_security";
    case 80: return "internal_error";
    case 90: return "user_canceled";
    case 110: return "unsupported_extension";
    case 112: return "unrecognized_name";
    case 115: return "unknown_psk_identity";
    case 116: return "certificate_required";
    default: return "unknown alert";
  }
}

static int contains(const unsigned char *data, size_t len, const char *needle) {
  size_t n = strlen(needle), i;
  for (i = 0; i + n <= len; i++)
    if (data[i] == (unsigned char)needle[0] && memcmp(data + i, needle, n) == 0) return 1;
  return 0;
}

/* mbedtls_pk_parse_key / x509 parse need PEM NUL-terminated with the NUL counted. */
static unsigned char *pem_copy(const unsigned char *data, size_t len, size_t *out_len) {
  unsigned char *copy;
  int pem = contains(data, len, "-----BEGIN");
  if (!pem) { *out_len = len; return NULL; }
  if (data[len - 1] == 0) { *out_len = len; return NULL; }
  copy = (unsigned char *)malloc(len + 1);
  if (!copy) return NULL;
  memcpy(copy, data, len);
  copy[len] = 0;
  *out_len = len + 1;
  return copy;
}

static int parse_crt(mbedtls_x509_crt *crt, const unsigned char *data, size_t len) {
  size_t n;
  unsigned char *copy = pem_copy(data, len, &n);
  int ret = mbedtls_x509_crt_parse(crt, copy ? copy : data, n);
  free(copy);
  return ret;
}

static int parse_key(dtls_conf *c, const unsigned char *data, size_t len) {
  size_t n;
  unsigned char *copy = pem_copy(data, len, &n);
  int ret;
#if DTLS_PSA_RNG
  (void)c;
  ret = mbedtls_pk_parse_key(&c->key, copy ? copy : data, n, NULL, 0);
#elif MBEDTLS_VERSION_NUMBER >= 0x03000000
  ret = mbedtls_pk_parse_key(&c->key, copy ? copy : data, n, NULL, 0, mbedtls_ctr_drbg_random, &c->drbg);
#else
  ret = mbedtls_pk_parse_key(&c->key, copy ? copy : data, n, NULL, 0);
#endif
  if (copy) { memset(copy, 0, n); free(copy); }
  return ret;
}

static void mbed_strerror(int ret, char *buf, size_t size) {
#if defined(MBEDTLS_ERROR_C)
  mbedtls_strerror(ret, buf, size);
#else
  snprintf(buf, size, "mbedTLS error -0x%04x", (unsigned)-ret);
#endif
}

/* ---------- cookies: HelloVerifyRequest, skipped only for a known session ---------- */

#if defined(MBEDTLS_SSL_COOKIE_C) && defined(MBEDTLS_SSL_DTLS_HELLO_VERIFY) && defined(MBEDTLS_SSL_SRV_C)
/* 1 if the server's session-ID cache holds a live session with this ID (the same lookup
 * mbedTLS makes a moment later when it writes the ServerHello). */
static int cache_has(dtls_conf *c, const unsigned char *id, size_t id_len) {
#if defined(MBEDTLS_SSL_CACHE_C)
  mbedtls_ssl_session s;
  int found;
  if (id_len == 0 || id_len > 32 || c->ssl.DTLS_PRIV(f_get_cache) == NULL) return 0;
  mbedtls_ssl_session_init(&s);
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
  found = mbedtls_ssl_cache_get(&c->cache, id, id_len, &s) == 0;
#else
  s.id_len = id_len;
  memcpy(s.id, id, id_len);
  found = mbedtls_ssl_cache_get(&c->cache, &s) == 0;
#endif
  mbedtls_ssl_session_free(&s);
  return found;
#else
  (void)c; (void)id; (void)id_len;
  return 0;
#endif
}

static int cookie_write_cb(void *ctx, unsigned char **p, unsigned char *end, const unsigned char *cli_id,
                           size_t cli_id_len) {
  dtls_conf *c = (dtls_conf *)ctx;
  return mbedtls_ssl_cookie_write(&c->cookie, p, end, cli_id, cli_id_len);
}

/*
 * Called by mbedTLS while it parses a ClientHello (after the session ID, before the cipher suites)
 * and when a connected peer's address sends a new ClientHello (client reconnect). It accepts a
 * ClientHello WITHOUT a valid cookie only when all hold: the caller allowed it for this endpoint
 * (Scandium's DTLS_VERIFY_PEERS_ON_RESUMPTION_THRESHOLD budget), it is the endpoint's initial
 * ClientHello, and its session ID is in the session cache. Whether mbedTLS really resumes is
 * checked again in run_handshake: a full handshake never goes ahead without the cookie exchange.
 */
static int cookie_check_cb(void *ctx, const unsigned char *cookie, size_t cookie_len, const unsigned char *cli_id,
                           size_t cli_id_len) {
  dtls_conf *c = (dtls_conf *)ctx;
  struct dtls_core *core = c->current;
  int ret = mbedtls_ssl_cookie_check(&c->cookie, cookie, cookie_len, cli_id, cli_id_len);
  if (ret == 0 || !core || !core->resume_no_cookie_allowed || core->state != DTLS_STATE_HANDSHAKING ||
      core->ssl.DTLS_PRIV(state) != MBEDTLS_SSL_CLIENT_HELLO || core->ssl.DTLS_PRIV(session_negotiate) == NULL)
    return ret;
  {
    const mbedtls_ssl_session *s = core->ssl.DTLS_PRIV(session_negotiate);
    if (!cache_has(c, s->DTLS_PRIV(id), s->DTLS_PRIV(id_len))) return ret;
  }
  core->cookie_skipped = 1;
  return 0;
}
#endif

/*
 * Stateless ClientHello check (see dtls_core.h). Stricter than mbedTLS's own pre-check
 * (mbedtls_ssl_check_dtls_clihlo_cookie) because its answer decides whether memory is allocated:
 * one whole, unfragmented epoch-0 DTLS handshake record holding a ClientHello whose session ID and
 * cookie lie inside the message. The HelloVerifyRequest is byte for byte what mbedTLS writes (record
 * and message sequence numbers copied from the ClientHello, server_version 1.0 as RFC 6347 4.2.1 says).
 */
int dtls_conf_check_client_hello(dtls_conf *c, const unsigned char *in, size_t len, const unsigned char *cli_id,
                                 size_t cli_id_len, int allow_resume, unsigned char *reply, size_t reply_size,
                                 size_t *reply_len) {
  size_t rec_len, hs_len, frag_len, sid_len, cookie_len, end;
  if (reply_len) *reply_len = 0;
  if (!c || c->role != DTLS_ROLE_SERVER || !in) return DTLS_HELLO_DROP;
  /* record header (13) + handshake header (12) + client_version (2) + random (32) + session_id length */
  if (len < DTLS_RECORD_HEADER + 12 + 2 + 32 + 1 + 1) return DTLS_HELLO_DROP;
  if (in[0] != MBEDTLS_SSL_MSG_HANDSHAKE || in[1] != 0xfe || in[3] != 0 || in[4] != 0) return DTLS_HELLO_DROP;
  rec_len = ((size_t)in[11] << 8) | in[12];
  if (DTLS_RECORD_HEADER + rec_len > len) return DTLS_HELLO_DROP;
  if (in[13] != MBEDTLS_SSL_HS_CLIENT_HELLO) return DTLS_HELLO_DROP;
  hs_len = ((size_t)in[14] << 16) | ((size_t)in[15] << 8) | in[16];
  frag_len = ((size_t)in[22] << 16) | ((size_t)in[23] << 8) | in[24];
  if (in[19] != 0 || in[20] != 0 || in[21] != 0 || frag_len != hs_len || 12 + hs_len > rec_len) return DTLS_HELLO_DROP;
  end = DTLS_RECORD_HEADER + 12 + hs_len;         /* end of the ClientHello body */
  sid_len = in[59];
  if (sid_len > 32 || 60 + sid_len + 1 > end) return DTLS_HELLO_DROP;
  cookie_len = in[60 + sid_len];
  if (61 + sid_len + cookie_len > end) return DTLS_HELLO_DROP;
#if defined(MBEDTLS_SSL_COOKIE_C) && defined(MBEDTLS_SSL_DTLS_HELLO_VERIFY) && defined(MBEDTLS_SSL_SRV_C)
  if (!c->cookies_on) return DTLS_HELLO_ACCEPT;
  if (mbedtls_ssl_cookie_check(&c->cookie, in + 61 + sid_len, cookie_len, cli_id, cli_id_len) == 0)
    return DTLS_HELLO_ACCEPT;
  if (allow_resume && sid_len > 0 && cache_has(c, in + 60, sid_len)) return DTLS_HELLO_RESUME;
  {
    unsigned char *p;
    size_t olen;
    if (!reply || reply_size < 28 + 1) return DTLS_HELLO_DROP;
    memcpy(reply, in, 25);
    reply[13] = MBEDTLS_SSL_HS_HELLO_VERIFY_REQUEST;
    reply[25] = 0xfe;
    reply[26] = 0xff;
    p = reply + 28;
    if (mbedtls_ssl_cookie_write(&c->cookie, &p, reply + reply_size, cli_id, cli_id_len) != 0) return DTLS_HELLO_DROP;
    olen = (size_t)(p - reply);
    reply[27] = (unsigned char)(olen - 28);
    reply[14] = reply[22] = (unsigned char)((olen - 25) >> 16);
    reply[15] = reply[23] = (unsigned char)((olen - 25) >> 8);
    reply[16] = reply[24] = (unsigned char)(olen - 25);
    reply[11] = (unsigned char)((olen - 13) >> 8);
    reply[12] = (unsigned char)(olen - 13);
    if (reply_len) *reply_len = olen;
    return DTLS_HELLO_VERIFY;
  }
#else
  (void)cli_id; (void)cli_id_len; (void)allow_resume; (void)reply; (void)reply_size;
  return DTLS_HELLO_ACCEPT;
#endif
}

/* ---------- configuration ---------- */

static void conf_free(dtls_conf *c) {
  mbedtls_ssl_config_free(&c->ssl);
#if defined(MBEDTLS_SSL_COOKIE_C)
  mbedtls_ssl_cookie_free(&c->cookie);
#endif
#if defined(MBEDTLS_SSL_TICKET_C)
  mbedtls_ssl_ticket_free(&c->ticket);
#endif
#if defined(MBEDTLS_SSL_CACHE_C)
  mbedtls_ssl_cache_free(&c->cache);
#endif
  mbedtls_x509_crt_free(&c->ca);
  mbedtls_x509_crt_free(&c->cert);
  mbedtls_pk_free(&c->key);
#if !DTLS_PSA_RNG
  mbedtls_ctr_drbg_free(&c->drbg);
  mbedtls_entropy_free(&c->entropy);
#endif
  free(c);
}

dtls_conf *dtls_conf_new(const dtls_conf_options *opt, int *err, char *msg, size_t msg_size) {
  dtls_conf *c;
  int ret, n = 0;
  char tmp[128];
#if !DTLS_PSA_RNG
  static const char pers[] = "tb-dtls-core";
  unsigned char pbuf[64];
  size_t plen;
#endif

  *err = DTLS_OK;
  if (msg && msg_size) msg[0] = 0;
#if DTLS_PSA_INIT
  /* 4.0: every key, hash and random byte goes through PSA. 3.6: TLS 1.3 and MBEDTLS_USE_PSA_CRYPTO
   * builds need it too. Idempotent. */
  if (psa_crypto_init() != PSA_SUCCESS) {
    *err = DTLS_E_INTERNAL;
    set_msg(msg, msg_size, "PSA crypto initialisation failed (no entropy source?)", 0, 0);
    return NULL;
  }
#endif
  c = (dtls_conf *)calloc(1, sizeof(*c));
  if (!c) { *err = DTLS_E_NO_MEMORY; set_msg(msg, msg_size, "out of memory", 0, 0); return NULL; }
  c->refs = 1;
  c->role = opt->role == DTLS_ROLE_SERVER ? DTLS_ROLE_SERVER : DTLS_ROLE_CLIENT;
  c->stream = opt->transport == DTLS_TRANSPORT_STREAM;
  if (opt->transport != DTLS_TRANSPORT_DATAGRAM && opt->transport != DTLS_TRANSPORT_STREAM) {
    free(c);
    *err = DTLS_E_CONFIG; set_msg(msg, msg_size, "transport must be datagram or stream", 0, 0); return NULL;
  }
  if (c->stream && c->role != DTLS_ROLE_CLIENT) {
    free(c);
    *err = DTLS_E_CONFIG; set_msg(msg, msg_size, "TLS stream mode is client-only", 0, 0); return NULL;
  }
  mbedtls_ssl_config_init(&c->ssl);
#if !DTLS_PSA_RNG
  mbedtls_entropy_init(&c->entropy);
  mbedtls_ctr_drbg_init(&c->drbg);
#endif
  mbedtls_x509_crt_init(&c->ca);
  mbedtls_x509_crt_init(&c->cert);
  mbedtls_pk_init(&c->key);
#if defined(MBEDTLS_SSL_COOKIE_C)
  mbedtls_ssl_cookie_init(&c->cookie);
#endif
#if defined(MBEDTLS_SSL_TICKET_C)
  mbedtls_ssl_ticket_init(&c->ticket);
#endif
#if defined(MBEDTLS_SSL_CACHE_C)
  mbedtls_ssl_cache_init(&c->cache);
#endif

#if !DTLS_PSA_RNG
  plen = sizeof(pers) - 1;
  memcpy(pbuf, pers, plen);
  if (opt->seed && opt->seed_len) {
    size_t k = opt->seed_len > sizeof(pbuf) - plen ? sizeof(pbuf) - plen : opt->seed_len;
    memcpy(pbuf + plen, opt->seed, k);
    plen += k;
  }
  ret = mbedtls_ctr_drbg_seed(&c->drbg, mbedtls_entropy_func, &c->entropy, pbuf, plen);
  if (ret != 0) { *err = DTLS_E_INTERNAL; set_msg(msg, msg_size, "random generator seed failed", 0, 0); goto fail; }
#endif
  /* 4.0: opt->seed (extra DRBG personalization) has nothing to personalize: PSA owns the generator. */

  ret = mbedtls_ssl_config_defaults(&c->ssl,
                                    c->role == DTLS_ROLE_SERVER ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
                                    c->stream ? MBEDTLS_SSL_TRANSPORT_STREAM : MBEDTLS_SSL_TRANSPORT_DATAGRAM,
                                    MBEDTLS_SSL_PRESET_DEFAULT);
  if (ret != 0) { *err = DTLS_E_INTERNAL; set_msg(msg, msg_size, "ssl config defaults failed", 0, 0); goto fail; }
#if !DTLS_PSA_RNG
  mbedtls_ssl_conf_rng(&c->ssl, mbedtls_ctr_drbg_random, &c->drbg);
#endif

  /* DTLS 1.2 only */
#if MBEDTLS_VERSION_NUMBER >= 0x03020000
  mbedtls_ssl_conf_min_tls_version(&c->ssl, MBEDTLS_SSL_VERSION_TLS1_2);
  mbedtls_ssl_conf_max_tls_version(&c->ssl, MBEDTLS_SSL_VERSION_TLS1_2);
#else
  mbedtls_ssl_conf_min_version(&c->ssl, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_max_version(&c->ssl, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
#endif

  /* Certificates */
  if (opt->ca && opt->ca_len) {
    ret = parse_crt(&c->ca, opt->ca, opt->ca_len);
    if (ret != 0) {
      mbed_strerror(ret, tmp, sizeof(tmp));
      *err = DTLS_E_BAD_CA_FILE;
      set_msg(msg, msg_size, "bad CA file: %s%s", tmp, 0);
      goto fail;
    }
    c->has_ca = 1;
    mbedtls_ssl_conf_ca_chain(&c->ssl, &c->ca, NULL);
  }
  if ((opt->cert && opt->cert_len) || (opt->key && opt->key_len)) {
    if (!(opt->cert && opt->cert_len)) {
      *err = DTLS_E_BAD_CERT_FILE; set_msg(msg, msg_size, "bad certificate file: a key was given without a certificate", 0, 0); goto fail;
    }
    if (!(opt->key && opt->key_len)) {
      *err = DTLS_E_BAD_KEY_FILE; set_msg(msg, msg_size, "bad key file: a certificate was given without its private key", 0, 0); goto fail;
    }
    ret = parse_crt(&c->cert, opt->cert, opt->cert_len);
    if (ret != 0) {
      mbed_strerror(ret, tmp, sizeof(tmp));
      *err = DTLS_E_BAD_CERT_FILE;
      set_msg(msg, msg_size, "bad certificate file: %s%s", tmp, 0);
      goto fail;
    }
    ret = parse_key(c, opt->key, opt->key_len);
    if (ret != 0) {
      mbed_strerror(ret, tmp, sizeof(tmp));
      *err = DTLS_E_BAD_KEY_FILE;
      set_msg(msg, msg_size, "bad key file: %s%s", tmp, 0);
      goto fail;
    }
    ret = mbedtls_ssl_conf_own_cert(&c->ssl, &c->cert, &c->key);
    if (ret != 0) {
      *err = DTLS_E_BAD_KEY_FILE;
      set_msg(msg, msg_size, "bad key file: key does not match the certificate", 0, 0);
      goto fail;
    }
#if DTLS_PSA_RNG
    ret = mbedtls_pk_check_pair(&c->cert.pk, &c->key);
#elif MBEDTLS_VERSION_NUMBER >= 0x03000000
    ret = mbedtls_pk_check_pair(&c->cert.pk, &c->key, mbedtls_ctr_drbg_random, &c->drbg);
#else
    ret = mbedtls_pk_check_pair(&c->cert.pk, &c->key);
#endif
    if (ret != 0) {
      *err = DTLS_E_BAD_KEY_FILE;
      set_msg(msg, msg_size, "bad key file: the private key does not match the certificate", 0, 0);
      goto fail;
    }
    c->has_cert = 1;
  }

  /* PSK */
  if (opt->psk && opt->psk_len) {
#if defined(MBEDTLS_KEY_EXCHANGE_PSK_ENABLED)
    const unsigned char *id = opt->psk_identity;
    size_t id_len = opt->psk_identity_len;
    if (!id || !id_len) { id = (const unsigned char *)"Client_identity"; id_len = 15; }
    ret = mbedtls_ssl_conf_psk(&c->ssl, opt->psk, opt->psk_len, id, id_len);
    if (ret != 0) { *err = DTLS_E_CONFIG; set_msg(msg, msg_size, "PSK rejected by mbedTLS (too long?)", 0, 0); goto fail; }
    c->has_psk = 1;
#else
    *err = DTLS_E_CONFIG; set_msg(msg, msg_size, "PSK key exchange not compiled into mbedTLS", 0, 0); goto fail;
#endif
  }

  /* Cipher suites: certificate suites when certificates are configured, PSK-CCM-8 when a PSK is. */
  if (c->has_ca || c->has_cert || !c->has_psk) {
    c->ciphersuites[n++] = MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8;
    c->ciphersuites[n++] = MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CCM;
    c->ciphersuites[n++] = MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256;
    c->ciphersuites[n++] = MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256;
  }
  if (c->has_psk) c->ciphersuites[n++] = MBEDTLS_TLS_PSK_WITH_AES_128_CCM_8;
  c->ciphersuites[n] = 0;
  mbedtls_ssl_conf_ciphersuites(&c->ssl, c->ciphersuites);

  /* Authentication mode */
  c->auth_mode = opt->auth_mode;
  if (c->role == DTLS_ROLE_CLIENT) {
    if (c->auth_mode == DTLS_AUTH_DEFAULT) c->auth_mode = c->has_ca ? DTLS_AUTH_REQUIRED : DTLS_AUTH_NONE;
    if (c->auth_mode != DTLS_AUTH_REQUIRED && !c->has_psk) {
      *err = DTLS_E_CONFIG;
      set_msg(msg, msg_size, "a client must verify the server: give a CA certificate (or use a PSK)", 0, 0);
      goto fail;
    }
    if (c->auth_mode == DTLS_AUTH_REQUIRED && !c->has_ca) {
      *err = DTLS_E_CONFIG; set_msg(msg, msg_size, "verifying the server needs a CA certificate", 0, 0); goto fail;
    }
    if (c->has_psk && !c->has_ca) c->auth_mode = DTLS_AUTH_NONE; /* PSK-only: nothing to verify */
#if defined(MBEDTLS_SSL_MAX_FRAGMENT_LENGTH)
    mbedtls_ssl_conf_max_frag_len(&c->ssl, MBEDTLS_SSL_MAX_FRAG_LEN_1024);
#endif
#if MBEDTLS_VERSION_NUMBER < 0x03000000
    /* Every ClientHello (sent twice per handshake with cookies, also when resuming) lists the curves
     * and signature hashes. 2.28's defaults list every compiled-in curve (13: 26 bytes) and 4 hashes x 2;
     * keep what servers use (Scandium's recommended set minus X448, plus P-521 certificates):
     * 36 bytes less per ClientHello. mbedTLS 3.x defaults are short already. */
    {
      static const mbedtls_ecp_group_id curves[] = {
#if defined(MBEDTLS_ECP_DP_SECP256R1_ENABLED)
        MBEDTLS_ECP_DP_SECP256R1,
#endif
#if defined(MBEDTLS_ECP_DP_CURVE25519_ENABLED)
        MBEDTLS_ECP_DP_CURVE25519,
#endif
#if defined(MBEDTLS_ECP_DP_SECP384R1_ENABLED)
        MBEDTLS_ECP_DP_SECP384R1,
#endif
#if defined(MBEDTLS_ECP_DP_SECP521R1_ENABLED)
        MBEDTLS_ECP_DP_SECP521R1,
#endif
        MBEDTLS_ECP_DP_NONE
      };
#if defined(MBEDTLS_KEY_EXCHANGE_WITH_CERT_ENABLED)
      static const int hashes[] = { MBEDTLS_MD_SHA256, MBEDTLS_MD_SHA384, MBEDTLS_MD_NONE };
      mbedtls_ssl_conf_sig_hashes(&c->ssl, hashes);
#endif
#if defined(MBEDTLS_ECP_C)
      mbedtls_ssl_conf_curves(&c->ssl, curves);
#endif
    }
#endif
#if defined(MBEDTLS_SSL_ENCRYPT_THEN_MAC)
    /* Only CBC suites use it and we offer none: 4 bytes less per ClientHello. */
    mbedtls_ssl_conf_encrypt_then_mac(&c->ssl, MBEDTLS_SSL_ETM_DISABLED);
#endif
#if defined(MBEDTLS_SSL_SESSION_TICKETS)
    /* Off by default: ThingsBoard (Scandium) issues no tickets and resumes by session ID; an empty
     * session_ticket extension in every ClientHello, and a ticket in the saved session, cost bytes. */
    mbedtls_ssl_conf_session_tickets(&c->ssl, opt->tickets == DTLS_OPT_ON ? MBEDTLS_SSL_SESSION_TICKETS_ENABLED
                                                                         : MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
#endif
  } else {
    if (c->auth_mode == DTLS_AUTH_DEFAULT) c->auth_mode = DTLS_AUTH_NONE;
    if (c->auth_mode != DTLS_AUTH_NONE && !c->has_ca) {
      *err = DTLS_E_CONFIG; set_msg(msg, msg_size, "client authentication needs a CA certificate", 0, 0); goto fail;
    }
    if (!c->has_cert && !c->has_psk) {
      *err = DTLS_E_CONFIG; set_msg(msg, msg_size, "a server needs a certificate and key (or a PSK)", 0, 0); goto fail;
    }
#if defined(MBEDTLS_SSL_COOKIE_C) && defined(MBEDTLS_SSL_DTLS_HELLO_VERIFY) && defined(MBEDTLS_SSL_SRV_C)
    if (opt->cookies != DTLS_OPT_OFF) {
#if DTLS_PSA_RNG
      ret = mbedtls_ssl_cookie_setup(&c->cookie); /* a PSA HMAC key */
#else
      ret = mbedtls_ssl_cookie_setup(&c->cookie, mbedtls_ctr_drbg_random, &c->drbg);
#endif
      if (ret != 0) { *err = DTLS_E_INTERNAL; set_msg(msg, msg_size, "cookie setup failed", 0, 0); goto fail; }
      mbedtls_ssl_conf_dtls_cookies(&c->ssl, cookie_write_cb, cookie_check_cb, c);
      c->cookies_on = 1;
    } else {
      /* No HelloVerifyRequest: saves a round trip and ~200 bytes, but the server then answers spoofed
       * ClientHellos with a full flight (amplification). ThingsBoard keeps cookies on. */
      mbedtls_ssl_conf_dtls_cookies(&c->ssl, NULL, NULL, NULL);
    }
#endif
#if defined(MBEDTLS_SSL_TICKET_C) && defined(MBEDTLS_SSL_SESSION_TICKETS) && defined(MBEDTLS_SSL_SRV_C)
    if (opt->tickets != DTLS_OPT_OFF) {
      uint32_t lifetime = opt->session_timeout_s ? opt->session_timeout_s : DTLS_DEFAULT_SESSION_TIMEOUT_S;
#if DTLS_PSA_RNG
      /* AES-128-GCM as on 2.28/3.6 (no suite we offer is stronger); the key is a PSA key. */
      ret = mbedtls_ssl_ticket_setup(&c->ticket, PSA_ALG_GCM, PSA_KEY_TYPE_AES, 128, lifetime);
#else
      ret = mbedtls_ssl_ticket_setup(&c->ticket, mbedtls_ctr_drbg_random, &c->drbg, MBEDTLS_CIPHER_AES_128_GCM, lifetime);
#endif
      if (ret != 0) { *err = DTLS_E_INTERNAL; set_msg(msg, msg_size, "session ticket setup failed", 0, 0); goto fail; }
      mbedtls_ssl_conf_session_tickets_cb(&c->ssl, mbedtls_ssl_ticket_write, mbedtls_ssl_ticket_parse, &c->ticket);
    }
#endif
#if defined(MBEDTLS_SSL_CACHE_C) && defined(MBEDTLS_SSL_SRV_C)
    /* Session-ID resumption (what ThingsBoard's Scandium does): one cache in the shared conf, so a
     * session is found whatever address/port the client comes back from. */
    if (opt->session_cache_entries >= 0) {
      mbedtls_ssl_cache_set_max_entries(&c->cache, opt->session_cache_entries ? opt->session_cache_entries
                                                                              : DTLS_DEFAULT_SESSION_CACHE_ENTRIES);
#if defined(MBEDTLS_HAVE_TIME)
      mbedtls_ssl_cache_set_timeout(&c->cache, (int)(opt->session_timeout_s ? opt->session_timeout_s
                                                                            : DTLS_DEFAULT_SESSION_TIMEOUT_S));
#endif
      mbedtls_ssl_conf_session_cache(&c->ssl, &c->cache, mbedtls_ssl_cache_get, mbedtls_ssl_cache_set);
    }
#endif
  }
  mbedtls_ssl_conf_authmode(&c->ssl, c->auth_mode == DTLS_AUTH_REQUIRED ? MBEDTLS_SSL_VERIFY_REQUIRED
                                      : c->auth_mode == DTLS_AUTH_OPTIONAL ? MBEDTLS_SSL_VERIFY_OPTIONAL
                                                                           : MBEDTLS_SSL_VERIFY_NONE);
  mbedtls_ssl_conf_handshake_timeout(&c->ssl, opt->retransmit_min_ms ? opt->retransmit_min_ms : 2000,
                                     opt->retransmit_max_ms ? opt->retransmit_max_ms : 32000);
  if (c->stream) return c; /* the rest is DTLS only */
#if defined(MBEDTLS_SSL_DTLS_ANTI_REPLAY)
  mbedtls_ssl_conf_dtls_anti_replay(&c->ssl, MBEDTLS_SSL_ANTI_REPLAY_ENABLED);
#endif
#if defined(MBEDTLS_SSL_DTLS_CONNECTION_ID)
  mbedtls_ssl_conf_cid(&c->ssl, DTLS_CID_LEN, MBEDTLS_SSL_UNEXPECTED_CID_IGNORE);
#endif
  return c;
fail:
  conf_free(c);
  return NULL;
}

void dtls_conf_ref(dtls_conf *conf) { conf->refs++; }
void dtls_conf_unref(dtls_conf *conf) {
  if (conf && --conf->refs == 0) conf_free(conf);
}
int dtls_conf_role(const dtls_conf *conf) { return conf->role; }

/* ---------- BIO and timer callbacks ---------- */

static int bio_send(void *ctx, const unsigned char *buf, size_t len) {
  dtls_core *core = (dtls_core *)ctx;
  if (!core->send) return (int)len;
  if (core->send(core->send_user, buf, len) < 0) return MBEDTLS_ERR_SSL_WANT_WRITE;
  return (int)len;
}

static int bio_recv_timeout(void *ctx, unsigned char *buf, size_t len, uint32_t timeout) {
  dtls_core *core = (dtls_core *)ctx;
  (void)timeout; /* the caller owns time */
  if (core->conf->stream) {
    /* A byte stream: hand out what is left of the fed bytes, in the pieces mbedTLS asks for. */
    size_t left = core->inbox_full ? core->inbox_len - core->inbox_off : 0;
    if (left == 0) return MBEDTLS_ERR_SSL_WANT_READ;
    if (len > left) len = left;
    memcpy(buf, core->inbox + core->inbox_off, len);
    core->inbox_off += len;
    if (core->inbox_off == core->inbox_len) core->inbox_full = 0;
    return (int)len;
  }
  if (!core->inbox_full) return MBEDTLS_ERR_SSL_WANT_READ;
  if (len > core->inbox_len) len = core->inbox_len;
  memcpy(buf, core->inbox, len);
  core->inbox_full = 0;
  return (int)len;
}

static void timer_set(void *ctx, uint32_t int_ms, uint32_t fin_ms) {
  dtls_core *core = (dtls_core *)ctx;
  (void)int_ms;
  core->timer_fin_ms = fin_ms;
  core->timer_set = fin_ms != 0;
  core->timer_expired = 0;
  core->timer_gen++;
}

static int timer_get(void *ctx) {
  dtls_core *core = (dtls_core *)ctx;
  if (!core->timer_set) return -1;
  return core->timer_expired ? 2 : 0;
}

/* ---------- endpoint ---------- */

static int setup_transport_id(dtls_core *core) {
  if (core->conf->role != DTLS_ROLE_SERVER) return 0;
#if defined(MBEDTLS_SSL_DTLS_HELLO_VERIFY) && defined(MBEDTLS_SSL_SRV_C)
  if (!core->client_id) return mbedtls_ssl_set_client_transport_id(&core->ssl, (const unsigned char *)"-", 1);
  return mbedtls_ssl_set_client_transport_id(&core->ssl, core->client_id, core->client_id_len);
#else
  return 0;
#endif
}

dtls_core *dtls_core_new(dtls_conf *conf, const char *hostname, const unsigned char *client_id, size_t client_id_len,
                         const unsigned char *session, size_t session_len, unsigned mtu, dtls_send_fn send,
                         void *send_user, int *err, char *msg, size_t msg_size) {
  dtls_core *core;
  int ret;
  *err = DTLS_OK;
  if (msg && msg_size) msg[0] = 0;
  if (conf->role == DTLS_ROLE_CLIENT && conf->auth_mode != DTLS_AUTH_NONE && (!hostname || !hostname[0])) {
    *err = DTLS_E_CONFIG;
    set_msg(msg, msg_size, "hostname required: the client always checks the server certificate's name "
                           "(use a DNS name such as localhost)", 0, 0);
    return NULL;
  }
  core = (dtls_core *)calloc(1, sizeof(*core));
  if (!core) { *err = DTLS_E_NO_MEMORY; set_msg(msg, msg_size, "out of memory", 0, 0); return NULL; }
  core->conf = conf;
  dtls_conf_ref(conf);
  core->send = send;
  core->send_user = send_user;
  core->alert = -1;
  mbedtls_ssl_init(&core->ssl);
  ret = mbedtls_ssl_setup(&core->ssl, &conf->ssl);
  if (ret != 0) { *err = DTLS_E_NO_MEMORY; set_msg(msg, msg_size, "ssl setup failed (out of memory?)", 0, 0); goto fail; }
  mbedtls_ssl_set_bio(&core->ssl, core, bio_send, NULL, bio_recv_timeout);
  if (!conf->stream) {
    mbedtls_ssl_set_timer_cb(&core->ssl, core, timer_set, timer_get);
    core->mtu = (uint16_t)(mtu ? mtu : DTLS_DEFAULT_MTU);
    mbedtls_ssl_set_mtu(&core->ssl, core->mtu);
  }
  if (conf->role == DTLS_ROLE_CLIENT && hostname && hostname[0]) {
    ret = mbedtls_ssl_set_hostname(&core->ssl, hostname);
    if (ret != 0) { *err = DTLS_E_CONFIG; set_msg(msg, msg_size, "bad hostname", 0, 0); goto fail; }
  }
  if (conf->role == DTLS_ROLE_SERVER && client_id && client_id_len) {
    core->client_id = (unsigned char *)malloc(client_id_len);
    if (!core->client_id) { *err = DTLS_E_NO_MEMORY; set_msg(msg, msg_size, "out of memory", 0, 0); goto fail; }
    memcpy(core->client_id, client_id, client_id_len);
    core->client_id_len = client_id_len;
  }
  if (setup_transport_id(core) != 0) { *err = DTLS_E_INTERNAL; set_msg(msg, msg_size, "transport id", 0, 0); goto fail; }
  if (conf->role == DTLS_ROLE_CLIENT && session && session_len) {
    mbedtls_ssl_session s;
    mbedtls_ssl_session_init(&s);
    ret = mbedtls_ssl_session_load(&s, session, session_len);
    if (ret == 0) ret = mbedtls_ssl_set_session(&core->ssl, &s);
    mbedtls_ssl_session_free(&s);
    if (ret != 0) {
      *err = DTLS_E_BAD_SESSION;
      set_msg(msg, msg_size, "saved session could not be loaded (other mbedTLS version or corrupted)", 0, 0);
      goto fail;
    }
  }
#if defined(MBEDTLS_SSL_DTLS_CONNECTION_ID)
  if (!conf->stream) {
    unsigned char cid[DTLS_CID_LEN];
#if DTLS_PSA_RNG
    if (psa_generate_random(cid, sizeof(cid)) != PSA_SUCCESS) memset(cid, 0, sizeof(cid));
#else
    mbedtls_ctr_drbg_random(&conf->drbg, cid, sizeof(cid));
#endif
    mbedtls_ssl_set_cid(&core->ssl, MBEDTLS_SSL_CID_ENABLED, cid, sizeof(cid));
  }
#endif
  core->state = DTLS_STATE_HANDSHAKING;
  return core;
fail:
  mbedtls_ssl_free(&core->ssl);
  dtls_conf_unref(conf);
  free(core->client_id);
  free(core);
  return NULL;
}

void dtls_core_free(dtls_core *core) {
  if (!core) return;
  mbedtls_ssl_free(&core->ssl);
  dtls_conf_unref(core->conf);
  free(core->client_id);
  memset(core->inbox, 0, sizeof(core->inbox));
  free(core);
}

static int fail_with(dtls_core *core, int code, int mbed_ret, const char *fmt, const char *a, const char *b) {
  core->state = DTLS_STATE_FAILED;
  core->error = code;
  core->mbed_error = mbed_ret;
  set_msg(core->message, sizeof(core->message), fmt, a, b);
  core->timer_set = 0;
  core->timer_gen++;
  return DTLS_STEP_ERROR;
}

static int map_verify_failure(dtls_core *core, int ret) {
  uint32_t flags = mbedtls_ssl_get_verify_result(&core->ssl);
  int server = core->conf->role == DTLS_ROLE_SERVER;
  const char *who = server ? "client" : "server";
  if (flags == (uint32_t)-1) flags = 0;
  if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
    return fail_with(core, DTLS_E_UNKNOWN_CA, ret, "unknown CA: %s certificate not signed by the configured CA root", who, 0);
  if (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH)
    return fail_with(core, DTLS_E_HOSTNAME_MISMATCH, ret,
                     "hostname mismatch: the server certificate is not for \"%s\" (mbedTLS 2.28 does not match "
                     "IP-address SANs: use a DNS name such as localhost)",
                     core->ssl.DTLS_PRIV(hostname) ? core->ssl.DTLS_PRIV(hostname) : "", 0);
  if (flags & MBEDTLS_X509_BADCERT_EXPIRED)
    return fail_with(core, DTLS_E_CERT_EXPIRED, ret, "certificate expired: the %s certificate is past its notAfter date", who, 0);
  if (flags & MBEDTLS_X509_BADCERT_FUTURE)
    return fail_with(core, DTLS_E_CERT_NOT_YET_VALID, ret,
                     "certificate not yet valid: the %s certificate's notBefore is in the future (check the clock)", who, 0);
  {
    char info[160];
    int n = mbedtls_x509_crt_verify_info(info, sizeof(info), "", flags);
    if (n > 0 && info[n - 1] == '\n') info[n - 1] = 0;
    if (n <= 0) strcpy(info, "verification failed");
    return fail_with(core, DTLS_E_CERT_INVALID, ret, "%s certificate rejected: %s", who, info);
  }
}

static int map_error(dtls_core *core, int ret) {
  char tmp[120];
  switch (ret) {
    case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED:
      return map_verify_failure(core, ret);
    case MBEDTLS_ERR_SSL_TIMEOUT:
      if (core->saw_server_hello)
        return fail_with(core, DTLS_E_HANDSHAKE_TIMEOUT, ret,
                         "handshake timeout: the server answered but never accepted our last flight%s%s",
                         core->conf->has_psk ? " (wrong PSK? DTLS servers silently drop records they cannot decrypt)"
                                             : " (does it reject our client certificate or key?)", 0);
      return fail_with(core, DTLS_E_HANDSHAKE_TIMEOUT, ret,
                       "handshake timeout: no answer from the peer after all retransmissions", 0, 0);
    case MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY:
      fail_with(core, DTLS_E_CLOSE_NOTIFY, ret, "close_notify: the peer closed the session", 0, 0);
      core->state = DTLS_STATE_CLOSED;
      return DTLS_STEP_ERROR;
    case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE: {
      int a = -1;
      char num[16];
      if (core->ssl.DTLS_PRIV(in_msg) != NULL) a = core->ssl.DTLS_PRIV(in_msg)[1];
      core->alert = a;
      snprintf(num, sizeof(num), "%d", a);
      if (a == 0) {
        fail_with(core, DTLS_E_CLOSE_NOTIFY, ret, "close_notify: the peer closed the session", 0, 0);
        core->state = DTLS_STATE_CLOSED;
        return DTLS_STEP_ERROR;
      }
      set_msg(tmp, sizeof(tmp), "%s (%s)", alert_name(a), num);
      return fail_with(core, DTLS_E_FATAL_ALERT, ret, "fatal alert from peer: %s%s", tmp,
                       a == 48 || a == 42 || a == 46 ? " - the peer rejected our certificate"
                       : a == 40 && core->conf->role == DTLS_ROLE_CLIENT && !core->conf->has_cert
                           ? " - the server may require a client certificate"
                       : a == 115 ? " - the server does not know our PSK identity"
                       : a == 20 || a == 51 ? " - wrong PSK or corrupted data" : "");
    }
#ifdef MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE
    case MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE:
      /* mbedTLS 2.28 fails here without telling the client: send handshake_failure so it does not hang. */
      mbedtls_ssl_send_alert_message(&core->ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
                                     MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE);
      return fail_with(core, DTLS_E_NO_CLIENT_CERT, ret, "no client certificate: this server requires one", 0, 0);
#endif
    case MBEDTLS_ERR_SSL_ALLOC_FAILED:
      return fail_with(core, DTLS_E_NO_MEMORY, ret, "out of memory in the DTLS handshake", 0, 0);
    default:
      mbed_strerror(ret, tmp, sizeof(tmp));
      if (core->conf->role == DTLS_ROLE_SERVER && core->conf->auth_mode == DTLS_AUTH_REQUIRED &&
          mbedtls_ssl_get_verify_result(&core->ssl) != 0 && mbedtls_ssl_get_verify_result(&core->ssl) != (uint32_t)-1)
        return map_verify_failure(core, ret);
      return fail_with(core, DTLS_E_HANDSHAKE, ret, "handshake failed: %s%s", tmp, "");
  }
}

static int dtls_state_of(const mbedtls_ssl_context *ssl) { return ssl->DTLS_PRIV(state); }

static int run_handshake_steps(dtls_core *core) {
  int ret;
  for (;;) {
    if (dtls_state_of(&core->ssl) == MBEDTLS_SSL_HANDSHAKE_OVER) break;
    ret = mbedtls_ssl_handshake_step(&core->ssl);
    if (core->cookie_skipped && core->resume_no_cookie_allowed && ret == 0 && dtls_state_of(&core->ssl) != MBEDTLS_SSL_CLIENT_HELLO &&
        dtls_state_of(&core->ssl) != MBEDTLS_SSL_SERVER_HELLO) {
      /* The ServerHello is written (still queued in the flight, nothing sent yet). */
      core->resume_no_cookie_allowed = 0;
      if (dtls_state_of(&core->ssl) != MBEDTLS_SSL_SERVER_CHANGE_CIPHER_SPEC) {
        /* mbedTLS chose a FULL handshake after all (session gone or not acceptable): never answer an
         * unverified address with a full flight (Californium CVE-2022-2576). Forget this attempt and
         * process the same ClientHello again with the cookie check: the peer gets a HelloVerifyRequest. */
        core->cookie_skipped = 0;
        core->cookie_fallbacks++;
        mbedtls_ssl_session_reset(&core->ssl);
        setup_transport_id(core);
        core->saw_certificate_state = 0;
        core->inbox_full = core->inbox_len > 0;
        continue;
      }
    }
    if (dtls_state_of(&core->ssl) == MBEDTLS_SSL_SERVER_CERTIFICATE) core->saw_certificate_state = 1;
    if (core->conf->role == DTLS_ROLE_CLIENT && dtls_state_of(&core->ssl) > MBEDTLS_SSL_SERVER_HELLO &&
        dtls_state_of(&core->ssl) != MBEDTLS_SSL_HANDSHAKE_OVER)
      core->saw_server_hello = 1;
    if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) return DTLS_STEP_WANT;
    if (ret == MBEDTLS_ERR_SSL_HELLO_VERIFY_REQUIRED) {
      /* Server sent a HelloVerifyRequest: forget this attempt; the client comes back with the cookie. */
      mbedtls_ssl_session_reset(&core->ssl);
      setup_transport_id(core);
      core->saw_certificate_state = 0;
      return DTLS_STEP_WANT;
    }
    if (ret != 0) return map_error(core, ret);
  }
#if DTLS_RESET_HS_MTU
  /* A handshake that needed a second retransmission lowers mbedTLS's handshake MTU to 508 bytes
   * (RFC 6347 4.1.1.1). The endpoint that sent the last flight keeps the handshake structure to
   * resend that flight (the client after a resumption, the server after a full handshake) until the
   * peer's first record arrives, and mbedtls_ssl_get_max_out_record_payload() keeps using those 508
   * bytes: after a lossy resumption the client could not send a record over 479 bytes until the
   * server spoke, and failed writes that fit the session's record (995 bytes with CCM-8). The
   * handshake is over: only the kept last flight (CCS + Finished, 67 bytes) still goes out with it.
   * (mbedTLS 3.x/4.0 keep this structure private; there the limit stays lower until the peer's
   * first record, and dtls_core_max_payload() reports it.) */
  if (!core->conf->stream && core->ssl.handshake != NULL) core->ssl.handshake->mtu = 0;
#endif
  core->state = DTLS_STATE_CONNECTED;
  core->resumed = !core->saw_certificate_state;
  core->resume_no_cookie_allowed = 0;
  if (!core->connected_reported) {
    core->connected_reported = 1;
    return DTLS_STEP_CONNECTED;
  }
  return DTLS_STEP_DATA;
}

/* Runs handshake steps with conf->current set, so the shared cookie callback knows the endpoint. */
static int run_handshake(dtls_core *core) {
  dtls_core *prev = core->conf->current;
  int r;
  core->conf->current = core;
  r = run_handshake_steps(core);
  core->conf->current = prev;
  return r;
}

int dtls_core_step(dtls_core *core) {
  if (core->state == DTLS_STATE_FAILED || core->state == DTLS_STATE_CLOSED) return DTLS_STEP_ERROR;
  if (core->state == DTLS_STATE_HANDSHAKING) return run_handshake(core);
  return DTLS_STEP_DATA;
}

/*
 * Copies into the inbox what mbedTLS may see of a datagram, and counts what it leaves out:
 * - whole records only. A trailing fragment shorter than a record header, or than its length field
 *   says, makes mbedTLS 2.28-4.0 fail with MBEDTLS_ERR_SSL_INTERNAL_ERROR ("should never happen" in
 *   ssl_fetch_input) instead of discarding it, when the records before it were skipped (other epoch,
 *   replay): 15 bytes from anyone would end the session. mbedTLS drops the rest of a datagram after
 *   an invalid record anyway.
 * - once established, no epoch-0 record. mbedTLS discards those as "other epoch", except a
 *   ClientHello at a server: it parses it (a malformed one is a fatal error) and, with a valid cookie
 *   (a replay will do), resets the established session in place. A peer's new handshake belongs on a
 *   new endpoint (dtls_conf_check_client_hello), which takes over only when it completes.
 */
static size_t filter_datagram(dtls_core *core, const unsigned char *d, size_t len) {
  size_t off = 0, out = 0;
  int dropped = 0, established = core->state == DTLS_STATE_CONNECTED;
  while (len - off >= DTLS_RECORD_HEADER) {
    size_t hdr = DTLS_RECORD_HEADER, rec;
#if defined(MBEDTLS_SSL_DTLS_CONNECTION_ID)
    if (d[off] == MBEDTLS_SSL_MSG_CID) hdr += DTLS_CID_LEN; /* tls12_cid record: the CID sits before the length */
#endif
    if (len - off < hdr) break;
    rec = hdr + (((size_t)d[off + hdr - 2] << 8) | d[off + hdr - 1]);
    if (len - off < rec) break;
    if (established && d[off + 3] == 0 && d[off + 4] == 0) {
      dropped = 1;
    } else {
      if (out + rec > sizeof(core->inbox)) break; /* larger than any datagram we accept */
      memcpy(core->inbox + out, d + off, rec);
      out += rec;
    }
    off += rec;
  }
  if (off < len || dropped) core->discarded++;
  return out;
}

/* mbedTLS gave up on the datagram in its input buffer: forget it (and where it was in it). */
static void discard_input(dtls_core *core) {
  core->ssl.DTLS_PRIV(in_left) = 0;
  core->ssl.DTLS_PRIV(next_record_offset) = 0;
  core->inbox_full = 0;
  core->discarded++;
}

static int stream_feed(dtls_core *core, const unsigned char *data, size_t len) {
  size_t left = core->inbox_full ? core->inbox_len - core->inbox_off : 0;
  if (len == 0) return core->state == DTLS_STATE_HANDSHAKING ? DTLS_STEP_WANT : DTLS_STEP_DATA;
  /* Normally empty here: the handshake, or the caller's reads, take every byte fed before. */
  if (left) memmove(core->inbox, core->inbox + core->inbox_off, left);
  if (left + len > sizeof(core->inbox))
    return fail_with(core, DTLS_E_TOO_LONG, 0, "stream feed larger than %s bytes (or earlier bytes not read)", "2048", 0);
  memcpy(core->inbox + left, data, len);
  core->inbox_off = 0;
  core->inbox_len = left + len;
  core->inbox_full = 1;
  if (core->state == DTLS_STATE_HANDSHAKING) return run_handshake(core);
  return DTLS_STEP_DATA;
}

int dtls_core_is_stream(const dtls_core *core) { return core->conf->stream; }

int dtls_core_feed(dtls_core *core, const unsigned char *data, size_t len) {
  if (core->state == DTLS_STATE_FAILED || core->state == DTLS_STATE_CLOSED) return DTLS_STEP_ERROR;
  if (core->conf->stream) return stream_feed(core, data, len);
  len = filter_datagram(core, data, len);
  core->inbox_len = len;
  core->inbox_full = len > 0;
  if (core->state == DTLS_STATE_HANDSHAKING) {
    int r = len > 0 ? run_handshake(core) : DTLS_STEP_WANT;
    /* The cookie-less resumption is decided on the first datagram only (the caller's budget was for it). */
    if (!core->cookie_skipped) core->resume_no_cookie_allowed = 0;
    if (r == DTLS_STEP_CONNECTED && core->inbox_full) {
      /* not consumed: keep it for dtls_core_read */
    }
    return r;
  }
  return DTLS_STEP_DATA;
}

int dtls_core_read(dtls_core *core, unsigned char *buf, size_t size) {
  int ret;
  if (core->state == DTLS_STATE_FAILED || core->state == DTLS_STATE_CLOSED) return -core->error;
  if (core->state != DTLS_STATE_CONNECTED) return 0;
  for (;;) {
    ret = mbedtls_ssl_read(&core->ssl, buf, size);
    if (ret > 0) return ret;
    if (ret == 0) continue; /* empty record */
    if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) return 0;
#ifdef MBEDTLS_ERR_SSL_CLIENT_RECONNECT
    if (ret == MBEDTLS_ERR_SSL_CLIENT_RECONNECT) {
      /* Same peer address started a new handshake (device woke up or rebooted) with a valid cookie.
       * mbedTLS has already reset the context itself, keeping that ClientHello in its input buffer:
       * continue the handshake at once. (A second mbedtls_ssl_session_reset() here would throw the
       * ClientHello away and cost the client a retransmission timeout and a resent flight.) */
      core->state = DTLS_STATE_HANDSHAKING;
      core->connected_reported = 0;
      core->saw_certificate_state = 0;
      run_handshake(core);
      return 0;
    }
#endif
    if (ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || ret == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE || core->conf->stream) {
      /* TLS (stream): a record that does not authenticate or parse ends the connection. */
      /* An alert in the session's epoch: decrypted and authenticated, so the peer really sent it. */
      map_error(core, ret);
      return -core->error;
    }
    /* Anything else was caused by a datagram that did not authenticate or did not parse (RFC 6347
     * 4.1.2.7: invalid records are discarded silently): drop it and keep the session. */
    discard_input(core);
    return 0;
  }
}

int dtls_core_write(dtls_core *core, const unsigned char *data, size_t len) {
  int ret, max;
  if (core->state != DTLS_STATE_CONNECTED) return -DTLS_E_STATE;
  max = mbedtls_ssl_get_max_out_record_payload(&core->ssl);
  if (max > 0 && len > (size_t)max) return -DTLS_E_TOO_LONG;
  ret = mbedtls_ssl_write(&core->ssl, data, len);
  if (ret >= 0) return ret;
  map_error(core, ret);
  return -core->error;
}

void dtls_core_close(dtls_core *core) {
  if (core->state == DTLS_STATE_CONNECTED) mbedtls_ssl_close_notify(&core->ssl);
  if (core->state != DTLS_STATE_FAILED) core->state = DTLS_STATE_CLOSED;
  core->timer_set = 0;
  core->timer_gen++;
}

int32_t dtls_core_timer_ms(const dtls_core *core) {
  if (!core->timer_set || core->state != DTLS_STATE_HANDSHAKING) return -1;
  return (int32_t)core->timer_fin_ms;
}

uint32_t dtls_core_timer_generation(const dtls_core *core) { return core->timer_gen; }

int dtls_core_timer_expired(dtls_core *core) {
  if (core->state != DTLS_STATE_HANDSHAKING) return dtls_core_step(core);
  if (!core->timer_set) return DTLS_STEP_WANT;
  core->timer_expired = 1;
  return run_handshake(core);
}

int dtls_core_resend_flight(dtls_core *core) {
  int ret;
  if (core->state == DTLS_STATE_FAILED || core->state == DTLS_STATE_CLOSED) return DTLS_STEP_ERROR;
  if (core->state != DTLS_STATE_HANDSHAKING || core->conf->stream || !core->timer_set) return DTLS_STEP_WANT;
#if defined(MBEDTLS_SSL_PROTO_DTLS)
  /* timer_set: a flight of ours is out and waits for the peer's (mbedTLS arms the timer then). */
  ret = mbedtls_ssl_resend(&core->ssl);
  if (ret != 0 && ret != MBEDTLS_ERR_SSL_WANT_WRITE) return map_error(core, ret);
#else
  (void)ret;
#endif
  return DTLS_STEP_WANT;
}

int dtls_core_state(const dtls_core *core) { return core->state; }
int dtls_core_error(const dtls_core *core) { return core->error; }
const char *dtls_core_message(const dtls_core *core) { return core->message; }
int dtls_core_mbedtls_error(const dtls_core *core) { return core->mbed_error; }
int dtls_core_alert(const dtls_core *core) { return core->alert; }
void dtls_core_allow_resume_without_cookie(dtls_core *core, int allow) {
  core->resume_no_cookie_allowed = allow && core->conf->role == DTLS_ROLE_SERVER && core->conf->cookies_on &&
                                   core->state == DTLS_STATE_HANDSHAKING && !core->connected_reported;
}
int dtls_core_peer_unverified(const dtls_core *core) { return core->cookie_skipped; }
int dtls_core_cookie_fallbacks(const dtls_core *core) { return core->cookie_fallbacks; }
uint32_t dtls_core_discarded(const dtls_core *core) { return core->discarded; }
int dtls_core_resumed(const dtls_core *core) { return core->state == DTLS_STATE_CONNECTED && core->resumed; }

size_t dtls_core_save_session(dtls_core *core, unsigned char *buf, size_t size) {
  mbedtls_ssl_session s;
  size_t olen = 0;
  int ret;
  if (core->state != DTLS_STATE_CONNECTED) return 0;
  mbedtls_ssl_session_init(&s);
  ret = mbedtls_ssl_get_session(&core->ssl, &s);
#if defined(MBEDTLS_SSL_KEEP_PEER_CERTIFICATE)
  /* Leave the peer certificate out (~450 B for a P-256 server cert): resumption never looks at it. */
  if (ret == 0 && s.DTLS_PRIV(peer_cert) != NULL) {
    mbedtls_x509_crt_free(s.DTLS_PRIV(peer_cert));
    mbedtls_free(s.DTLS_PRIV(peer_cert));
    s.DTLS_PRIV(peer_cert) = NULL;
  }
#endif
  if (ret == 0) {
    ret = mbedtls_ssl_session_save(&s, buf, buf ? size : 0, &olen);
    if (ret != 0 && ret != MBEDTLS_ERR_SSL_BUFFER_TOO_SMALL) olen = 0;
  }
  mbedtls_ssl_session_free(&s);
  return olen;
}

/* ---------- whole-context save / restore (deep sleep without a handshake) ---------- */

int dtls_core_context_available(void) {
#if defined(MBEDTLS_SSL_CONTEXT_SERIALIZATION)
  return 1;
#else
  return 0;
#endif
}

size_t dtls_core_save_context(dtls_core *core, unsigned char *buf, size_t size) {
#if defined(MBEDTLS_SSL_CONTEXT_SERIALIZATION)
  size_t olen = 0;
  int ret;
  if (core->state != DTLS_STATE_CONNECTED || core->conf->stream || core->conf->role != DTLS_ROLE_CLIENT) return 0;
  /* Every precondition first (handshake structure gone, nothing pending, AEAD, DTLS 1.2): fails
   * without touching the connection. */
  ret = mbedtls_ssl_context_save(&core->ssl, NULL, 0, &olen);
  if (ret != MBEDTLS_ERR_SSL_BUFFER_TOO_SMALL || olen == 0) return 0;
#if defined(MBEDTLS_SSL_KEEP_PEER_CERTIFICATE) && defined(MBEDTLS_X509_CRT_PARSE_C)
  {
    /* Leave the peer certificate out, as dtls_core_save_session does (~450 B of flash per save):
     * nothing after the handshake looks at it, and the connection ends with the save anyway. Also
     * done by the size query, so that the size it returns is the size saved. */
    mbedtls_ssl_session *s = core->ssl.DTLS_PRIV(session);
    if (s != NULL && s->DTLS_PRIV(peer_cert) != NULL) {
      mbedtls_x509_crt_free(s->DTLS_PRIV(peer_cert));
      mbedtls_free(s->DTLS_PRIV(peer_cert));
      s->DTLS_PRIV(peer_cert) = NULL;
    }
    ret = mbedtls_ssl_context_save(&core->ssl, NULL, 0, &olen);
    if (ret != MBEDTLS_ERR_SSL_BUFFER_TOO_SMALL || olen == 0) return 0;
  }
#endif
  if (!buf || size < olen) return olen;
  ret = mbedtls_ssl_context_save(&core->ssl, buf, size, &olen);
  if (ret != 0) return 0;
  /* mbedTLS has reset the context: this endpoint no longer holds the connection (no close_notify:
   * the server keeps it for the restored copy). */
  core->state = DTLS_STATE_CLOSED;
  core->timer_set = 0;
  core->timer_gen++;
  return olen;
#else
  (void)core; (void)buf; (void)size;
  return 0;
#endif
}

int dtls_core_load_context(dtls_core *core, const unsigned char *data, size_t len) {
#if defined(MBEDTLS_SSL_CONTEXT_SERIALIZATION)
  int ret;
  uint16_t mtu;
  if (core->conf->stream || core->conf->role != DTLS_ROLE_CLIENT)
    return fail_with(core, DTLS_E_CONFIG, 0, "a saved context can only be restored by a DTLS client%s%s", 0, 0);
  if (core->state != DTLS_STATE_HANDSHAKING || core->connected_reported || dtls_state_of(&core->ssl) != MBEDTLS_SSL_HELLO_REQUEST)
    return fail_with(core, DTLS_E_STATE, 0, "a saved context must be loaded before the first step%s%s", 0, 0);
  mtu = core->mtu;
  ret = mbedtls_ssl_context_load(&core->ssl, data, len);
  if (ret != 0) {
    /* mbedTLS freed the context on failure: the endpoint is unusable (the caller starts another). */
    return fail_with(core, DTLS_E_BAD_SESSION, ret,
                     "saved DTLS context could not be loaded (other mbedTLS version or build, or corrupted)%s%s", 0, 0);
  }
  /* Connection-specific settings are not part of the saved data: BIO and timer again (mbedTLS
   * says so), and our MTU (the load would keep the one active when the context was saved). */
  mbedtls_ssl_set_bio(&core->ssl, core, bio_send, NULL, bio_recv_timeout);
  mbedtls_ssl_set_timer_cb(&core->ssl, core, timer_set, timer_get);
  mbedtls_ssl_set_mtu(&core->ssl, mtu);
  core->state = DTLS_STATE_CONNECTED;
  core->restored = 1;
  core->resumed = 0;
  core->connected_reported = 1;
  core->timer_set = 0;
  core->timer_gen++;
  return DTLS_STEP_DATA;
#else
  (void)data; (void)len;
  return fail_with(core, DTLS_E_CONFIG, 0, "this mbedTLS build has no MBEDTLS_SSL_CONTEXT_SERIALIZATION%s%s", 0, 0);
#endif
}

int dtls_core_restored(const dtls_core *core) { return core->restored; }

const unsigned char *dtls_core_peer_cert(const dtls_core *core, size_t *len) {
  const mbedtls_x509_crt *crt;
  *len = 0;
#if defined(MBEDTLS_SSL_KEEP_PEER_CERTIFICATE)
  if (core->state != DTLS_STATE_CONNECTED) return NULL;
  crt = mbedtls_ssl_get_peer_cert(&core->ssl);
  if (!crt || !crt->raw.p) return NULL;
  *len = crt->raw.len;
  return crt->raw.p;
#else
  (void)crt;
  (void)core;
  return NULL;
#endif
}

const char *dtls_core_ciphersuite(const dtls_core *core) {
  if (core->state != DTLS_STATE_CONNECTED) return "";
  return mbedtls_ssl_get_ciphersuite(&core->ssl);
}

int dtls_core_max_payload(const dtls_core *core) {
  int n = mbedtls_ssl_get_max_out_record_payload(&core->ssl);
  return n;
}

int dtls_core_cid_available(void) {
#if defined(MBEDTLS_SSL_DTLS_CONNECTION_ID)
  return 1;
#else
  return 0;
#endif
}

int dtls_core_cid_in_use(const dtls_core *core) {
#if defined(MBEDTLS_SSL_DTLS_CONNECTION_ID)
  int enabled = 0;
  unsigned char peer[MBEDTLS_SSL_CID_OUT_LEN_MAX];
  size_t peer_len = 0;
  if (core->state != DTLS_STATE_CONNECTED) return 0;
  if (mbedtls_ssl_get_peer_cid((mbedtls_ssl_context *)&core->ssl, &enabled, peer, &peer_len) != 0) return 0;
  return enabled == MBEDTLS_SSL_CID_ENABLED;
#else
  (void)core;
  return 0;
#endif
}

const char *dtls_core_mbedtls_version(void) { return MBEDTLS_VERSION_STRING; }
