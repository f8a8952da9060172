// N-API binding over dtls_core (see dtls_core.h). JavaScript owns the sockets and the timers.
//
//   const { DtlsEndpoint, DtlsContext, cidAvailable, mbedtlsVersion } = require('build/Release/dtls.node');
//   const ep = new DtlsEndpoint({ role: 'client', ca, hostname: 'localhost' });
//   ep.onSend = (record) => socket.send(record);
//   ep.step();                        // sends ClientHello
//   socket.on('message', (d) => { ep.feed(d); let m; while ((m = ep.read())) use(m); });
//
// feed/step/timerExpired return 0 (waiting), 1 (handshake just completed) or 2 (connected) and throw an
// Error with .code (DTLS_UNKNOWN_CA, ...), .message, .mbedtlsError, .alert on failure.
#include <napi.h>

#include <algorithm>
#include <string>
#include <vector>

extern "C" {
#include "dtls_core.h"
}

namespace {

Napi::Error MakeError(Napi::Env env, int code, const char *message, int mbed = 0, int alert = -1) {
  Napi::Error e = Napi::Error::New(env, message && message[0] ? message : dtls_core_error_name(code));
  e.Set("code", Napi::String::New(env, dtls_core_error_name(code)));
  if (mbed) e.Set("mbedtlsError", Napi::Number::New(env, mbed));
  if (alert >= 0) e.Set("alert", Napi::Number::New(env, alert));
  return e;
}

// Reads a Buffer/Uint8Array/ArrayBuffer/string option into bytes. Returns false if absent.
bool GetBytes(const Napi::Object &opts, const char *name, std::vector<unsigned char> &out) {
  if (!opts.Has(name)) return false;
  Napi::Value v = opts.Get(name);
  if (v.IsUndefined() || v.IsNull()) return false;
  if (v.IsString()) {
    std::string s = v.As<Napi::String>().Utf8Value();
    out.assign(s.begin(), s.end());
    return true;
  }
  if (v.IsTypedArray()) {
    Napi::TypedArray ta = v.As<Napi::TypedArray>();
    Napi::ArrayBuffer ab = ta.ArrayBuffer();
    const unsigned char *p = static_cast<const unsigned char *>(ab.Data()) + ta.ByteOffset();
    out.assign(p, p + ta.ByteLength());
    return true;
  }
  if (v.IsArrayBuffer()) {
    Napi::ArrayBuffer ab = v.As<Napi::ArrayBuffer>();
    const unsigned char *p = static_cast<const unsigned char *>(ab.Data());
    out.assign(p, p + ab.ByteLength());
    return true;
  }
  return false;
}

std::string GetString(const Napi::Object &opts, const char *name, const std::string &def = "") {
  if (!opts.Has(name)) return def;
  Napi::Value v = opts.Get(name);
  if (!v.IsString()) return def;
  return v.As<Napi::String>().Utf8Value();
}

uint32_t GetUint(const Napi::Object &opts, const char *name, uint32_t def) {
  if (!opts.Has(name)) return def;
  Napi::Value v = opts.Get(name);
  if (!v.IsNumber()) return def;
  return v.As<Napi::Number>().Uint32Value();
}

// Boolean option -> DTLS_OPT_DEFAULT (absent), DTLS_OPT_ON, DTLS_OPT_OFF.
int GetOpt(const Napi::Object &opts, const char *name) {
  if (!opts.Has(name)) return DTLS_OPT_DEFAULT;
  Napi::Value v = opts.Get(name);
  if (!v.IsBoolean()) return DTLS_OPT_DEFAULT;
  return v.As<Napi::Boolean>().Value() ? DTLS_OPT_ON : DTLS_OPT_OFF;
}

class DtlsContext : public Napi::ObjectWrap<DtlsContext> {
 public:
  static Napi::FunctionReference *ctor;
  static Napi::Function Init(Napi::Env env) {
    Napi::Function f = DefineClass(env, "DtlsContext",
                                   {InstanceAccessor<&DtlsContext::Role>("role"),
                                    InstanceMethod<&DtlsContext::CheckClientHello>("checkClientHello")});
    ctor = new Napi::FunctionReference(Napi::Persistent(f));
    return f;
  }

