/*
 * Native side of the modules the XS host provides in place of the Moddable SDK's lin modules
 * (tools/xs/host/modules/ declare them with `@ "name"`): timer, time, net, embedded:io/socket/udp,
 * embedded:io/socket/tcp,
 * flash, Resource, file, and the global trace(). Shapes follow the SDK's modules/base/timer, base/time,
 * network/net, io/socket/lin/udp, files/flash, files/resource. Plus dtls/native's functions from
 * hardware/dtls/xs_binding.c in the host function table.
 */
#include "xshost.h"
extern void _xsmcGetBuffer(xsMachine *the, xsSlot *slot, void **data, xsUnsignedValue *count, xsBooleanValue writable);
extern void* fxGetHostDataValidate(xsMachine* the, xsSlot* slot, void* validator);
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

/* trace */

static void xs_trace(xsMachine* the)
{
	xsIntegerValue i, c = xsToInteger(xsArgc);
	for (i = 0; i < c; i++) {
		const char* s = xsToString(xsArg(i));
		if (gTraceEnabled)
			fputs(s, stdout);
	}
	if (gTraceEnabled)
		fflush(stdout);
}

static void xs_date_now(xsMachine* the)
{
	xsResult = xsNumber(floor(host_epoch_ms()));
}

/* timer */

typedef struct host_timer host_timer;
struct host_timer {
	host_timer* next;
	xsMachine* the;
	xsSlot self;
	xsSlot callback;
	double when;
	double repeat;
	int scheduled;
};
static host_timer* gTimers = NULL;

static void timer_unlink(host_timer* t)
{
	host_timer** p = &gTimers;
	while (*p) {
		if (*p == t) {
			*p = t->next;
			t->next = NULL;
			return;
		}
		p = &(*p)->next;
	}
}

static void timer_destructor(void* data)
{
	host_timer* t = data;
	if (t) {
		timer_unlink(t);
		free(t);
	}
}

static void timer_mark(xsMachine* the, void* it, xsMarkRoot markRoot)
{
	host_timer* t = it;
	(*markRoot)(the, &t->callback);
}

static const xsHostHooks gTimerHooks = { timer_destructor, timer_mark, NULL };

static void timer_schedule(xsMachine* the, host_timer* t, double delay, double repeat)
{
	t->when = host_now_ms() + (delay > 0 ? delay : 0);
	t->repeat = repeat > 0 ? repeat : 0;
	if (!t->scheduled) {
		t->scheduled = 1;
		xsRemember(t->self);
		t->next = gTimers;
		gTimers = t;
	}
}

static void timer_unschedule(xsMachine* the, host_timer* t)
{
	if (t->scheduled) {
		t->scheduled = 0;
		timer_unlink(t);
		xsForget(t->self);
	}
}

static host_timer* get_timer(xsMachine* the, xsSlot* slot)
{
	host_timer* t;
	if (!xsIsInstanceOf(*slot, xsObjectPrototype))
		xsTypeError("not a timer");
	t = xsGetHostDataValidate(*slot, (void*)&gTimerHooks);
	return t;
}

static double number_arg(xsMachine* the, int i, double def)
{
	if (xsToInteger(xsArgc) <= i)
		return def;
	if (xsTypeOf(xsArg(i)) == xsUndefinedType)
		return def;
	return xsToNumber(xsArg(i));
}

static void xs_timer_set(xsMachine* the)
{
	host_timer* t = calloc(1, sizeof(host_timer));
	if (!t)
		xsUnknownError("no memory");
	t->the = the;
	t->callback = xsArg(0);
	xsResult = xsNewHostObject(timer_destructor);
	xsSetHostData(xsResult, t);
	xsSetHostHooks(xsResult, (xsHostHooks*)&gTimerHooks);
	t->self = xsResult;
	timer_schedule(the, t, number_arg(the, 1, 0), number_arg(the, 2, 0));
}

static void xs_timer_repeat(xsMachine* the)
{
	double interval = number_arg(the, 1, 0);
	host_timer* t = calloc(1, sizeof(host_timer));
	if (!t)
		xsUnknownError("no memory");
	t->the = the;
	t->callback = xsArg(0);
	xsResult = xsNewHostObject(timer_destructor);
	xsSetHostData(xsResult, t);
	xsSetHostHooks(xsResult, (xsHostHooks*)&gTimerHooks);
	t->self = xsResult;
	timer_schedule(the, t, interval, interval);
}

