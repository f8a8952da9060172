/*
 * Shared between the XS host's loop (xshost.c) and its host modules (xshost_modules.c).
 */
#ifndef __XSHOST__
#define __XSHOST__

#include "xsAll.h"
#include "xsScript.h"
#include "xs.h"

/* Device clock: milliseconds since start, scaled by --speed (a Moddable Time.ticks). */
double host_now_ms(void);
/* Epoch ms of the device clock (Date.now()). */
double host_epoch_ms(void);
/* Wall-clock sleep for `ms` device milliseconds (Timer.delay blocks on a device too). */
void host_sleep_ms(double ms);

/* A file descriptor the loop polls; on POLLIN it calls readable(ref). */
typedef void (*host_readable)(void* ref);
void host_watch(int fd, host_readable readable, void* ref);
void host_unwatch(int fd);

/* Options the modules read. */
extern const char* gResourcesDir;
extern const char* gFlashDir;
extern int gTraceEnabled;

/* Host function table (name -> C function) for `@ "name"` in host modules and dtls_native.js. */
typedef struct { const char* name; void (*callback)(xsMachine*); } host_function;
extern const host_function gHostFunctions[];
void host_modules_init(xsMachine* the);
/* Timers: the soonest due time in device ms, or -1; runs the ones due. */
double host_timers_next(void);
int host_timers_run(xsMachine* the);
int host_timers_pending(void);
/* Drains reports of exceptions thrown in callbacks (fatal, as fxAbort on a device). */
void host_callback_exception(xsMachine* the, const char* where);

#endif
