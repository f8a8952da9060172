/* embedded:io/socket/tcp (ECMA-419; Moddable modules/io/socket/lin/tcp) over a real TCP socket:
   new TCP({address, port, onReadable(count), onWritable(count), onError()}); read() -> ArrayBuffer of
   every byte received so far; write(buffer) up to the writable count (more throws "would block", as on
   lin); close(). As on lin: a numeric IPv4 address only, callbacks never run synchronously, the first
   onWritable says the connection is up, a refused connect and a closed or reset connection are
   onError (after the bytes already received were read). */
import Timer from "timer";

const WRITABLE = 1536; /* lin's kBufferSize */

class TCPSocket @ "tcp_destructor" {
	constructor(options) @ "xs_tcp_constructor";
	close() @ "xs_tcp_close";
	read() @ "xs_tcp_read";
	write(buffer) @ "xs_tcp_write";
	get connected() @ "xs_tcp_get_connected";
}

class TCP {
	#socket;
	#options;
	#writable = 0;
	#timer;
	constructor(options) {
		if (typeof options?.address !== "string")
			throw new Error("invalid address");
		this.#options = options;
		const self = this;
		this.#socket = new TCPSocket({
			address: options.address,
			port: options.port,
			onReadable(count) { self.#options.onReadable?.call(self, count); },
			onError() { self.#error(); },
		});
		this.#later(() => {
			if (!this.#socket.connected)
				return this.#error();
			this.#writable = WRITABLE;
			this.#options.onWritable?.call(this, WRITABLE);
		});
	}
	#later(callback) {
		if (this.#timer)
			Timer.clear(this.#timer);
		this.#timer = Timer.set(() => {
			this.#timer = undefined;
			if (this.#socket)
				callback();
		});
	}
	#error() {
		const socket = this.#socket;
		if (!socket)
			return;
		this.#options.onError?.call(this);
	}
	read() {
		return this.#socket.read();
	}
	write(buffer) {
		const n = ArrayBuffer.isView(buffer) ? buffer.byteLength : buffer.byteLength;
		if (n > this.#writable)
			throw new Error("would block");
		this.#socket.write(buffer);
		this.#writable -= n;
		/* the host's socket buffer takes it at once: writable again at the next turn, as lin's task does */
		this.#later(() => {
			this.#writable = WRITABLE;
			this.#options.onWritable?.call(this, WRITABLE);
		});
	}
	close() {
		const socket = this.#socket;
		this.#socket = undefined;
		if (this.#timer)
			Timer.clear(this.#timer);
		this.#timer = undefined;
		socket?.close();
	}
	get format() { return "buffer"; }
	set format(value) { if ("buffer" !== value) throw new RangeError; }
}
export default TCP;
