/*
 * resolve.c - the edge's stub resolver (resolve.h): one UDP socket per
 * round, connected to the server asked (the kernel drops datagrams from
 * anyone else), the A and AAAA queries sent together, the round done when
 * both replies are in.
 */
#include "edge/resolve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/log.h"
#include "core/util.h"
#include "dns/wire.h"

#define RESOLVE_TIMEOUT_MS 1000  /* one server's time to answer a round */
#define RESOLVE_RETRY_MS 1000    /* after every server failed */
#define RESOLVE_TTL_MIN 1
#define RESOLVE_TTL_MAX 300
#define RESOLVE_NEG_TTL 30       /* NODATA / NXDOMAIN */
#define RESOLVE_UDP_SIZE 1232    /* the DNS flag day 2020's EDNS buffer size */
#define RESOLVE_RRS_MAX 64       /* answer records looked at */
#define RESOLVE_CNAMES_MAX 8

static void put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static unsigned get16(const uint8_t *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

int edge_resolve_query(uint8_t *out, size_t cap, uint16_t id, const char *name, uint16_t qtype, int ecs_family,
		       const uint8_t ecs_addr[16], int ecs_prefix)
{
	dns_name qn;
	if (dns_name_from_text(name, &qn) != 0)
		return -1;
	bool ecs = (ecs_family == 1 && ecs_prefix >= 0 && ecs_prefix <= 32) ||
		   (ecs_family == 2 && ecs_prefix >= 0 && ecs_prefix <= 128);
	size_t addr_bytes = ecs ? (size_t)(ecs_prefix + 7) / 8 : 0;
	size_t opt_rdlen = ecs ? 4 + 4 + addr_bytes : 0;
	size_t need = DNS_HEADER_BYTES + qn.len + 4 + 11 + opt_rdlen;
	if (need > cap)
		return -1;
	uint8_t *p = out;
	put16(p, id);
	put16(p + 2, 0);  /* a query, RD clear: the server is authoritative */
	put16(p + 4, 1);  /* one question */
	put16(p + 6, 0);
	put16(p + 8, 0);
	put16(p + 10, 1); /* the OPT record */
	p += DNS_HEADER_BYTES;
	memcpy(p, qn.wire, qn.len);
	p += qn.len;
	put16(p, qtype);
	put16(p + 2, DNS_C_IN);
	p += 4;
	*p++ = 0; /* OPT: the root's name */
	put16(p, DNS_T_OPT);
	put16(p + 2, RESOLVE_UDP_SIZE);
	memset(p + 4, 0, 4); /* extended rcode, version 0, no flags */
	put16(p + 8, (unsigned)opt_rdlen);
	p += 10;
	if (ecs) {
		put16(p, 8); /* EDNS Client Subnet (RFC 7871 6) */
		put16(p + 2, (unsigned)(4 + addr_bytes));
		put16(p + 4, (unsigned)ecs_family);
		p[6] = (uint8_t)ecs_prefix;
		p[7] = 0; /* scope: 0 in queries */
		p += 8;
		memcpy(p, ecs_addr, addr_bytes);
		if (ecs_prefix % 8) /* the bits past the prefix: zero (RFC 7871 6) */
			p[addr_bytes - 1] &= (uint8_t)(0xff00u >> (ecs_prefix % 8));
		p += addr_bytes;
	}
	return (int)(p - out);
}

typedef struct rr {
	dns_name owner;
	uint16_t type;
	uint32_t ttl;
	size_t rdata, rdlen;
} rr;

int edge_resolve_reply(const uint8_t *msg, size_t len, uint16_t id, const char *name, uint16_t qtype,
		       char addrs[][EDGE_RESOLVE_ADDR_TEXT], int max, int *n, uint32_t *ttl)
{
	*n = 0;
	*ttl = RESOLVE_NEG_TTL;
	dns_name want;
	if (len < DNS_HEADER_BYTES || dns_name_from_text(name, &want) != 0)
		return -1;
	unsigned flags = get16(msg + 2);
	if (get16(msg) != id || !(flags & DNS_F_QR) || DNS_OPCODE(flags) != 0 || get16(msg + 4) != 1)
		return -1;
	size_t off = DNS_HEADER_BYTES;
	dns_name q;
	if (dns_name_read(msg, len, &off, &q) != 0 || off + 4 > len || !dns_name_equal(&q, &want) ||
	    get16(msg + off) != qtype || get16(msg + off + 2) != DNS_C_IN)
		return -1;
	off += 4;
	unsigned rcode = flags & 0xfu;
	if (rcode == DNS_R_NXDOMAIN)
		return 0;
	if (rcode != DNS_R_NOERROR)
		return -2;
	static _Thread_local rr rrs[RESOLVE_RRS_MAX];
	unsigned count = get16(msg + 6);
	int nrr = 0;
	for (unsigned i = 0; i < count; i++) {
		rr r;
		if (dns_name_read(msg, len, &off, &r.owner) != 0 || off + 10 > len)
			return -1;
		r.type = (uint16_t)get16(msg + off);
		unsigned cls = get16(msg + off + 2);
		r.ttl = (uint32_t)get16(msg + off + 4) << 16 | get16(msg + off + 6);
		r.rdlen = get16(msg + off + 8);
		r.rdata = off + 10;
		if (r.rdata + r.rdlen > len)
			return -1;
		off = r.rdata + r.rdlen;
		if (cls == DNS_C_IN && nrr < RESOLVE_RRS_MAX)
			rrs[nrr++] = r;
	}
	/* follow a CNAME chain inside the answer from the question's name */
	dns_name target = want;
	for (int hops = 0; hops < RESOLVE_CNAMES_MAX; hops++) {
		bool moved = false;
		for (int i = 0; i < nrr && !moved; i++)
			if (rrs[i].type == DNS_T_CNAME && dns_name_equal(&rrs[i].owner, &target)) {
				size_t at = rrs[i].rdata;
				if (dns_name_read(msg, len, &at, &target) != 0 || at != rrs[i].rdata + rrs[i].rdlen)
					return -1;
				moved = true;
			}
		if (!moved)
			break;
	}
	uint32_t least = UINT32_MAX;
	for (int i = 0; i < nrr; i++) {
		const rr *r = &rrs[i];
		if (r->type != qtype || !dns_name_equal(&r->owner, &target))
			continue;
		size_t want_len = qtype == DNS_T_A ? 4 : qtype == DNS_T_AAAA ? 16 : 0;
		if (!want_len || r->rdlen != want_len)
			return -1;
		if (*n < max &&
		    inet_ntop(qtype == DNS_T_A ? AF_INET : AF_INET6, msg + r->rdata, addrs[*n], EDGE_RESOLVE_ADDR_TEXT))
			(*n)++;
		if (r->ttl < least)
			least = r->ttl;
	}
	if (*n)
		*ttl = least;
	return 0;
}

/* --- the resolver --- */

static const uint16_t qtypes[2] = {DNS_T_A, DNS_T_AAAA};

struct edge_resolver {
	struct event_base *base;
	const edge_conf *ec;
	edge_resolve_cb cb;
	void *arg;
	int server;          /* the one asked in this round */
	int failed;          /* servers that failed this round */
	int fd;
	struct event *read_ev, *timer;
	uint16_t ids[2];
	bool got[2];
	char addrs[EDGE_RESOLVE_MAX_ADDRS][EDGE_RESOLVE_ADDR_TEXT];
	int naddrs;
	uint32_t ttl;
	bool warned;
};

static void schedule(edge_resolver *r, int ms)
{
	struct timeval tv = util_timeval_ms(ms);
	evtimer_add(r->timer, &tv);
}

static void close_socket(edge_resolver *r)
{
	if (r->read_ev) {
		event_free(r->read_ev);
		r->read_ev = NULL;
	}
	if (r->fd >= 0) {
		close(r->fd);
		r->fd = -1;
	}
}

static void on_read(evutil_socket_t fd, short what, void *arg);

/* Send this round's two queries to r->server. 0 or -1. */
static int ask(edge_resolver *r)
{
	close_socket(r);
	char host[128];
	int port;
	struct sockaddr_storage ss;
	socklen_t sl;
	memset(&ss, 0, sizeof ss);
	if (util_split_hostport(r->ec->resolvers[r->server], host, sizeof host, &port) != 0)
		return -1;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		sl = sizeof *s4;
	} else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		sl = sizeof *s6;
	} else {
		return -1;
	}
	r->fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (r->fd < 0 || connect(r->fd, (struct sockaddr *)&ss, sl) != 0)
		return -1;
	r->read_ev = event_new(r->base, r->fd, EV_READ | EV_PERSIST, on_read, r);
	if (!r->read_ev || event_add(r->read_ev, NULL) != 0)
		return -1;
	r->naddrs = 0;
	r->ttl = RESOLVE_TTL_MAX;
	for (int i = 0; i < 2; i++) {
		uint8_t q[512];
		util_random(&r->ids[i], sizeof r->ids[i]);
		r->got[i] = false;
		int n = edge_resolve_query(q, sizeof q, r->ids[i], r->ec->resolve, qtypes[i], r->ec->ecs_family,
					   r->ec->ecs_addr, r->ec->ecs_prefix);
		if (n < 0 || send(r->fd, q, (size_t)n, 0) != n)
			return -1;
	}
	schedule(r, RESOLVE_TIMEOUT_MS);
	return 0;
}

