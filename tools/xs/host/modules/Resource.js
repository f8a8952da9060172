/* Resource (Moddable modules/files/resource): new Resource(name) is the file's bytes (an ArrayBuffer
   here, a read-only host buffer in flash on a device); files come from the --resources directory */
function read(name) @ "xs_host_resource_read";
function exists(name) @ "xs_host_resource_exists";
export default class Resource {
	constructor(name) {
		const bytes = read(name);
		if (bytes === undefined) throw new Error(`Resource not found: ${name}`);
		return bytes;
	}
	static exists(name) {
		return exists(name);
	}
}
