/*
 * XS host for CI: runs the firmware the way a Moddable build does, on the Linux host.
 *
 *   xshost [--speed N] [--duration-ms MS] [--stats-every-ms MS] [--resources DIR] [--flash DIR]
 *          [--no-trace] PLAN
 *
 * PLAN is written by tools/xs/manifest.ts from manifest.json (lines, tab-separated):
 *   creation <chunk.initial> <chunk.incremental> <heap.initial> <heap.incremental> <stack>
 *            <keys.initial> <keys.incremental> <keys.name> <keys.symbol> <parser.buffer> <parser.table> <static>
 *   module <specifier> <path of its JavaScript>        (one per module the manifests name)
 *   preload <specifier>                                (in manifest order, as mcconfig lists them)
 *   main <specifier>
 *   freeze 1|0                                         (xsl freezes when there are preloads or "strip")
 *
 * Like a device: only the listed modules exist (an import of any other fails, naming it); preload
 * modules run first, then the built-in prototypes are frozen as the linker (xsl) does, then the main
 * module runs; the JS stack is creation.stack slots and overflowing it aborts with "stack overflow".
 * Then the event loop runs timers and sockets until nothing is left, or until --duration-ms of
 * device time. Time runs --speed times faster than the wall clock (Time.ticks, Date.now, timers).
 *
 * Output: trace() to stdout; host messages to stderr, prefixed "xs-host:"; at the end, and with
 * --stats-every-ms also before the preloads ("baseline": the engine's built-ins, which a device keeps
 * in flash), after them ("preloaded") and every so often, one line "xs-host:stats {json}" on stderr,
 * taken after a garbage collection: slots and chunk bytes in use, peaks, allocated, JS stack peak.
 * Exit status: 0 when the loop ends, 1 when a module fails to load or throws, 2 on usage errors,
 * 3 on an abort (stack overflow, memory full, unhandled exception in a callback).
 */
#include "xshost.h"
#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <sys/time.h>

static double gSpeed = 1;
static struct timespec gStart;
static double gStartEpoch;
static double gDurationMs = -1;
static double gStatsEveryMs = 0;
const char* gResourcesDir = ".";
const char* gFlashDir = ".";
int gTraceEnabled = 1;

typedef struct { char* specifier; char* path; } module_entry;
static module_entry* gModules = NULL;
static int gModuleCount = 0;
static char** gPreloads = NULL;
static int gPreloadCount = 0;
static char* gMain = NULL;
static int gFreeze = -1; /* -1: when there are preloads */
static xsCreation gCreation;
static size_t gStaticSize = 0;

/* clock */

double host_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	double real = (double)(ts.tv_sec - gStart.tv_sec) * 1000.0 + (double)(ts.tv_nsec - gStart.tv_nsec) / 1e6;
	return real * gSpeed;
}

double host_epoch_ms(void)
{
	return gStartEpoch + host_now_ms();
}

void host_sleep_ms(double ms)
{
	if (ms > 0) {
		double real = ms / gSpeed;
		struct timespec ts = { (time_t)(real / 1000), (long)(fmod(real, 1000) * 1e6) };
		nanosleep(&ts, NULL);
	}
}

/* watched sockets */

#define MAX_WATCHES 64
static struct { int fd; host_readable readable; void* ref; } gWatches[MAX_WATCHES];
static int gWatchCount = 0;

void host_watch(int fd, host_readable readable, void* ref)
{
	if (gWatchCount >= MAX_WATCHES) {
		fprintf(stderr, "xs-host: too many sockets\n");
		exit(3);
	}
	gWatches[gWatchCount].fd = fd;
	gWatches[gWatchCount].readable = readable;
	gWatches[gWatchCount].ref = ref;
	gWatchCount++;
}

void host_unwatch(int fd)
{
	for (int i = 0; i < gWatchCount; i++) {
		if (gWatches[i].fd == fd) {
			gWatches[i] = gWatches[--gWatchCount];
			return;
		}
	}
}

/* memory: XS asks the platform for slot and chunk blocks; counted against creation.static */