  // Parses options; returns nullptr with a pending exception on error.
  static dtls_conf *Create(Napi::Env env, const Napi::Object &o) {
    std::vector<unsigned char> ca, cert, key, psk, pskId, seed;
    dtls_conf_options opt{};
    std::string role = GetString(o, "role", "client");
    if (role != "client" && role != "server") {
      MakeError(env, DTLS_E_CONFIG, "role must be 'client' or 'server'").ThrowAsJavaScriptException();
      return nullptr;
    }
    opt.role = role == "server" ? DTLS_ROLE_SERVER : DTLS_ROLE_CLIENT;
    if (GetBytes(o, "ca", ca)) { opt.ca = ca.data(); opt.ca_len = ca.size(); }
    if (GetBytes(o, "cert", cert)) { opt.cert = cert.data(); opt.cert_len = cert.size(); }
    if (GetBytes(o, "key", key)) { opt.key = key.data(); opt.key_len = key.size(); }
    if (GetBytes(o, "psk", psk)) { opt.psk = psk.data(); opt.psk_len = psk.size(); }
    if (GetBytes(o, "pskIdentity", pskId)) { opt.psk_identity = pskId.data(); opt.psk_identity_len = pskId.size(); }
    if (GetBytes(o, "cookieSecret", seed)) { opt.seed = seed.data(); opt.seed_len = seed.size(); }
    std::string auth = GetString(o, "authMode", "");
    opt.auth_mode = auth == "none" ? DTLS_AUTH_NONE
                    : auth == "optional" ? DTLS_AUTH_OPTIONAL
                    : auth == "required" ? DTLS_AUTH_REQUIRED
                                         : DTLS_AUTH_DEFAULT;
    if (!auth.empty() && opt.auth_mode == DTLS_AUTH_DEFAULT) {
      MakeError(env, DTLS_E_CONFIG, "authMode must be 'none', 'optional' or 'required'").ThrowAsJavaScriptException();
      return nullptr;
    }
    opt.retransmit_min_ms = GetUint(o, "retransmitMs", 0);
    opt.retransmit_max_ms = GetUint(o, "retransmitMaxMs", 0);
    opt.tickets = GetOpt(o, "tickets");
    opt.cookies = GetOpt(o, "cookies");
    if (o.Has("sessionCacheSize") && o.Get("sessionCacheSize").IsNumber()) {
      int32_t n = o.Get("sessionCacheSize").As<Napi::Number>().Int32Value();
      opt.session_cache_entries = n <= 0 ? -1 : n;  // 0 = no cache
    }
    opt.session_timeout_s = GetUint(o, "sessionTimeout", 0);
    std::string transport = GetString(o, "transport", "datagram");
    if (transport != "datagram" && transport != "stream") {
      MakeError(env, DTLS_E_CONFIG, "transport must be 'datagram' (DTLS) or 'stream' (TLS)").ThrowAsJavaScriptException();
      return nullptr;
    }
    opt.transport = transport == "stream" ? DTLS_TRANSPORT_STREAM : DTLS_TRANSPORT_DATAGRAM;
    int err = 0;
    char msg[256];
    dtls_conf *c = dtls_conf_new(&opt, &err, msg, sizeof(msg));
    if (!key.empty()) std::fill(key.begin(), key.end(), 0);
    if (!psk.empty()) std::fill(psk.begin(), psk.end(), 0);
    if (!c) MakeError(env, err, msg).ThrowAsJavaScriptException();
    return c;
  }