static void xs_timer_schedule(xsMachine* the)
{
	host_timer* t = get_timer(the, &xsArg(0));
	if (t)
		timer_schedule(the, t, number_arg(the, 1, 0), number_arg(the, 2, 0));
}

static void xs_timer_clear(xsMachine* the)
{
	host_timer* t;
	if (xsTypeOf(xsArg(0)) != xsReferenceType)
		return;
	t = get_timer(the, &xsArg(0));
	if (t)
		timer_unschedule(the, t);
}

static void xs_timer_delay(xsMachine* the)
{
	host_sleep_ms(number_arg(the, 0, 0));
}

double host_timers_next(void)
{
	double next = -1;
	for (host_timer* t = gTimers; t; t = t->next)
		if ((next < 0) || (t->when < next))
			next = t->when;
	return next;
}

int host_timers_pending(void)
{
	return gTimers != NULL;
}

int host_timers_run(xsMachine* the)
{
	double now = host_now_ms();
	host_timer* due = NULL;
	for (host_timer* t = gTimers; t; t = t->next)
		if ((t->when <= now) && (!due || (t->when < due->when)))
			due = t;
	if (!due)
		return 0;
	if (due->repeat > 0)
		due->when += due->repeat;
	else {
		/* one-shot: off the list now; remembered until the callback returned, Timer.schedule may re-arm it */
		timer_unlink(due);
	}
	xsBeginHost(the);
	{
		int oneShot = due->repeat <= 0;
		xsVars(2);
		xsVar(0) = due->self;
		xsVar(1) = due->callback;
		xsTry {
			xsCallFunction1(xsVar(1), xsUndefined, xsVar(0));
		}
		xsCatch {
			host_callback_exception(the, "a timer callback");
		}
		if (oneShot) {
			host_timer* t = xsGetHostData(xsVar(0));
			if (t && t->scheduled) {
				int relisted = 0;
				for (host_timer* u = gTimers; u; u = u->next)
					if (u == t) relisted = 1;
				if (!relisted) {
					/* not re-armed by Timer.schedule in its callback */
					t->scheduled = 0;
					xsForget(t->self);
				}
			}
		}
	}
	xsEndHost(the);
	return 1;
}

/* time */

static void xs_time_ticks(xsMachine* the)
{
	xsResult = xsNumber(floor(host_now_ms()));
}

static void xs_time_delta(xsMachine* the)
{
	double start = xsToNumber(xsArg(0));
	double end = (xsToInteger(xsArgc) > 1) ? xsToNumber(xsArg(1)) : floor(host_now_ms());
	xsResult = xsNumber(end - start);
}

/* net: name resolution (IPv4), synchronous here; the module calls back from a timer */

static void xs_host_resolve(xsMachine* the)
{
	const char* name = xsToString(xsArg(0));
	struct addrinfo hints, *res = NULL;
	char address[INET_ADDRSTRLEN];
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_INET;
	hints.ai_socktype = SOCK_DGRAM;
	if (getaddrinfo(name, NULL, &hints, &res) || !res)
		return; /* undefined: not resolved */
	inet_ntop(AF_INET, &((struct sockaddr_in*)res->ai_addr)->sin_addr, address, sizeof(address));
	freeaddrinfo(res);
	xsResult = xsString(address);
}

/* embedded:io/socket/udp (ECMA-419), after the SDK's io/socket/lin/udp.c */

#define UDP_MAX_PACKETS 8
typedef struct udp_packet udp_packet;
struct udp_packet {
	udp_packet* next;
	int port;
	char address[INET_ADDRSTRLEN];
	size_t length;
	unsigned char data[1];
};
typedef struct {
	xsMachine* the;
	int fd;
	xsSlot self;
	xsSlot onReadable;
	xsSlot onError;
	int hasOnReadable;
	int hasOnError;
	udp_packet* packets;
} host_udp;

static void udp_free_packets(host_udp* u)
{
	while (u->packets) {
		udp_packet* p = u->packets;
		u->packets = p->next;
		free(p);
	}
}

static void udp_destructor(void* data)
{
	host_udp* u = data;
	if (u) {
		if (u->fd >= 0) {
			host_unwatch(u->fd);
			close(u->fd);
		}
		udp_free_packets(u);
		free(u);
	}
}

