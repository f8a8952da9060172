/*
 * dtls_core: one DTLS 1.2 endpoint over mbedTLS, with no sockets and no clocks inside.
 *
 * - Datagrams go in with dtls_core_feed() (a one-datagram inbox read by mbedTLS's recv BIO) and
 *   come out through the send callback set in dtls_core_new().
 * - Timers are driven by the caller: after every call, dtls_core_timer_ms() tells how long until the
 *   current retransmission timer expires (-1 = no timer). When it is due, call dtls_core_timer_expired().
 * - Client and server roles. A server shares one dtls_conf (certificates, cookie key, session-ticket
 *   key) between all its per-peer endpoints, so a session resumed from a new address still works.
 *
 * - Invalid input never ends a session (RFC 6347 4.1.2.7): a datagram's trailing bytes that do not
 *   form a whole record are cut off before mbedTLS sees them, an established endpoint drops every
 *   epoch-0 record (a ClientHello included: see dtls_conf_check_client_hello for how a server starts
 *   a peer's new handshake beside the running session), and a datagram mbedTLS gives up on in an
 *   established session is discarded. Only an authenticated alert (fatal or close_notify) ends it.
 *
 * Compiles against Mbed TLS 2.28 (Debian), 3.6 (ESP-IDF 5.x, nRF Connect SDK) and 4.0 (ESP-IDF 6.0).
 * Used by napi_binding.cc (Node) and xs_binding.c (Moddable XS).
 */
#ifndef DTLS_CORE_H
#define DTLS_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dtls_conf dtls_conf;
typedef struct dtls_core dtls_core;

/* Stable error codes (names from dtls_core_error_name()). */
enum {
  DTLS_OK = 0,
  DTLS_E_CONFIG = 1,              /* invalid configuration (e.g. verifying without a hostname) */
  DTLS_E_BAD_CA_FILE = 2,
  DTLS_E_BAD_CERT_FILE = 3,
  DTLS_E_BAD_KEY_FILE = 4,
  DTLS_E_UNKNOWN_CA = 5,
  DTLS_E_HOSTNAME_MISMATCH = 6,
  DTLS_E_CERT_EXPIRED = 7,
  DTLS_E_CERT_NOT_YET_VALID = 8,
  DTLS_E_CERT_INVALID = 9,        /* other verification failures (key usage, bad signature ...) */
  DTLS_E_HANDSHAKE_TIMEOUT = 10,
  DTLS_E_FATAL_ALERT = 11,        /* fatal alert received from the peer */
  DTLS_E_CLOSE_NOTIFY = 12,       /* peer closed the session */
  DTLS_E_NO_CLIENT_CERT = 13,     /* server: client sent no certificate but one is required */
  DTLS_E_HANDSHAKE = 14,          /* other handshake failure */
  DTLS_E_BAD_SESSION = 15,        /* saved session could not be loaded */
  DTLS_E_STATE = 16,              /* call not valid in this state (write before handshake ...) */
  DTLS_E_TOO_LONG = 17,           /* write larger than one record */
  DTLS_E_NO_MEMORY = 18,
  DTLS_E_INTERNAL = 19
};

enum { DTLS_ROLE_CLIENT = 0, DTLS_ROLE_SERVER = 1 };
enum { DTLS_AUTH_DEFAULT = -1, DTLS_AUTH_NONE = 0, DTLS_AUTH_OPTIONAL = 1, DTLS_AUTH_REQUIRED = 2 };

enum {
  DTLS_STATE_HANDSHAKING = 0,
  DTLS_STATE_CONNECTED = 1,
  DTLS_STATE_CLOSED = 2,
  DTLS_STATE_FAILED = 3
};

/* Results of dtls_core_step / dtls_core_feed */
enum {
  DTLS_STEP_WANT = 0,       /* waiting for a datagram or the timer */
  DTLS_STEP_CONNECTED = 1,  /* handshake complete (reported once) */
  DTLS_STEP_DATA = 2,       /* connected; plaintext may be waiting: call dtls_core_read */
  DTLS_STEP_ERROR = -1      /* see dtls_core_error / dtls_core_message */
};