typedef struct { size_t size; size_t pad; } block_header;

static void* allocate_block(txMachine* the, size_t size)
{
	block_header* h;
	if (the->allocationLimit && (the->allocatedSpace + size > the->allocationLimit))
		return NULL;
	h = malloc(sizeof(block_header) + size);
	if (!h)
		return NULL;
	h->size = size;
	the->allocatedSpace += size;
	if (the->allocatedSpace > the->peakAllocatedSpace)
		the->peakAllocatedSpace = the->allocatedSpace;
	return h + 1;
}

static void free_block(txMachine* the, void* p)
{
	if (p) {
		block_header* h = ((block_header*)p) - 1;
		the->allocatedSpace -= h->size;
		free(h);
	}
}

void* fxAllocateChunks(txMachine* the, txSize size) { return allocate_block(the, (size_t)size); }
void fxFreeChunks(txMachine* the, void* theChunks) { free_block(the, theChunks); }
txSlot* fxAllocateSlots(txMachine* the, txSize theCount) { return (txSlot*)allocate_block(the, (size_t)theCount * sizeof(txSlot)); }
void fxFreeSlots(txMachine* the, void* theSlots) { free_block(the, theSlots); }

void fxCreateMachinePlatform(txMachine* the)
{
	the->promiseJobs = 0;
	the->abortStatus = 0;
	the->allocatedSpace = 0;
	the->peakAllocatedSpace = 0;
	the->allocationLimit = gStaticSize;
}

void fxDeleteMachinePlatform(txMachine* the)
{
}

void fxQueuePromiseJobs(txMachine* the)
{
	the->promiseJobs = 1;
}

/* errors */

static void print_exception(txMachine* the, txSlot* exception)
{
	xsSlot error = *exception;
	xsTry {
		xsSlot stack = xsUndefined;
		if (xsTypeOf(error) == xsReferenceType)
			stack = xsGet(error, xsID("stack"));
		if ((xsTypeOf(stack) == xsStringType) || (xsTypeOf(stack) == xsStringXType)) {
			/* "Name: message\n at f (module:line)\n ..." */
			const char* p = xsToString(stack);
			while (*p) {
				const char* nl = strchr(p, '\n');
				int n = nl ? (int)(nl - p) : (int)strlen(p);
				fprintf(stderr, "xs-host:   %.*s\n", n, p);
				p += n + (nl ? 1 : 0);
			}
		}
		else
			fprintf(stderr, "xs-host:   %s\n", xsToString(error));
	}
	xsCatch {
		fprintf(stderr, "xs-host:   (exception not printable)\n");
	}
}

/* The JS call stack at an abort: function name and module:line of each frame, innermost first. */
static void print_backtrace(txMachine* the)
{
	txSlot* frame = the->frame;
	int depth = 0;
	while (frame && frame->next && depth < 64) {
		txSlot* environment = mxFrameToEnvironment(frame);
		txSlot* function = frame + 3;
		const char* name = "?";
		const char* path = "";
		if (function->kind == XS_REFERENCE_KIND && mxIsFunction(function->value.reference)) {
			txSlot* property = mxBehaviorGetProperty(the, function->value.reference, mxID(_name), 0, XS_OWN);
			if (property && ((property->kind == XS_STRING_KIND) || (property->kind == XS_STRING_X_KIND)))
				name = property->value.string;
		}
		if (environment->ID != XS_NO_ID)
			path = fxGetKeyName(the, environment->ID);
		fprintf(stderr, "xs-host:   at %s (%s:%d)\n", name[0] ? name : "(anonymous)", path ? path : "", (int)environment->value.environment.line);
		frame = frame->next;
		depth++;
	}
	fprintf(stderr, "xs-host:   %d frame(s) shown\n", depth);
}