static void udp_mark(xsMachine* the, void* it, xsMarkRoot markRoot)
{
	host_udp* u = it;
	if (u->hasOnReadable)
		(*markRoot)(the, &u->onReadable);
	if (u->hasOnError)
		(*markRoot)(the, &u->onError);
}

static const xsHostHooks gUdpHooks = { udp_destructor, udp_mark, NULL };

static void udp_readable(void* ref)
{
	host_udp* u = ref;
	xsMachine* the = u->the;
	int count = 0, received = 0;
	for (;;) {
		unsigned char buffer[2048];
		struct sockaddr_in from;
		socklen_t fromLength = sizeof(from);
		ssize_t n = recvfrom(u->fd, buffer, sizeof(buffer), MSG_DONTWAIT, (struct sockaddr*)&from, &fromLength);
		udp_packet* p;
		if (n < 0)
			break;
		p = malloc(sizeof(udp_packet) + n);
		if (!p)
			break;
		p->next = NULL;
		p->port = ntohs(from.sin_port);
		inet_ntop(AF_INET, &from.sin_addr, p->address, sizeof(p->address));
		p->length = n;
		memcpy(p->data, buffer, n);
		{
			udp_packet** q = &u->packets;
			while (*q) q = &(*q)->next;
			*q = p;
		}
		received++;
	}
	for (udp_packet* p = u->packets; p; p = p->next)
		count++;
	while (count > UDP_MAX_PACKETS) { /* the SDK drops the oldest */
		udp_packet* p = u->packets;
		u->packets = p->next;
		free(p);
		count--;
	}
	if (!received || !count || !u->hasOnReadable)
		return;
	xsBeginHost(the);
	{
		xsVars(2);
		xsVar(0) = u->self;
		xsVar(1) = u->onReadable;
		xsTry {
			xsCallFunction1(xsVar(1), xsVar(0), xsInteger(count));
		}
		xsCatch {
			host_callback_exception(the, "a UDP onReadable callback");
		}
	}
	xsEndHost(the);
}

static void xs_udp_constructor(xsMachine* the)
{
	host_udp* u;
	struct sockaddr_in address;
	int port = 0;
	xsVars(1);
	u = calloc(1, sizeof(host_udp));
	if (!u)
		xsRangeError("no memory");
	u->the = the;
	u->fd = -1;
	if (xsHas(xsArg(0), xsID("port"))) {
		port = xsToInteger(xsGet(xsArg(0), xsID("port")));
		if ((port < 0) || (port > 65535)) {
			free(u);
			xsRangeError("invalid port");
		}
	}
	xsVar(0) = xsGet(xsArg(0), xsID("onReadable"));
	if (xsTest(xsVar(0))) {
		u->onReadable = xsVar(0);
		u->hasOnReadable = 1;
	}
	xsVar(0) = xsGet(xsArg(0), xsID("onError"));
	if (xsTest(xsVar(0))) {
		u->onError = xsVar(0);
		u->hasOnError = 1;
	}
	u->fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (u->fd < 0) {
		free(u);
		xsUnknownError("no socket");
	}
	fcntl(u->fd, F_SETFL, fcntl(u->fd, F_GETFL) | O_NONBLOCK);
	memset(&address, 0, sizeof(address));
	address.sin_family = AF_INET;
	address.sin_port = htons(port);
	address.sin_addr.s_addr = htonl(INADDR_ANY);
	if (bind(u->fd, (struct sockaddr*)&address, sizeof(address))) {
		close(u->fd);
		free(u);
		xsUnknownError("bind failed");
	}
	xsSetHostData(xsThis, u);
	xsSetHostHooks(xsThis, (xsHostHooks*)&gUdpHooks);
	u->self = xsThis;
	xsRemember(u->self);
	host_watch(u->fd, udp_readable, u);
}

static host_udp* get_udp(xsMachine* the)
{
	return xsGetHostDataValidate(xsThis, (void*)&gUdpHooks);
}

static void xs_udp_close(xsMachine* the)
{
	host_udp* u = xsGetHostData(xsThis);
	if (!u)
		return;
	get_udp(the);
	xsForget(u->self);
	xsSetHostData(xsThis, NULL);
	udp_destructor(u);
}

