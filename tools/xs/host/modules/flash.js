/* flash (Moddable modules/files/flash) on an image file per partition: <--flash dir>/<partition>.bin,
   64 KB, 4 KB sectors, erased to 0xFF, writes only clear bits (NOR) */
class Flash @ "flash_destructor" {
	constructor(partition) @ "xs_flash";
	erase(sector) @ "xs_flash_erase";
	read(offset, byteLength) @ "xs_flash_read";
	write(offset, byteLength, buffer) @ "xs_flash_write";
	get byteLength() @ "xs_flash_byteLength";
	get blockSize() @ "xs_flash_blockSize";
}
export default Flash;