void fxAbort(txMachine* the, int status)
{
	const char* why;
	switch (status) {
	case XS_STACK_OVERFLOW_EXIT: why = "stack overflow"; break;
	case XS_NOT_ENOUGH_MEMORY_EXIT: why = "memory full"; break;
	case XS_NO_MORE_KEYS_EXIT: why = "not enough keys"; break;
	case XS_UNHANDLED_EXCEPTION_EXIT: why = "unhandled exception"; break;
	case XS_UNHANDLED_REJECTION_EXIT: why = "unhandled rejection"; break;
	case XS_DEAD_STRIP_EXIT: why = "dead strip"; break;
	case XS_TOO_MUCH_COMPUTATION_EXIT: why = "too much computation"; break;
	default: why = "abort"; break;
	}
	fflush(stdout);
	if (status == XS_UNHANDLED_REJECTION_EXIT) {
		/* a device in a debug build reports it to xsbug and goes on */
		fprintf(stderr, "xs-host: unhandled rejection\n");
		print_exception(the, &mxException);
		mxException = mxUndefined;
		return;
	}
	fprintf(stderr, "xs-host: abort: %s (creation.stack %d slots, heap %d+%d slots, chunks %d+%d bytes)\n", why,
		gCreation.stackCount, gCreation.initialHeapCount, gCreation.incrementalHeapCount,
		gCreation.initialChunkSize, gCreation.incrementalChunkSize);
	fprintf(stderr, "xs-host:   stack use at the abort: %ld of %d slots; JS frames:\n", (long)(the->stackTop - the->stack), gCreation.stackCount);
	print_backtrace(the);
	if ((status == XS_UNHANDLED_EXCEPTION_EXIT) && (mxException.kind != XS_UNDEFINED_KIND))
		print_exception(the, &mxException);
	fflush(stderr);
	exit(3);
}

void host_callback_exception(xsMachine* the, const char* where)
{
	fflush(stdout);
	fprintf(stderr, "xs-host: abort: unhandled exception in %s\n", where);
	print_exception(the, &mxException);
	fflush(stderr);
	exit(3);
}

/* modules: resolved as Moddable's mc platform does (xs/platforms/mc/xsHosts.c): a specifier is a
   module name; "./" and "../" are relative to the importing module's name; ".js" is dropped. */

static const char* find_module_path(const char* specifier)
{
	for (int i = 0; i < gModuleCount; i++)
		if (!strcmp(gModules[i].specifier, specifier))
			return gModules[i].path;
	return NULL;
}

txID fxFindModule(txMachine* the, txSlot* realm, txID moduleID, txSlot* slot)
{
	char name[C_PATH_MAX];
	char buffer[C_PATH_MAX + 1];
	char* path;
	int dots = 0, skip = 0, relative;
	char* s;
	fxToStringBuffer(the, slot, name, sizeof(name));
	if ((name[0] == '.') && (name[1] == '/')) {
		dots = 1;
		skip = 1;
	}
	else if ((name[0] == '.') && (name[1] == '.') && (name[2] == '/')) {
		dots = 2;
		skip = 2;
		while ((name[skip + 1] == '.') && (name[skip + 2] == '.') && (name[skip + 3] == '/')) {
			dots++;
			skip += 3;
		}
	}
	else if (!strncmp(name, "moddable:", 9))
		memmove(name, name + 9, strlen(name) - 8);
	s = strrchr(name, '/');
	s = strrchr(s ? s : name, '.');
	if (s && (!strcmp(s, ".js") || !strcmp(s, ".mjs")))
		*s = 0;
	relative = dots > 0;
	if (dots) {
		if (moduleID == XS_NO_ID)
			return XS_NO_ID;
		buffer[0] = '/';
		snprintf(buffer + 1, sizeof(buffer) - 1, "%s", fxGetKeyName(the, moduleID));
		while (dots > 0) {
			s = strrchr(buffer, '/');
			if (!s)
				goto missing;
			*s = 0;
			dots--;
		}
		if (strlen(buffer) + strlen(name + skip) >= sizeof(buffer))
			mxRangeError("path too long");
		strcat(buffer, name + skip);
		path = buffer + 1;
	}
	else
		path = name;
	if (find_module_path(path))
		return fxNewNameC(the, path);
missing:
	fprintf(stderr, "xs-host: module \"%s\" (imported as \"%s\" by \"%s\") is not in the manifest: add it to \"modules\" or include the manifest that provides it\n",
		relative ? buffer + 1 : name, fxToString(the, slot), moduleID == XS_NO_ID ? "the host" : fxGetKeyName(the, moduleID));
	return XS_NO_ID;
}

