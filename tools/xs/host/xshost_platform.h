/*
 * Platform header for the XS host (tools/xs/host): selected with -DXSPLATFORM="xshost_platform.h".
 * Plays the part of Moddable's lin platform for a Linux CI host: 64-bit, POSIX, no debugger
 * connection (mxUseDefaultDebug), our own memory accounting, module finder and loader (xshost.c).
 */
#ifndef __XSHOST_PLATFORM__
#define __XSHOST_PLATFORM__

#undef mxLittleEndian
#define mxLittleEndian 1
#undef mxLinux
#define mxLinux 1
#define XS_FUNCTION_NORETURN __attribute__((noreturn))

#include <ctype.h>
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <unistd.h>

#define mxUseGCCAtomics 1
#define mxUsePOSIXThreads 1

#define mxUseDefaultBuildKeys 1
#define mxUseDefaultParseScript 1
#define mxUseDefaultSharedChunks 1
#define mxUseDefaultDebug 1

/* Fields added to txMachine: memory accounting against creation.static, promise job flag. */
#define mxMachinePlatform \
	void* waiterCondition; \
	void* waiterData; \
	void* waiterLink; \
	int promiseJobs; \
	int abortStatus; \
	size_t allocationLimit; \
	size_t allocatedSpace; \
	size_t peakAllocatedSpace;

#endif
