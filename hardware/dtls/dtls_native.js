/*
 * dtls/native: DTLS 1.2 endpoint over mbedTLS for Moddable XS (xs_binding.c over dtls_core.c).
 * Satisfies src/dtls/engine.ts DtlsEngine; wrap it with DtlsDatagram (src/dtls/datagram.ts).
 */
class DtlsEndpoint @ "xs_dtls_destructor" {
  constructor(options) @ "xs_dtls";
  step() @ "xs_dtls_step";
  handshake() @ "xs_dtls_step";
  feed(datagram) @ "xs_dtls_feed";
  read() @ "xs_dtls_read";
  write(plaintext) @ "xs_dtls_write";
  timerMs() @ "xs_dtls_timer_ms";
  get timerGeneration() @ "xs_dtls_get_timer_generation";
  timerExpired() @ "xs_dtls_timer_expired";
  saveSession() @ "xs_dtls_save_session";
  saveContext() @ "xs_dtls_save_context";
  peerCertificate() @ "xs_dtls_peer_certificate";
  close() @ "xs_dtls_close";
  destroy() @ "xs_dtls_destroy";
  get state() @ "xs_dtls_get_state";
  get resumed() @ "xs_dtls_get_resumed";
  get restored() @ "xs_dtls_get_restored";
  get cidAvailable() @ "xs_dtls_get_cid_available";
  get cidInUse() @ "xs_dtls_get_cid_in_use";
  get maxPayload() @ "xs_dtls_get_max_payload";
  get ciphersuite() @ "xs_dtls_get_ciphersuite";
}

/**
 * Client defaults of the engine options the C side reads (documentation; naming `tickets` and
 * `restore` here also makes sure xsc generates the xsID_tickets and xsID_restore symbols xs_binding.c
 * uses, even if the app never names them).
 */
const defaults = Object.freeze({ tickets: false, restore: null });

/** DtlsEngineFactory for DtlsDatagram. */
function create(options) {
  return new DtlsEndpoint(options);
}

export { DtlsEndpoint, create, defaults };
export default DtlsEndpoint;