/* `@ "name"` host functions of a module compiled here: built from the script's hosts table, by name */
static txByte* gHostsBuffer = NULL;

static txCallback lookup_host_function(const char* name)
{
	for (const host_function* f = gHostFunctions; f->name; f++)
		if (!strcmp(f->name, name))
			return f->callback;
	return NULL;
}

static void build_hosts(txMachine* the)
{
	txByte* p = gHostsBuffer;
	txID c, i, id;
	txHostFunctionBuilder* builders;
	mxDecodeID(p, c);
	builders = calloc(c ? c : 1, sizeof(txHostFunctionBuilder)); /* lives as long as the machine */
	for (i = 0; i < c; i++) {
		txS1 length = *p++;
		mxDecodeID(p, id);
		builders[i].callback = lookup_host_function((const char*)p);
		if (!builders[i].callback)
			mxReferenceError("host function \"%s\" is not provided by the xs host", (char*)p);
		builders[i].length = length;
		builders[i].id = id;
		p += strlen((char*)p) + 1;
	}
	fxBuildHosts(the, c, builders);
	mxPullSlot(mxResult);
}

static txScript* load_script(txMachine* the, const char* path)
{
	txParser _parser;
	txParser* parser = &_parser;
	txParserJump jump;
	FILE* file = NULL;
	txString name = NULL;
	txScript* script = NULL;
	fxInitializeParser(parser, the, the->parserBufferSize, the->parserTableModulo);
	parser->firstJump = &jump;
	file = fopen(path, "r");
	if (c_setjmp(jump.jmp_buf) == 0) {
		mxParserThrowElse(file);
		parser->path = fxNewParserSymbol(parser, (txString)path);
		fxParserTree(parser, file, (txGetter)fgetc, mxCFlag | mxDebugFlag, &name);
		fclose(file);
		file = NULL;
		fxParserHoist(parser);
		fxParserBind(parser);
		script = fxParserCode(parser);
	}
	if (file)
		fclose(file);
	fxTerminateParser(parser);
	return script;
}

void fxLoadModule(txMachine* the, txSlot* module, txID moduleID)
{
	const char* specifier = fxGetKeyName(the, moduleID);
	const char* path = find_module_path(specifier);
	txScript* script;
	if (!path)
		return;
	script = load_script(the, path);
	if (!script) {
		fprintf(stderr, "xs-host: module \"%s\" (%s) does not compile\n", specifier, path);
		return;
	}
	if (script->hostsBuffer) {
		gHostsBuffer = script->hostsBuffer;
		script->callback = build_hosts;
	}
	fxResolveModule(the, module, moduleID, script, C_NULL, C_NULL);
	gHostsBuffer = NULL;
}

/* jobs and the freeze */

static void run_jobs(txMachine* the)
{
	while (the->promiseJobs) {
		the->promiseJobs = 0;
		fxRunPromiseJobs(the);
	}
	fxEndJob(the);
}

static void freeze(txMachine* the, txSlot* slot)
{
	mxPush(mxObjectConstructor);
	mxDub();
	mxGetID(mxID(_freeze));
	mxCall();
	mxPushSlot(slot);
	mxRunCount(1);
	mxPop();
}

/* What the Moddable linker does after the preload phase when it links a build (xsl, when there are
   preloads or "strip"): Object.freeze of the built-in namespaces and of every built-in prototype.
   Assigning an inherited read-only property (this.name = ... in an Error subclass) then throws. */
