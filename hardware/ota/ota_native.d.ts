// ota/native (hardware/ota/ota_native.js, ota_esp32.c): ESP-IDF app rollback and the boot switch.
declare module 'ota/native' {
  /** The running app partition, the next update partition, and whether the running image is on trial (ESP_OTA_IMG_PENDING_VERIFY). */
  export function state(): { running: string; next?: string; trial: boolean };
  /** The ELF SHA-256 from the esp_app_desc_t of the running (false) or next update (true) partition's image; undefined when there is none. */
  export function imageHash(next: boolean): Uint8Array | undefined;
  /** esp_ota_set_boot_partition(next update partition): checks the image, then it boots next, on trial. Throws when the image is not valid. */
  export function activate(): void;
  /** esp_ota_mark_app_valid_cancel_rollback(). */
  export function confirm(): void;
  /** esp_ota_mark_app_invalid_rollback_and_reboot(): does not return unless there is no image to go back to (then throws). */
  export function rollback(): never;
  /** esp_restart(). */
  export function restart(): never;
}