/* This server failed the round: the next one, or wait and start over. */
static void next_server(edge_resolver *r, const char *why)
{
	if (!r->warned)
		log_warn("edge %s: resolving %s at %s: %s", r->ec->name, r->ec->resolve, r->ec->resolvers[r->server],
			 why);
	/* the next servers in turn, until one can be asked (a send that fails
	 * at once counts as that server failing) */
	while (++r->failed < r->ec->nresolvers) {
		r->server = (r->server + 1) % r->ec->nresolvers;
		if (ask(r) == 0)
			return;
	}
	r->server = (r->server + 1) % r->ec->nresolvers;
	if (!r->warned)
		log_warn("edge %s: no server answered for %s: keeping the origins' order, asking again in %d ms",
			 r->ec->name, r->ec->resolve, RESOLVE_RETRY_MS);
	r->warned = true;
	close_socket(r);
	r->failed = 0;
	schedule(r, RESOLVE_RETRY_MS);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	edge_resolver *r = arg;
	uint8_t msg[4096];
	for (;;) {
		ssize_t len = recv(fd, msg, sizeof msg, 0);
		if (len < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return;
			next_server(r, strerror(errno)); /* e.g. ECONNREFUSED: nothing listens there */
			return;
		}
		for (int i = 0; i < 2; i++) {
			if (r->got[i])
				continue;
			int n;
			uint32_t ttl;
			int rc = edge_resolve_reply(msg, (size_t)len, r->ids[i], r->ec->resolve, qtypes[i],
						    r->addrs + r->naddrs, EDGE_RESOLVE_MAX_ADDRS - r->naddrs, &n, &ttl);
			if (rc == -1)
				continue; /* not this query's reply */
			if (rc == -2) {
				next_server(r, "the server answered an error");
				return;
			}
			r->got[i] = true;
			r->naddrs += n;
			if (n && ttl < r->ttl) /* a type with no address (NODATA) does not shorten the answer's TTL */
				r->ttl = ttl;
		}
		if (r->got[0] && r->got[1]) {
			close_socket(r);
			if (r->warned)
				log_info("edge %s: %s resolves again", r->ec->name, r->ec->resolve);
			r->warned = false;
			r->failed = 0;
			uint32_t ttl = !r->naddrs ? RESOLVE_NEG_TTL
				       : r->ttl < RESOLVE_TTL_MIN ? RESOLVE_TTL_MIN
				       : r->ttl > RESOLVE_TTL_MAX ? RESOLVE_TTL_MAX
								  : r->ttl;
			r->cb(r->arg, (const char(*)[EDGE_RESOLVE_ADDR_TEXT])r->addrs, r->naddrs, ttl);
			schedule(r, (int)ttl * 1000);
			return;
		}
	}
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	edge_resolver *r = arg;
	if (r->fd >= 0) { /* the round in progress timed out */
		next_server(r, "no answer within 1 s");
		return;
	}
	if (ask(r) != 0)
		next_server(r, "cannot send the query");
}

edge_resolver *edge_resolver_new(struct event_base *base, const edge_conf *ec, edge_resolve_cb cb, void *arg)
{
	if (!ec->resolve[0] || ec->nresolvers <= 0)
		return NULL;
	edge_resolver *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->base = base;
	r->ec = ec;
	r->cb = cb;
	r->arg = arg;
	r->fd = -1;
	r->timer = evtimer_new(base, on_timer, r);
	if (!r->timer) {
		free(r);
		return NULL;
	}
	schedule(r, 0);
	return r;
}

void edge_resolver_free(edge_resolver **rp)
{
	edge_resolver *r = *rp;
	if (!r)
		return;
	close_socket(r);
	event_free(r->timer);
	free(r);
	*rp = NULL;
}
