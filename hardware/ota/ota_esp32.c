/*
 * ESP-IDF app rollback and the boot switch for the OTA agent (src/platform/moddable/esp32/ota.ts),
 * as xsmc host functions of the module `ota/native` (ota_native.js). Moddable's `embedded:update`
 * cannot be used for the switch: its open() calls esp_ota_begin(), which erases the partition, so a
 * download written through it could not go on after a reboot. The agent writes the `nextota`
 * partition raw through the SDK's `flash` module instead (resumable), and this module switches to
 * it with esp_ota_set_boot_partition(), which checks the image (header, segments, appended SHA-256)
 * first. Needs CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE=y (hardware/esp32/sdkconfig/sdkconfig.defaults):
 * the bootloader then starts a newly switched image in ESP_OTA_IMG_PENDING_VERIFY and, if it resets
 * before esp_ota_mark_app_valid_cancel_rollback(), boots the previous one again.
 */
#include "xsmc.h"
#include "xsHost.h"
#include "esp_system.h"
#include "esp_partition.h"
#include "app_update/include/esp_ota_ops.h"

static const esp_partition_t *otaPartition(xsMachine *the, int which)
{
	const esp_partition_t *p = which ? esp_ota_get_next_update_partition(NULL) : esp_ota_get_running_partition();
	if (!p)
		xsUnknownError(which ? "no OTA update partition (partition table needs ota_0, ota_1, otadata)" : "no running partition");
	return p;
}

/* state() -> { running: label, next: label or undefined, trial: boolean } */
void xs_ota_state(xsMachine *the)
{
	const esp_partition_t *running = otaPartition(the, 0);
	const esp_partition_t *next = esp_ota_get_next_update_partition(NULL);
	esp_ota_img_states_t state = ESP_OTA_IMG_UNDEFINED;
	xsmcVars(1);
	xsmcSetNewObject(xsResult);
	xsmcSetString(xsVar(0), (char *)running->label);
	xsmcSet(xsResult, xsID("running"), xsVar(0));
	if (next) {
		xsmcSetString(xsVar(0), (char *)next->label);
		xsmcSet(xsResult, xsID("next"), xsVar(0));
	}
	if (ESP_OK != esp_ota_get_state_partition(running, &state))
		state = ESP_OTA_IMG_UNDEFINED;		/* factory app, or no otadata entry: not on trial */
	xsmcSetBoolean(xsVar(0), ESP_OTA_IMG_PENDING_VERIFY == state);
	xsmcSet(xsResult, xsID("trial"), xsVar(0));
}

/* imageHash(next) -> the app's ELF SHA-256 (a 32-byte Uint8Array) from its esp_app_desc_t, or undefined */
void xs_ota_imageHash(xsMachine *the)
{
	esp_app_desc_t desc;
	const esp_partition_t *p = otaPartition(the, xsmcTest(xsArg(0)));
	if (ESP_OK != esp_ota_get_partition_description(p, &desc))
		return;
	xsmcVars(1);
	xsmcSetArrayBuffer(xsVar(0), desc.app_elf_sha256, sizeof(desc.app_elf_sha256));
	xsResult = xsNew1(xsGlobal, xsID("Uint8Array"), xsVar(0));
}

/* activate(): the image in the next update partition boots next (on trial); throws when it is not a valid app image */
void xs_ota_activate(xsMachine *the)
{
	const esp_partition_t *p = otaPartition(the, 1);
	esp_err_t err = esp_ota_set_boot_partition(p);
	if (ESP_OK != err)
		xsUnknownError("esp_ota_set_boot_partition: %s", esp_err_to_name(err));
}

/* confirm(): the running image works: cancel the rollback */
void xs_ota_confirm(xsMachine *the)
{
	esp_err_t err = esp_ota_mark_app_valid_cancel_rollback();
	if (ESP_OK != err)
		xsUnknownError("esp_ota_mark_app_valid_cancel_rollback: %s", esp_err_to_name(err));
}

/* rollback(): mark the running image invalid and reboot into the previous one (returns only when there is none) */
void xs_ota_rollback(xsMachine *the)
{
	esp_err_t err = esp_ota_mark_app_invalid_rollback_and_reboot();
	xsUnknownError("esp_ota_mark_app_invalid_rollback_and_reboot: %s", esp_err_to_name(err));
}

void xs_ota_restart(xsMachine *the)
{
	esp_restart();
}