static void xs_udp_read(xsMachine* the)
{
	host_udp* u = get_udp(the);
	udp_packet* p;
	if (!u || !u->packets)
		return;
	p = u->packets;
	u->packets = p->next;
	xsVars(1);
	xsResult = xsArrayBuffer(p->data, (xsIntegerValue)p->length);
	xsSet(xsResult, xsID("port"), xsInteger(p->port));
	xsSet(xsResult, xsID("address"), xsString(p->address));
	free(p);
}

static void xs_udp_write(xsMachine* the)
{
	host_udp* u = get_udp(the);
	void* data;
	xsUnsignedValue length;
	struct sockaddr_in to;
	if (!u)
		xsUnknownError("write to closed socket");
	_xsmcGetBuffer(the, &xsArg(0), &data, &length, 0);
	memset(&to, 0, sizeof(to));
	to.sin_family = AF_INET;
	if (inet_pton(AF_INET, xsToString(xsArg(1)), &to.sin_addr) != 1)
		xsRangeError("invalid address");
	to.sin_port = htons(xsToInteger(xsArg(2)));
	if (sendto(u->fd, data, length, 0, (struct sockaddr*)&to, sizeof(to)) < 0)
		xsUnknownError("sendto failed");
}

/* embedded:io/socket/tcp (ECMA-419), after the SDK's io/socket/lin/tcp.c: the native socket under
   modules/tcp.js. Connects at once (loopback), receives into a buffer (4 KB); onReadable(count)
   from the loop, onError on a refused connect (the JS side asks `connected`), on EOF or a reset once
   the bytes received were read. */

/* More than lin's 1536 (ESP32's lwip socket hands over whole pbuf chains): a TLS record larger than
   DTLS_STREAM_FEED_MAX then reaches xs_binding.c in one piece, as it can on a device. */
#define TCP_BUFFER 4096
typedef struct {
	xsMachine* the;
	int fd;
	int connected;
	int eof;
	int watched;
	xsSlot self;
	xsSlot onReadable;
	xsSlot onError;
	size_t count;
	unsigned char buffer[TCP_BUFFER];
} host_tcp;

static void tcp_destructor(void* data)
{
	host_tcp* t = data;
	if (t) {
		if (t->fd >= 0) {
			if (t->watched)
				host_unwatch(t->fd);
			close(t->fd);
		}
		free(t);
	}
}

static void tcp_mark(xsMachine* the, void* it, xsMarkRoot markRoot)
{
	host_tcp* t = it;
	(*markRoot)(the, &t->onReadable);
	(*markRoot)(the, &t->onError);
}

static const xsHostHooks gTcpHooks = { tcp_destructor, tcp_mark, NULL };

static void tcp_call(host_tcp* t, int error)
{
	xsMachine* the = t->the;
	xsBeginHost(the);
	{
		xsVars(2);
		xsVar(0) = t->self;
		xsVar(1) = error ? t->onError : t->onReadable;
		xsTry {
			if (error)
				xsCallFunction0(xsVar(1), xsVar(0));
			else
				xsCallFunction1(xsVar(1), xsVar(0), xsInteger((xsIntegerValue)t->count));
		}
		xsCatch {
			host_callback_exception(the, error ? "a TCP onError callback" : "a TCP onReadable callback");
		}
	}
	xsEndHost(the);
}

static void tcp_readable(void* ref)
{
	host_tcp* t = ref;
	if (t->count < TCP_BUFFER) {
		ssize_t n = recv(t->fd, t->buffer + t->count, TCP_BUFFER - t->count, MSG_DONTWAIT);
		if (n > 0)
			t->count += (size_t)n;
		else if ((n == 0) || ((errno != EAGAIN) && (errno != EWOULDBLOCK)))
			t->eof = 1;
	}
	if (t->count) {
		tcp_call(t, 0); /* may close the socket: t is freed then */
		return;
	}
	if (t->eof) {
		/* the bytes before the end were read: report it once (EOF stays readable: stop polling) */
		host_unwatch(t->fd);
		t->watched = 0;
		tcp_call(t, 1);
	}
}