  explicit DtlsContext(const Napi::CallbackInfo &info) : Napi::ObjectWrap<DtlsContext>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) {
      Napi::TypeError::New(env, "DtlsContext(options)").ThrowAsJavaScriptException();
      return;
    }
    conf_ = Create(env, info[0].As<Napi::Object>());
  }
  ~DtlsContext() override {
    if (conf_) dtls_conf_unref(conf_);
  }
  Napi::Value Role(const Napi::CallbackInfo &info) {
    return Napi::String::New(info.Env(), conf_ && dtls_conf_role(conf_) == DTLS_ROLE_SERVER ? "server" : "client");
  }

  // Server: checkClientHello(datagram, clientId, allowResume) -> { verdict: 'drop'|'verify'|'accept'|'resume',
  // reply: Buffer|null } without creating any per-peer state (see dtls_conf_check_client_hello).
  Napi::Value CheckClientHello(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsTypedArray()) {
      Napi::TypeError::New(env, "checkClientHello(datagram: Uint8Array, clientId: string | Uint8Array, allowResume?: boolean)")
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
    const unsigned char *p = static_cast<const unsigned char *>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    std::vector<unsigned char> id;
    if (info[1].IsString()) {
      std::string s = info[1].As<Napi::String>().Utf8Value();
      id.assign(s.begin(), s.end());
    } else if (info[1].IsTypedArray()) {
      Napi::TypedArray t = info[1].As<Napi::TypedArray>();
      const unsigned char *q = static_cast<const unsigned char *>(t.ArrayBuffer().Data()) + t.ByteOffset();
      id.assign(q, q + t.ByteLength());
    }
    bool allowResume = info.Length() > 2 && info[2].ToBoolean().Value();
    unsigned char reply[256];
    size_t replyLen = 0;
    int v = conf_ ? dtls_conf_check_client_hello(conf_, p, ta.ByteLength(), id.data(), id.size(), allowResume ? 1 : 0,
                                                 reply, sizeof(reply), &replyLen)
                  : DTLS_HELLO_DROP;
    Napi::Object r = Napi::Object::New(env);
    r.Set("verdict", Napi::String::New(env, v == DTLS_HELLO_VERIFY   ? "verify"
                                            : v == DTLS_HELLO_ACCEPT ? "accept"
                                            : v == DTLS_HELLO_RESUME ? "resume"
                                                                     : "drop"));
    r.Set("reply", v == DTLS_HELLO_VERIFY && replyLen ? Napi::Buffer<unsigned char>::Copy(env, reply, replyLen).As<Napi::Value>()
                                                      : env.Null());
    return r;
  }
  dtls_conf *conf_ = nullptr;
};
Napi::FunctionReference *DtlsContext::ctor = nullptr;

