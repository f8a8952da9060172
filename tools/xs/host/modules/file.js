/* file (Moddable modules/files/file, lin): File over stdio at absolute paths; config.file.root is the
   run's files directory (not /tmp/), so runs do not share files. Iterator and System are not provided. */
export class File @ "xs_file_destructor" {
	constructor(path, write) @ "xs_File";
	read(type, count) @ "xs_file_read";
	write(...items) @ "xs_file_write";
	close() @ "xs_file_close";
	get length() @ "xs_file_get_length";
	get position() @ "xs_file_get_position";
	set position(value) @ "xs_file_set_position";
	static delete(path) @ "xs_file_delete";
	static exists(path) @ "xs_file_exists";
	static rename(path, name) @ "xs_file_rename";
}
export class Iterator {
	constructor() { throw new Error("file Iterator: not provided by the XS host"); }
}
export class Directory {
	static create(path) @ "xs_directory_create";
	static delete(path) @ "xs_directory_delete";
}
export class System {
	static config() { throw new Error("file System: not provided by the XS host"); }
	static info() { throw new Error("file System: not provided by the XS host"); }
}
export default Object.freeze({ File, Iterator, System, Directory });