typedef struct {
  int role;                          /* DTLS_ROLE_* */
  const unsigned char *ca; size_t ca_len;        /* PEM (with or without NUL) or DER; chain allowed */
  const unsigned char *cert; size_t cert_len;    /* own certificate (chain), PEM or DER */
  const unsigned char *key; size_t key_len;      /* own private key, PEM or DER, EC or RSA */
  const unsigned char *psk; size_t psk_len;
  const unsigned char *psk_identity; size_t psk_identity_len;
  int auth_mode;                     /* DTLS_AUTH_*; server default NONE (REQUIRED if ca given), client REQUIRED */
  uint32_t retransmit_min_ms;        /* initial handshake retransmission timeout (0 = 2000) */
  uint32_t retransmit_max_ms;        /* timeouts double up to this; one more wait at it, then fail (0 = 32000) */
  const unsigned char *seed; size_t seed_len;    /* extra DRBG personalization (unused on Mbed TLS 4.0: PSA RNG) */
  /*
   * Session resumption. tickets: DTLS_OPT_DEFAULT (client: OFF, the client resumes by session ID as
   * ThingsBoard/Scandium needs; server: ON), DTLS_OPT_ON or DTLS_OPT_OFF.
   * Server: session_cache_entries (0 = 256, <0 = no session-ID cache), session_timeout_s (0 = 86400)
   * for both the cache and the ticket lifetime; cookies (HelloVerifyRequest): DEFAULT = ON.
   */
  int tickets;
  int cookies;
  int session_cache_entries;
  uint32_t session_timeout_s;
  /*
   * DTLS_TRANSPORT_DATAGRAM (0, the default: DTLS 1.2 over UDP, everything above) or
   * DTLS_TRANSPORT_STREAM: TLS 1.2 over a byte stream (TCP), for MQTTS. Same certificates, hostname
   * rule, error codes, session save/resume and fail-closed behaviour; no cookies, no retransmission
   * timer (TCP retransmits; the caller bounds the handshake time), no record filtering (a TLS record
   * that does not authenticate ends the connection, as TLS requires). Stream mode feeds bytes in
   * pieces of at most DTLS_STREAM_FEED_MAX and must read until dtls_core_read returns 0 after each.
   * Stream mode is client-role only here (the endpoint's MQTTS server is node:tls).
   */
  int transport;
} dtls_conf_options;

enum { DTLS_TRANSPORT_DATAGRAM = 0, DTLS_TRANSPORT_STREAM = 1 };
#define DTLS_STREAM_FEED_MAX 2048

enum { DTLS_OPT_DEFAULT = 0, DTLS_OPT_ON = 1, DTLS_OPT_OFF = 2 };
#define DTLS_DEFAULT_SESSION_CACHE_ENTRIES 256
#define DTLS_DEFAULT_SESSION_TIMEOUT_S 86400

typedef int (*dtls_send_fn)(void *user, const unsigned char *data, size_t len);

/* Configuration (shared by endpoints). On failure returns NULL and fills *err and msg. */
dtls_conf *dtls_conf_new(const dtls_conf_options *opt, int *err, char *msg, size_t msg_size);
void dtls_conf_ref(dtls_conf *conf);
void dtls_conf_unref(dtls_conf *conf);
int dtls_conf_role(const dtls_conf *conf);

/*
 * A new endpoint. hostname: required for a client that verifies certificates (ALWAYS checked).
 * client_id / client_id_len: server role, the peer's transport address (for cookies).
 * session / session_len: client role, a saved session to resume (dtls_core_save_session).
 * mtu: 0 = 1024.
 */
dtls_core *dtls_core_new(dtls_conf *conf, const char *hostname,
                         const unsigned char *client_id, size_t client_id_len,
                         const unsigned char *session, size_t session_len, unsigned mtu,
                         dtls_send_fn send, void *send_user, int *err, char *msg, size_t msg_size);
void dtls_core_free(dtls_core *core);