static void xs_tcp_constructor(xsMachine* the)
{
	host_tcp* t;
	struct sockaddr_in address;
	int port, one = 1;
	xsVars(1);
	memset(&address, 0, sizeof(address));
	address.sin_family = AF_INET;
	if (inet_pton(AF_INET, xsToString(xsGet(xsArg(0), xsID("address"))), &address.sin_addr) != 1)
		xsUnknownError("invalid address");
	port = xsToInteger(xsGet(xsArg(0), xsID("port")));
	if ((port <= 0) || (port > 65535))
		xsRangeError("invalid port");
	address.sin_port = htons(port);
	t = calloc(1, sizeof(host_tcp));
	if (!t)
		xsRangeError("no memory");
	t->the = the;
	t->onReadable = xsGet(xsArg(0), xsID("onReadable"));
	t->onError = xsGet(xsArg(0), xsID("onError"));
	t->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (t->fd < 0) {
		free(t);
		xsUnknownError("no socket");
	}
	setsockopt(t->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	t->connected = connect(t->fd, (struct sockaddr*)&address, sizeof(address)) == 0;
	fcntl(t->fd, F_SETFL, fcntl(t->fd, F_GETFL) | O_NONBLOCK);
	xsSetHostData(xsThis, t);
	xsSetHostHooks(xsThis, (xsHostHooks*)&gTcpHooks);
	t->self = xsThis;
	xsRemember(t->self);
	if (t->connected) {
		host_watch(t->fd, tcp_readable, t);
		t->watched = 1;
	}
}

static host_tcp* get_tcp(xsMachine* the)
{
	host_tcp* t = xsGetHostData(xsThis);
	if (!t)
		xsUnknownError("closed socket");
	return xsGetHostDataValidate(xsThis, (void*)&gTcpHooks);
}

static void xs_tcp_close(xsMachine* the)
{
	host_tcp* t = xsGetHostData(xsThis);
	if (!t)
		return;
	get_tcp(the);
	xsForget(t->self);
	xsSetHostData(xsThis, NULL);
	tcp_destructor(t);
}

static void xs_tcp_read(xsMachine* the)
{
	host_tcp* t = get_tcp(the);
	if (!t->count)
		return;
	xsResult = xsArrayBuffer(t->buffer, (xsIntegerValue)t->count);
	t->count = 0;
}

static void xs_tcp_write(xsMachine* the)
{
	host_tcp* t = get_tcp(the);
	void* data;
	xsUnsignedValue length;
	size_t sent = 0;
	_xsmcGetBuffer(the, &xsArg(0), &data, &length, 0);
	while (sent < length) {
		ssize_t n = send(t->fd, (unsigned char*)data + sent, length - sent, MSG_NOSIGNAL);
		if (n < 0) {
			if ((errno == EAGAIN) || (errno == EWOULDBLOCK)) {
				host_sleep_ms(0);
				continue;
			}
			xsUnknownError("write failed");
		}
		sent += (size_t)n;
	}
}

static void xs_tcp_get_connected(xsMachine* the)
{
	host_tcp* t = get_tcp(the);
	xsResult = xsBoolean(t->connected);
}

/* flash: a partition as an image file <flash dir>/<partition>.bin (NOR semantics: write clears bits) */

#define FLASH_SIZE (64 * 1024)
#define FLASH_BLOCK 4096
typedef struct {
	char path[512];
	unsigned char* data;
	size_t size;
} host_flash;

static void flash_destructor(void* data)
{
	host_flash* f = data;
	if (f) {
		free(f->data);
		free(f);
	}
}

static void flash_save(xsMachine* the, host_flash* f, size_t offset, size_t length)
{
	FILE* file = fopen(f->path, "r+b");
	if (!file)
		file = fopen(f->path, "w+b");
	if (!file)
		xsUnknownError("flash image not writable");
	if (offset == 0 && length == f->size)
		fwrite(f->data, 1, f->size, file);
	else {
		fseek(file, (long)offset, SEEK_SET);
		fwrite(f->data + offset, 1, length, file);
	}
	fclose(file);
}

static void xs_flash(xsMachine* the)
{
	const char* partition;
	host_flash* f;
	FILE* file;
	xsVars(1);
	if (xsTypeOf(xsArg(0)) == xsReferenceType)
		xsVar(0) = xsGet(xsArg(0), xsID("partition"));
	else
		xsVar(0) = xsArg(0);
	partition = xsToString(xsVar(0));
	if (!partition[0] || strchr(partition, '/'))
		xsUnknownError("partition not found");
	f = calloc(1, sizeof(host_flash));
	if (!f)
		xsUnknownError("no memory");
	snprintf(f->path, sizeof(f->path), "%s/%s.bin", gFlashDir, partition);
	f->size = FLASH_SIZE;
	f->data = malloc(f->size);
	if (!f->data) {
		free(f);
		xsUnknownError("no memory");
	}
	memset(f->data, 0xFF, f->size);
	file = fopen(f->path, "rb");
	if (file) {
		size_t n = fread(f->data, 1, f->size, file);
		(void)n;
		fclose(file);
	}
	else
		flash_save(the, f, 0, f->size);
	xsSetHostData(xsThis, f);
}

static host_flash* get_flash(xsMachine* the)
{
	host_flash* f = xsGetHostData(xsThis);
	if (!f)
		xsUnknownError("flash closed");
	return f;
}

static void check_range(xsMachine* the, host_flash* f, double offset, double length)
{
	if ((offset < 0) || (length < 0) || (offset + length > (double)f->size))
		xsRangeError("out of range");
}

static void xs_flash_read(xsMachine* the)
{
	host_flash* f = get_flash(the);
	double offset = xsToNumber(xsArg(0)), length = xsToNumber(xsArg(1));
	check_range(the, f, offset, length);
	xsResult = xsArrayBuffer(f->data + (size_t)offset, (xsIntegerValue)length);
}

static void xs_flash_write(xsMachine* the)
{
	host_flash* f = get_flash(the);
	double offset = xsToNumber(xsArg(0)), length = xsToNumber(xsArg(1));
	void* data;
	xsUnsignedValue available;
	size_t i;
	check_range(the, f, offset, length);
	_xsmcGetBuffer(the, &xsArg(2), &data, &available, 0);
	if (available < length)
		xsRangeError("buffer too small");
	for (i = 0; i < (size_t)length; i++)
		f->data[(size_t)offset + i] &= ((unsigned char*)data)[i];
	flash_save(the, f, (size_t)offset, (size_t)length);
}

static void xs_flash_erase(xsMachine* the)
{
	host_flash* f = get_flash(the);
	int sector = xsToInteger(xsArg(0));
	if ((sector < 0) || ((size_t)(sector + 1) * FLASH_BLOCK > f->size))
		xsRangeError("invalid sector");
	memset(f->data + (size_t)sector * FLASH_BLOCK, 0xFF, FLASH_BLOCK);
	flash_save(the, f, (size_t)sector * FLASH_BLOCK, FLASH_BLOCK);
}

static void xs_flash_byteLength(xsMachine* the)
{
	xsResult = xsInteger((xsIntegerValue)get_flash(the)->size);
}

static void xs_flash_blockSize(xsMachine* the)
{
	get_flash(the);
	xsResult = xsInteger(FLASH_BLOCK);
}

/* Resource: files in the resources directory (a device has them in flash) */

static int resource_path(const char* name, char* path, size_t size)
{
	if (!name[0] || strstr(name, ".."))
		return 0;
	snprintf(path, size, "%s/%s", gResourcesDir, name);
	return 1;
}

static void xs_host_resource_read(xsMachine* the)
{
	char path[1024];
	FILE* file;
	long length;
	if (!resource_path(xsToString(xsArg(0)), path, sizeof(path)))
		return;
	file = fopen(path, "rb");
	if (!file)
		return;
	fseek(file, 0, SEEK_END);
	length = ftell(file);
	fseek(file, 0, SEEK_SET);
	xsResult = xsArrayBuffer(NULL, (xsIntegerValue)length);
	if (fread(xsToArrayBuffer(xsResult), 1, length, file) != (size_t)length) {
		fclose(file);
		xsUnknownError("cannot read resource");
	}
	fclose(file);
}

static void xs_host_resource_exists(xsMachine* the)
{
	char path[1024];
	const char* name = xsToString(xsArg(0));
	int found = resource_path(name, path, sizeof(path)) && (access(path, R_OK) == 0);
	xsResult = xsBoolean(found);
}

/* file (the SDK's modules/files/file/lin/modFile.c semantics) */

#include <sys/stat.h>

static void file_destructor(void* data)
{
	if (data)
		fclose((FILE*)data);
}

static FILE* get_file(xsMachine* the)
{
	FILE* file = xsGetHostData(xsThis);
	if (!file)
		xsUnknownError("file closed");
	return file;
}

static void xs_File(xsMachine* the)
{
	int write = (xsToInteger(xsArgc) > 1) && xsTest(xsArg(1));
	const char* path = xsToString(xsArg(0));
	FILE* file = fopen(path, write ? "rb+" : "rb");
	if (!file && write)
		file = fopen(path, "wb+");
	if (!file)
		xsUnknownError("file not found");
	xsSetHostData(xsThis, file);
}

static void xs_file_read(xsMachine* the)
{
	FILE* file = get_file(the);
	long count = (xsToInteger(xsArgc) < 2) ? -1 : xsToInteger(xsArg(1));
	long position = ftell(file);
	struct stat st;
	void* dst;
	fstat(fileno(file), &st);
	if ((count < 0) || (st.st_size < position + count)) {
		if (position >= st.st_size)
			xsUnknownError("read past end of file");
		count = st.st_size - position;
	}
	xsVars(1);
	xsVar(0) = xsGet(xsGlobal, xsID("String"));
	if (xsTypeOf(xsArg(0)) == xsReferenceType && xsArg(0).value.reference == xsVar(0).value.reference) { /* String */
		char* buffer = malloc(count + 1);
		if (!buffer)
			xsUnknownError("no memory");
		if (fread(buffer, 1, count, file) != (size_t)count) {
			free(buffer);
			xsUnknownError("file read failed");
		}
		buffer[count] = 0;
		xsResult = xsString(buffer);
		free(buffer);
		return;
	}
	xsResult = xsArrayBuffer(NULL, (xsIntegerValue)count);
	dst = xsToArrayBuffer(xsResult);
	if (fread(dst, 1, count, file) != (size_t)count)
		xsUnknownError("file read failed");
}

static void xs_file_write(xsMachine* the)
{
	FILE* file = get_file(the);
	xsIntegerValue i, c = xsToInteger(xsArgc);
	for (i = 0; i < c; i++) {
		int type = xsTypeOf(xsArg(i));
		const void* src;
		size_t length;
		unsigned char byte;
		if ((type == xsStringType) || (type == xsStringXType)) {
			src = xsToString(xsArg(i));
			length = strlen(src);
		}
		else if ((type == xsIntegerType) || (type == xsNumberType)) {
			byte = (unsigned char)xsToInteger(xsArg(i));
			src = &byte;
			length = 1;
		}
		else {
			src = xsToArrayBuffer(xsArg(i)); /* an ArrayBuffer, as on the SDK's lin (a typed array throws) */
			length = xsGetArrayBufferLength(xsArg(i));
		}
		if (fwrite(src, 1, length, file) != length)
			xsUnknownError("file write failed");
	}
	if (fflush(file))
		xsUnknownError("file flush failed");
}

static void xs_file_close(xsMachine* the)
{
	FILE* file = get_file(the);
	fclose(file);
	xsSetHostData(xsThis, NULL);
}

static void xs_file_get_length(xsMachine* the)
{
	struct stat st;
	fstat(fileno(get_file(the)), &st);
	xsResult = xsInteger((xsIntegerValue)st.st_size);
}

static void xs_file_get_position(xsMachine* the)
{
	xsResult = xsInteger((xsIntegerValue)ftell(get_file(the)));
}

static void xs_file_set_position(xsMachine* the)
{
	fseek(get_file(the), xsToInteger(xsArg(0)), SEEK_SET);
}

static void xs_file_delete(xsMachine* the)
{
	int ok = unlink(xsToString(xsArg(0))) == 0;
	xsResult = xsBoolean(ok);
}

static void xs_file_exists(xsMachine* the)
{
	struct stat st;
	int found = stat(xsToString(xsArg(0)), &st) == 0;
	xsResult = xsBoolean(found);
}

static void xs_file_rename(xsMachine* the)
{
	char from[1024], to[2048];
	int ok;
	snprintf(from, sizeof(from), "%s", xsToString(xsArg(0)));
	snprintf(to, sizeof(to), "%s", xsToString(xsArg(1)));
	if (to[0] != '/') { /* a bare name renames within the same directory */
		char* slash = strrchr(from, '/');
		char name[1024];
		if (!slash || strchr(to, '/') || strlen(to) >= sizeof(name))
			xsUnknownError("invalid to");
		memcpy(name, to, strlen(to) + 1);
		snprintf(to, sizeof(to), "%.*s%s", (int)(slash - from + 1), from, name);
	}
	ok = rename(from, to) == 0;
	xsResult = xsBoolean(ok);
}

static void xs_directory_create(xsMachine* the)
{
	if (mkdir(xsToString(xsArg(0)), 0755) && (errno != EEXIST))
		xsUnknownError("failed");
}

static void xs_directory_delete(xsMachine* the)
{
	if (rmdir(xsToString(xsArg(0))) && (errno != ENOENT))
		xsUnknownError("failed");
}

/* setup before the preload phase */

void host_modules_init(xsMachine* the)
{
	xsVars(2);
	xsVar(0) = xsNewHostFunction(xs_trace, 1);
	xsDefine(xsGlobal, xsID("trace"), xsVar(0), xsDontEnum);
	xsVar(0) = xsGet(xsGlobal, xsID("Date"));
	xsVar(1) = xsNewHostFunction(xs_date_now, 0);
	xsDefine(xsVar(0), xsID("now"), xsVar(1), xsDontEnum);
}

/* host functions by name */

extern void xs_dtls_destructor(void*);
extern void xs_dtls(xsMachine*);
extern void xs_dtls_step(xsMachine*);
extern void xs_dtls_feed(xsMachine*);
extern void xs_dtls_read(xsMachine*);
extern void xs_dtls_write(xsMachine*);
extern void xs_dtls_timer_ms(xsMachine*);
extern void xs_dtls_get_timer_generation(xsMachine*);
extern void xs_dtls_timer_expired(xsMachine*);
extern void xs_dtls_save_session(xsMachine*);
extern void xs_dtls_save_context(xsMachine*);
extern void xs_dtls_get_restored(xsMachine*);
extern void xs_dtls_peer_certificate(xsMachine*);
extern void xs_dtls_close(xsMachine*);
extern void xs_dtls_destroy(xsMachine*);
extern void xs_dtls_get_state(xsMachine*);
extern void xs_dtls_get_resumed(xsMachine*);
extern void xs_dtls_get_cid_available(xsMachine*);
extern void xs_dtls_get_cid_in_use(xsMachine*);
extern void xs_dtls_get_max_payload(xsMachine*);
extern void xs_dtls_get_ciphersuite(xsMachine*);

#define HOST(name) { #name, (void (*)(xsMachine*))name }
const host_function gHostFunctions[] = {
	HOST(xs_timer_set), HOST(xs_timer_repeat), HOST(xs_timer_schedule), HOST(xs_timer_clear), HOST(xs_timer_delay),
	HOST(xs_time_ticks), HOST(xs_time_delta),
	HOST(xs_host_resolve),
	HOST(udp_destructor), HOST(xs_udp_constructor), HOST(xs_udp_close), HOST(xs_udp_read), HOST(xs_udp_write),
	HOST(tcp_destructor), HOST(xs_tcp_constructor), HOST(xs_tcp_close), HOST(xs_tcp_read), HOST(xs_tcp_write),
	HOST(xs_tcp_get_connected),
	HOST(flash_destructor), HOST(xs_flash), HOST(xs_flash_read), HOST(xs_flash_write), HOST(xs_flash_erase),
	HOST(xs_flash_byteLength), HOST(xs_flash_blockSize),
	HOST(xs_host_resource_read), HOST(xs_host_resource_exists),
	{ "xs_file_destructor", (void (*)(xsMachine*))file_destructor }, HOST(xs_File), HOST(xs_file_read), HOST(xs_file_write),
	HOST(xs_file_close), HOST(xs_file_get_length), HOST(xs_file_get_position), HOST(xs_file_set_position),
	HOST(xs_file_delete), HOST(xs_file_exists), HOST(xs_file_rename), HOST(xs_directory_create), HOST(xs_directory_delete),
	HOST(xs_dtls_destructor), HOST(xs_dtls), HOST(xs_dtls_step), HOST(xs_dtls_feed), HOST(xs_dtls_read),
	HOST(xs_dtls_write), HOST(xs_dtls_timer_ms), HOST(xs_dtls_get_timer_generation), HOST(xs_dtls_timer_expired),
	HOST(xs_dtls_save_session), HOST(xs_dtls_peer_certificate), HOST(xs_dtls_close), HOST(xs_dtls_destroy),
	HOST(xs_dtls_get_state), HOST(xs_dtls_get_resumed), HOST(xs_dtls_get_cid_available),
	HOST(xs_dtls_get_cid_in_use), HOST(xs_dtls_get_max_payload), HOST(xs_dtls_get_ciphersuite),
	HOST(xs_dtls_save_context), HOST(xs_dtls_get_restored),
	{ NULL, NULL }
};
