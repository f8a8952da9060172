/* embedded:io/socket/udp (ECMA-419; Moddable modules/io/socket/lin/udp): onReadable(count) with the
   number of datagrams queued, read() -> ArrayBuffer with .address and .port, write(buffer, address, port) */
class UDP @ "udp_destructor" {
	constructor(options) @ "xs_udp_constructor";
	close() @ "xs_udp_close";
	read() @ "xs_udp_read";
	write(buffer, address, port) @ "xs_udp_write";
	get format() { return "buffer"; }
	set format(value) { if ("buffer" !== value) throw new RangeError; }
}
export default UDP;