class DtlsEndpoint : public Napi::ObjectWrap<DtlsEndpoint> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "DtlsEndpoint",
                       {
                           InstanceMethod<&DtlsEndpoint::Step>("step"),
                           InstanceMethod<&DtlsEndpoint::Step>("handshake"),
                           InstanceMethod<&DtlsEndpoint::Feed>("feed"),
                           InstanceMethod<&DtlsEndpoint::Read>("read"),
                           InstanceMethod<&DtlsEndpoint::Write>("write"),
                           InstanceMethod<&DtlsEndpoint::TimerMs>("timerMs"),
                           InstanceMethod<&DtlsEndpoint::TimerExpired>("timerExpired"),
                           InstanceMethod<&DtlsEndpoint::ResendFlight>("resendFlight"),
                           InstanceMethod<&DtlsEndpoint::SaveSession>("saveSession"),
                           InstanceMethod<&DtlsEndpoint::SaveContext>("saveContext"),
                           InstanceMethod<&DtlsEndpoint::PeerCertificate>("peerCertificate"),
                           InstanceMethod<&DtlsEndpoint::Close>("close"),
                           InstanceMethod<&DtlsEndpoint::Destroy>("destroy"),
                           InstanceMethod<&DtlsEndpoint::AllowResumeWithoutCookie>("allowResumeWithoutCookie"),
                           InstanceAccessor<&DtlsEndpoint::PeerUnverified>("peerUnverified"),
                           InstanceAccessor<&DtlsEndpoint::CookieFallbacks>("cookieFallbacks"),
                           InstanceAccessor<&DtlsEndpoint::Discarded>("discarded"),
                           InstanceAccessor<&DtlsEndpoint::State>("state"),
                           InstanceAccessor<&DtlsEndpoint::TimerGeneration>("timerGeneration"),
                           InstanceAccessor<&DtlsEndpoint::Resumed>("resumed"),
                           InstanceAccessor<&DtlsEndpoint::Restored>("restored"),
                           InstanceAccessor<&DtlsEndpoint::CidInUse>("cidInUse"),
                           InstanceAccessor<&DtlsEndpoint::CidAvailable>("cidAvailable"),
                           InstanceAccessor<&DtlsEndpoint::Ciphersuite>("ciphersuite"),
                           InstanceAccessor<&DtlsEndpoint::MaxPayload>("maxPayload"),
                           InstanceAccessor<&DtlsEndpoint::LastError>("error"),
                           InstanceAccessor<&DtlsEndpoint::BytesOut>("bytesSent"),
                           InstanceAccessor<&DtlsEndpoint::BytesIn>("bytesReceived"),
                       });
  }

  explicit DtlsEndpoint(const Napi::CallbackInfo &info) : Napi::ObjectWrap<DtlsEndpoint>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) {
      Napi::TypeError::New(env, "DtlsEndpoint(options)").ThrowAsJavaScriptException();
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    dtls_conf *conf = nullptr;
    bool own = false;
    if (o.Has("context") && o.Get("context").IsObject()) {
      Napi::Object c = o.Get("context").As<Napi::Object>();
      if (!c.InstanceOf(DtlsContext::ctor->Value())) {
        Napi::TypeError::New(env, "options.context must be a DtlsContext").ThrowAsJavaScriptException();
        return;
      }
      conf = DtlsContext::Unwrap(c)->conf_;
      if (!conf) {
        MakeError(env, DTLS_E_CONFIG, "context is not usable").ThrowAsJavaScriptException();
        return;
      }
    } else {
      conf = DtlsContext::Create(env, o);
      if (!conf) return;
      own = true;
    }
    std::string hostname = GetString(o, "hostname", "");
    std::vector<unsigned char> clientId, session, restore;
    GetBytes(o, "clientId", clientId);
    GetBytes(o, "session", session);
    bool restoring = GetBytes(o, "restore", restore) && !restore.empty();
    unsigned mtu = GetUint(o, "mtu", 0);
    int err = 0;
    char msg[256];
    core_ = dtls_core_new(conf, hostname.empty() ? nullptr : hostname.c_str(), clientId.data(), clientId.size(),
                          session.data(), session.size(), mtu, &DtlsEndpoint::OnSendC, this, &err, msg, sizeof(msg));
    if (own) dtls_conf_unref(conf);  // the core holds its own reference
    if (!core_) {
      MakeError(env, err, msg).ThrowAsJavaScriptException();
      return;
    }
    if (restoring) {
      // A saved connection (saveContext()) instead of a handshake: connected at once, or DTLS_BAD_SESSION.
      int r = dtls_core_load_context(core_, restore.data(), restore.size());
      std::fill(restore.begin(), restore.end(), 0);
      if (r == DTLS_STEP_ERROR) {
        Failure f = Capture();
        dtls_core_free(core_);
        core_ = nullptr;
        MakeError(env, f.code, f.message.c_str(), f.mbed, f.alert).ThrowAsJavaScriptException();
      }
    }
  }

  ~DtlsEndpoint() override { dtls_core_free(core_); }

 private:
  static int OnSendC(void *user, const unsigned char *data, size_t len) {
    DtlsEndpoint *self = static_cast<DtlsEndpoint *>(user);
    self->outbox_.emplace_back(data, data + len);
    self->bytes_out_ += len;
    return 0;
  }

  bool Check(Napi::Env env) {
    if (!core_) {
      MakeError(env, DTLS_E_STATE, "endpoint destroyed").ThrowAsJavaScriptException();
      return false;
    }
    return true;
  }

  // Delivers queued records to this.onSend. Returns false if onSend threw. onSend may call anything on
  // this endpoint, destroy() included: nothing here touches core_ after a callback, and delivery stops
  // once the endpoint is destroyed (the rest of the flight is dropped with it).
  bool Flush(Napi::Env env) {
    if (outbox_.empty()) return true;
    std::vector<std::vector<unsigned char>> out;
    out.swap(outbox_);
    Napi::Value cb = Value().Get("onSend");
    if (!cb.IsFunction()) return true;  // nobody listening: records are dropped (like a lost datagram)
    for (auto &d : out) {
      if (!core_) break;
      Napi::Buffer<unsigned char> b = Napi::Buffer<unsigned char>::Copy(env, d.data(), d.size());
      cb.As<Napi::Function>().Call(Value(), {b});
      if (env.IsExceptionPending()) return false;
    }
    return true;
  }

  // Error details of the core, copied before onSend runs (it may destroy the core).
  struct Failure {
    int code = DTLS_OK, mbed = 0, alert = -1;
    std::string message;
  };
  Failure Capture() const {
    Failure f;
    if (!core_) {
      f.code = DTLS_E_STATE;
      f.message = "endpoint destroyed";
      return f;
    }
    f.code = dtls_core_error(core_);
    f.mbed = dtls_core_mbedtls_error(core_);
    f.alert = dtls_core_alert(core_);
    f.message = dtls_core_message(core_);
    return f;
  }

  Napi::Value Result(Napi::Env env, int r) {
    Failure f;
    if (r == DTLS_STEP_ERROR) f = Capture();
    if (!Flush(env)) return env.Undefined();
    if (r == DTLS_STEP_ERROR) {
      MakeError(env, f.code, f.message.c_str(), f.mbed, f.alert).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    return Napi::Number::New(env, r);
  }

  Napi::Value Step(const Napi::CallbackInfo &info) {
    if (!Check(info.Env())) return info.Env().Undefined();
    return Result(info.Env(), dtls_core_step(core_));
  }

  Napi::Value Feed(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!Check(env)) return env.Undefined();
    if (info.Length() < 1 || !info[0].IsTypedArray()) {
      Napi::TypeError::New(env, "feed(datagram: Uint8Array)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
    const unsigned char *p = static_cast<const unsigned char *>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    bytes_in_ += ta.ByteLength();
    int r;
    if (dtls_core_is_stream(core_)) {
      // TLS over a stream: any number of bytes, fed in pieces the core takes, decrypted after each.
      size_t len = ta.ByteLength(), off = 0;
      bool connected = false;
      r = DTLS_STEP_WANT;
      do {
        size_t n = len - off > DTLS_STREAM_FEED_MAX ? DTLS_STREAM_FEED_MAX : len - off;
        r = dtls_core_feed(core_, p + off, n);
        off += n;
        if (r == DTLS_STEP_CONNECTED) connected = true;
        if (r == DTLS_STEP_CONNECTED || r == DTLS_STEP_DATA) Drain();
        if (dtls_core_state(core_) == DTLS_STATE_FAILED || dtls_core_state(core_) == DTLS_STATE_CLOSED) break;
      } while (off < len);
      if (connected && r == DTLS_STEP_DATA) r = DTLS_STEP_CONNECTED;
    } else {
      r = dtls_core_feed(core_, p, ta.ByteLength());
      if (r == DTLS_STEP_CONNECTED || r == DTLS_STEP_DATA) Drain();
    }
    // A fatal alert or close_notify seen while decrypting is reported like a handshake failure.
    bool failed = dtls_core_state(core_) == DTLS_STATE_FAILED || dtls_core_state(core_) == DTLS_STATE_CLOSED;
    return Result(env, failed && dtls_core_error(core_) != DTLS_OK ? DTLS_STEP_ERROR : r);
  }

  // Decrypts whatever the inbox holds into the plaintext queue.
  void Drain() {
    std::vector<unsigned char> buf(16384 + 64);
    for (;;) {
      int n = dtls_core_read(core_, buf.data(), buf.size());
      if (n <= 0) break;
      plain_.emplace_back(buf.data(), buf.data() + n);
    }
  }

  Napi::Value Read(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!Check(env)) return env.Undefined();
    if (plain_.empty()) return env.Null();
    std::vector<unsigned char> d = std::move(plain_.front());
    plain_.erase(plain_.begin());
    return Napi::Buffer<unsigned char>::Copy(env, d.data(), d.size());
  }

  Napi::Value Write(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!Check(env)) return env.Undefined();
    if (info.Length() < 1 || !info[0].IsTypedArray()) {
      Napi::TypeError::New(env, "write(plaintext: Uint8Array)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
    const unsigned char *p = static_cast<const unsigned char *>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    int n = dtls_core_write(core_, p, ta.ByteLength());
    Failure f;
    if (n < 0) f = Capture();
    if (!Flush(env)) return env.Undefined();
    if (n < 0) {
      int code = -n;
      const char *msg = code == DTLS_E_STATE    ? "write before the handshake completed (or after close)"
                        : code == DTLS_E_TOO_LONG ? "datagram larger than one DTLS record (see maxPayload)"
                                                  : f.message.c_str();
      MakeError(env, code, msg, f.mbed, f.alert).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    return Napi::Number::New(env, n);
  }

  Napi::Value TimerMs(const Napi::CallbackInfo &info) {
    if (!core_) return Napi::Number::New(info.Env(), -1);
    return Napi::Number::New(info.Env(), dtls_core_timer_ms(core_));
  }
  Napi::Value TimerGeneration(const Napi::CallbackInfo &info) {
    return Napi::Number::New(info.Env(), core_ ? dtls_core_timer_generation(core_) : 0);
  }
  Napi::Value TimerExpired(const Napi::CallbackInfo &info) {
    if (!Check(info.Env())) return info.Env().Undefined();
    return Result(info.Env(), dtls_core_timer_expired(core_));
  }

  Napi::Value ResendFlight(const Napi::CallbackInfo &info) {
    if (!Check(info.Env())) return info.Env().Undefined();
    return Result(info.Env(), dtls_core_resend_flight(core_));
  }

  Napi::Value SaveSession(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!core_) return env.Null();
    size_t n = dtls_core_save_session(core_, nullptr, 0);
    if (n == 0) return env.Null();
    Napi::Buffer<unsigned char> b = Napi::Buffer<unsigned char>::New(env, n);
    size_t m = dtls_core_save_session(core_, b.Data(), n);
    if (m != n) return env.Null();
    return b;
  }

  // The whole connection for deep sleep (client, connected, nothing pending), or null. After a
  // successful save this endpoint no longer holds the connection (state 'closed'): the bytes are its
  // only copy and must be loaded once (restore option).
  Napi::Value SaveContext(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!core_) return env.Null();
    size_t n = dtls_core_save_context(core_, nullptr, 0);
    if (n == 0) return env.Null();
    std::vector<unsigned char> buf(n);
    size_t m = dtls_core_save_context(core_, buf.data(), n);
    if (m == 0 || m > n) return env.Null();
    Napi::Buffer<unsigned char> b = Napi::Buffer<unsigned char>::Copy(env, buf.data(), m);
    std::fill(buf.begin(), buf.end(), 0);
    return b;
  }

  Napi::Value PeerCertificate(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!core_) return env.Null();
    size_t len = 0;
    const unsigned char *p = dtls_core_peer_cert(core_, &len);
    if (!p) return env.Null();
    return Napi::Buffer<unsigned char>::Copy(env, p, len);
  }

  Napi::Value Close(const Napi::CallbackInfo &info) {
    if (core_) {
      dtls_core_close(core_);
      Flush(info.Env());
    }
    return info.Env().Undefined();
  }

  Napi::Value Destroy(const Napi::CallbackInfo &info) {
    dtls_core_free(core_);
    core_ = nullptr;
    outbox_.clear();
    plain_.clear();
    return info.Env().Undefined();
  }

  // Server: accept this endpoint's first ClientHello without a cookie if it resumes a cached session.
  Napi::Value AllowResumeWithoutCookie(const Napi::CallbackInfo &info) {
    if (core_) dtls_core_allow_resume_without_cookie(core_, info.Length() < 1 || info[0].ToBoolean().Value());
    return info.Env().Undefined();
  }
  Napi::Value PeerUnverified(const Napi::CallbackInfo &info) {
    return Napi::Boolean::New(info.Env(), core_ && dtls_core_peer_unverified(core_));
  }
  Napi::Value CookieFallbacks(const Napi::CallbackInfo &info) {
    return Napi::Number::New(info.Env(), core_ ? dtls_core_cookie_fallbacks(core_) : 0);
  }
  Napi::Value Discarded(const Napi::CallbackInfo &info) {
    return Napi::Number::New(info.Env(), core_ ? dtls_core_discarded(core_) : 0);
  }

  Napi::Value State(const Napi::CallbackInfo &info) {
    const char *s = "closed";
    if (core_) {
      switch (dtls_core_state(core_)) {
        case DTLS_STATE_HANDSHAKING: s = "handshaking"; break;
        case DTLS_STATE_CONNECTED: s = "connected"; break;
        case DTLS_STATE_FAILED: s = "failed"; break;
        default: s = "closed";
      }
    }
    return Napi::String::New(info.Env(), s);
  }
  Napi::Value Resumed(const Napi::CallbackInfo &info) {
    return Napi::Boolean::New(info.Env(), core_ && dtls_core_resumed(core_));
  }
  Napi::Value Restored(const Napi::CallbackInfo &info) {
    return Napi::Boolean::New(info.Env(), core_ && dtls_core_restored(core_));
  }
  Napi::Value CidInUse(const Napi::CallbackInfo &info) {
    return Napi::Boolean::New(info.Env(), core_ && dtls_core_cid_in_use(core_));
  }
  Napi::Value CidAvailable(const Napi::CallbackInfo &info) {
    return Napi::Boolean::New(info.Env(), dtls_core_cid_available() != 0);
  }
  Napi::Value Ciphersuite(const Napi::CallbackInfo &info) {
    return Napi::String::New(info.Env(), core_ ? dtls_core_ciphersuite(core_) : "");
  }
  Napi::Value MaxPayload(const Napi::CallbackInfo &info) {
    return Napi::Number::New(info.Env(), core_ ? dtls_core_max_payload(core_) : 0);
  }
  Napi::Value LastError(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!core_ || dtls_core_error(core_) == DTLS_OK) return env.Null();
    return MakeError(env, dtls_core_error(core_), dtls_core_message(core_), dtls_core_mbedtls_error(core_),
                     dtls_core_alert(core_))
        .Value();
  }
  Napi::Value BytesOut(const Napi::CallbackInfo &info) { return Napi::Number::New(info.Env(), (double)bytes_out_); }
  Napi::Value BytesIn(const Napi::CallbackInfo &info) { return Napi::Number::New(info.Env(), (double)bytes_in_); }

  dtls_core *core_ = nullptr;
  std::vector<std::vector<unsigned char>> outbox_;
  std::vector<std::vector<unsigned char>> plain_;
  size_t bytes_out_ = 0;
  size_t bytes_in_ = 0;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("DtlsContext", DtlsContext::Init(env));
  exports.Set("DtlsEndpoint", DtlsEndpoint::Init(env));
  exports.Set("cidAvailable", Napi::Boolean::New(env, dtls_core_cid_available() != 0));
  exports.Set("contextAvailable", Napi::Boolean::New(env, dtls_core_context_available() != 0));
  exports.Set("mbedtlsVersion", Napi::String::New(env, dtls_core_mbedtls_version()));
  return exports;
}

}  // namespace

NODE_API_MODULE(dtls, Init)