static void freeze_builtins(txMachine* the)
{
	txSlot* slots[] = {
		&mxAtomicsObject, &mxJSONObject, &mxMathObject, &mxReflectObject,
		&mxAggregateErrorPrototype, &mxArgumentsSloppyPrototype, &mxArgumentsStrictPrototype,
		&mxArrayBufferPrototype, &mxArrayIteratorPrototype, &mxArrayPrototype, &mxAsyncFromSyncIteratorPrototype,
		&mxAsyncFunctionPrototype, &mxAsyncGeneratorFunctionPrototype, &mxAsyncGeneratorPrototype,
		&mxAsyncIteratorPrototype, &mxBigIntPrototype, &mxBooleanPrototype, &mxCompartmentPrototype,
		&mxDataViewPrototype, &mxDatePrototype, &mxErrorPrototype, &mxEvalErrorPrototype,
		&mxFinalizationRegistryPrototype, &mxFunctionPrototype, &mxGeneratorFunctionPrototype,
		&mxGeneratorPrototype, &mxHostPrototype, &mxIteratorPrototype, &mxMapIteratorPrototype,
		&mxMapPrototype, &mxModulePrototype, &mxNumberPrototype, &mxObjectPrototype, &mxPromisePrototype,
		&mxProxyPrototype, &mxRangeErrorPrototype, &mxReferenceErrorPrototype, &mxRegExpPrototype,
		&mxRegExpStringIteratorPrototype, &mxSetIteratorPrototype, &mxSetPrototype,
		&mxSharedArrayBufferPrototype, &mxStringIteratorPrototype, &mxStringPrototype, &mxSymbolPrototype,
		&mxSyntaxErrorPrototype, &mxTypedArrayPrototype, &mxTypeErrorPrototype,
		&mxURIErrorPrototype, &mxWeakMapPrototype, &mxWeakRefPrototype, &mxWeakSetPrototype,
	};
	txInteger i;
	for (i = 0; i < (txInteger)(sizeof(slots) / sizeof(slots[0])); i++)
		if (slots[i]->kind == XS_REFERENCE_KIND)
			freeze(the, slots[i]);
	mxPush(mxGlobal);
	mxGetID(mxID(_Math));
	freeze(the, the->stack);
	mxPop();
	for (i = 0; i < mxTypeArrayCount; i++) {
		mxPush(the->stackPrototypes[-1 - (txInteger)gxTypeDispatches[i].constructorID]);
		mxGetID(mxID(_prototype));
		freeze(the, the->stack);
		mxPop();
	}
	mxPush(mxEnumeratorFunction);
	mxGetID(mxID(_prototype));
	freeze(the, the->stack);
	mxPop();
	mxPush(mxArrayPrototype);
	mxGetID(mxID(_Symbol_unscopables));
	freeze(the, the->stack);
	mxPop();
}

/* stats */

/* C heap in use outside the XS machine's own blocks: mbedTLS contexts, binding and host module data */
static size_t native_bytes(txMachine* the)
{
	struct mallinfo2 info = mallinfo2();
	size_t blocks = the->allocatedSpace;
	return info.uordblks > blocks ? info.uordblks - blocks : 0;
}

static void print_stats(txMachine* the, const char* when)
{
	xsCollectGarbage();
	fflush(stdout);
	fprintf(stderr,
		"xs-host:stats {\"when\":\"%s\",\"deviceMs\":%.0f,\"slotBytes\":%d,"
		"\"slots\":%d,\"slotsPeak\":%d,\"slotsAllocated\":%d,"
		"\"chunks\":%d,\"chunksPeak\":%d,\"chunksAllocated\":%d,"
		"\"stackPeak\":%ld,\"stack\":%d,\"hostBytes\":%zu,\"hostBytesPeak\":%zu,\"nativeBytes\":%zu,\"gc\":%d}\n",
		when, host_now_ms(), (int)sizeof(txSlot),
		(int)the->currentHeapCount, (int)the->peakHeapCount, (int)the->maximumHeapCount,
		(int)the->currentChunksSize, (int)the->peakChunksSize, (int)the->maximumChunksSize,
		(long)(the->stackTop - the->stackPeak), gCreation.stackCount,
		the->allocatedSpace, the->peakAllocatedSpace, native_bytes(the), (int)the->garbageCollectionCount);
	fflush(stderr);
}

