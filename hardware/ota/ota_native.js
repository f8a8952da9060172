/*
 * ESP-IDF app rollback and the boot switch (ota_esp32.c); used by src/platform/moddable/esp32/ota.ts.
 */
export function state() @ "xs_ota_state";
export function imageHash(next) @ "xs_ota_imageHash";
export function activate() @ "xs_ota_activate";
export function confirm() @ "xs_ota_confirm";
export function rollback() @ "xs_ota_rollback";
export function restart() @ "xs_ota_restart";
