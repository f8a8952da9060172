/* net (Moddable modules/network/net): resolve(host, callback(name, address)) calls back later, never
   synchronously; address is undefined when the name does not resolve. IPv4 only. */
import Timer from "timer";
function resolveNow(host) @ "xs_host_resolve";
export default class Net {
	static resolve(host, callback) {
		const address = resolveNow(host);
		Timer.set(() => callback(host, address));
	}
	static get(property) {
		return undefined;
	}
}