/* plan */

static char* dup_string(const char* s)
{
	char* d = malloc(strlen(s) + 1);
	strcpy(d, s);
	return d;
}

static void read_plan(const char* path)
{
	FILE* f = fopen(path, "r");
	char line[4096];
	int n;
	if (!f) {
		fprintf(stderr, "xs-host: cannot read plan %s: %s\n", path, strerror(errno));
		exit(2);
	}
	memset(&gCreation, 0, sizeof(gCreation));
	while (fgets(line, sizeof(line), f)) {
		char* tab;
		char* value;
		line[strcspn(line, "\r\n")] = 0;
		tab = strchr(line, '\t');
		if (!tab)
			continue;
		*tab = 0;
		value = tab + 1;
		if (!strcmp(line, "creation")) {
			long v[12];
			n = sscanf(value, "%ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld", &v[0], &v[1], &v[2], &v[3],
				&v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10], &v[11]);
			if (n != 12) {
				fprintf(stderr, "xs-host: bad creation line in %s\n", path);
				exit(2);
			}
			gCreation.initialChunkSize = v[0];
			gCreation.incrementalChunkSize = v[1];
			gCreation.initialHeapCount = v[2];
			gCreation.incrementalHeapCount = v[3];
			gCreation.stackCount = v[4];
			gCreation.initialKeyCount = v[5];
			gCreation.incrementalKeyCount = v[6];
			gCreation.nameModulo = v[7];
			gCreation.symbolModulo = v[8];
			gCreation.parserBufferSize = v[9];
			gCreation.parserTableModulo = v[10];
			gCreation.staticSize = 0;
			gStaticSize = (size_t)v[11];
		}
		else if (!strcmp(line, "module")) {
			char* tab2 = strchr(value, '\t');
			if (!tab2)
				continue;
			*tab2 = 0;
			gModules = realloc(gModules, sizeof(module_entry) * (gModuleCount + 1));
			gModules[gModuleCount].specifier = dup_string(value);
			gModules[gModuleCount].path = dup_string(tab2 + 1);
			gModuleCount++;
		}
		else if (!strcmp(line, "preload")) {
			gPreloads = realloc(gPreloads, sizeof(char*) * (gPreloadCount + 1));
			gPreloads[gPreloadCount++] = dup_string(value);
		}
		else if (!strcmp(line, "main"))
			gMain = dup_string(value);
		else if (!strcmp(line, "freeze"))
			gFreeze = atoi(value);
	}
	fclose(f);
	if (!gCreation.stackCount || !gMain) {
		fprintf(stderr, "xs-host: plan %s has no creation or main line\n", path);
		exit(2);
	}
}

static int import_module(txMachine* the, const char* specifier, const char* phase)
{
	int ok = 1;
	xsBeginHost(the);
	{
		xsTry {
			xsAwaitImport(specifier, XS_IMPORT_NAMESPACE);
		}
		xsCatch {
			fflush(stdout);
			fprintf(stderr, "xs-host: %s module \"%s\" failed:\n", phase, specifier);
			print_exception(the, &mxException);
			ok = 0;
		}
	}
	xsEndHost(the);
	return ok;
}

static void usage(void)
{
	fprintf(stderr, "usage: xshost [--speed N] [--duration-ms MS] [--stats-every-ms MS] [--resources DIR] [--flash DIR] [--no-trace] PLAN\n");
	exit(2);
}