/* Starts or continues the handshake (client: sends ClientHello the first time). */
int dtls_core_step(dtls_core *core);
/* Hands in one received datagram and processes it (handshake or records).
 * Stream mode: the next len (<= DTLS_STREAM_FEED_MAX) bytes of the stream; larger is DTLS_E_TOO_LONG. */
int dtls_core_feed(dtls_core *core, const unsigned char *data, size_t len);
/* 1 if this endpoint runs TLS over a stream (DTLS_TRANSPORT_STREAM). */
int dtls_core_is_stream(const dtls_core *core);
/* Next decrypted datagram: returns its length (>0), 0 when none, <0 on error. */
int dtls_core_read(dtls_core *core, unsigned char *buf, size_t size);
/* Encrypts and sends one record. Returns len or <0 (DTLS error code negated). */
int dtls_core_write(dtls_core *core, const unsigned char *data, size_t len);
/* Sends close_notify. */
void dtls_core_close(dtls_core *core);

/* Milliseconds until the retransmission timer is due, measured from the last call that set it; -1 = none. */
int32_t dtls_core_timer_ms(const dtls_core *core);
/* Increments whenever the timer is set or cancelled (lets the caller see a re-armed timer). */
uint32_t dtls_core_timer_generation(const dtls_core *core);
/* The caller's timer fired: retransmits (or fails with HANDSHAKE_TIMEOUT). Returns like dtls_core_step. */
int dtls_core_timer_expired(dtls_core *core);
/* While handshaking: sends the flight this endpoint sent last again, at once (the retransmission
 * timer restarts, its timeout is not doubled). For a server whose peer sends application data before
 * the handshake has completed here: the peer finished and its last flight was lost. Returns
 * DTLS_STEP_WANT (0), or DTLS_STEP_ERROR if the endpoint has failed. */
int dtls_core_resend_flight(dtls_core *core);

int dtls_core_state(const dtls_core *core);
int dtls_core_error(const dtls_core *core);
const char *dtls_core_message(const dtls_core *core);
const char *dtls_core_error_name(int code);
/* mbedTLS error code of the last failure (0 if none), alert number received (-1 if none). */
int dtls_core_mbedtls_error(const dtls_core *core);
int dtls_core_alert(const dtls_core *core);

/*
 * Server: resumption without HelloVerifyRequest, like Californium/Scandium (ThingsBoard) below its
 * DTLS_VERIFY_PEERS_ON_RESUMPTION_THRESHOLD. Call on a new endpoint before feeding its first datagram.
 * If that ClientHello carries no valid cookie but a session ID found in the shared session cache, the
 * server answers with the abbreviated handshake at once; anything else (unknown ID, no ID, or mbedTLS
 * deciding on a full handshake after all) gets the HelloVerifyRequest as usual. No effect when cookies
 * are off. The caller bounds how many such unverified handshakes run at once (dtls_core_peer_unverified).
 */
void dtls_core_allow_resume_without_cookie(dtls_core *core, int allow);
/* 1 if this endpoint's handshake skipped the cookie exchange (its address was never verified). */
int dtls_core_peer_unverified(const dtls_core *core);
/* How often a cookie-less resumption turned into a full handshake and was restarted with a HelloVerifyRequest. */
int dtls_core_cookie_fallbacks(const dtls_core *core);

/*
 * Server, before any per-peer state exists: a stateless look at a datagram from `client_id` (the
 * peer's transport address). HelloVerifyRequest exists so that a server can answer a ClientHello
 * without allocating anything until the peer has proved it receives at its address; this checks the
 * cookie with the shared cookie key and writes the HelloVerifyRequest itself, so an endpoint (~40 KB
 * with mbedTLS) is only created for a verified ClientHello. Returns one of DTLS_HELLO_*:
 *   DROP    not a well-formed, unfragmented epoch-0 ClientHello: discard the datagram
 *   VERIFY  no valid cookie: reply[0..*reply_len) is the HelloVerifyRequest to send; keep nothing
 *   ACCEPT  valid cookie (or cookies off): create an endpoint with dtls_core_new(.., client_id ..)
 *           and feed it this datagram
 *   RESUME  no valid cookie, but allow_resume was set and its session ID is in the session cache:
 *           create an endpoint, call dtls_core_allow_resume_without_cookie(core, 1), feed it
 * Also for a peer whose session is established: its new ClientHello goes to a NEW endpoint (the old
 * one ignores epoch-0 records) and the caller replaces the old session when the new handshake
 * completes; a replayed or forged ClientHello then never disturbs the running session.
 * reply_size: 128 bytes are enough.
 */
