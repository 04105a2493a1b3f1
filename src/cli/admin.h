/*
 * admin.h - what the operator commands share: a client with the
 * deployment's "admin" certificate that talks to the regions' links (and
 * the witness) over mutual TLS.
 */
#ifndef TANDEM_CLI_ADMIN_H
#define TANDEM_CLI_ADMIN_H

#include <event2/event.h>
#include <jansson.h>
#include <openssl/ssl.h>

#include "core/config.h"

typedef struct admin admin;
struct admin {
	struct event_base *base;
	SSL_CTX *ctx;
	const config *cfg;
	/* extra options of a command: 0 when argv[*i] was one (consumed,
	 * *i moved past its value), -1 otherwise */
	int (*extra_opts)(admin *ad, int argc, char **argv, int *i);
	void *opts;
};

/* Parse --config FILE [--json] (and extra_opts), load the config, open the
 * admin TLS context. -1: go on; otherwise the exit code (help printed, or
 * an error). */
int admin_open(int argc, char **argv, const char *usage, config *cfg, admin *ad, int *json_out);
void admin_close(admin *ad);
/* One request; the parsed JSON answer (caller decrefs) and its status, or
 * NULL with a reason in err (unreachable, or not JSON). */
json_t *admin_request(admin *ad, const char *hostport, const char *name, const char *method,
		      const char *target, const char *body, int timeout_ms, int *status, char *err, size_t errcap);

#endif
