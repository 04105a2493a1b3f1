/*
 * server.h - `tandem dns`: an authoritative DNS server for the zones of the
 * deployment's config, over UDP and TCP on every `listen` address of its
 * [dns NAME] section.
 *
 * Threads: `threads` of them, each with its own event loop and its own UDP
 * socket and TCP listener on every address (SO_REUSEPORT: the kernel
 * spreads queries over them); the zones are read-only after loading, so the
 * answer path takes no lock.
 *
 * UDP: one datagram, one answer of at most the client's EDNS size (bounded
 * to 1232, RFC 9715's advice; 512 without EDNS), TC when it does not fit.
 * TCP (RFC 7766): 2-byte length-prefixed messages, pipelined; at most
 * 256 connections per thread, 10 s idle timeout, and a connection whose
 * answers pile up unread (over 256 KiB) is no longer read until they drain:
 * a slow or hostile client holds bounded memory.
 *
 * A query that does not parse gets FORMERR/NOTIMP/BADVERS, or nothing (too
 * short, a response); the server goes on answering.
 */
#ifndef TANDEM_DNS_SERVER_H
#define TANDEM_DNS_SERVER_H

#include "core/config.h"
#include "dns/dnsconf.h"

/* Run server `name` until SIGTERM/SIGINT: bind, drop privileges (as the
 * regions do, core/privdrop.h), write "ready\n" to ready_fd (when >= 0),
 * serve. Returns the process exit status (0 after a clean stop; 1 with a
 * message on stderr when it cannot start). */
int dns_server_main(const config *cfg, const dns_conf *dc, const char *name, int ready_fd);

#endif