enum { DTLS_HELLO_DROP = 0, DTLS_HELLO_VERIFY = 1, DTLS_HELLO_ACCEPT = 2, DTLS_HELLO_RESUME = 3 };
int dtls_conf_check_client_hello(dtls_conf *conf, const unsigned char *data, size_t len,
                                 const unsigned char *client_id, size_t client_id_len, int allow_resume,
                                 unsigned char *reply, size_t reply_size, size_t *reply_len);

/* Datagrams (or their trailing parts, or records) this endpoint discarded as invalid or unexpected
 * without ending the session (see above). */
uint32_t dtls_core_discarded(const dtls_core *core);

/* 1 if the completed handshake was abbreviated (session resumed). */
int dtls_core_resumed(const dtls_core *core);
/*
 * Serialized session for resumption. Returns the size needed; copies if size is large enough.
 * The peer certificate is left out (mbedTLS builds with MBEDTLS_SSL_KEEP_PEER_CERTIFICATE would store
 * it): a resumed session never re-checks it, and it would triple the bytes kept in flash.
 */
size_t dtls_core_save_session(dtls_core *core, unsigned char *buf, size_t size);
/*
 * Whole-connection save/restore (MBEDTLS_SSL_CONTEXT_SERIALIZATION: on in Debian's 2.28 and in the
 * default 3.6 and 4.0 configurations), for deep sleep: the restored client sends application data at
 * once, with no handshake, and the server (which still holds the connection for this address) reads
 * it as the next records of the same session.
 *
 * dtls_core_save_context: client, DTLS, connected, handshake structure freed (after a resumption:
 * once the server's first record has arrived), nothing pending. Returns the size needed (0 if the
 * connection cannot be saved now); copies if size is large enough, and then the endpoint is CLOSED:
 * mbedTLS resets the context, so the saved bytes are the only copy of the connection (no
 * close_notify is sent). The peer certificate is left out, as in dtls_core_save_session: already
 * by the size query (buf NULL), after which dtls_core_peer_cert() returns NULL.
 * The same bytes must never be loaded twice (record sequence numbers, i.e. AEAD nonces, would repeat):
 * the caller invalidates its copy when it loads it.
 *
 * dtls_core_load_context: on a client endpoint fresh from dtls_core_new (no session, before the first
 * step), with a conf like the one of the saved connection. Returns DTLS_STEP_DATA: the endpoint is
 * CONNECTED (no DTLS_STEP_CONNECTED is reported), dtls_core_restored() is 1. On failure (another
 * mbedTLS version or build, corrupted bytes) DTLS_STEP_ERROR with DTLS_E_BAD_SESSION, and the endpoint
 * is FAILED for good (mbedTLS frees the context): free it and start a new one.
 */
int dtls_core_context_available(void);
size_t dtls_core_save_context(dtls_core *core, unsigned char *buf, size_t size);
int dtls_core_load_context(dtls_core *core, const unsigned char *data, size_t len);
int dtls_core_restored(const dtls_core *core);
/* Peer leaf certificate (DER), NULL if none. */
const unsigned char *dtls_core_peer_cert(const dtls_core *core, size_t *len);
const char *dtls_core_ciphersuite(const dtls_core *core);
/* Largest plaintext one write() carries. */
int dtls_core_max_payload(const dtls_core *core);

/* 1 if this mbedTLS build has DTLS Connection ID (MBEDTLS_SSL_DTLS_CONNECTION_ID). */
int dtls_core_cid_available(void);
/* 1 if CID was negotiated on this session. */
int dtls_core_cid_in_use(const dtls_core *core);
const char *dtls_core_mbedtls_version(void);

#ifdef __cplusplus
}
#endif
#endif