int main(int argc, char* argv[])
{
	const char* plan = NULL;
	txMachine* the;
	int i;
	double nextStats = -1;
	for (i = 1; i < argc; i++) {
		const char* a = argv[i];
		if (!strcmp(a, "--speed") && (i + 1 < argc)) gSpeed = atof(argv[++i]);
		else if (!strcmp(a, "--duration-ms") && (i + 1 < argc)) gDurationMs = atof(argv[++i]);
		else if (!strcmp(a, "--stats-every-ms") && (i + 1 < argc)) gStatsEveryMs = atof(argv[++i]);
		else if (!strcmp(a, "--resources") && (i + 1 < argc)) gResourcesDir = argv[++i];
		else if (!strcmp(a, "--flash") && (i + 1 < argc)) gFlashDir = argv[++i];
		else if (!strcmp(a, "--no-trace")) gTraceEnabled = 0;
		else if (a[0] == '-') usage();
		else plan = a;
	}
	if (!plan || !(gSpeed > 0))
		usage();
	read_plan(plan);
	setvbuf(stdout, NULL, _IOLBF, 0);
	{
		struct timeval tv;
		gettimeofday(&tv, NULL);
		gStartEpoch = (double)tv.tv_sec * 1000.0 + (double)(tv.tv_usec / 1000);
		clock_gettime(CLOCK_MONOTONIC, &gStart);
	}
	the = xsCreateMachine(&gCreation, "xs-host", NULL);
	if (!the) {
		fprintf(stderr, "xs-host: cannot create the machine\n");
		return 3;
	}
	xsBeginHost(the);
	{
		host_modules_init(the);
	}
	xsEndHost(the);
	if (gStatsEveryMs > 0)
		print_stats(the, "baseline"); /* the engine alone: built-ins, that a device has in flash */

	/* preload phase, then the linker's freeze */
	for (i = 0; i < gPreloadCount; i++) {
		if (!import_module(the, gPreloads[i], "preload"))
			return 1;
		xsCollectGarbage();
	}
	run_jobs(the);
	if ((gFreeze > 0) || ((gFreeze < 0) && (gPreloadCount > 0))) {
		xsBeginHost(the);
		{
			freeze_builtins(the);
		}
		xsEndHost(the);
	}
	if (gStatsEveryMs > 0)
		print_stats(the, "preloaded");

	/* the app */
	if (!import_module(the, gMain, "main"))
		return 1;
	if (gStatsEveryMs > 0)
		nextStats = gStatsEveryMs;
	for (;;) {
		double now, next, waitMs;
		struct pollfd fds[MAX_WATCHES];
		int count, ready;
		run_jobs(the);
		now = host_now_ms();
		if ((nextStats >= 0) && (now >= nextStats)) {
			print_stats(the, "interval");
			nextStats += gStatsEveryMs;
			continue;
		}
		if ((gDurationMs >= 0) && (now >= gDurationMs))
			break;
		if (host_timers_run(the))
			continue;
		next = host_timers_next();
		if ((next < 0) && (gWatchCount == 0))
			break;
		if ((nextStats >= 0) && ((next < 0) || (nextStats < next)))
			next = nextStats;
		if ((gDurationMs >= 0) && ((next < 0) || (gDurationMs < next)))
			next = gDurationMs;
		waitMs = next < 0 ? -1 : (next - now) / gSpeed;
		count = gWatchCount;
		for (i = 0; i < count; i++) {
			fds[i].fd = gWatches[i].fd;
			fds[i].events = POLLIN;
			fds[i].revents = 0;
		}
		if (waitMs < 0 && next < 0)
			ready = ppoll(fds, count, NULL, NULL);
		else {
			struct timespec ts;
			if (waitMs < 0) waitMs = 0;
			ts.tv_sec = (time_t)(waitMs / 1000);
			ts.tv_nsec = (long)(fmod(waitMs, 1000) * 1e6);
			ready = ppoll(fds, count, &ts, NULL);
		}
		if (ready > 0) {
			for (i = 0; i < count; i++) {
				if (fds[i].revents & (POLLIN | POLLERR)) {
					int j;
					for (j = 0; j < gWatchCount; j++) {
						if (gWatches[j].fd == fds[i].fd) {
							gWatches[j].readable(gWatches[j].ref);
							run_jobs(the);
							break;
						}
					}
				}
			}
		}
	}
	print_stats(the, "end");
	fflush(stdout);
	xsDeleteMachine(the);
	return 0;
}
